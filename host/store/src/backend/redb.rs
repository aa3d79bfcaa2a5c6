//! The embedded backend: one [redb](https://docs.rs/redb) database file, a table per
//! [`Table`], every write one fsync'd transaction.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, Claim, ClaimMode, LOCK_WAIT, Rewrite, Table, Write};
use crate::StoreError;

/// Guest-visible key-value data, keyed by `namespace \0 bucket \0 key`.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Host metadata, keyed by the host's own keys.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("host_meta");
/// Encrypted secrets, keyed by `namespace \0 name`.
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match table {
        Table::Kv => KV,
        Table::Meta => META,
        Table::Secrets => SECRETS,
    }
}

/// A redb database file. A file can be open once at a time, so its leases and locks are
/// this process's own and live in memory.
pub struct RedbBackend {
    db: Database,
    /// Lease name → (holder, expiry).
    leases: Mutex<HashMap<String, (String, Instant)>>,
    locks: Arc<Locks>,
}

/// The locks held, and a wake-up for those waiting.
#[derive(Default)]
struct Locks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// A held lock of a [`RedbBackend`].
struct LockGuard {
    locks: Arc<Locks>,
    name: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.locks.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.name);
        self.locks.released.notify_all();
    }
}

impl RedbBackend {
    /// Opens the file at `path`, creating it (not its directory) and its tables if missing.
    pub fn open(path: &Path) -> Result<RedbBackend, StoreError> {
        let db = Database::create(path)?;
        // Every table exists up front, so read transactions never meet a missing one.
        let txn = db.begin_write()?;
        for table in Table::ALL {
            txn.open_table(definition(table))?;
        }
        txn.commit()?;
        Ok(RedbBackend { db, leases: Mutex::new(HashMap::new()), locks: Arc::new(Locks::default()) })
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for RedbBackend {
    fn claim(&self, _mode: ClaimMode) -> Result<Option<Claim>, StoreError> {
        // The file is open in one process at a time already.
        Ok(Some(Claim::new(())))
    }

    fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut leases = self.leases();
        match leases.get(name) {
            Some((current, expires)) if current != holder && *expires > now => Ok(false),
            _ => {
                leases.insert(name.to_string(), (holder.to_string(), now + ttl));
                Ok(true)
            }
        }
    }

    fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let until = Instant::now() + ttl;
        let mut names = Vec::new();
        for (name, (current, expires)) in self.leases().iter_mut() {
            if current == holder {
                *expires = until;
                names.push(name.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut leases = self.leases();
        if leases.get(name).is_some_and(|(current, _)| current == holder) {
            leases.remove(name);
        }
        Ok(())
    }

    fn acquire_any_lease(&self, names: &[String], holder: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        let mut leases = self.leases();
        let free = names.iter().find(|name| leases.get(name.as_str()).is_none_or(|(_, expires)| *expires <= now));
        Ok(free.map(|name| {
            leases.insert(name.clone(), (holder.to_string(), now + ttl));
            name.clone()
        }))
    }

    fn lease(&self, name: &str) -> Result<Option<(String, Duration)>, StoreError> {
        let now = Instant::now();
        Ok(self
            .leases()
            .get(name)
            .filter(|(_, expires)| *expires > now)
            .map(|(holder, expires)| (holder.clone(), *expires - now)))
    }

    fn lapsed_leases(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut names: Vec<String> = self
            .leases()
            .iter()
            .filter(|(name, (_, expires))| name.starts_with(prefix) && *expires <= now)
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    fn lock(&self, name: &str) -> Result<Claim, StoreError> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(name) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::LockTimeout { name: name.to_string(), waited: LOCK_WAIT });
            }
            held = self.locks.released.wait_timeout(held, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        held.insert(name.to_string());
        Ok(Claim::new(LockGuard { locks: self.locks.clone(), name: name.to_string() }))
    }

    fn get_many(&self, table: Table, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let table = self.db.begin_read()?.open_table(definition(table))?;
        keys.iter().map(|k| Ok(table.get(k.as_str())?.map(|v| v.value().to_vec()))).collect()
    }

    fn apply(&self, table: Table, writes: &[Write]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(definition(table))?;
            for write in writes {
                match write {
                    Write::Put(key, value) => {
                        table.insert(key.as_str(), value.as_slice())?;
                    }
                    Write::Delete(key) => {
                        table.remove(key.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn scan(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.db.begin_read()?.open_table(definition(table))?;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        for entry in table.range::<&str>((start, Bound::Unbounded))? {
            let (k, v) = entry?;
            let k = k.value();
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            out.push((k.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn rewrite_all(&self, table: Table, change: &mut Rewrite<'_>) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let mut changed = 0;
        {
            let mut table = txn.open_table(definition(table))?;
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                rows.push((key.value().to_string(), value.value().to_vec()));
            }
            for (key, value) in rows {
                table.insert(key.as_str(), change(&key, &value)?.as_slice())?;
                changed += 1;
            }
        }
        txn.commit()?;
        Ok(changed)
    }
}
