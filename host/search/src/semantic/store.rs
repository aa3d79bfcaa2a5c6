//! Durable state of the semantic index (one redb file per connector instance): the pages
//! waiting to be embedded with their text, and the vectors made so far, each with a hash
//! of the text it was made from.

use std::hash::{Hash, Hasher};
use std::path::Path;

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::SearchError;

/// Pages to embed: key → page text.
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending");
/// Embedded pages: key → text hash (8 bytes LE) followed by the vector (f32 LE).
const VECTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("vectors");
/// `model`: the [`super::Embedder::model_id`] the vectors were made with.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// One change to the semantic state, staged by a write and applied at commit, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A document's page text (after `replace-document`).
    Page {
        /// `memory<US>document`.
        key: String,
        /// Its page text.
        text: String,
    },
    /// A document is gone.
    Remove {
        /// `memory<US>document`.
        key: String,
    },
    /// Every document whose key starts with this prefix (`memory<US>`) is gone.
    RemovePrefix(String),
}

/// What a commit changed, for the in-memory vectors.
#[derive(Debug, Default)]
pub struct Applied {
    /// Keys whose vectors were deleted.
    pub removed: Vec<String>,
    /// Key prefixes whose vectors were deleted.
    pub removed_prefixes: Vec<String>,
    /// Changed keys that are pending after the commit.
    pub pending: Vec<String>,
    /// Changed keys that are not (unchanged text, or removed).
    pub not_pending: Vec<String>,
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// `memory<US>document`.
    pub key: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// The redb database of one instance's semantic index.
pub struct SemanticStore {
    db: Database,
}

impl std::fmt::Debug for SemanticStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticStore").finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> SearchError {
    SearchError::Semantic(e.to_string())
}

/// A stable hash of a page text (FNV-1a, 64 bits: identical across processes and builds,
/// unlike the standard library's hasher).
pub fn text_hash(text: &str) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    text.hash(&mut hasher);
    hasher.finish()
}

fn encode(hash: u64, vector: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + vector.len() * 4);
    bytes.extend_from_slice(&hash.to_le_bytes());
    for x in vector {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

fn decode(bytes: &[u8]) -> Option<(u64, Vec<f32>)> {
    let (hash, rest) = bytes.split_first_chunk::<8>()?;
    if rest.len() % 4 != 0 {
        return None;
    }
    let vector = rest.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some((u64::from_le_bytes(*hash), vector))
}

/// The end of the key range that starts with `prefix` (keys are `memory<US>document`,
/// and U+001F is followed by U+0020).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches(crate::KEY_SEP).to_string();
    end.push(' ');
    end
}

impl SemanticStore {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<SemanticStore, SearchError> {
        let db = Database::create(path).map_err(|e| SearchError::Directory {
            path: path.to_path_buf(),
            reason: format!("cannot open the semantic store: {e}"),
        })?;
        SemanticStore::init(db)
    }

