//! The connector's product logic: connect, ingest, sync, step, retrieve, status.
//!
//! One [`Engine`], its methods grouped by concern: `connect` (connections, token kinds,
//! scopes), `ingest` (registering memories and runs), `work` (the step loop), `includes`
//! (the pages `include` macros show, and their check at sync), `people` (names of mentioned
//! accounts) and `answers` (retrieval with citations); records and shared helpers live here.
//!
//! Everything is plain Rust over the capability traits of [`connector_sdk::caps`] and the
//! [`Transport`]; the WebAssembly layer only translates types. State lives in
//! key-value storage and every step ends with a checkpoint, so work survives a host
//! crash at any point: a repeated step re-does at most one batch, and every write it
//! makes is idempotent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use connector_sdk::caps::{HostError, KeyValue, SearchIndex, SecretStore};
use connector_sdk::http::Transport;
use connector_sdk::types::Origin;

use crate::chunk::{ChunkConfig, converted_chunks};
use crate::client::{ApiError, Client};
use crate::model::{Attachment, Comment, Content, CurrentUser, Label, Labelled, Listing, Space, TenantInfo};
use crate::records::*;
use crate::site::{self, Site, SiteOptions};
use crate::storage;

mod answers;
mod connect;
mod includes;
mod ingest;
mod people;
mod work;

pub use connect::config_fields;

/// Listing page size: the v2 maximum, so a space costs one request per 250 pages.
const PAGE_LIMIT: u32 = 250;
/// Documents removed per step.
const DELETE_BATCH: usize = 500;
/// Spaces resolved per lookup request.
const KEYS_PER_LOOKUP: usize = 100;
/// Scopes a scoped token needs, and the probe that proves each.
const SCOPE_PROBES: [(&str, &str); 3] = [
    ("read:content-details:confluence", "/wiki/rest/api/user/current"),
    ("read:space:confluence", "/wiki/api/v2/spaces?limit=1"),
    ("read:page:confluence", "/wiki/api/v2/pages?limit=1"),
];

pub use connector_sdk::ConnectorError;

/// The outcome of one requested space in `ingest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The key as typed (trimmed).
    pub requested: String,
    /// The memory, or why the key was rejected.
    pub outcome: Result<Memory, ConnectorError>,
}

/// Everything the instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Connections.
    pub connections: Vec<Connection>,
    /// Memories.
    pub memories: Vec<Memory>,
}

/// The connector, bound to its capabilities for one call.
pub struct Engine<'a> {
    kv: &'a dyn KeyValue,
    index: &'a dyn SearchIndex,
    secrets: &'a dyn SecretStore,
    transport: &'a dyn Transport,
    chunking: ChunkConfig,
}

/// Checks the characters of a space key (Confluence keys are letters, digits and `_`;
/// personal spaces start with `~`).
fn check_space_key(key: &str) -> Result<(), ConnectorError> {
    let body = key.strip_prefix('~').unwrap_or(key);
    let valid = !body.is_empty()
        && key.len() <= 255
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (key.starts_with('~') && (c == '-' || c == ':')));
    if valid {
        Ok(())
    } else {
        Err(ConnectorError::InvalidInput(format!(
            "'{}' is not a space key: keys are letters, digits and _ (personal spaces start with ~), as in the space's URL /wiki/spaces/KEY",
            key.chars().take(60).collect::<String>()
        )))
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| ConnectorError::Host(format!("stored {what} is unreadable: {e}")))
}

impl<'a> Engine<'a> {
    /// Binds the engine to its capabilities.
    pub fn new(
        kv: &'a dyn KeyValue,
        index: &'a dyn SearchIndex,
        secrets: &'a dyn SecretStore,
        transport: &'a dyn Transport,
    ) -> Engine<'a> {
        Engine { kv, index, secrets, transport, chunking: ChunkConfig::default() }
    }

    /// The records of the documents `ids` of a memory, in order, in one read (`None`: no
    /// record, or one this version cannot read).
    fn doc_records(&self, memory_id: &str, ids: &[String]) -> Result<Vec<Option<DocRecord>>, HostError> {
        let values = self.kv.get_many(&docs_bucket(memory_id), ids)?;
        Ok(values.into_iter().map(|value| value.and_then(|bytes| serde_json::from_slice(&bytes).ok())).collect())
    }

    fn connection(&self, id: &str) -> Result<Connection, ConnectorError> {
        match self.kv.get(MAIN_BUCKET, &connection_key(id))? {
            Some(bytes) => decode(&bytes, "connection"),
            None => Err(ConnectorError::NotFound(format!(
                "no connection '{id}' (see `status` for the connections of this instance)"
            ))),
        }
    }

    fn connections(&self) -> Result<Vec<Connection>, ConnectorError> {
        self.records("conn/", "connection")
    }

    fn memories(&self) -> Result<Vec<Memory>, ConnectorError> {
        self.records("mem/", "memory")
    }

    fn records<T: serde::de::DeserializeOwned>(&self, prefix: &str, what: &str) -> Result<Vec<T>, ConnectorError> {
        let keys: Vec<String> = self.all_keys(MAIN_BUCKET)?.into_iter().filter(|k| k.starts_with(prefix)).collect();
        let mut records = Vec::with_capacity(keys.len());
        for value in self.kv.get_many(MAIN_BUCKET, &keys)?.into_iter().flatten() {
            records.push(decode(&value, what)?);
        }
        Ok(records)
    }

    fn all_keys(&self, bucket: &str) -> Result<Vec<String>, HostError> {
        connector_sdk::kv::all_keys(self.kv, bucket)
    }

    fn next_id(&self, kind: &str) -> Result<String, ConnectorError> {
        connector_sdk::kv::next_id(self.kv, MAIN_BUCKET, kind)
    }

    fn client_for(&self, connection: &Connection) -> Result<Client<'a>, ConnectorError> {
        if !connection.connected {
            return Err(ConnectorError::Unavailable(format!(
                "connection {} ({}) is disconnected: connect the Confluence account again to sync its memories",
                connection.id, connection.site
            )));
        }
        let token = self.secrets.get(&token_secret(&connection.id))?.ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "connection {} has no stored token: connect the Confluence account again",
                connection.id
            ))
        })?;
        Ok(Client::new(self.transport, &connection.api_base, &connection.email, &token))
    }

    fn memory(&self, id: &str) -> Result<Memory, ConnectorError> {
        match self.kv.get(MAIN_BUCKET, &memory_key(id))? {
            Some(bytes) => decode(&bytes, "memory"),
            None => Err(ConnectorError::NotFound(format!(
                "no memory '{id}' (see `status` for the memories of this instance)"
            ))),
        }
    }

    fn save_memory(&self, memory: &Memory) -> Result<(), HostError> {
        self.kv.set(MAIN_BUCKET, &memory_key(&memory.id), &encode(memory))
    }

    /// Memories with unfinished runs.
    pub fn pending(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self.memories()?.into_iter().filter(|m| m.run.is_some()).map(|m| m.id).collect())
    }

    /// Connections and memories.
    pub fn status(&self) -> Result<StatusReport, ConnectorError> {
        let mut connections = self.connections()?;
        connections.sort_by_key(|c| numeric_suffix(&c.id));
        let mut memories = self.memories()?;
        memories.sort_by_key(|m| numeric_suffix(&m.id));
        Ok(StatusReport { connections, memories })
    }
}

