//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database itself failed (I/O, corruption, file already open, ...).
    #[error("storage error: {0}")]
    Database(#[from] redb::Error),

    /// The PostgreSQL database failed or could not be reached (its password never appears).
    #[error("PostgreSQL: {0}")]
    Postgres(String),

    /// Another holder kept a lock ([`Store::lock`](crate::Store::lock)) longer than a caller
    /// waits for it.
    #[error("the lock {name} has been held elsewhere for {waited:?}: try again later")]
    LockTimeout {
        /// The lock's name.
        name: String,
        /// How long the caller waited.
        waited: std::time::Duration,
    },

    /// A write made under a lock ([`Store::lock_writes`](crate::Store::lock_writes)) after
    /// the lock had passed to another holder (this holder's lock connection broke): the
    /// write was not made.
    #[error("the lock {name} was lost to another holder: this change was not made (try again)")]
    Fenced {
        /// The lock's name.
        name: String,
    },

    /// A namespace, bucket name or secret name is not acceptable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What was named ("namespace", "bucket name", "secret name").
        what: &'static str,
        /// The offending name (abbreviated if long).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A key is longer than [`StoreConfig::max_key_bytes`](crate::StoreConfig::max_key_bytes).
    #[error("key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    KeyTooLarge {
        /// The offending key (abbreviated if long).
        key: String,
        /// Its size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A value is larger than
    /// [`StoreConfig::max_value_bytes`](crate::StoreConfig::max_value_bytes).
    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key the value was meant for (abbreviated if long).
        key: String,
        /// The value's size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A `list_keys` cursor that this bucket did not issue, or that has been forgotten
    /// (the host restarted, or too many newer cursors were issued since).
    #[error("unknown or expired list-keys cursor {0}; restart the listing without a cursor")]
    InvalidCursor(u64),

    /// A secret's ciphertext does not authenticate under the current operator key.
    #[error("secret {name} cannot be decrypted with this operator key (was the key changed?)")]
    SecretUndecryptable {
        /// The secret's name.
        name: String,
    },

    /// A stored secret is malformed (truncated, unknown format version, not UTF-8).
    #[error("secret {name} is corrupt: {reason}")]
    SecretCorrupt {
        /// The secret's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The operator key supplied in an environment variable or file is not usable.
    #[error("invalid operator key from {source_name}: {reason}")]
    InvalidOperatorKey {
        /// Where the key came from (environment variable name or file path).
        source_name: String,
        /// Why it was refused (never contains key material).
        reason: &'static str,
    },

    /// Reading or writing a file (e.g. the operator key file) failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.into())
            }
        }
    )*};
}

from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Shortens a possibly huge, user-supplied string for an error message.
pub(crate) fn abbreviate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
