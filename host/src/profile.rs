//! Where a host's connector calls spend their time: waiting on HTTP, writing and querying
//! the search index, key-value storage. What is left of a call's wall time is the
//! connector's own work inside the component (parsing, conversion, chunking).
//!
//! One [`CallProfile`] is shared by every instance of a host; the benchmark reads it to
//! show where an ingest's time goes.
//!
//! ```
//! use connector_host::profile::{CallProfile, Part};
//! let profile = CallProfile::default();
//! profile.time(Part::Storage, || std::thread::sleep(std::time::Duration::from_millis(2)));
//! assert!(profile.totals().storage >= std::time::Duration::from_millis(2));
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time accumulated per part of the host.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Wall time during which at least one HTTP request was waiting for its response
    /// head (overlapping requests count once).
    pub http_wait: Duration,
    /// Replacing and removing documents in the search index, and committing.
    pub index_write: Duration,
    /// Search queries.
    pub index_query: Duration,
    /// Key-value reads and writes.
    pub storage: Duration,
}

/// A part of the host that [`CallProfile::time`] can charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// See [`Totals::index_write`].
    IndexWrite,
    /// See [`Totals::index_query`].
    IndexQuery,
    /// See [`Totals::storage`].
    Storage,
}

/// Accumulates [`Totals`]; cheap to clone (a shared handle).
#[derive(Clone, Default, Debug)]
pub struct CallProfile(Arc<Mutex<State>>);

#[derive(Default, Debug)]
struct State {
    totals: Totals,
    requests_waiting: u32,
    waiting_since: Option<Instant>,
}

impl CallProfile {
    /// Runs `work`, charging its wall time to `part`.
    pub fn time<T>(&self, part: Part, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        let elapsed = started.elapsed();
        let mut state = self.lock();
        let slot = match part {
            Part::IndexWrite => &mut state.totals.index_write,
            Part::IndexQuery => &mut state.totals.index_query,
            Part::Storage => &mut state.totals.storage,
        };
        *slot += elapsed;
        result
    }

    /// Marks an HTTP request as waiting until the returned guard is dropped.
    pub fn http_waiting(&self) -> HttpWait {
        let mut state = self.lock();
        if state.requests_waiting == 0 {
            state.waiting_since = Some(Instant::now());
        }
        state.requests_waiting += 1;
        HttpWait(self.clone())
    }

    /// The totals so far, including a wait still in progress.
    pub fn totals(&self) -> Totals {
        let state = self.lock();
        let mut totals = state.totals;
        if let Some(since) = state.waiting_since {
            totals.http_wait += since.elapsed();
        }
        totals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a single addition.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An HTTP request waiting for its response; see [`CallProfile::http_waiting`].
#[derive(Debug)]
pub struct HttpWait(CallProfile);

impl Drop for HttpWait {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.requests_waiting -= 1;
        if state.requests_waiting == 0
            && let Some(since) = state.waiting_since.take()
        {
            state.totals.http_wait += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_http_waits_count_once() {
        let profile = CallProfile::default();
        let started = Instant::now();
        let first = profile.http_waiting();
        let second = profile.http_waiting();
        std::thread::sleep(Duration::from_millis(30));
        drop(first);
        std::thread::sleep(Duration::from_millis(30));
        drop(second);
        let busy = started.elapsed();
        std::thread::sleep(Duration::from_millis(30));
        let waited = profile.totals().http_wait;
        assert!(waited >= Duration::from_millis(60), "{waited:?}");
        assert!(waited <= busy, "the idle time after both ended is not counted: {waited:?} > {busy:?}");
    }

    #[test]
    fn parts_are_charged_separately() {
        let profile = CallProfile::default();
        profile.time(Part::IndexWrite, || std::thread::sleep(Duration::from_millis(5)));
        let totals = profile.totals();
        assert!(totals.index_write >= Duration::from_millis(5));
        assert_eq!(totals.storage, Duration::ZERO);
        assert_eq!(totals.http_wait, Duration::ZERO);
    }
}