    /// A store in memory (tests, benchmarks).
    pub fn open_in_ram() -> Result<SemanticStore, SearchError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new()).map_err(err)?;
        SemanticStore::init(db)
    }

    fn init(db: Database) -> Result<SemanticStore, SearchError> {
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(PENDING).map_err(err)?;
        tx.open_table(VECTORS).map_err(err)?;
        tx.open_table(META).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(SemanticStore { db })
    }

    /// The model the vectors were made with (`None`: a new store).
    pub fn model(&self) -> Result<Option<String>, SearchError> {
        let tx = self.db.begin_read().map_err(err)?;
        let meta = tx.open_table(META).map_err(err)?;
        Ok(meta.get("model").map_err(err)?.map(|v| v.value().to_string()))
    }

    /// Starts over for `model`: every vector is dropped and `pages` (key, text) become
    /// the pending set, in one transaction.
    pub fn reset(&self, model: &str, pages: &[(String, String)]) -> Result<(), SearchError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            tx.delete_table(PENDING).map_err(err)?;
            tx.delete_table(VECTORS).map_err(err)?;
            let mut pending = tx.open_table(PENDING).map_err(err)?;
            tx.open_table(VECTORS).map_err(err)?;
            for (key, text) in pages {
                pending.insert(key.as_str(), text.as_str()).map_err(err)?;
            }
            tx.open_table(META).map_err(err)?.insert("model", model).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Applies staged changes in order, in one transaction. A page whose text hashes like
    /// the one its vector was made from is not pending again.
    pub fn apply(&self, changes: &[Change]) -> Result<Applied, SearchError> {
        let mut applied = Applied::default();
        if changes.is_empty() {
            return Ok(applied);
        }
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut pending = tx.open_table(PENDING).map_err(err)?;
            let mut vectors = tx.open_table(VECTORS).map_err(err)?;
            let mut touched: Vec<&String> = Vec::new();
            for change in changes {
                match change {
                    Change::Page { key, text } => {
                        let unchanged = vectors
                            .get(key.as_str())
                            .map_err(err)?
                            .and_then(|v| decode(v.value()))
                            .is_some_and(|(hash, _)| hash == text_hash(text));
                        if unchanged {
                            pending.remove(key.as_str()).map_err(err)?;
                        } else {
                            pending.insert(key.as_str(), text.as_str()).map_err(err)?;
                        }
                        touched.push(key);
                    }
                    Change::Remove { key } => {
                        pending.remove(key.as_str()).map_err(err)?;
                        vectors.remove(key.as_str()).map_err(err)?;
                        applied.removed.push(key.clone());
                        touched.push(key);
                    }
                    Change::RemovePrefix(prefix) => {
                        let end = prefix_end(prefix);
                        pending.retain_in(prefix.as_str()..end.as_str(), |_, _| false).map_err(err)?;
                        vectors.retain_in(prefix.as_str()..end.as_str(), |_, _| false).map_err(err)?;
                        applied.removed_prefixes.push(prefix.clone());
                    }
                }
            }
            // Where each page ended up, whatever the order of its changes.
            touched.sort();
            touched.dedup();
            for key in touched {
                if pending.get(key.as_str()).map_err(err)?.is_some() {
                    applied.pending.push(key.clone());
                } else {
                    applied.not_pending.push(key.clone());
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(applied)
    }

    /// Up to `limit` pending pages (key, text), in key order.
    pub fn pending(&self, limit: usize) -> Result<Vec<(String, String)>, SearchError> {
        let tx = self.db.begin_read().map_err(err)?;
        let pending = tx.open_table(PENDING).map_err(err)?;
        let mut out = Vec::new();
        for entry in pending.iter().map_err(err)?.take(limit) {
            let (key, text) = entry.map_err(err)?;
            out.push((key.value().to_string(), text.value().to_string()));
        }
        Ok(out)
    }

    /// Every pending key.
    pub fn pending_keys(&self) -> Result<Vec<String>, SearchError> {
        let tx = self.db.begin_read().map_err(err)?;
        let pending = tx.open_table(PENDING).map_err(err)?;
        pending.iter().map_err(err)?.map(|entry| entry.map(|(key, _)| key.value().to_string()).map_err(err)).collect()
    }

    /// Stores the vectors of embedded pages and clears them from the pending set, unless
    /// a commit changed a page's text since it was read (that page stays pending for its
    /// new text). Returns the vectors stored.
    pub fn store_vectors(&self, embedded: Vec<(String, String, Vec<f32>)>) -> Result<Vec<StoredVector>, SearchError> {
        let tx = self.db.begin_write().map_err(err)?;
        let mut stored = Vec::with_capacity(embedded.len());
        {
            let mut pending = tx.open_table(PENDING).map_err(err)?;
            let mut vectors = tx.open_table(VECTORS).map_err(err)?;
            for (key, text, vector) in embedded {
                let current = pending.get(key.as_str()).map_err(err)?.map(|t| t.value() == text);
                if current != Some(true) {
                    continue;
                }
                pending.remove(key.as_str()).map_err(err)?;
                vectors.insert(key.as_str(), encode(text_hash(&text), &vector).as_slice()).map_err(err)?;
                stored.push(StoredVector { key, vector });
            }
        }
        tx.commit().map_err(err)?;
        Ok(stored)
    }

    /// Every stored vector of `dimensions` floats; a damaged record is an error.
    pub fn vectors(&self, dimensions: usize) -> Result<Vec<StoredVector>, SearchError> {
        let tx = self.db.begin_read().map_err(err)?;
        let vectors = tx.open_table(VECTORS).map_err(err)?;
        let mut out = Vec::new();
        for entry in vectors.iter().map_err(err)? {
            let (key, value) = entry.map_err(err)?;
            match decode(value.value()) {
                Some((_, vector)) if vector.len() == dimensions => {
                    out.push(StoredVector { key: key.value().to_string(), vector })
                }
                _ => return Err(err(format!("the stored vector of {:?} is damaged", key.value()))),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(key: &str, text: &str) -> Change {
        Change::Page { key: key.into(), text: text.into() }
    }

    #[test]
    fn an_unchanged_page_is_not_pending_again_and_a_changed_one_is() {
        let store = SemanticStore::open_in_ram().unwrap();
        store.apply(&[page("m\u{1f}a", "alpha"), page("m\u{1f}b", "beta")]).unwrap();
        let pending = store.pending(10).unwrap();
        let embedded = pending.into_iter().map(|(k, t)| (k, t, vec![1.0, 0.0])).collect();
        assert_eq!(store.store_vectors(embedded).unwrap().len(), 2);
        assert!(store.pending(10).unwrap().is_empty());

        store.apply(&[page("m\u{1f}a", "alpha"), page("m\u{1f}b", "beta, edited")]).unwrap();
        assert_eq!(store.pending(10).unwrap(), vec![("m\u{1f}b".to_string(), "beta, edited".to_string())]);
    }

    #[test]
    fn a_page_edited_while_it_was_embedded_stays_pending_for_its_new_text() {
        let store = SemanticStore::open_in_ram().unwrap();
        store.apply(&[page("m\u{1f}a", "old")]).unwrap();
        let read = store.pending(10).unwrap();
        store.apply(&[page("m\u{1f}a", "new")]).unwrap();
        let embedded = read.into_iter().map(|(k, t)| (k, t, vec![1.0])).collect();
        assert!(store.store_vectors(embedded).unwrap().is_empty());
        assert_eq!(store.pending(10).unwrap()[0].1, "new");
        assert!(store.vectors(1).unwrap().is_empty());
    }

    #[test]
    fn removing_a_memory_removes_its_pages_only() {
        let store = SemanticStore::open_in_ram().unwrap();
        store.apply(&[page("m\u{1f}a", "a"), page("m2\u{1f}b", "b"), page("n\u{1f}c", "c")]).unwrap();
        let embedded = store.pending(10).unwrap().into_iter().map(|(k, t)| (k, t, vec![0.5])).collect();
        store.store_vectors(embedded).unwrap();
        store.apply(&[page("m\u{1f}d", "d"), Change::RemovePrefix("m\u{1f}".into())]).unwrap();
        let keys: Vec<String> = store.vectors(1).unwrap().into_iter().map(|v| v.key).collect();
        assert_eq!(keys, ["m2\u{1f}b", "n\u{1f}c"]);
        assert!(store.pending_keys().unwrap().is_empty());
    }

    #[test]
    fn the_last_change_of_a_page_decides() {
        let store = SemanticStore::open_in_ram().unwrap();
        let key = "m\u{1f}a".to_string();
        let applied = store.apply(&[page(&key, "a"), Change::Remove { key: key.clone() }]).unwrap();
        assert_eq!((applied.pending.len(), applied.not_pending), (0, vec![key.clone()]));
        let applied = store.apply(&[Change::Remove { key: key.clone() }, page(&key, "a")]).unwrap();
        assert_eq!(applied.pending, vec![key]);
    }

    #[test]
    fn reset_replaces_everything_for_a_new_model() {
        let store = SemanticStore::open_in_ram().unwrap();
        assert_eq!(store.model().unwrap(), None);
        store.apply(&[page("m\u{1f}a", "a")]).unwrap();
        let embedded = store.pending(10).unwrap().into_iter().map(|(k, t)| (k, t, vec![0.5])).collect();
        store.store_vectors(embedded).unwrap();
        store.reset("model-2", &[("m\u{1f}a".into(), "a".into())]).unwrap();
        assert_eq!(store.model().unwrap().as_deref(), Some("model-2"));
        assert!(store.vectors(1).unwrap().is_empty());
        assert_eq!(store.pending_keys().unwrap(), ["m\u{1f}a"]);
    }
}
