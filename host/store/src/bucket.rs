//! Guest-visible buckets (`wasi:keyvalue/store` + `batch`).

use std::sync::Arc;

use crate::backend::{Table, Write};
use crate::error::abbreviate;
use crate::{Store, StoreError};

/// Largest page `list_keys` and `scan_prefix` return, whatever the caller asks for.
pub const MAX_PAGE: usize = 10_000;

/// One bucket of one connector instance: a view of the keys under its own
/// `namespace \0 bucket \0` prefix, and nothing else.
///
/// Cheap to clone, `Send + Sync`. Made by [`Store::bucket`].
#[derive(Clone)]
pub struct Bucket {
    store: Store,
    /// `namespace \0 bucket \0`
    prefix: Arc<str>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = self.prefix.split('\0');
        f.debug_struct("Bucket")
            .field("namespace", &parts.next().unwrap_or_default())
            .field("bucket", &parts.next().unwrap_or_default())
            .finish()
    }
}

impl Bucket {
    pub(crate) fn new(store: Store, prefix: String) -> Bucket {
        Bucket { store, prefix: prefix.into() }
    }

    /// The instance the bucket belongs to.
    fn namespace(&self) -> &str {
        self.prefix.split('\0').next().unwrap_or_default()
    }

    fn full_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        let limit = self.store.inner.config.max_key_bytes;
        if key.len() > limit {
            return Err(StoreError::KeyTooLarge { key: abbreviate(key), size: key.len(), limit });
        }
        Ok(())
    }

    fn check_item(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check_key(key)?;
        let limit = self.store.inner.config.max_value_bytes;
        if value.len() > limit {
            return Err(StoreError::ValueTooLarge { key: abbreviate(key), size: value.len(), limit });
        }
        Ok(())
    }

    /// The value of `key`, or `None` if it is not set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.inner.backend.get_many(Table::Kv, &[self.full_key(key)])?.pop().flatten())
    }

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// Fails with [`StoreError::KeyTooLarge`] / [`StoreError::ValueTooLarge`] when the key
    /// or value exceeds the configured limits.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check_item(key, value)?;
        self.store.write_in(self.namespace(), Table::Kv, &[Write::Put(self.full_key(key), value.to_vec())])
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.write_in(self.namespace(), Table::Kv, &[Write::Delete(self.full_key(key))])
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    /// Lists keys in key (byte) order, at most `page` per call (clamped to `1..=`[`MAX_PAGE`]).
    ///
    /// Start with `cursor: None`; while the returned cursor is `Some`, pass it back to get
    /// the next page. The cursor is an opaque `u64` naming the last key returned, kept in
    /// memory by the store: each page is an `O(log n + page)` range scan starting just
    /// after that key, never an offset skip. Keys that exist for the whole listing are
    /// returned exactly once even if other keys are added or removed in between; keys
    /// added or removed meanwhile may or may not appear. A cursor is only valid for the
    /// bucket that issued it and is forgotten on restart (or, with PostgreSQL, on another
    /// host) or after 4096 newer cursors; an unknown cursor yields
    /// [`StoreError::InvalidCursor`].
    pub fn list_keys(&self, cursor: Option<u64>, page: usize) -> Result<(Vec<String>, Option<u64>), StoreError> {
        let page = page.clamp(1, MAX_PAGE);
        let after = match cursor {
            None => None,
            Some(id) => Some(
                self.store
                    .inner
                    .cursors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id, &self.prefix)
                    .ok_or(StoreError::InvalidCursor(id))?,
            ),
        };
        let rows = self.store.inner.backend.scan(Table::Kv, &self.prefix, after.as_deref(), page + 1)?;
        let more = rows.len() > page;
        let keys: Vec<String> = rows.into_iter().take(page).map(|(k, _)| k[self.prefix.len()..].to_owned()).collect();
        let next = match (more, keys.last()) {
            (true, Some(last)) => Some(
                self.store
                    .inner
                    .cursors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.prefix.clone(), self.full_key(last)),
            ),
            _ => None,
        };
        Ok((keys, next))
    }

    /// Keys starting with `prefix`, with their values, in key order, strictly after
    /// `start_after` if given, at most `page` (clamped to `1..=`[`MAX_PAGE`]).
    ///
    /// An `O(log n + page)` range scan. To page through, pass the last key returned as
    /// the next `start_after`.
    pub fn scan_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        page: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store.scan(Table::Kv, &self.prefix, prefix, start_after, page)
    }

    /// The values of `keys`, in the same order (`None` for keys that are not set), read
    /// from one consistent snapshot.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        self.store.inner.backend.get_many(Table::Kv, &full)
    }

    /// Sets all `items` in one write transaction: either all are written or none is.
    ///
    /// Every key and value is checked against the limits before anything is written; the
    /// first offending item's error is returned. A key given twice ends with its last value.
    pub fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for (k, v) in items {
            self.check_item(k, v)?;
        }
        let writes: Vec<Write> = items.iter().map(|(k, v)| Write::Put(self.full_key(k), v.clone())).collect();
        self.store.write_in(self.namespace(), Table::Kv, &writes)
    }

    /// Removes all `keys` in one write transaction (missing keys are ignored).
    pub fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        let writes: Vec<Write> = keys.iter().map(|k| Write::Delete(self.full_key(k))).collect();
        self.store.write_in(self.namespace(), Table::Kv, &writes)
    }
}
