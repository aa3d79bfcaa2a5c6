//! The end of a `step`: its outcome becomes the memory's state. A step that failed has
//! written nothing its records claim (see [`crate::checkpoint`]); its uncommitted search
//! writes are dropped here, so the index holds exactly what the records say.

use crate::caps::SearchIndex;
use crate::time::rfc3339;

/// What a step's work left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// More steps are needed; the run's checkpoint says where to go on.
    More,
    /// The run is complete.
    Finished,
}

/// A memory's lifecycle, as the end of a step changes it.
pub trait Lifecycle {
    /// The run completed at `synced_at` (RFC 3339): the memory is current.
    fn finished(&mut self, synced_at: String);
    /// The run failed; `error` says why and what to do. Content from the last good run
    /// stays searchable.
    fn failed(&mut self, error: String);
}

/// Applies a step's outcome to its memory, at Unix time `now`; returns whether the run is
/// over (finished or failed). On a failure the step's uncommitted search writes are
/// rolled back (and the error says so if even that fails).
pub fn settle(
    memory: &mut impl Lifecycle,
    outcome: Result<Advance, String>,
    index: &dyn SearchIndex,
    now: u64,
) -> bool {
    match outcome {
        Ok(Advance::More) => false,
        Ok(Advance::Finished) => {
            memory.finished(rfc3339(now));
            true
        }
        Err(mut error) => {
            if let Err(rollback) = index.rollback() {
                error.push_str(&format!(" (and the search index could not drop this step's writes: {rollback})"));
            }
            memory.failed(error);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::IndexChunk;
    use crate::fakes::MemorySearch;

    #[derive(Default)]
    struct State {
        synced_at: Option<String>,
        error: Option<String>,
    }

    impl Lifecycle for State {
        fn finished(&mut self, synced_at: String) {
            self.synced_at = Some(synced_at);
        }
        fn failed(&mut self, error: String) {
            self.error = Some(error);
        }
    }

    #[test]
    fn a_failed_step_leaves_no_search_writes_and_says_why() {
        let index = MemorySearch::default();
        let chunk = IndexChunk { ordinal: 0, title: "t".into(), heading: String::new(), text: "half written".into() };
        index.replace_document("m", "d", vec![chunk]).unwrap();
        let mut state = State::default();
        assert!(settle(&mut state, Err("the source went away".into()), &index, 0));
        assert_eq!(state.error.as_deref(), Some("the source went away"));
        index.commit().unwrap();
        assert!(index.query("written", &[], 5).unwrap().is_empty(), "the step's write was rolled back");

        let mut state = State::default();
        assert!(!settle(&mut state, Ok(Advance::More), &index, 0));
        assert!(settle(&mut state, Ok(Advance::Finished), &index, 86_400));
        assert_eq!(state.synced_at.as_deref(), Some("1970-01-02T00:00:00Z"));
    }
}
