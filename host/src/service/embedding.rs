//! Background embedding for semantic retrieval: one thread of background CPU priority
//! embeds the pending pages of every instance that has semantic retrieval on, one batch
//! per instance in turn, so that a large space does not hold up a small one (the model
//! shares a batch out over a thread per core, which inherit the background priority). Memories
//! answer lexically meanwhile; a batch's vectors are stored as it completes, so a stop
//! (or a crash) loses at most the batch in progress.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::runtime::ConnectorHost;
use crate::semantic::EmbeddingModelState;

/// How long the embedder sleeps when nothing is pending.
const IDLE: Duration = Duration::from_secs(1);

/// Starts the embedder thread, unless the host has no usable embedding model. It stops
/// after its current batch once `shutdown` is cancelled.
pub fn spawn(host: ConnectorHost, shutdown: CancellationToken) -> Option<std::thread::JoinHandle<()>> {
    if !matches!(host.embedding_model(), EmbeddingModelState::Loaded(_)) {
        return None;
    }
    let spawned = std::thread::Builder::new().name("embedder".into()).spawn(move || {
        crate::priority::lower_current_thread();
        while !shutdown.is_cancelled() {
            if !embed_one_turn(&host, &shutdown) {
                std::thread::sleep(IDLE);
            }
        }
    });
    match spawned {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::error!("cannot start the embedder thread, pages stay unembedded: {error}");
            None
        }
    }
}

/// One batch for every instance with pending pages; whether any was embedded.
fn embed_one_turn(host: &ConnectorHost, shutdown: &CancellationToken) -> bool {
    let instances = match host.instances() {
        Ok(instances) => instances,
        Err(error) => {
            tracing::warn!("embedder cannot list the instances: {error:#}");
            return false;
        }
    };
    let mut worked = false;
    for namespace in instances {
        if shutdown.is_cancelled() {
            break;
        }
        if !host.semantic_enabled(&namespace).unwrap_or(false) {
            continue;
        }
        match host.embed_round(&namespace) {
            Ok(Some(round)) => {
                worked = true;
                tracing::debug!(tenant = %namespace, embedded = round.embedded, remaining = round.remaining, "embedded pages");
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(tenant = %namespace, "{error:#}"),
        }
    }
    worked
}