/// GETs one page of a listing. A `next` link that points back into the listing
/// (`loops`) is re-asked twice before it is believed: a transient glitch heals, a real
/// loop is left to the caller to stop on.
fn fetch_listing<T: serde::de::DeserializeOwned>(
    client: &Client<'_>,
    link: &str,
    loops: impl Fn(&str) -> bool,
) -> Result<Listing<T>, ApiError> {
    let mut listing: Listing<T> = client.get_json(link)?;
    for _ in 0..2 {
        match listing.links.next.as_deref() {
            Some(next) if next == link || loops(next) => listing = client.get_json(link)?,
            _ => break,
        }
    }
    Ok(listing)
}

/// Follows a listing from `first` to its last page, handing each page's results to `take`;
/// a page linked twice is a loop. `path` turns the `next` links the listing answers with
/// into the client's paths (v1 links are relative to the wiki base, v2 ones to the site).
fn follow_listing<T, E>(
    client: &Client<'_>,
    first: String,
    path: fn(&str) -> String,
    mut take: impl FnMut(Vec<T>) -> Result<(), E>,
) -> Result<(), E>
where
    T: serde::de::DeserializeOwned,
    E: From<ApiError>,
{
    let mut link = Some(first);
    let mut visited = HashSet::new();
    while let Some(current) = link.take() {
        if !visited.insert(current.clone()) {
            return Err(ApiError::Looping(current).into());
        }
        let listing: Listing<T> = fetch_listing(client, &current, |next| visited.contains(&path(next)))?;
        link = listing.links.next.as_deref().map(path);
        take(listing.results)?;
    }
    Ok(())
}

/// A v2 `next` link, already a path from the site.
fn v2_link(link: &str) -> String {
    link.to_string()
}

fn new_memory(id: String, connection: &Connection, key: &str) -> Memory {
    Memory {
        id,
        connection_id: connection.id.clone(),
        space_key: key.to_string(),
        space_id: None,
        space_name: key.to_string(),
        homepage_id: None,
        wiki_base: String::new(),
        status: MemoryStatus::InProgress,
        error: None,
        documents: 0,
        chunks: 0,
        progress: Progress::default(),
        synced_at: None,
        generation: 0,
        run: None,
    }
}

fn numeric_suffix(id: &str) -> u64 {
    id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

fn token_rejected(connection: &Connection) -> ConnectorError {
    ConnectorError::Unauthorized(format!(
        "token expired or revoked — reconnect: Confluence rejected the stored API token of {} on {} (connection {})",
        connection.email, connection.site, connection.id
    ))
}

fn space_not_found(key: &str, connection: &Connection) -> String {
    format!(
        "space key '{key}' is invalid or not accessible: it does not exist on {} or {} cannot see it",
        connection.site, connection.email
    )
}

fn network(error: ApiError) -> ConnectorError {
    match error {
        ApiError::Denied(detail) => ConnectorError::Denied(detail),
        ApiError::Unresolvable(detail) => ConnectorError::NotFound(detail),
        other => ConnectorError::Network(other.to_string()),
    }
}

/// A CQL string literal: `text` in double quotes, its quotes and backslashes escaped.
fn cql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_keys() {
        for good in ["ENG", "sd", "A_1", "~5fc9e78d2730d800760becc4", "~557058:abc-def"] {
            assert!(check_space_key(good).is_ok(), "{good}");
        }
        for bad in ["", "~", "EN G", "ENG/../x", "ENG;", "<b>", "É"] {
            assert!(check_space_key(bad).is_err(), "{bad}");
        }
        assert!(check_space_key(&"A".repeat(300)).is_err());
    }

    #[test]
    fn cql_strings_escape_quotes_and_backslashes() {
        assert_eq!(cql_string(r#"Say "hi" \ bye"#), r#""Say \"hi\" \\ bye""#);
    }

    #[test]
    fn url_encoding_of_keys() {
        assert_eq!(url_encode("~557058:ab"), "~557058%3Aab");
    }
}
