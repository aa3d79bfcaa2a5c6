//! In-memory implementations of every capability in [`crate::caps`], for native tests of
//! the connector logic: the engine runs against them exactly as it runs against the host.
//!
//! They keep the guarantees the host gives and the engine relies on, so a test that
//! passes here says something about the component: a key-value batch is all or nothing,
//! search writes are invisible until [`SearchIndex::commit`] and [`MemorySearch::restart`]
//! drops the uncommitted ones (what a host does after a crash). [`Crashing`] wraps them to
//! make the host die at a chosen durable write.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::caps::{HostError, IndexChunk, IndexHit, KeyValue, SearchIndex, SecretStore};

/// Key-value storage in memory: buckets of sorted keys.
#[derive(Debug, Default)]
pub struct MemoryKeyValue {
    buckets: RefCell<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

/// Keys per page of [`KeyValue::list_keys`]: small, so that tests cross page boundaries.
const LIST_PAGE: usize = 100;

impl MemoryKeyValue {
    /// Every key and value of a bucket, in key order.
    pub fn bucket(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        self.buckets.borrow().get(bucket).cloned().unwrap_or_default()
    }

    /// The names of the buckets that hold keys.
    pub fn bucket_names(&self) -> Vec<String> {
        self.buckets.borrow().iter().filter(|(_, keys)| !keys.is_empty()).map(|(name, _)| name.clone()).collect()
    }
}

impl KeyValue for MemoryKeyValue {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.buckets.borrow().get(bucket).and_then(|b| b.get(key)).cloned())
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.buckets.borrow_mut().entry(bucket.to_string()).or_default().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn get_many(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        let buckets = self.buckets.borrow();
        Ok(keys.iter().map(|key| buckets.get(bucket).and_then(|b| b.get(key)).cloned()).collect())
    }

    fn set_many(&self, bucket: &str, items: Vec<(String, Vec<u8>)>) -> Result<(), HostError> {
        self.buckets.borrow_mut().entry(bucket.to_string()).or_default().extend(items);
        Ok(())
    }

    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), HostError> {
        if let Some(b) = self.buckets.borrow_mut().get_mut(bucket) {
            for key in keys {
                b.remove(key);
            }
        }
        Ok(())
    }

    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), HostError> {
        let start = cursor.unwrap_or(0) as usize;
        let buckets = self.buckets.borrow();
        let keys: Vec<String> =
            buckets.get(bucket).map(|b| b.keys().skip(start).take(LIST_PAGE).cloned().collect()).unwrap_or_default();
        let total = buckets.get(bucket).map_or(0, BTreeMap::len);
        let next = (start + keys.len() < total).then_some((start + keys.len()) as u64);
        Ok((keys, next))
    }
}

/// The documents of a search index: (memory id, document id) → chunks.
pub type Documents = BTreeMap<(String, String), Vec<IndexChunk>>;

/// A search index in memory. Scores a chunk by how many of the question's words it
/// contains (title and heading included): enough to tell relevant from irrelevant, not a
/// ranking to measure.
#[derive(Debug, Default)]
pub struct MemorySearch {
    committed: RefCell<Documents>,
    staged: RefCell<Vec<Write>>,
}

#[derive(Debug, Clone)]
enum Write {
    Replace { memory_id: String, document_id: String, chunks: Vec<IndexChunk> },
    Remove { memory_id: String, document_ids: Vec<String> },
}

impl MemorySearch {
    /// The committed documents.
    pub fn committed(&self) -> Documents {
        self.committed.borrow().clone()
    }

    /// What a host does when it starts again after a crash: writes that were never
    /// committed are gone.
    pub fn restart(&self) {
        self.staged.borrow_mut().clear();
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl SearchIndex for MemorySearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: Vec<IndexChunk>) -> Result<(), HostError> {
        self.staged.borrow_mut().push(Write::Replace {
            memory_id: memory_id.to_string(),
            document_id: document_id.to_string(),
            chunks,
        });
        Ok(())
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), HostError> {
        self.staged
            .borrow_mut()
            .push(Write::Remove { memory_id: memory_id.to_string(), document_ids: document_ids.to_vec() });
        Ok(())
    }

    fn commit(&self) -> Result<(), HostError> {
        let mut committed = self.committed.borrow_mut();
        for write in self.staged.borrow_mut().drain(..) {
            match write {
                Write::Replace { memory_id, document_id, chunks } if chunks.is_empty() => {
                    committed.remove(&(memory_id, document_id));
                }
                Write::Replace { memory_id, document_id, chunks } => {
                    committed.insert((memory_id, document_id), chunks);
                }
                Write::Remove { memory_id, document_ids } => {
                    for document_id in document_ids {
                        committed.remove(&(memory_id.clone(), document_id));
                    }
                }
            }
        }
        Ok(())
    }

    fn rollback(&self) -> Result<(), HostError> {
        self.staged.borrow_mut().clear();
        Ok(())
    }

