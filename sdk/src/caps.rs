//! The host capabilities the connector logic needs, as plain Rust traits.
//!
//! The component implements them over its WIT imports (`wasi:keyvalue`, `search`,
//! `secrets`); native tests use the in-memory ones of [`crate::fakes`]. Keeping the seam
//! this small is what lets the Confluence logic be tested without WebAssembly.

/// A failed host call (storage, search or secrets), with the host's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host refused the call as given; repeating it fails again.
    #[error("{0}")]
    InvalidInput(String),
    /// A stored secret exists but the host cannot read it any more (its operator key
    /// changed): it has to be given again.
    #[error("{0}")]
    Unreadable(String),
    /// The capability failed; the same call may succeed later.
    #[error("{0}")]
    Unavailable(String),
}

/// Key-value storage, grouped in buckets (each bucket an independent key space).
pub trait KeyValue {
    /// Reads a key.
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Writes a key.
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Reads many keys; one entry per key, in order.
    fn get_many(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, HostError>;
    /// Writes many keys at once.
    fn set_many(&self, bucket: &str, items: Vec<(String, Vec<u8>)>) -> Result<(), HostError>;
    /// Deletes many keys at once.
    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), HostError>;
    /// One page of the bucket's keys and the cursor of the next page.
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), HostError>;
}

/// A passage handed to the search index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexChunk {
    /// Position in the document.
    pub ordinal: u32,
    /// Document title.
    pub title: String,
    /// Heading path, e.g. `Install › Linux`.
    pub heading: String,
    /// Passage text.
    pub text: String,
}

/// A search match.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHit {
    /// Memory of the document.
    pub memory_id: String,
    /// Document id.
    pub document_id: String,
    /// Chunk position.
    pub ordinal: u32,
    /// Document title.
    pub title: String,
    /// Heading path.
    pub heading: String,
    /// Passage text.
    pub text: String,
    /// BM25 score.
    pub score: f32,
}

/// Full-text search, scoped by the host to this connector instance.
pub trait SearchIndex {
    /// Replaces all chunks of a document (empty removes it).
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: Vec<IndexChunk>) -> Result<(), HostError>;
    /// Removes documents.
    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), HostError>;
    /// Makes writes durable and visible.
    fn commit(&self) -> Result<(), HostError>;
    /// Discards the writes since the last commit.
    fn rollback(&self) -> Result<(), HostError>;
    /// Best chunks for a question.
    fn query(&self, text: &str, memory_ids: &[String], limit: u32) -> Result<Vec<IndexHit>, HostError>;
}

/// Secrets kept by the host, encrypted at rest.
pub trait SecretStore {
    /// Stores a secret.
    fn put(&self, name: &str, value: &str) -> Result<(), HostError>;
    /// Reads a secret.
    fn get(&self, name: &str) -> Result<Option<String>, HostError>;
    /// Forgets a secret.
    fn remove(&self, name: &str) -> Result<(), HostError>;
}
