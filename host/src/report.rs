//! The JSON documents the host shows people and programs: `--json` output of the CLI and
//! the bodies of the HTTP API are the same types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::collections::HashMap;

use crate::bindings::types::{
    Connection, ConnectorError, ConnectorInfo, InstanceStatus, Memory, MemoryStatus, Passage,
};
use crate::driver::{describe_error, error_kind};
use crate::schedule::Schedule;

/// A field of the connect form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldView {
    /// Name in the connect request.
    pub name: String,
    /// Label for a form.
    pub label: String,
    /// One sentence of help.
    pub help: String,
    /// Never echoed or logged.
    pub secret: bool,
    /// Whether connecting fails without it.
    pub required: bool,
    /// Only the operator may set it (the service may fix it for every connection).
    pub operator_only: bool,
}

/// What the connector is and what connecting asks for (`describe`, `GET /api/v1/connector`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectorView {
    /// Connector kind, e.g. `confluence`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Component version.
    pub version: String,
    /// What a source is, e.g. `space key`.
    pub source_label: String,
    /// The connect form's fields.
    pub fields: Vec<FieldView>,
}

impl From<ConnectorInfo> for ConnectorView {
    fn from(info: ConnectorInfo) -> Self {
        ConnectorView {
            kind: info.kind,
            name: info.name,
            version: info.version,
            source_label: info.source_label,
            fields: info
                .config_fields
                .into_iter()
                .map(|f| FieldView {
                    name: f.name,
                    label: f.label,
                    help: f.help,
                    secret: f.secret,
                    required: f.required,
                    operator_only: f.operator_only,
                })
                .collect(),
        }
    }
}

impl ConnectorView {
    /// The described field `name` stands for: the name itself, or with `_` read as `-`
    /// (JSON bodies and forms write `allow_loopback` for `allow-loopback`).
    pub fn field(&self, name: &str) -> Option<&FieldView> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .or_else(|| self.fields.iter().find(|f| f.name == name.replace('_', "-")))
    }

    /// [`Self::field`], or a message naming the fields there are.
    pub fn known_field(&self, name: &str) -> Result<&FieldView, String> {
        self.field(name).ok_or_else(|| {
            let names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
            format!("{} has no field '{name}' (its fields: {})", self.name, names.join(", "))
        })
    }

    /// What an audit entry names as connected: the value of the form's first plain field
    /// (for Confluence, the site).
    pub fn audit_subject(&self, config: &[(String, String)]) -> String {
        self.fields
            .iter()
            .find(|f| !f.secret)
            .and_then(|f| config.iter().find(|(name, _)| name == &f.name))
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }
}

/// A connected account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionView {
    /// Connection id, e.g. `conn-1`.
    pub id: String,
    /// Canonical site, e.g. `https://acme.atlassian.net`.
    pub site: String,
    /// The account's e-mail; `null` for members, who do not see other people's addresses.
    pub email: Option<String>,
    /// How requests reach the site, e.g. `classic token`.
    pub access: String,
    /// False after a disconnect: memories stay searchable, syncs are refused.
    pub connected: bool,
    /// The origins its requests go to (the host grants the instance these and no others).
    pub origins: Vec<String>,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        ConnectionView {
            id: c.id.clone(),
            site: c.site.clone(),
            email: Some(c.account.clone()),
            access: c.access.clone(),
            connected: c.connected,
            origins: c.origins.clone(),
        }
    }
}

/// Lifecycle of a memory, in the product page's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemoryState {
    /// Ingest or sync work is registered or running.
    InProgress,
    /// The last ingest or sync finished.
    Ingested,
    /// The last ingest or sync failed; `error` says why.
    Error,
}

impl From<&MemoryStatus> for MemoryState {
    fn from(status: &MemoryStatus) -> Self {
        match status {
            MemoryStatus::InProgress => MemoryState::InProgress,
            MemoryStatus::Ingested => MemoryState::Ingested,
            MemoryStatus::Error => MemoryState::Error,
        }
    }
}

impl MemoryState {
    /// The name shown in tables (`IN_PROGRESS`, `INGESTED`, `ERROR`).
    pub fn name(self) -> &'static str {
        match self {
            MemoryState::InProgress => "IN_PROGRESS",
            MemoryState::Ingested => "INGESTED",
            MemoryState::Error => "ERROR",
        }
    }
}

/// Work counters of the current or last run of a memory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgressView {
    /// Current phase, e.g. `listing pages`.
    pub phase: String,
    /// Documents processed so far.
    pub done: u32,
    /// Documents known so far (grows while listing).
    pub known: u32,
    /// HTTP requests made.
    pub requests: u32,
    /// Retried HTTP requests.
    pub retries: u32,
    /// Documents listed.
    pub listed: u32,
    /// Bodies fetched.
    pub fetched: u32,
    /// Documents added or re-indexed.
    pub updated: u32,
    /// Documents removed.
    pub deleted: u32,
    /// Other counters of the run, named by the connector (e.g. `comments`).
    pub counts: std::collections::BTreeMap<String, u32>,
}

/// Auto Resync of a memory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Interval between syncs, in seconds.
    pub every_secs: u64,
    /// Unix time of the next attempt.
    pub next_run: u64,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Whether attempts are being spaced out after failures.
    pub backing_off: bool,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Unix time of the last successful sync.
    pub last_success: Option<u64>,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        ScheduleView {
            every_secs: s.every_secs,
            next_run: s.next_run,
            failures: s.failures,
            backing_off: s.backing_off(),
            last_error: s.last_error.clone(),
            last_success: s.last_success,
        }
    }
}

