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

use crate::StoreError;

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

    /// Makes this process the only host on the database for as long as the returned guard
    /// lives (`None`: another process is); it ends with the process, however that ends.
    fn claim(&self) -> Result<Option<Claim>, StoreError>;
}

/// Held while a process is the only host on a database (see [`Backend::claim`]).
pub struct Claim(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Claim {
    /// A claim held by `holder` (dropping it releases the claim).
    pub fn new(holder: impl Send + Sync + 'static) -> Claim {
        Claim(Box::new(holder))
    }
}

/// What [`Backend::rewrite_all`] makes of a row: its new value from its key and value.
pub type Rewrite<'a> = dyn FnMut(&str, &[u8]) -> Result<Vec<u8>, StoreError> + 'a;
