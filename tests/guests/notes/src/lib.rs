//! Notes: a second knowledge source on the connector SDK, as small as a source can be while
//! doing everything the contract asks. A connection is one *notes index*, a JSON document
//! at a URL (optionally behind a bearer token):
//!
//! ```json
//! {"folders": [{"key": "ops", "name": "Operations",
//!   "notes": [{"id": "n1", "title": "Backups", "version": 3,
//!              "modified": "2026-11-02T10:00:00Z", "text": "Paragraphs...\n\nMore."}]}]}
//! ```
//!
//! A source is a folder key; its memory holds the folder's notes, one passage per
//! paragraph. A `step` reads the index once and brings the memory up to date in one go:
//! changed notes re-indexed, vanished ones removed (unless that would empty most of the
//! memory and the sync did not allow it), records written after the index commit.
//! Everything here is plain Rust over the SDK's capabilities, so it runs natively on the
//! SDK's fakes (the tests below) and, exported with `export_connector!`, as a component in
//! any host of the contract. Neither the SDK, the WIT nor the host knows it exists.

use std::collections::HashMap;

use connector_sdk::caps::IndexChunk;
use connector_sdk::checkpoint::StepWrites;
use connector_sdk::http::Request;
use connector_sdk::kv::{all_keys, next_id};
use connector_sdk::rank::{RankConfig, Shape};
use connector_sdk::step::{Advance, Lifecycle, settle};
use connector_sdk::sweep::{remove_stale, tally};
use connector_sdk::types::*;
use connector_sdk::{Capabilities, Connector};
use serde::{Deserialize, Serialize};

/// The bucket of connections and memories.
const MAIN: &str = "default";
/// Characters per passage at most (paragraphs are joined up to it).
const PASSAGE_CHARS: usize = 800;

/// The Notes connector.
pub struct Notes;

#[derive(Debug, Deserialize)]
struct Index {
    folders: Vec<Folder>,
}

#[derive(Debug, Deserialize)]
struct Folder {
    key: String,
    name: String,
    #[serde(default)]
    notes: Vec<Note>,
}

