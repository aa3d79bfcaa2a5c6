//! Leases: work that one host process does at a time (say, driving one tenant's memories),
//! taken for a while and renewed while the work goes on. A host that dies stops renewing,
//! and when its leases expire another host takes them. Expiry is measured by the database's
//! clock (PostgreSQL's), so the hosts' clocks need not agree.

use std::time::Duration;

use crate::{Store, StoreError};

/// The leases of one holder (a host process) in a store. See [`Store::leases`].
#[derive(Clone)]
pub struct Leases {
    pub(crate) store: Store,
    pub(crate) holder: String,
}

impl Leases {
    /// Takes the lease `name` until `ttl` from now, or extends it if this holder has it.
    /// `false`: another holder has it and it has not expired.
    pub fn acquire(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store.inner.backend.acquire_lease(name, &self.holder, ttl)
    }

    /// Takes the first of the leases `names` that nobody has until `ttl` from now (the slots
    /// of a semaphore hosts share); `None` when all are taken.
    pub fn acquire_any(&self, names: &[String], ttl: Duration) -> Result<Option<String>, StoreError> {
        self.store.inner.backend.acquire_any_lease(names, &self.holder, ttl)
    }

    /// Extends every lease of this holder to `ttl` from now; returns their names, sorted
    /// (a lease another holder took after it expired is not among them).
    pub fn renew(&self, ttl: Duration) -> Result<Vec<String>, StoreError> {
        self.store.inner.backend.renew_leases(&self.holder, ttl)
    }

    /// Gives the lease `name` up, if this holder has it.
    pub fn release(&self, name: &str) -> Result<(), StoreError> {
        self.store.inner.backend.release_lease(name, &self.holder)
    }

    /// The leases under `prefix` whose holders stopped renewing them without releasing
    /// them (the holder may have died with their work unfinished), sorted.
    pub fn lapsed(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.store.inner.backend.lapsed_leases(prefix)
    }

    /// Who has the lease `name` now (`None`: nobody, or it expired).
    pub fn holder_of(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.inner.backend.lease(name)?.map(|(holder, _)| holder))
    }

    /// How long the lease `name` lasts unless renewed (`None`: nobody has it, or it expired).
    pub fn time_left(&self, name: &str) -> Result<Option<Duration>, StoreError> {
        Ok(self.store.inner.backend.lease(name)?.map(|(_, left)| left))
    }
}
