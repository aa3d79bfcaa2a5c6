//! Guest-visible buckets (`wasi:keyvalue/store` + `batch`).

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableDatabase, ReadableTable};

use crate::error::abbreviate;
use crate::{KV, Store, StoreError};

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

    fn read_table(&self) -> Result<ReadOnlyTable<&'static str, &'static [u8]>, StoreError> {
        Ok(self.store.inner.db.begin_read()?.open_table(KV)?)
    }

    /// The value of `key`, or `None` if it is not set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.read_table()?;
        Ok(table.get(self.full_key(key).as_str())?.map(|v| v.value().to_vec()))
    }

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// Fails with [`StoreError::KeyTooLarge`] / [`StoreError::ValueTooLarge`] when the key
    /// or value exceeds the configured limits.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check_item(key, value)?;
        self.store.write(KV, |table| {
            table.insert(self.full_key(key).as_str(), value)?;
            Ok(())
        })
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.write(KV, |table| {
            table.remove(self.full_key(key).as_str())?;
            Ok(())
        })
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let table = self.read_table()?;
        Ok(table.get(self.full_key(key).as_str())?.is_some())
    }

    /// Lists keys in key (byte) order, at most `page` per call (clamped to `1..=`[`MAX_PAGE`]).
    ///
    /// Start with `cursor: None`; while the returned cursor is `Some`, pass it back to get
    /// the next page. The cursor is an opaque `u64` naming the last key returned, kept in
    /// memory by the store: each page is an `O(log n + page)` range scan starting just
    /// after that key, never an offset skip. Keys that exist for the whole listing are
    /// returned exactly once even if other keys are added or removed in between; keys
    /// added or removed meanwhile may or may not appear. A cursor is only valid for the
    /// bucket that issued it and is forgotten on restart or after 4096 newer cursors; an
    /// unknown cursor yields [`StoreError::InvalidCursor`].
    pub fn list_keys(&self, cursor: Option<u64>, page: usize) -> Result<(Vec<String>, Option<u64>), StoreError> {
        let page = page.clamp(1, MAX_PAGE);
        let start = match cursor {
            None => Bound::Included(self.prefix.to_string()),
            Some(id) => {
                let last = self
                    .store
                    .inner
                    .cursors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id, &self.prefix)
                    .ok_or(StoreError::InvalidCursor(id))?;
                Bound::Excluded(last)
            }
        };
        let table = self.read_table()?;
        let mut keys = Vec::with_capacity(page.min(1024));
        let mut more = false;
        let bounds = (start.as_ref().map(String::as_str), Bound::Unbounded);
        for entry in table.range::<&str>(bounds)? {
            let (k, _) = entry?;
            let Some(key) = k.value().strip_prefix(&*self.prefix) else {
                break;
            };
            if keys.len() == page {
                more = true;
                break;
            }
            keys.push(key.to_owned());
        }
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
        let table = self.read_table()?;
        scan(&table, &self.prefix, prefix, start_after, page)
    }

    /// The values of `keys`, in the same order (`None` for keys that are not set), read
    /// from one consistent snapshot.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let table = self.read_table()?;
        keys.iter().map(|k| Ok(table.get(self.full_key(k).as_str())?.map(|v| v.value().to_vec()))).collect()
    }

    /// Sets all `items` in one write transaction: either all are written or none is.
    ///
    /// Every key and value is checked against the limits before anything is written; the
    /// first offending item's error is returned. A key given twice ends with its last value.
    pub fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for (k, v) in items {
            self.check_item(k, v)?;
        }
        self.store.write(KV, |table| {
            for (k, v) in items {
                table.insert(self.full_key(k).as_str(), v.as_slice())?;
            }
            Ok(())
        })
    }

    /// Removes all `keys` in one write transaction (missing keys are ignored).
    pub fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        self.store.write(KV, |table| {
            for k in keys {
                table.remove(self.full_key(k).as_str())?;
            }
            Ok(())
        })
    }
}

/// Range scan of the keys under `table_prefix + prefix`, strictly after
/// `table_prefix + start_after`, returning keys without `table_prefix`.
pub(crate) fn scan<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    table_prefix: &str,
    prefix: &str,
    start_after: Option<&str>,
    page: usize,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let page = page.clamp(1, MAX_PAGE);
    let full_prefix = format!("{table_prefix}{prefix}");
    let start = match start_after {
        // Anything at or before the prefix itself means "from the start of the prefix".
        Some(after) if after >= prefix => Bound::Excluded(format!("{table_prefix}{after}")),
        _ => Bound::Included(full_prefix.clone()),
    };
    let bounds = (start.as_ref().map(String::as_str), Bound::Unbounded);
    let mut out = Vec::new();
    for entry in table.range::<&str>(bounds)? {
        let (k, v) = entry?;
        let k = k.value();
        if !k.starts_with(&full_prefix) || out.len() == page {
            break;
        }
        out.push((k[table_prefix.len()..].to_owned(), v.value().to_vec()));
    }
    Ok(out)
}
