//! ACID key-value and secret storage for the connector host.
//!
//! This crate is the storage behind the host's `wasi:keyvalue/store@0.2.0-draft` and
//! `wasi:keyvalue/batch@0.2.0-draft` imports and behind its `secrets` interface. Everything
//! lives in one [`Backend`](backend::Backend): by default **one** [redb](https://docs.rs/redb)
//! database file per host data directory ([`Store::open`]), or one PostgreSQL database that
//! several hosts share ([`Store::connect`]). Either holds three tables:
//!
//! * `kv` — guest-visible key-value data. Every key is stored under the composite key
//!   `namespace \0 bucket \0 key`, where the namespace is the connector instance id chosen
//!   by the host and the bucket is the identifier the guest passed to `open`. A [`Bucket`]
//!   only ever reads or writes keys under its own `namespace \0 bucket \0` prefix, so one
//!   bucket can never see another's keys. Namespaces and bucket names containing `\0` are
//!   rejected, which keeps the prefix unambiguous.
//! * `host_meta` — the host's own metadata ([`Meta`]); no guest handle can reach it.
//! * `secrets` — [`Secrets`], encrypted at rest with ChaCha20-Poly1305 under an
//!   [`OperatorKey`].
//!
//! Every write is one transaction of the backend, durable when it returns. All methods
//! block on I/O: call them from a blocking context (e.g. `tokio::task::spawn_blocking`) in
//! async code.
//!
//! # Example
//!
//! ```
//! use connector_store::{OperatorKey, Store};
//!
//! # fn main() -> Result<(), connector_store::StoreError> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&dir.path().join("host.redb"))?;
//!
//! // Key-value data of one connector instance, in the bucket it opened.
//! let bucket = store.bucket("instance-1", "default")?;
//! bucket.set("page/42", b"etag-7")?;
//! assert_eq!(bucket.get("page/42")?, Some(b"etag-7".to_vec()));
//!
//! // Another instance's bucket of the same name is a different bucket.
//! assert_eq!(store.bucket("instance-2", "default")?.get("page/42")?, None);
//!
//! // Paginated listing with an opaque cursor, as wasi:keyvalue's `list-keys` wants.
//! let (keys, cursor) = bucket.list_keys(None, 100)?;
//! assert_eq!(keys, vec!["page/42".to_string()]);
//! assert_eq!(cursor, None);
//!
//! // Secrets, encrypted with the operator key.
//! let key = OperatorKey::load_or_create(&dir.path().join("operator.key"))?;
//! let secrets = store.secrets("instance-1", key)?;
//! secrets.put("api-token", "s3cr3t")?;
//! assert_eq!(secrets.get("api-token")?.as_deref(), Some("s3cr3t"));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod backend;
mod bucket;
mod error;
pub mod fence;
mod lease;
mod meta;
mod secrets;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use backend::{Backend, Table, Write};
pub use backend::{Claim, ClaimMode};
pub use lease::Leases;

pub use bucket::{Bucket, MAX_PAGE};
pub use error::StoreError;
pub use fence::{Fence, Fences};
pub use meta::Meta;
pub use secrets::{OperatorKey, Secrets};

/// How many `list_keys` cursors are remembered at once (oldest are forgotten first).
const MAX_CURSORS: usize = 4096;

/// Limits enforced by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Largest value accepted by [`Bucket::set`] and [`Bucket::set_many`] (default 4 MiB).
    pub max_value_bytes: usize,
    /// Largest key (in UTF-8 bytes, without the namespace/bucket prefix) accepted by the
    /// store, and the largest bucket name and secret name (default 1024).
    pub max_key_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_value_bytes: 4 * 1024 * 1024, max_key_bytes: 1024 }
    }
}

