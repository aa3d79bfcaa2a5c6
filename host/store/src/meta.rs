//! The host's private metadata table.

use redb::{ReadOnlyTable, ReadableDatabase};

use crate::{META, Store, StoreError};

/// The host's own metadata (`String` → bytes), in a redb table of its own that no
/// [`Bucket`](crate::Bucket) can reach. Keys are free-form; no limits are enforced.
///
/// Cheap to clone, `Send + Sync`. Made by [`Store::meta`].
#[derive(Clone, Debug)]
pub struct Meta {
    store: Store,
}

impl Meta {
    pub(crate) fn new(store: Store) -> Meta {
        Meta { store }
    }

    fn read_table(&self) -> Result<ReadOnlyTable<&'static str, &'static [u8]>, StoreError> {
        Ok(self.store.inner.db.begin_read()?.open_table(META)?)
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_table()?.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Sets `key` to `value` (one durable write transaction).
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.write(META, |table| {
            table.insert(key, value)?;
            Ok(())
        })
    }

    /// Removes `key` (missing keys are ignored).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.write(META, |table| {
            table.remove(key)?;
            Ok(())
        })
    }

    /// Keys starting with `prefix`, with their values, in key order, strictly after
    /// `start_after` if given, at most `page` (clamped to `1..=`[`MAX_PAGE`](crate::MAX_PAGE)).
    pub fn scan_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        page: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        crate::bucket::scan(&self.read_table()?, "", prefix, start_after, page)
    }
}