/// One space ingested for one connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemoryView {
    /// Memory id, e.g. `mem-1`.
    pub id: String,
    /// The connection it belongs to.
    pub connection: String,
    /// Space key as Confluence spells it.
    pub space_key: String,
    /// Space name.
    pub space_name: String,
    /// `IN_PROGRESS`, `INGESTED` or `ERROR`.
    pub status: MemoryState,
    /// Documents indexed: pages and blog posts, and their comments (the field kept its name
    /// from before comments were indexed).
    pub pages: u32,
    /// Passages indexed.
    pub chunks: u32,
    /// Why the memory is in `ERROR`.
    pub error: Option<String>,
    /// RFC 3339 time of the last successful ingest or sync.
    pub synced_at: Option<String>,
    /// Counters of the current or last run.
    pub progress: ProgressView,
    /// Auto Resync, when it is on.
    pub auto_resync: Option<ScheduleView>,
    /// Whether unfinished work is waiting to be continued (`resume`, or a running service).
    pub resumable: bool,
    /// Semantic retrieval's coverage of the memory, while it is on for the instance
    /// (pages are answerable lexically before they are embedded).
    pub semantic: Option<crate::semantic::SemanticView>,
}

impl MemoryView {
    /// The view of a memory with its Auto Resync schedule, if any.
    pub fn new(m: &Memory, schedule: Option<&Schedule>) -> MemoryView {
        let p = &m.progress;
        MemoryView {
            id: m.id.clone(),
            connection: m.connection_id.clone(),
            space_key: m.source_key.clone(),
            space_name: m.source_name.clone(),
            status: MemoryState::from(&m.status),
            pages: m.documents,
            chunks: m.chunks,
            error: m.error.clone(),
            synced_at: m.synced_at.clone(),
            progress: ProgressView {
                phase: p.phase.clone(),
                done: p.done,
                known: p.known,
                requests: p.requests,
                retries: p.retries,
                listed: p.listed,
                fetched: p.fetched,
                updated: p.updated,
                deleted: p.deleted,
                counts: p.counts.iter().cloned().collect(),
            },
            auto_resync: schedule.map(ScheduleView::from),
            resumable: matches!(m.status, MemoryStatus::InProgress),
            semantic: None,
        }
    }
}

/// Connections and memories of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// Connected (and disconnected) accounts.
    pub connections: Vec<ConnectionView>,
    /// Every memory.
    pub memories: Vec<MemoryView>,
}

impl StatusView {
    /// The view of an instance's status with its Auto Resync schedules.
    pub fn new(status: &InstanceStatus, schedules: &[Schedule]) -> StatusView {
        let by_memory: HashMap<&str, &Schedule> = schedules.iter().map(|s| (s.memory.as_str(), s)).collect();
        StatusView {
            connections: status.connections.iter().map(ConnectionView::from).collect(),
            memories: status
                .memories
                .iter()
                .map(|m| MemoryView::new(m, by_memory.get(m.id.as_str()).copied()))
                .collect(),
        }
    }
}

/// One line of `export`: a committed passage, for audits and exact comparisons.
pub fn export_line(hit: &connector_search::Hit) -> serde_json::Value {
    serde_json::json!({
        "memory": hit.memory_id, "page_id": hit.document_id, "ordinal": hit.ordinal,
        "title": hit.title, "heading": hit.heading, "text": hit.text,
    })
}

/// A space key that did not become a memory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectedView {
    /// The key as typed.
    pub space_key: String,
    /// Machine-readable reason: `duplicate`, `not-found`, `invalid-input`, ...
    pub kind: String,
    /// What happened and what to do.
    pub error: String,
}

impl RejectedView {
    /// The view of a rejected key.
    pub fn new(space_key: &str, error: &ConnectorError) -> RejectedView {
        RejectedView { space_key: space_key.to_string(), kind: error_kind(error).into(), error: describe_error(error) }
    }
}

/// The memories an ingest registered, and the keys it rejected.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestView {
    /// Accepted memories.
    pub memories: Vec<MemoryView>,
    /// Rejected keys.
    pub rejected: Vec<RejectedView>,
    /// Pages this run embedded for semantic retrieval (CLI runs in this process, while
    /// semantic retrieval is on: unchanged pages are not embedded again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<u64>,
}

/// A passage that answers a question, with its citation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PassageView {
    /// Page title.
    pub title: String,
    /// Link that opens the page (with `/wiki`).
    pub url: String,
    /// Space › ancestors › page › heading.
    pub breadcrumb: String,
    /// The passage text.
    pub text: String,
    /// Relevance score (higher is better; comparable within one answer).
    pub score: f32,
    /// Confluence page id.
    pub page_id: String,
    /// Page version indexed.
    pub version: u32,
    /// RFC 3339 last-modified time of that version.
    pub modified_at: String,
    /// Space key.
    pub space_key: String,
    /// Memory id.
    pub memory: String,
    /// The page's (blog post's, attachment's) labels.
    pub labels: Vec<String>,
}

impl From<&Passage> for PassageView {
    fn from(p: &Passage) -> Self {
        PassageView {
            title: p.title.clone(),
            url: p.url.clone(),
            breadcrumb: p.breadcrumb.clone(),
            text: p.text.clone(),
            score: p.score,
            page_id: p.document_id.clone(),
            version: p.document_version,
            modified_at: p.modified_at.clone(),
            space_key: p.source_key.clone(),
            memory: p.memory_id.clone(),
            labels: p.labels.clone(),
        }
    }
}

/// The answer to a question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AskView {
    /// Best passages first.
    pub passages: Vec<PassageView>,
}
