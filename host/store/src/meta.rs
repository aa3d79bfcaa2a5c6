//! The host's private metadata table.

use crate::backend::{Table, Write};
use crate::{Store, StoreError};

/// The host's own metadata (`String` → bytes), in a table of its own that no
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

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.inner.backend.get_many(Table::Meta, &[key.to_string()])?.pop().flatten())
    }

    /// Sets `key` to `value` (one durable write transaction).
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.write(Table::Meta, &[Write::Put(key.to_string(), value.to_vec())])
    }

    /// Removes `key` (missing keys are ignored).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.write(Table::Meta, &[Write::Delete(key.to_string())])
    }

    /// Keys starting with `prefix`, with their values, in key order, strictly after
    /// `start_after` if given, at most `page` (clamped to `1..=`[`MAX_PAGE`](crate::MAX_PAGE)).
    pub fn scan_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        page: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store.scan(Table::Meta, "", prefix, start_after, page)
    }
}