#[derive(Debug, Deserialize)]
struct Note {
    id: String,
    title: String,
    version: u32,
    #[serde(default)]
    modified: String,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConnectionRecord {
    id: String,
    index_url: String,
    has_token: bool,
    connected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryRecord {
    id: String,
    connection_id: String,
    folder: String,
    name: String,
    /// `in-progress`, `ingested` or `error`.
    status: String,
    error: Option<String>,
    documents: u32,
    chunks: u32,
    progress: ProgressRecord,
    synced_at: Option<String>,
    /// The running sync may remove more than half of the memory.
    #[serde(default)]
    allow_mass_delete: bool,
    /// The number of the current (or last) run: notes it did not see are gone.
    #[serde(default)]
    generation: u64,
}

impl Lifecycle for MemoryRecord {
    fn finished(&mut self, synced_at: String) {
        self.status = "ingested".into();
        self.error = None;
        self.synced_at = Some(synced_at);
        self.allow_mass_delete = false;
    }

    fn failed(&mut self, error: String) {
        self.status = "error".into();
        self.error = Some(error);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProgressRecord {
    requests: u32,
    listed: u32,
    updated: u32,
    deleted: u32,
}

/// What the memory holds of one note.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoteRecord {
    title: String,
    version: u32,
    modified: String,
    /// Passages indexed, and the run that last saw the note (the SDK's sweep reads both).
    chunks: u32,
    seen: u64,
}

fn config_value<'c>(config: &'c [(String, String)], name: &str) -> &'c str {
    config.iter().rev().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
}

fn docs_bucket(memory_id: &str) -> String {
    format!("docs-{memory_id}")
}

fn token_secret(connection_id: &str) -> String {
    format!("token/{connection_id}")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| ConnectorError::Host(format!("a stored {what} is unreadable: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

/// The index URL's origin, or why it cannot be one.
fn index_origin(url: &str) -> Result<(String, bool), ConnectorError> {
    let invalid = || ConnectorError::InvalidInput(format!("'{url}' is not an http(s) URL of a notes index"));
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok((format!("https://{}", authority.to_ascii_lowercase()), false)),
        "http" => Ok((format!("http://{}", authority.to_ascii_lowercase()), true)),
        _ => Err(invalid()),
    }
}

/// Reads the index, counting the request.
fn read_index(caps: Capabilities<'_>, url: &str, token: Option<&str>) -> Result<Index, ConnectorError> {
    let mut headers = vec![("accept".to_string(), "application/json".to_string())];
    if let Some(token) = token {
        headers.push(("authorization".to_string(), format!("Bearer {token}")));
    }
    let response = caps
        .transport
        .send(Request { url: url.to_string(), headers })
        .map_err(|e| ConnectorError::Network(e.to_string()))?;
    match response.status {
        200 => serde_json::from_slice(&response.body)
            .map_err(|e| ConnectorError::InvalidInput(format!("{url} is not a notes index: {e}"))),
        401 | 403 => Err(ConnectorError::Unauthorized(format!("{url} refused the token ({})", response.status))),
        404 => Err(ConnectorError::NotFound(format!("{url} answered 404: no notes index there"))),
        status => Err(ConnectorError::Network(format!("{url} answered {status}"))),
    }
}

/// Paragraphs joined into passages of at most [`PASSAGE_CHARS`] characters.
fn passages(note: &Note) -> Vec<IndexChunk> {
    let mut texts: Vec<String> = Vec::new();
    for paragraph in note.text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        match texts.last_mut() {
            Some(last) if last.chars().count() + paragraph.chars().count() < PASSAGE_CHARS => {
                last.push_str("\n\n");
                last.push_str(paragraph);
            }
            _ => texts.push(paragraph.to_string()),
        }
    }
    if texts.is_empty() {
        texts.push(note.title.clone());
    }
    texts
        .into_iter()
        .enumerate()
        .map(|(ordinal, text)| IndexChunk {
            ordinal: ordinal as u32,
            title: note.title.clone(),
            heading: String::new(),
            text,
        })
        .collect()
}

fn connections(caps: Capabilities<'_>) -> Result<Vec<ConnectionRecord>, ConnectorError> {
    records(caps, "conn/", "connection")
}

fn memories(caps: Capabilities<'_>) -> Result<Vec<MemoryRecord>, ConnectorError> {
    records(caps, "mem/", "memory")
}

fn records<T: serde::de::DeserializeOwned>(
    caps: Capabilities<'_>,
    prefix: &str,
    what: &str,
) -> Result<Vec<T>, ConnectorError> {
    let keys = all_keys(caps.kv, MAIN)?.into_iter().filter(|k| k.starts_with(prefix)).collect::<Vec<_>>();
    caps.kv.get_many(MAIN, &keys)?.into_iter().flatten().map(|bytes| decode(&bytes, what)).collect()
}

fn connection(caps: Capabilities<'_>, id: &str) -> Result<ConnectionRecord, ConnectorError> {
    let bytes = caps.kv.get(MAIN, &format!("conn/{id}"))?;
    bytes.map_or_else(|| Err(ConnectorError::NotFound(format!("no connection {id}"))), |b| decode(&b, "connection"))
}

fn memory(caps: Capabilities<'_>, id: &str) -> Result<MemoryRecord, ConnectorError> {
    let bytes = caps.kv.get(MAIN, &format!("mem/{id}"))?;
    bytes.map_or_else(|| Err(ConnectorError::NotFound(format!("no memory {id}"))), |b| decode(&b, "memory"))
}

fn save_memory(caps: Capabilities<'_>, memory: &MemoryRecord) -> Result<(), ConnectorError> {
    Ok(caps.kv.set(MAIN, &format!("mem/{}", memory.id), &encode(memory))?)
}

fn view_connection(record: ConnectionRecord) -> Connection {
    let origins = index_origin(&record.index_url).map(|(origin, _)| vec![origin]).unwrap_or_default();
    Connection {
        access: if record.has_token { "bearer token".into() } else { "public index".into() },
        site: record.index_url,
        account: String::new(),
        id: record.id,
        connected: record.connected,
        origins,
    }
}

fn view_memory(record: MemoryRecord) -> Memory {
    let status = match record.status.as_str() {
        "ingested" => MemoryStatus::Ingested,
        "error" => MemoryStatus::Error,
        _ => MemoryStatus::InProgress,
    };
    let p = record.progress;
    Memory {
        progress: Progress {
            phase: record.status,
            done: p.listed,
            known: p.listed,
            requests: p.requests,
            retries: 0,
            listed: p.listed,
            fetched: p.listed,
            updated: p.updated,
            deleted: p.deleted,
            counts: Vec::new(),
        },
        id: record.id,
        connection_id: record.connection_id,
        source_key: record.folder,
        source_name: record.name,
        status,
        error: record.error,
        documents: record.documents,
        chunks: record.chunks,
        synced_at: record.synced_at,
    }
}

impl Notes {
    /// Brings a memory up to date with its folder: the whole run in one step.
    fn run(caps: Capabilities<'_>, memory: &mut MemoryRecord) -> Result<Advance, ConnectorError> {
        let connection = connection(caps, &memory.connection_id)?;
        if !connection.connected {
            return Err(ConnectorError::Unavailable(format!(
                "connection {} is disconnected: connect the index again to sync",
                connection.id
            )));
        }
        let token = if connection.has_token { caps.secrets.get(&token_secret(&connection.id))? } else { None };
        let index = read_index(caps, &connection.index_url, token.as_deref())?;
        memory.progress = ProgressRecord { requests: 1, ..ProgressRecord::default() };
        let folder = index.folders.into_iter().find(|f| f.key == memory.folder).ok_or_else(|| {
            ConnectorError::NotFound(format!("the index has no folder '{}' (or it was removed)", memory.folder))
        })?;
        memory.name = folder.name;
        let bucket = docs_bucket(&memory.id);
        let ids: Vec<String> = folder.notes.iter().map(|n| n.id.clone()).collect();
        let stored = caps.kv.get_many(&bucket, &ids)?;
        let mut writes = StepWrites::default();
        for (note, stored) in folder.notes.iter().zip(stored) {
            memory.progress.listed += 1;
            let stored: Option<NoteRecord> = stored.and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let record = match stored {
                Some(record) if record.version == note.version && record.title == note.title => record,
                _ => {
                    let chunks = passages(note);
                    let count = chunks.len() as u32;
                    caps.index.replace_document(&memory.id, &note.id, chunks)?;
                    writes.indexed();
                    memory.progress.updated += 1;
                    NoteRecord {
                        title: note.title.clone(),
                        version: note.version,
                        modified: note.modified.clone(),
                        chunks: count,
                        seen: 0,
                    }
                }
            };
            writes.record(note.id.clone(), encode(&NoteRecord { seen: memory.generation, ..record }));
        }
        writes.apply(caps.index, caps.kv, &bucket)?;
        let mut tally = tally(caps.kv, &bucket, memory.generation)?;
        if tally.is_mass_delete() && !memory.allow_mass_delete {
            return Err(ConnectorError::Unavailable(format!(
                "the index no longer lists {} of the {} notes of this memory; nothing was removed: \
                 sync with allow-mass-delete if that is right",
                tally.stale.len(),
                tally.documents as usize + tally.stale.len()
            )));
        }
        memory.progress.deleted = remove_stale(caps.index, caps.kv, &memory.id, &bucket, &mut tally.stale, usize::MAX)?;
        memory.documents = tally.documents;
        memory.chunks = tally.chunks;
        Ok(Advance::Finished)
    }
}

impl Connector for Notes {
    fn describe() -> ConnectorInfo {
        let field = |name: &str, label: &str, help: &str, secret: bool, required: bool| ConfigField {
            name: name.into(),
            label: label.into(),
            help: help.into(),
            secret,
            required,
            operator_only: false,
        };
        ConnectorInfo {
            kind: "notes".into(),
            name: "Notes".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            source_label: "folder key".into(),
            config_fields: vec![
                field("index", "Notes index URL", "The URL of the notes index (JSON)", false, true),
                field("token", "Bearer token", "Sent as `Authorization: Bearer` when the index needs one", true, false),
            ],
        }
    }

    fn required_origins(_: Capabilities<'_>, config: &[(String, String)]) -> Result<Vec<Origin>, ConnectorError> {
        let (url, insecure) = index_origin(config_value(config, "index"))?;
        Ok(vec![Origin { url, purpose: "the notes index".into(), conditional: false, insecure }])
    }

    fn connect(caps: Capabilities<'_>, config: &[(String, String)]) -> Result<Connection, ConnectorError> {
        for (key, _) in config {
            if key != "index" && key != "token" {
                return Err(ConnectorError::InvalidInput(format!(
                    "unknown configuration field '{key}' (expected: index, token)"
                )));
            }
        }
        let index_url = config_value(config, "index").to_string();
        index_origin(&index_url)?;
        let token = Some(config_value(config, "token")).filter(|t| !t.is_empty());
        read_index(caps, &index_url, token)?;
        let id = match connections(caps)?.into_iter().find(|c| c.index_url == index_url) {
            Some(existing) => existing.id,
            None => next_id(caps.kv, MAIN, "notes")?,
        };
        match token {
            Some(token) => caps.secrets.put(&token_secret(&id), token)?,
            None => caps.secrets.remove(&token_secret(&id))?,
        }
        let record = ConnectionRecord { id, index_url, has_token: token.is_some(), connected: true };
        caps.kv.set(MAIN, &format!("conn/{}", record.id), &encode(&record))?;
        Ok(view_connection(record))
    }

    fn disconnect(caps: Capabilities<'_>, connection_id: &str) -> Result<Connection, ConnectorError> {
        let mut record = connection(caps, connection_id)?;
        caps.secrets.remove(&token_secret(connection_id))?;
        record.connected = false;
        caps.kv.set(MAIN, &format!("conn/{connection_id}"), &encode(&record))?;
        Ok(view_connection(record))
    }

    fn ingest(
        caps: Capabilities<'_>,
        connection_id: &str,
        sources: &[String],
    ) -> Result<Vec<IngestOutcome>, ConnectorError> {
        if !connection(caps, connection_id)?.connected {
            return Err(ConnectorError::Unavailable(format!("connection {connection_id} is disconnected")));
        }
        let mut existing = memories(caps)?;
        let mut outcomes = Vec::new();
        for requested in sources {
            let folder = requested.trim().to_string();
            let outcome = if folder.is_empty()
                || !folder.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Err(ConnectorError::InvalidInput(format!("'{folder}' is not a folder key (letters, digits, - and _)")))
            } else if existing.iter().any(|m| m.connection_id == connection_id && m.folder == folder) {
                Err(ConnectorError::Duplicate(format!("folder {folder} is already a memory: sync it instead")))
            } else {
                let record = MemoryRecord {
                    id: next_id(caps.kv, MAIN, "mem")?,
                    connection_id: connection_id.to_string(),
                    name: folder.clone(),
                    folder: folder.clone(),
                    status: "in-progress".into(),
                    error: None,
                    documents: 0,
                    chunks: 0,
                    progress: ProgressRecord::default(),
                    synced_at: None,
                    allow_mass_delete: false,
                    generation: 1,
                };
                save_memory(caps, &record)?;
                existing.push(record.clone());
                Ok(view_memory(record))
            };
            outcomes.push(IngestOutcome { requested: folder, outcome });
        }
        Ok(outcomes)
    }

    fn sync(caps: Capabilities<'_>, memory_id: &str, options: SyncOptions) -> Result<Memory, ConnectorError> {
        let mut record = memory(caps, memory_id)?;
        if !connection(caps, &record.connection_id)?.connected {
            return Err(ConnectorError::Unavailable(format!(
                "connection {} is disconnected: connect the index again to sync",
                record.connection_id
            )));
        }
        record.status = "in-progress".into();
        record.allow_mass_delete = options.allow_mass_delete;
        record.generation += 1;
        save_memory(caps, &record)?;
        Ok(view_memory(record))
    }

    fn step(caps: Capabilities<'_>, memory_id: &str) -> Result<StepReport, ConnectorError> {
        let mut record = memory(caps, memory_id)?;
        if record.status != "in-progress" {
            return Ok(StepReport { memory: view_memory(record), finished: true });
        }
        let outcome = Self::run(caps, &mut record).map_err(|error| error.to_string());
        let finished = settle(&mut record, outcome, caps.index, caps.transport.unix_time());
        save_memory(caps, &record)?;
        Ok(StepReport { memory: view_memory(record), finished })
    }

    fn pending(caps: Capabilities<'_>) -> Result<Vec<String>, ConnectorError> {
        Ok(memories(caps)?.into_iter().filter(|m| m.status == "in-progress").map(|m| m.id).collect())
    }

    fn retrieve(
        caps: Capabilities<'_>,
        question: &str,
        options: &RetrieveOptions,
    ) -> Result<Vec<Passage>, ConnectorError> {
        if question.trim().is_empty() {
            return Err(ConnectorError::InvalidInput("the question is empty".into()));
        }
        if !options.labels.is_empty() {
            return Ok(Vec::new()); // Notes carry no labels.
        }
        let limit = if options.limit == 0 { 5 } else { options.limit.min(1000) };
        let shape = Shape { limit: limit as usize, per_document: options.per_document as usize };
        let rank = RankConfig::default();
        let pool = u32::try_from(rank.pool(shape)).unwrap_or(u32::MAX);
        let hits = caps.index.query(question.trim(), &options.memory_ids, pool)?;
        let mut memories: HashMap<String, MemoryRecord> = HashMap::new();
        let mut notes: HashMap<(String, String), Option<NoteRecord>> = HashMap::new();
        for hit in &hits {
            if !memories.contains_key(&hit.memory_id) {
                memories.insert(hit.memory_id.clone(), memory(caps, &hit.memory_id)?);
            }
            let key = (hit.memory_id.clone(), hit.document_id.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = notes.entry(key) {
                let stored = caps.kv.get(&docs_bucket(&hit.memory_id), &hit.document_id)?;
                slot.insert(stored.and_then(|bytes| serde_json::from_slice(&bytes).ok()));
            }
        }
        let chunks_of = |memory: &str, document: &str| {
            notes.get(&(memory.to_string(), document.to_string()))?.as_ref().map(|n| n.chunks as usize)
        };
        let answer = rank.answer(hits, shape, chunks_of);
        let mut passages = Vec::with_capacity(answer.len());
        for hit in answer {
            let memory = &memories[&hit.memory_id];
            let Some(Some(note)) = notes.get(&(hit.memory_id.clone(), hit.document_id.clone())) else { continue };
            let index_url = connection(caps, &memory.connection_id).map(|c| c.index_url).unwrap_or_default();
            passages.push(Passage {
                url: format!("{index_url}#{}", hit.document_id),
                breadcrumb: format!("{} › {}", memory.name, note.title),
                title: note.title.clone(),
                text: hit.text,
                score: hit.score,
                document_id: hit.document_id,
                document_version: note.version,
                modified_at: note.modified.clone(),
                source_key: memory.folder.clone(),
                memory_id: hit.memory_id,
                labels: Vec::new(),
            });
        }
        Ok(passages)
    }

    fn status(caps: Capabilities<'_>) -> Result<InstanceStatus, ConnectorError> {
        Ok(InstanceStatus {
            connections: connections(caps)?.into_iter().map(view_connection).collect(),
            memories: memories(caps)?.into_iter().map(view_memory).collect(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
connector_sdk::export_connector!(Notes);

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use connector_sdk::fakes::{MemoryKeyValue, MemorySearch, MemorySecrets};
    use connector_sdk::http::{Response, Transport, TransportError};

    use super::*;

    /// Serves one index document at any URL.
    struct Served(RefCell<String>);

    impl Transport for Served {
        fn send_all(&self, requests: Vec<Request>) -> Vec<Result<Response, TransportError>> {
            requests
                .iter()
                .map(|_| Ok(Response { status: 200, headers: Vec::new(), body: self.0.borrow().clone().into_bytes() }))
                .collect()
        }
        fn sleep(&self, _: Duration) {}
        fn jitter_seed(&self) -> u64 {
            7
        }
        fn unix_time(&self) -> u64 {
            1_790_000_000
        }
    }

    fn index(notes: &[(&str, u32, &str)]) -> String {
        let notes: Vec<serde_json::Value> = notes
            .iter()
            .map(|(id, version, text)| serde_json::json!({"id": id, "title": format!("Note {id}"), "version": version, "text": text}))
            .collect();
        serde_json::json!({"folders": [{"key": "ops", "name": "Operations", "notes": notes}]}).to_string()
    }

    #[test]
    fn a_folder_is_ingested_synced_and_answered_on_the_sdk_fakes() {
        let (kv, search, secrets) = (MemoryKeyValue::default(), MemorySearch::default(), MemorySecrets::default());
        let served = Served(RefCell::new(index(&[
            ("n1", 1, "Backups run nightly.\n\nRestores are tested monthly."),
            ("n2", 1, "Rotate keys yearly."),
        ])));
        let caps = Capabilities { kv: &kv, index: &search, secrets: &secrets, transport: &served };
        let config = vec![("index".to_string(), "http://127.0.0.1:9/notes.json".to_string())];
        let origins = Notes::required_origins(caps, &config).unwrap();
        assert_eq!((origins[0].url.as_str(), origins[0].insecure), ("http://127.0.0.1:9", true));
        let connection = Notes::connect(caps, &config).unwrap();
        let outcomes = Notes::ingest(caps, &connection.id, &["ops".into(), "ops".into(), "bad key".into()]).unwrap();
        assert!(outcomes[0].outcome.is_ok());
        assert!(matches!(outcomes[1].outcome, Err(ConnectorError::Duplicate(_))));
        assert!(matches!(outcomes[2].outcome, Err(ConnectorError::InvalidInput(_))));
        let memory_id = outcomes[0].outcome.as_ref().unwrap().id.clone();
        let report = Notes::step(caps, &memory_id).unwrap();
        assert_eq!(
            (report.memory.status, report.memory.documents, report.memory.chunks),
            (MemoryStatus::Ingested, 2, 2)
        );

        let ask = |question: &str| {
            Notes::retrieve(
                caps,
                question,
                &RetrieveOptions { memory_ids: Vec::new(), limit: 5, per_document: 1, labels: Vec::new() },
            )
            .unwrap()
        };
        assert_eq!(ask("restores tested")[0].document_id, "n1");

        // n1 edited, n2 gone: a sync follows both.
        *served.0.borrow_mut() = index(&[("n1", 2, "Backups run hourly now.")]);
        Notes::sync(caps, &memory_id, SyncOptions::default()).unwrap();
        let report = Notes::step(caps, &memory_id).unwrap();
        assert_eq!((report.memory.documents, report.memory.progress.deleted), (1, 1));
        assert!(ask("rotate keys").is_empty(), "the removed note is gone from the index");
        assert!(ask("hourly")[0].text.contains("hourly"));
    }

    #[test]
    fn a_sync_that_would_empty_the_folder_waits_for_a_confirmation() {
        let (kv, search, secrets) = (MemoryKeyValue::default(), MemorySearch::default(), MemorySecrets::default());
        let four = [("a", 1, "alpha"), ("b", 1, "bravo"), ("c", 1, "charlie"), ("d", 1, "delta")];
        let served = Served(RefCell::new(index(&four)));
        let caps = Capabilities { kv: &kv, index: &search, secrets: &secrets, transport: &served };
        let config = vec![("index".to_string(), "https://notes.example/index.json".to_string())];
        let connection = Notes::connect(caps, &config).unwrap();
        let outcomes = Notes::ingest(caps, &connection.id, &["ops".into()]).unwrap();
        let memory_id = outcomes[0].outcome.as_ref().unwrap().id.clone();
        Notes::step(caps, &memory_id).unwrap();

        *served.0.borrow_mut() = index(&[("a", 1, "alpha")]);
        Notes::sync(caps, &memory_id, SyncOptions::default()).unwrap();
        let refused = Notes::step(caps, &memory_id).unwrap().memory;
        assert_eq!(refused.status, MemoryStatus::Error);
        assert!(refused.error.as_deref().unwrap_or_default().contains("allow-mass-delete"), "{refused:?}");
        assert_eq!(refused.documents, 4, "nothing was removed");

        Notes::sync(caps, &memory_id, SyncOptions { allow_mass_delete: true }).unwrap();
        let allowed = Notes::step(caps, &memory_id).unwrap().memory;
        assert_eq!((allowed.status, allowed.documents, allowed.progress.deleted), (MemoryStatus::Ingested, 1, 3));
    }
}
