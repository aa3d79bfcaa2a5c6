//! The [`Connector`] trait: the contract's exports as plain Rust, one function per export,
//! each given the host's capabilities for that call.

use crate::caps::{KeyValue, SearchIndex, SecretStore};
use crate::http::Transport;
use crate::types::*;

/// What one call into the connector may use. In the component these are the WIT imports;
/// in native tests, [`crate::fakes`] and any [`Transport`].
#[derive(Clone, Copy)]
pub struct Capabilities<'a> {
    /// Key-value storage (`wasi:keyvalue`).
    pub kv: &'a dyn KeyValue,
    /// The instance's search index.
    pub index: &'a dyn SearchIndex,
    /// Secrets, encrypted at rest by the host.
    pub secrets: &'a dyn SecretStore,
    /// Outgoing HTTP to the granted origins, clocks and randomness.
    pub transport: &'a dyn Transport,
}

/// A knowledge connector: what the `knowledge-connector` interface exports, in plain Rust.
/// The documentation of each export, and what a host guarantees around it, is the WIT's
/// (`wit/connector.wit`); an implementation keeps all its state in `kv`, `index` and
/// `secrets`, since the component may be instantiated afresh before any call.
pub trait Connector {
    /// What the connector is and the fields `connect` takes.
    fn describe() -> ConnectorInfo;
    /// The origins a configuration may need, each with what it is for.
    fn required_origins(caps: Capabilities<'_>, config: &[(String, String)]) -> Result<Vec<Origin>, ConnectorError>;
    /// Validates a configuration against the source and stores the connection.
    fn connect(caps: Capabilities<'_>, config: &[(String, String)]) -> Result<Connection, ConnectorError>;
    /// Forgets a connection's credentials; its memories stay.
    fn disconnect(caps: Capabilities<'_>, connection_id: &str) -> Result<Connection, ConnectorError>;
    /// Registers one memory per source, each outcome on its own.
    fn ingest(
        caps: Capabilities<'_>,
        connection_id: &str,
        sources: &[String],
    ) -> Result<Vec<IngestOutcome>, ConnectorError>;
    /// Starts bringing a memory up to date.
    fn sync(caps: Capabilities<'_>, memory_id: &str, options: SyncOptions) -> Result<Memory, ConnectorError>;
    /// One bounded, checkpointed piece of work on a memory.
    fn step(caps: Capabilities<'_>, memory_id: &str) -> Result<StepReport, ConnectorError>;
    /// Memories with unfinished work.
    fn pending(caps: Capabilities<'_>) -> Result<Vec<String>, ConnectorError>;
    /// The best passages for a question, shaped by `options` (`retrieve` is this with one
    /// passage per document).
    fn retrieve(
        caps: Capabilities<'_>,
        question: &str,
        options: &RetrieveOptions,
    ) -> Result<Vec<Passage>, ConnectorError>;
    /// Connections and memories, with progress.
    fn status(caps: Capabilities<'_>) -> Result<InstanceStatus, ConnectorError>;
}
