//! The write order that makes a step safe to repeat: a step's search writes are committed
//! before the records that claim them are written, so a record never claims a document the
//! index does not durably hold. A host that stops a step drops its uncommitted search
//! writes (the WIT says so); the records were not written, so the next step does it again.

use crate::caps::{HostError, KeyValue, SearchIndex};

/// The records a step writes once its search writes are durable.
#[derive(Debug, Default)]
pub struct StepWrites {
    indexed: bool,
    records: Vec<(String, Vec<u8>)>,
    removed: Vec<String>,
}

impl StepWrites {
    /// Notes that the step wrote to the search index (so `apply` commits it).
    pub fn indexed(&mut self) {
        self.indexed = true;
    }

    /// A record to write after the commit.
    pub fn record(&mut self, key: String, value: Vec<u8>) {
        self.records.push((key, value));
    }

    /// A record to delete after the commit.
    pub fn remove(&mut self, key: String) {
        self.removed.push(key);
    }

    /// Commits the index (when the step wrote to it), then writes and deletes the records
    /// in `bucket`, each as one batch.
    pub fn apply(self, index: &dyn SearchIndex, kv: &dyn KeyValue, bucket: &str) -> Result<(), HostError> {
        if self.indexed {
            index.commit()?;
        }
        if !self.records.is_empty() {
            kv.set_many(bucket, self.records)?;
        }
        if !self.removed.is_empty() {
            kv.delete_many(bucket, &self.removed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::IndexChunk;
    use crate::fakes::{MemoryKeyValue, MemorySearch};

    #[test]
    fn records_follow_the_commit_and_a_dropped_step_leaves_neither() {
        let (kv, index) = (MemoryKeyValue::default(), MemorySearch::default());
        let chunk = IndexChunk { ordinal: 0, title: "t".into(), heading: String::new(), text: "alpha".into() };
        index.replace_document("m", "d", vec![chunk.clone()]).unwrap();
        // The step is stopped before `apply`: the host drops its search writes.
        index.restart();
        assert!(index.query("alpha", &[], 5).unwrap().is_empty());
        assert!(kv.get("docs", "d").unwrap().is_none());

        let mut writes = StepWrites::default();
        index.replace_document("m", "d", vec![chunk]).unwrap();
        writes.indexed();
        writes.record("d".into(), b"v1".to_vec());
        writes.apply(&index, &kv, "docs").unwrap();
        assert_eq!(index.query("alpha", &[], 5).unwrap().len(), 1);
        assert_eq!(kv.get("docs", "d").unwrap().as_deref(), Some(&b"v1"[..]));
    }
}
