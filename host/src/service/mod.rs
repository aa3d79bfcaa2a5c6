//! `connector-host serve`: one long-running process for every tenant of a data directory.
//!
//! * [`tenants`]: one connector instance per tenant drives its ingests, syncs and Auto
//!   Resync schedules; a shared, first-come-first-served pool of step permits keeps one
//!   tenant's huge space from starving another's small one.
//! * [`api`]: the HTTP API (`/api/v1`, roles from [`crate::keys`]), `/openapi.json`,
//!   `/healthz`, `/metrics`; [`dashboard`]: the browser UI at `/`; [`mcp`]: the Model
//!   Context Protocol at `/mcp`; [`readers`]: warm instances for read-only calls;
//!   [`quotas`]: what one tenant may hold; [`embedding`]: page embeddings for semantic
//!   retrieval, in the background.
//! * [`handoff`]: how CLI commands on the same data directory find the running service and
//!   act through it instead of failing on the store's file lock.

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod embedding;
pub mod error;
pub mod handoff;
pub mod mcp;
pub mod metrics;
pub mod quotas;
pub mod readers;
pub mod tenants;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::runtime::ConnectorHost;
pub use config::{LogFormat, ServeConfig, ServeSettings};
use tenants::Tenants;

/// Everything a request handler or a worker needs; shared behind an `Arc`.
pub struct Service {
    /// The host: engine, component, storage.
    pub host: ConnectorHost,
    /// The operator's settings.
    pub config: ServeConfig,
    /// Tenants and their workers.
    pub tenants: Tenants,
    /// Warm connector instances for read-only calls, and the bound on such calls.
    pub readers: readers::Readers,
    /// Counters and histograms for `/metrics`.
    pub metrics: metrics::Metrics,
    /// The token CLI commands of this data directory present (see [`handoff`]).
    pub operator_token: String,
    /// Cancelled on SIGTERM/SIGINT (or `--run-for`): workers stop after their current step.
    pub shutdown: CancellationToken,
}

impl Service {
    /// The service over `host`, not serving yet: no tenant loaded, no listener (the fuzz
    /// target drives its router in-process).
    pub fn new(host: ConnectorHost, config: ServeConfig) -> Result<Arc<Service>> {
        let shutdown = CancellationToken::new();
        let metrics = metrics::Metrics::default();
        Ok(Arc::new(Service {
            tenants: Tenants::new(
                host.clone(),
                config.concurrency,
                config.lease,
                config.quotas.clone(),
                metrics.clone(),
                shutdown.clone(),
            )?,
            readers: readers::Readers::new(host.clone(), config.max_concurrent_calls),
            host,
            config,
            metrics,
            operator_token: handoff::new_token()?,
            shutdown,
        }))
    }

    /// Loads every tenant of the data directory and resumes its unfinished work.
    pub async fn load_tenants(&self) -> Result<()> {
        for namespace in self.host.instances()? {
            // One tenant that cannot be opened (say, a damaged index) must not keep the others down.
            if let Err(error) = self.tenants.get(&namespace).await {
                tracing::error!(tenant = %namespace, "cannot load the tenant: {error:#}");
            }
        }
        Ok(())
    }
}

/// Runs the service until `shutdown` is cancelled (or `run_for` has passed): serves HTTP,
/// resumes every tenant's unfinished work and runs Auto Resync schedules. Returns after
/// the current steps have finished and their checkpoints are written.
pub async fn run(host: ConnectorHost, config: ServeConfig, run_for: Option<Duration>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let service = Service::new(host.clone(), config)?;
    service.load_tenants().await?;
    let shutdown = service.shutdown.clone();
    let handoff =
        handoff::ServeFile::write(&host.config().data_dir, &format!("http://{address}"), &service.operator_token)?;
    tracing::info!(%address, tenants = service.tenants.count(), "serving");
    println!("listening on http://{address}");

    spawn_stop_signals(shutdown.clone(), run_for);
    spawn_coordination(service.clone());
    let embedder = embedding::spawn(host.clone(), shutdown.clone());
    let app = api::router(service.clone());
    let stopped = shutdown.clone();
    let served = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move { stopped.cancelled().await })
        .await;
    service.tenants.join().await;
    if let Some(embedder) = embedder {
        // It stops after its current batch.
        let _ = tokio::task::spawn_blocking(move || embedder.join()).await;
    }
    handoff.remove();
    tracing::info!("stopped");
    served.context("the HTTP server failed")
}

/// On a database several hosts share, every third of a lease's term: renews this host's
/// work leases, wakes the workers of tenants whose lease lapsed (a host died driving them:
/// one of the hosts takes the work over), takes up the Auto Resync due times other hosts
/// set, and loads the tenants other hosts created since (every host serves every tenant).
fn spawn_coordination(service: Arc<Service>) {
    if !service.host.shares_database() {
        return;
    }
    tokio::spawn(async move {
        let lease = service.config.lease;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = service.shutdown.cancelled() => return,
            }
            let leases = service.host.leases();
            let renewed = crate::blocking::off_runtime(move || {
                leases.renew(lease)?;
                Ok(leases.lapsed(tenants::WORK_LEASES)?)
            })
            .await;
            match renewed {
                Ok(lapsed) => {
                    for name in lapsed.iter().filter_map(|name| name.strip_prefix(tenants::WORK_LEASES)) {
                        if let Ok(tenant) = service.tenants.get(name).await {
                            tenant.wake();
                        }
                    }
                }
                Err(error) => tracing::warn!("cannot renew this host's work leases: {error:#}"),
            }
            let host = service.host.clone();
            if let Err(error) = crate::blocking::off_runtime(move || host.refresh_due_times()).await {
                tracing::warn!("cannot read the Auto Resync schedules: {error:#}");
            }
            let host = service.host.clone();
            match crate::blocking::off_runtime(move || host.instances()).await {
                Ok(names) => {
                    let loaded = service.tenants.names();
                    for name in names.iter().filter(|name| !loaded.contains(name)) {
                        if let Err(error) = service.tenants.get(name).await {
                            tracing::error!(tenant = %name, "cannot load the tenant: {error:#}");
                        }
                    }
                }
                Err(error) => tracing::warn!("cannot list the tenants: {error:#}"),
            }
        }
    });
}

fn spawn_stop_signals(shutdown: CancellationToken, run_for: Option<Duration>) {
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!("cannot listen for SIGTERM: {error}");
                    std::future::pending::<()>().await;
                }
            }
        };
        let deadline = async {
            match run_for {
                Some(duration) => tokio::time::sleep(duration).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: finishing the current steps"),
            _ = terminate => tracing::info!("terminated: finishing the current steps"),
            _ = deadline => tracing::info!("--run-for has passed: finishing the current steps"),
        }
        shutdown.cancel();
    });
}
