//! The end of a run: what the listing did not see is gone. Every run has a generation (its
//! number); each document record it writes or confirms carries that generation in `seen`.
//! After a *complete* listing, a record with an older `seen` is a document the source no
//! longer has. A listing that broke off never gets here, so it removes nothing.
//!
//! A document record is a JSON object holding at least `chunks` (passages indexed) and
//! `seen` (the generation that last saw it), beside whatever else the source keeps. A record
//! with a `skipped` reason stands for a document left out on purpose (a corrupt file): kept
//! while seen, so that it is not fetched again, and not counted as a document.

use serde::Deserialize;

use crate::caps::{HostError, KeyValue, SearchIndex};
use crate::kv::all_keys;

/// Records read per batch.
const READ_BATCH: usize = 1000;

/// The part of a document record the sweep reads.
#[derive(Debug, Deserialize)]
struct Seen {
    chunks: u32,
    seen: u64,
    #[serde(default)]
    skipped: Option<String>,
}

/// A memory's documents after a complete listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents the run saw.
    pub documents: u32,
    /// Their passages.
    pub chunks: u32,
    /// Documents it did not see (and unreadable records): to remove.
    pub stale: Vec<String>,
}

impl Tally {
    /// Whether removing the stale documents wants a person's confirmation: more than two,
    /// and more than half of what the memory held. A source that answers an empty or
    /// truncated listing (a permission change, an outage) must not empty a memory.
    pub fn is_mass_delete(&self) -> bool {
        let total = self.documents as usize + self.stale.len();
        self.stale.len() > 2 && self.stale.len() * 2 > total
    }
}

/// Counts the documents of a memory's record bucket against the run's `generation`.
pub fn tally(kv: &dyn KeyValue, bucket: &str, generation: u64) -> Result<Tally, HostError> {
    let keys = all_keys(kv, bucket)?;
    let mut tally = Tally::default();
    for batch in keys.chunks(READ_BATCH) {
        for (key, value) in batch.iter().zip(kv.get_many(bucket, batch)?) {
            match value.and_then(|bytes| serde_json::from_slice::<Seen>(&bytes).ok()) {
                Some(record) if record.seen >= generation => {
                    if record.skipped.is_none() {
                        tally.documents += 1;
                        tally.chunks += record.chunks;
                    }
                }
                _ => tally.stale.push(key.clone()),
            }
        }
    }
    Ok(tally)
}

/// Removes up to `batch` of the `stale` documents of a memory: from the index (committed)
/// first, then their records, so a repeated step finds whatever is left. Returns how many.
pub fn remove_stale(
    index: &dyn SearchIndex,
    kv: &dyn KeyValue,
    memory_id: &str,
    bucket: &str,
    stale: &mut Vec<String>,
    batch: usize,
) -> Result<u32, HostError> {
    let take = stale.len().min(batch);
    if take == 0 {
        return Ok(0);
    }
    let removed: Vec<String> = stale[..take].to_vec();
    index.remove_documents(memory_id, &removed)?;
    index.commit()?;
    kv.delete_many(bucket, &removed)?;
    stale.drain(..take);
    Ok(take as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::IndexChunk;
    use crate::fakes::{MemoryKeyValue, MemorySearch};

    fn record(chunks: u32, seen: u64) -> Vec<u8> {
        format!(r#"{{"title":"t","chunks":{chunks},"seen":{seen}}}"#).into_bytes()
    }

    #[test]
    fn what_the_run_did_not_see_is_stale_and_removed_index_first() {
        let (kv, index) = (MemoryKeyValue::default(), MemorySearch::default());
        for id in ["a", "b", "c", "d"] {
            let chunk = IndexChunk { ordinal: 0, title: id.into(), heading: String::new(), text: format!("word {id}") };
            index.replace_document("m", id, vec![chunk]).unwrap();
        }
        index.commit().unwrap();
        let items = vec![
            ("a".to_string(), record(2, 5)),
            ("b".to_string(), record(1, 4)),
            ("c".to_string(), record(3, 5)),
            ("d".to_string(), b"not json".to_vec()),
            ("e".to_string(), br#"{"chunks":0,"seen":5,"skipped":"encrypted"}"#.to_vec()),
        ];
        kv.set_many("docs", items).unwrap();

        let mut tally = tally(&kv, "docs", 5).unwrap();
        assert_eq!((tally.documents, tally.chunks), (2, 5));
        assert_eq!(tally.stale, ["b", "d"], "a skipped record still seen stays, uncounted");
        assert!(!tally.is_mass_delete(), "two of four is not a mass deletion");
        assert_eq!(remove_stale(&index, &kv, "m", "docs", &mut tally.stale, 1).unwrap(), 1);
        assert_eq!(remove_stale(&index, &kv, "m", "docs", &mut tally.stale, 1).unwrap(), 1);
        assert!(tally.stale.is_empty());
        assert!(kv.get("docs", "b").unwrap().is_none());
        assert!(index.query("word", &[], 10).unwrap().iter().all(|h| h.document_id == "a" || h.document_id == "c"));
    }

    #[test]
    fn removing_most_of_a_memory_is_a_mass_deletion() {
        let tally = Tally { documents: 1, chunks: 1, stale: vec!["x".into(), "y".into(), "z".into()] };
        assert!(tally.is_mass_delete());
        let small = Tally { documents: 0, chunks: 0, stale: vec!["x".into(), "y".into()] };
        assert!(!small.is_mass_delete(), "two documents or fewer never need a confirmation");
    }
}
