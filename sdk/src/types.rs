//! The contract's records and errors (`knowledge:connector/types`) in plain Rust, so that a
//! connector's logic and its tests never touch generated bindings. Each mirrors the WIT
//! record of the same name; the WIT documents their meaning.

use crate::caps::HostError;

/// A field the connector needs from the operator at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigField {
    /// Machine name, the key in `connect`'s configuration list.
    pub name: String,
    /// Label for a form.
    pub label: String,
    /// One sentence of help.
    pub help: String,
    /// Never echoed, logged or stored in plaintext.
    pub secret: bool,
    /// `connect` fails without it.
    pub required: bool,
    /// Only the host's operator may set it (it changes where credentials go).
    pub operator_only: bool,
}

/// What a connector is and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Stable kind, e.g. `confluence`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Component version (semver).
    pub version: String,
    /// What a source is, e.g. `space key`.
    pub source_label: String,
    /// The fields `connect` takes.
    pub config_fields: Vec<ConfigField>,
}

/// An origin a configuration may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `scheme://host[:port]`.
    pub url: String,
    /// What the connector reaches there.
    pub purpose: String,
    /// Needed only for some credentials; the connection tells whether it is used.
    pub conditional: bool,
    /// Plain `http` (a loopback test site).
    pub insecure: bool,
}

/// Why a call failed; the message names what a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Malformed input.
    #[error("{0}")]
    InvalidInput(String),
    /// The source rejected the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Scopes to add to the token.
    #[error("the API token is missing the scopes: {}", .0.join(", "))]
    MissingScopes(Vec<String>),
    /// Unknown connection, memory or source.
    #[error("{0}")]
    NotFound(String),
    /// Already a memory.
    #[error("{0}")]
    Duplicate(String),
    /// Not possible in the current state.
    #[error("{0}")]
    Unavailable(String),
    /// The source is unreachable or kept failing.
    #[error("{0}")]
    Network(String),
    /// The host refused something.
    #[error("{0}")]
    Denied(String),
    /// A host capability failed.
    #[error("{0}")]
    Host(String),
}

impl From<HostError> for ConnectorError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::Unreadable(message) => ConnectorError::Unauthorized(format!(
                "{message}: connect the account again so that the host stores its token anew"
            )),
            other => ConnectorError::Host(format!("host storage failed: {other}")),
        }
    }
}

/// A connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Stable id.
    pub id: String,
    /// Canonical site.
    pub site: String,
    /// The account it acts as.
    pub account: String,
    /// How requests reach the source.
    pub access: String,
    /// False after `disconnect`.
    pub connected: bool,
    /// The origins its requests go to.
    pub origins: Vec<String>,
}

/// Lifecycle of a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStatus {
    /// Work registered or running.
    InProgress,
    /// The last run finished.
    Ingested,
    /// The last run failed.
    Error,
}

/// Work counters of the current or last run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Current phase, human readable.
    pub phase: String,
    /// Documents processed.
    pub done: u32,
    /// Documents known.
    pub known: u32,
    /// HTTP requests.
    pub requests: u32,
    /// Retried requests.
    pub retries: u32,
    /// Documents listed.
    pub listed: u32,
    /// Bodies fetched.
    pub fetched: u32,
    /// Documents added or re-indexed.
    pub updated: u32,
    /// Documents removed.
    pub deleted: u32,
    /// Other counters of the run, named by the connector.
    pub counts: Vec<(String, u32)>,
}

/// One source ingested for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Stable id.
    pub id: String,
    /// The connection it belongs to.
    pub connection_id: String,
    /// The source key as the source spells it.
    pub source_key: String,
    /// The source's display name.
    pub source_name: String,
    /// Lifecycle status.
    pub status: MemoryStatus,
    /// Why it is in error.
    pub error: Option<String>,
    /// Documents indexed.
    pub documents: u32,
    /// Passages indexed.
    pub chunks: u32,
    /// Counters of the current or last run.
    pub progress: Progress,
    /// Last successful run (RFC 3339).
    pub synced_at: Option<String>,
}

/// The outcome of one requested source in `ingest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The source as typed (trimmed).
    pub requested: String,
    /// The new memory, or why the source was rejected.
    pub outcome: Result<Memory, ConnectorError>,
}

/// Options of `sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Apply deletions even when they would remove more than half of the memory.
    pub allow_mass_delete: bool,
}

/// What one `step` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The memory after the step.
    pub memory: Memory,
    /// No work left.
    pub finished: bool,
}

/// A passage that answers a question, with its citation.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// Document title.
    pub title: String,
    /// A URL that opens the document.
    pub url: String,
    /// Where the passage sits.
    pub breadcrumb: String,
    /// Passage text.
    pub text: String,
    /// Relevance (comparable within one answer).
    pub score: f32,
    /// Document id in the source.
    pub document_id: String,
    /// Document version.
    pub document_version: u32,
    /// Last modified (RFC 3339).
    pub modified_at: String,
    /// Source key.
    pub source_key: String,
    /// Memory id.
    pub memory_id: String,
    /// The document's labels.
    pub labels: Vec<String>,
}

/// How an answer is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrieveOptions {
    /// Memories to search (all when empty).
    pub memory_ids: Vec<String>,
    /// Passages at most (0 means 5; at most 1000).
    pub limit: u32,
    /// Passages per document at most; 0 for raw passages.
    pub per_document: u32,
    /// Only documents with one of these labels (all when empty).
    pub labels: Vec<String>,
}

/// Everything the connector instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Connections.
    pub connections: Vec<Connection>,
    /// Memories.
    pub memories: Vec<Memory>,
}
