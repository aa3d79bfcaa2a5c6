//! Fencing tokens: writes made under a lock ([`Store::lock_writes`](crate::Store::lock_writes))
//! that fail once the lock has passed to another holder.
//!
//! A lock on a shared database ends when its session does; a host whose lock connection
//! alone broke would otherwise go on writing while another host holds the lock. So taking a
//! lock also advances the lock's epoch (one row per lock name, `connector_fences`), and every
//! write made under it checks, inside its own transaction, that the epoch is still the one
//! its lock got, holding the row with `FOR SHARE` until it commits: a newer holder's advance
//! waits for writes in flight, and the writes after it fail with
//! [`StoreError::Fenced`]. Every write of the old holder comes before every write of the new.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::StoreError;

/// The epoch a lock got when it was taken (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock's name.
    pub(crate) name: String,
    /// The lock's epoch when it was taken.
    pub(crate) epoch: i64,
}

/// The fences of the locks held now, by the namespace whose writes they guard. Cheap to
/// clone: every clone sees the same fences (a store and the search indexes of its database).
#[derive(Debug, Clone, Default)]
pub struct Fences(Arc<Mutex<HashMap<String, Fence>>>);

impl Fences {
    /// The fence the writes of `namespace` carry now, if a fenced lock guards them.
    pub fn get(&self, namespace: &str) -> Option<Fence> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(namespace).cloned()
    }

    pub(crate) fn set(&self, namespace: &str, fence: Fence) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(namespace.to_string(), fence);
    }

    /// Forgets the fence of `namespace` if it is still `fence`.
    pub(crate) fn clear(&self, namespace: &str, fence: &Fence) {
        let mut fences = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if fences.get(namespace) == Some(fence) {
            fences.remove(namespace);
        }
    }
}

/// Checks, inside a write transaction on a PostgreSQL database, that `fence` is still the
/// newest epoch of its lock, and holds it so until the transaction ends.
pub fn check(tx: &mut postgres::Transaction<'_>, fence: &Fence) -> Result<(), StoreError> {
    let epoch: Option<i64> = tx
        .query_opt("SELECT epoch FROM connector_fences WHERE name = $1 FOR SHARE", &[&fence.name])?
        .map(|row| row.get(0));
    match epoch {
        Some(epoch) if epoch == fence.epoch => Ok(()),
        _ => Err(StoreError::Fenced { name: fence.name.clone() }),
    }
}