    fn query(&self, text: &str, memory_ids: &[String], limit: u32) -> Result<Vec<IndexHit>, HostError> {
        let question: Vec<String> = words(text).collect();
        let mut hits: Vec<IndexHit> = Vec::new();
        for ((memory_id, document_id), chunks) in self.committed.borrow().iter() {
            if !memory_ids.is_empty() && !memory_ids.contains(memory_id) {
                continue;
            }
            for chunk in chunks {
                let chunk_words: Vec<String> =
                    words(&chunk.title).chain(words(&chunk.heading)).chain(words(&chunk.text)).collect();
                let score = question.iter().filter(|w| chunk_words.contains(w)).count();
                if score > 0 {
                    hits.push(IndexHit {
                        memory_id: memory_id.clone(),
                        document_id: document_id.clone(),
                        ordinal: chunk.ordinal,
                        title: chunk.title.clone(),
                        heading: chunk.heading.clone(),
                        text: chunk.text.clone(),
                        score: score as f32,
                    });
                }
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit as usize);
        Ok(hits)
    }
}

/// Secrets in memory.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: RefCell<BTreeMap<String, String>>,
    /// Secrets stored before the operator key changed: still there, no longer readable.
    unreadable: RefCell<Vec<String>>,
}

impl MemorySecrets {
    /// The names of the stored secrets.
    pub fn names(&self) -> Vec<String> {
        self.secrets.borrow().keys().cloned().collect()
    }

    /// What a host whose operator key changed does: every secret stored so far stays
    /// but can no longer be read, until it is put again.
    pub fn change_operator_key(&self) {
        *self.unreadable.borrow_mut() = self.names();
    }
}

impl SecretStore for MemorySecrets {
    fn put(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.unreadable.borrow_mut().retain(|n| n != name);
        self.secrets.borrow_mut().insert(name.to_string(), value.to_string());
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<String>, HostError> {
        if self.unreadable.borrow().iter().any(|n| n == name) {
            return Err(HostError::Unreadable(format!("secret {name} cannot be decrypted with this operator key")));
        }
        Ok(self.secrets.borrow().get(name).cloned())
    }

    fn remove(&self, name: &str) -> Result<(), HostError> {
        self.unreadable.borrow_mut().retain(|n| n != name);
        self.secrets.borrow_mut().remove(name);
        Ok(())
    }
}

/// When a [`Crashing`] host dies, relative to the durable write it dies at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The write is lost: the host dies before making it.
    Before(u64),
    /// The write is made, then the host dies before answering.
    After(u64),
}

/// Key-value storage and a search index whose host dies at a chosen durable write (a
/// key-value write or a search commit, counted from 1): that call and every call after it
/// fail, as if the process were gone, until [`Crashing::restart`]. Counting with no crash
/// point tells how many durable writes a run makes, so a test can crash at each one.
pub struct Crashing<'a> {
    kv: &'a MemoryKeyValue,
    index: &'a MemorySearch,
    crash: Cell<Option<CrashPoint>>,
    writes: Cell<u64>,
    dead: Cell<bool>,
}

impl<'a> Crashing<'a> {
    /// Wraps the stores; with `crash` `None` nothing fails and writes are only counted.
    pub fn new(kv: &'a MemoryKeyValue, index: &'a MemorySearch, crash: Option<CrashPoint>) -> Crashing<'a> {
        Crashing { kv, index, crash: Cell::new(crash), writes: Cell::new(0), dead: Cell::new(false) }
    }

    /// Durable writes made or attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Whether the host has died.
    pub fn crashed(&self) -> bool {
        self.dead.get()
    }

    /// The host starts again: the stores keep what was durable, uncommitted search
    /// writes are gone, and nothing fails any more.
    pub fn restart(&self) {
        self.index.restart();
        self.dead.set(false);
        self.crash.set(None);
    }

    fn alive(&self) -> Result<(), HostError> {
        if self.dead.get() { Err(gone()) } else { Ok(()) }
    }

    /// Makes one durable write through `write`, dying before or after it as planned.
    fn durable<T>(&self, write: impl FnOnce() -> Result<T, HostError>) -> Result<T, HostError> {
        self.alive()?;
        let n = self.writes.get() + 1;
        self.writes.set(n);
        match self.crash.get() {
            Some(CrashPoint::Before(at)) if at == n => {
                self.dead.set(true);
                Err(gone())
            }
            Some(CrashPoint::After(at)) if at == n => {
                write()?;
                self.dead.set(true);
                Err(gone())
            }
            _ => write(),
        }
    }
}

fn gone() -> HostError {
    HostError::Unavailable("the host is gone (simulated crash)".into())
}

impl KeyValue for Crashing<'_> {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.alive()?;
        self.kv.get(bucket, key)
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.durable(|| self.kv.set(bucket, key, value))
    }

    fn get_many(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        self.alive()?;
        self.kv.get_many(bucket, keys)
    }

    fn set_many(&self, bucket: &str, items: Vec<(String, Vec<u8>)>) -> Result<(), HostError> {
        self.durable(|| self.kv.set_many(bucket, items))
    }

    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), HostError> {
        self.durable(|| self.kv.delete_many(bucket, keys))
    }

    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), HostError> {
        self.alive()?;
        self.kv.list_keys(bucket, cursor)
    }
}

impl SearchIndex for Crashing<'_> {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: Vec<IndexChunk>) -> Result<(), HostError> {
        self.alive()?;
        self.index.replace_document(memory_id, document_id, chunks)
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), HostError> {
        self.alive()?;
        self.index.remove_documents(memory_id, document_ids)
    }

    fn commit(&self) -> Result<(), HostError> {
        self.durable(|| self.index.commit())
    }

    fn rollback(&self) -> Result<(), HostError> {
        self.alive()?;
        self.index.rollback()
    }

    fn query(&self, text: &str, memory_ids: &[String], limit: u32) -> Result<Vec<IndexHit>, HostError> {
        self.alive()?;
        self.index.query(text, memory_ids, limit)
    }
}
