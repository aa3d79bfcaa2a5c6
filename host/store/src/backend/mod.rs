//! Where the store's rows live: a [`Backend`] holds three tables of byte-ordered string keys
//! and byte values, and the store's handles ([`Bucket`](crate::Bucket),
//! [`Meta`](crate::Meta), [`Secrets`](crate::Secrets)) keep their namespacing, limits and
//! encryption above it, the same for every backend.
//!
//! Two backends: [`redb`] (one embedded database file, the default) and [`postgres`] (one
//! PostgreSQL database several hosts can share). `tests/conformance.rs` runs the same
//! behavioural suite against both.

pub mod postgres;
pub mod redb;

use std::time::Duration;

use crate::StoreError;
use crate::fence::Fence;

/// One of the store's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Guest-visible key-value data (`namespace \0 bucket \0 key`).
    Kv,
    /// The host's own metadata.
    Meta,
    /// Encrypted secrets (`namespace \0 name`).
    Secrets,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Kv, Table::Meta, Table::Secrets];
}

/// One change to a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets a key's value.
    Put(String, Vec<u8>),
    /// Removes a key (a missing one is no error).
    Delete(String),
}

/// The rows of the store's tables. Every method is one transaction: reads see one consistent
/// snapshot, writes are durable when they return and atomic (all or nothing). Keys order by
/// their UTF-8 bytes. Methods block: call them where blocking is allowed.
pub trait Backend: Send + Sync {
    /// The values of `keys`, in order (`None` for a missing key), from one snapshot.
    fn get_many(&self, table: Table, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Applies `writes` in order, in one transaction.
    fn apply(&self, table: Table, writes: &[Write]) -> Result<(), StoreError>;

    /// [`Backend::apply`], made only while `fence` is its lock's newest epoch
    /// ([`StoreError::Fenced`] otherwise; see [`crate::fence`]). A backend whose locks live
    /// and die with the process (the embedded file) has nothing to fence.
    fn apply_fenced(&self, table: Table, writes: &[Write], fence: &Fence) -> Result<(), StoreError> {
        let _ = fence;
        self.apply(table, writes)
    }

    /// The rows whose keys start with `prefix`, in key order, strictly after `after` when
    /// given (a full key), at most `limit`.
    fn scan(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Replaces every row's value of `table` by what `change` makes of it, in one
    /// transaction: if `change` fails for one row, nothing changes. Returns the rows changed.
    fn rewrite_all(&self, table: Table, change: &mut Rewrite<'_>) -> Result<usize, StoreError>;

    /// Claims the database for this process for as long as the returned guard lives
    /// (`None`: another process's claim excludes it): any number of [`ClaimMode::Shared`]
    /// claims at once, or one [`ClaimMode::Exclusive`]. It ends with the process, however
    /// that ends.
    fn claim(&self, mode: ClaimMode) -> Result<Option<Claim>, StoreError>;

    /// Takes the lease `name` for `holder` until `ttl` from now, or extends it when
    /// `holder` has it already. `false`: another holder has it and it has not expired.
    fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Takes the first of the leases `names` nobody has (or whose holder let it expire)
    /// for `holder` until `ttl` from now, in one transaction: leases as the slots of a
    /// semaphore several hosts share. `None`: all are taken.
    fn acquire_any_lease(&self, names: &[String], holder: &str, ttl: Duration) -> Result<Option<String>, StoreError>;

    /// Extends every lease `holder` has to `ttl` from now; returns their names, sorted.
    fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<String>, StoreError>;

    /// Gives up the lease `name` if `holder` has it (otherwise does nothing).
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Who has the lease `name` and for how much longer, unless nobody does or it has expired.
    fn lease(&self, name: &str) -> Result<Option<(String, Duration)>, StoreError>;

    /// The leases under `prefix` that expired without being released (their holder stopped
    /// renewing them: it may have died with their work unfinished), sorted.
    fn lapsed_leases(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Waits until no other guard of the lock `name` is held, in this process or any other
    /// on the database, and holds it for as long as the returned guard lives; it ends with
    /// the process, however that ends. Fails rather than wait longer than [`LOCK_WAIT`]. A
    /// backend several processes share also advances the lock's epoch and hands it out as
    /// the guard's [`Claim::fence`].
    fn lock(&self, name: &str) -> Result<Claim, StoreError>;
}

/// The longest [`Backend::lock`] waits for another holder.
pub const LOCK_WAIT: Duration = Duration::from_secs(300);

/// Whether a [`Backend::claim`] admits others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMode {
    /// With other shared claims (hosts serving together).
    Shared,
    /// Alone (a change no running host may see half of, such as a key rotation).
    Exclusive,
}

/// Held while a claim ([`Backend::claim`]) or a lock ([`Backend::lock`]) lasts; dropping it
/// releases it.
pub struct Claim {
    _holder: Box<dyn Send + Sync>,
    fence: Option<Fence>,
}

impl Claim {
    /// A claim held by `holder` (dropping it releases the claim).
    pub fn new(holder: impl Send + Sync + 'static) -> Claim {
        Claim { _holder: Box::new(holder), fence: None }
    }

    /// A lock held by `holder` that fences the writes made under it with `fence`.
    pub fn fenced(holder: impl Send + Sync + 'static, fence: Fence) -> Claim {
        Claim { _holder: Box::new(holder), fence: Some(fence) }
    }

    /// The fence of a lock whose backend fences writes ([`Backend::apply_fenced`]).
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
}

/// What [`Backend::rewrite_all`] makes of a row: its new value from its key and value.
pub type Rewrite<'a> = dyn FnMut(&str, &[u8]) -> Result<Vec<u8>, StoreError> + 'a;
