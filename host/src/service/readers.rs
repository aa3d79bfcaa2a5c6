//! Connector instances for read-only calls (status, ask, describe), kept warm per tenant.
//!
//! A fresh instance per request would map, fault in and unmap the guest's memory every
//! time; a few idle instances per tenant are reused instead. The number of read calls
//! running at once is bounded; a request waits up to [`CALL_WAIT`] for its turn.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::{ConnectorHost, Instance};
use crate::service::error::ApiError;

/// How long a request waits for a free connector call before it gets a 503.
pub const CALL_WAIT: Duration = Duration::from_secs(30);

/// Idle instances kept per tenant.
const IDLE_PER_TENANT: usize = 4;

/// The pool of reader instances.
pub struct Readers {
    host: ConnectorHost,
    calls: Arc<Semaphore>,
    idle: Mutex<HashMap<String, Vec<Instance>>>,
}

/// An instance lent for one read-only call; it goes back to the pool when dropped.
pub struct Reader<'a> {
    instance: Option<Instance>,
    readers: &'a Readers,
    _permit: OwnedSemaphorePermit,
}

impl Readers {
    /// A pool allowing `max_calls` read calls at once.
    pub fn new(host: ConnectorHost, max_calls: usize) -> Readers {
        Readers { host, calls: Arc::new(Semaphore::new(max_calls)), idle: Mutex::new(HashMap::new()) }
    }

    /// An instance of `namespace` for one call, once a call slot is free.
    pub async fn get(&self, namespace: &str) -> Result<Reader<'_>, ApiError> {
        let permit = tokio::time::timeout(CALL_WAIT, self.calls.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::busy("the service is busy: too many requests are waiting; try again shortly"))?
            .map_err(|_| ApiError::busy("the service is stopping"))?;
        let idle = self.idle.lock().expect("reader pool lock").get_mut(namespace).and_then(Vec::pop);
        let instance = match idle {
            Some(instance) => instance,
            None => self.host.instance(namespace).await?,
        };
        Ok(Reader { instance: Some(instance), readers: self, _permit: permit })
    }
}

impl Deref for Reader<'_> {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        self.instance.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Instance {
        self.instance.as_mut().expect("present until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // An instance whose call trapped has already replaced itself with a fresh one, so
        // every instance that comes back is fit for the next call.
        let Some(instance) = self.instance.take() else { return };
        let mut idle = self.readers.idle.lock().expect("reader pool lock");
        let pool = idle.entry(instance.namespace().to_string()).or_default();
        if pool.len() < IDLE_PER_TENANT {
            pool.push(instance);
        }
    }
}
