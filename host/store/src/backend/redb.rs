//! The embedded backend: one [redb](https://docs.rs/redb) database file, a table per
//! [`Table`], every write one fsync'd transaction.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, Claim, Rewrite, Table, Write};
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

/// A redb database file. A file can be open once at a time.
pub struct RedbBackend {
    db: Database,
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
        Ok(RedbBackend { db })
    }
}

impl Backend for RedbBackend {
    fn claim(&self) -> Result<Option<Claim>, StoreError> {
        // The file is open in one process at a time already.
        Ok(Some(Claim::new(())))
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