/// A handle to the host's database (a file, or a PostgreSQL database).
///
/// Cheap to clone (an [`Arc`] inside), `Send + Sync`. The database is closed when the last
/// clone — including every [`Bucket`], [`Meta`] and [`Secrets`] made from it — is dropped.
/// A database file can be open only once at a time; a PostgreSQL database by many hosts.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) config: StoreConfig,
    pub(crate) cursors: Mutex<Cursors>,
    /// The fences of the locks [`Store::lock_writes`] holds, by namespace.
    pub(crate) fences: Fences,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Store {
    /// Applies `writes` to `table` in one durable transaction.
    pub(crate) fn write(&self, table: Table, writes: &[Write]) -> Result<(), StoreError> {
        self.inner.backend.apply(table, writes)
    }

    /// [`Store::write`] of the key-value data or secrets of `namespace`: fenced while
    /// [`Store::lock_writes`] holds a fenced lock for it.
    pub(crate) fn write_in(&self, namespace: &str, table: Table, writes: &[Write]) -> Result<(), StoreError> {
        match self.inner.fences.get(namespace) {
            Some(fence) => self.inner.backend.apply_fenced(table, writes, &fence),
            None => self.inner.backend.apply(table, writes),
        }
    }

    /// The rows of `table` under `table_prefix + prefix`, strictly after
    /// `table_prefix + start_after`, keys without `table_prefix`, at most `page` (clamped to
    /// `1..=`[`MAX_PAGE`]).
    pub(crate) fn scan(
        &self,
        table: Table,
        table_prefix: &str,
        prefix: &str,
        start_after: Option<&str>,
        page: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let full_prefix = format!("{table_prefix}{prefix}");
        let after = start_after.map(|after| format!("{table_prefix}{after}"));
        let rows = self.inner.backend.scan(table, &full_prefix, after.as_deref(), page.clamp(1, MAX_PAGE))?;
        Ok(rows.into_iter().map(|(k, v)| (k[table_prefix.len()..].to_owned(), v)).collect())
    }

    /// Opens the database file at `path` with the default [`StoreConfig`], creating it
    /// (but not its parent directory) if it is missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreConfig::default())
    }

    /// Opens the database file at `path` with the given limits, creating it if missing.
    pub fn open_with(path: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        Ok(Store::with_backend(Box::new(backend::redb::RedbBackend::open(path)?), config))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host/db`)
    /// with the default [`StoreConfig`], bringing its schema up to date; many hosts may use
    /// one database at once.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, StoreConfig::default())
    }

    /// Connects to a PostgreSQL database with the given limits.
    pub fn connect_with(url: &str, config: StoreConfig) -> Result<Store, StoreError> {
        Ok(Store::with_backend(Box::new(backend::postgres::PostgresBackend::connect(url)?), config))
    }

    /// Claims the store's database for this process while the claim lives (`None`: another
    /// process's claim excludes it; see [`ClaimMode`]). An embedded file is always this
    /// process's alone.
    pub fn claim(&self, mode: ClaimMode) -> Result<Option<Claim>, StoreError> {
        self.inner.backend.claim(mode)
    }

    /// The leases of `holder` (one name per host process): work one host does at a time,
    /// lost when its holder stops renewing it.
    pub fn leases(&self, holder: &str) -> Leases {
        Leases { store: self.clone(), holder: holder.to_string() }
    }

    /// Waits until no other process or thread holds the lock `name`, and holds it while the
    /// returned guard lives (blocking: call it where blocking is allowed). A process that
    /// dies releases its locks.
    pub fn lock(&self, name: &str) -> Result<Claim, StoreError> {
        self.inner.backend.lock(name)
    }

    /// [`Store::lock`], and while the guard lives the key-value and secret writes of
    /// `namespace` (and the search commits that share [`Store::fences`]) are fenced by it:
    /// once the lock has passed to another holder they fail with [`StoreError::Fenced`]
    /// (see [`fence`]).
    pub fn lock_writes(&self, name: &str, namespace: &str) -> Result<Claim, StoreError> {
        let claim = self.inner.backend.lock(name)?;
        let Some(fence) = claim.fence().cloned() else { return Ok(claim) };
        self.inner.fences.set(namespace, fence.clone());
        let unfence =
            Unfence { fences: self.inner.fences.clone(), namespace: namespace.to_string(), fence: fence.clone() };
        // The fence is forgotten before the lock is released (fields drop in order).
        Ok(Claim::fenced((unfence, claim), fence))
    }

    /// The fences of the locks [`Store::lock_writes`] holds now, for writers of the same
    /// database outside this store (the PostgreSQL search index).
    pub fn fences(&self) -> Fences {
        self.inner.fences.clone()
    }

    /// A store over `backend`.
    pub fn with_backend(backend: Box<dyn Backend>, config: StoreConfig) -> Store {
        let cursors = Mutex::new(Cursors::new());
        Store { inner: Arc::new(Inner { backend, config, cursors, fences: Fences::default() }) }
    }

    /// The limits this store enforces.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The bucket `bucket` of connector instance `namespace`.
    ///
    /// Fails if either name contains `\0`, if the namespace is empty, or if the bucket
    /// name is longer than [`StoreConfig::max_key_bytes`]. Opening a bucket does not
    /// write anything: a bucket exists as long as it has keys.
    pub fn bucket(&self, namespace: &str, bucket: &str) -> Result<Bucket, StoreError> {
        check_namespace(namespace)?;
        check_name("bucket name", bucket, self.inner.config.max_key_bytes)?;
        Ok(Bucket::new(self.clone(), format!("{namespace}\0{bucket}\0")))
    }

    /// The host's private metadata table (never reachable through a [`Bucket`]).
    pub fn meta(&self) -> Meta {
        Meta::new(self.clone())
    }

    /// The secrets of connector instance `namespace`, encrypted with `key`.
    pub fn secrets(&self, namespace: &str, key: OperatorKey) -> Result<Secrets, StoreError> {
        check_namespace(namespace)?;
        Ok(Secrets::new(self.clone(), namespace.to_owned(), key))
    }
}

fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    if namespace.is_empty() {
        return Err(StoreError::InvalidName { what: "namespace", name: String::new(), reason: "must not be empty" });
    }
    check_name("namespace", namespace, usize::MAX)
}

pub(crate) fn check_name(what: &'static str, name: &str, max: usize) -> Result<(), StoreError> {
    if name.contains('\0') {
        return Err(StoreError::InvalidName {
            what,
            name: error::abbreviate(name),
            reason: "must not contain NUL (\\0)",
        });
    }
    if name.len() > max {
        return Err(StoreError::InvalidName { what, name: error::abbreviate(name), reason: "is too long" });
    }
    Ok(())
}

/// Remembered `list_keys` positions: cursor id → (bucket prefix, last composite key returned).
///
/// Ids start at a random value and count up, so a cursor from an earlier process is very
/// unlikely to name a live entry; a cursor is only honoured by the bucket that issued it.
pub(crate) struct Cursors {
    next: u64,
    map: HashMap<u64, (Arc<str>, String)>,
    order: VecDeque<u64>,
}

impl Cursors {
    fn new() -> Self {
        Cursors { next: rand::random::<u64>() >> 1, map: HashMap::new(), order: VecDeque::new() }
    }

    pub(crate) fn insert(&mut self, prefix: Arc<str>, last_key: String) -> u64 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if self.map.len() >= MAX_CURSORS
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(id, (prefix, last_key));
        self.order.push_back(id);
        id
    }

    pub(crate) fn get(&self, id: u64, prefix: &str) -> Option<String> {
        match self.map.get(&id) {
            Some((p, last)) if &**p == prefix => Some(last.clone()),
            _ => None,
        }
    }
}

/// Forgets a namespace's fence when its lock is released.
struct Unfence {
    fences: Fences,
    namespace: String,
    fence: Fence,
}

impl Drop for Unfence {
    fn drop(&mut self) {
        self.fences.clear(&self.namespace, &self.fence);
    }
}
