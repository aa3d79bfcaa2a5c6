//! Tenants of the service and the workers that drive their work.
//!
//! Each tenant has one long-lived connector instance. Its worker steps the tenant's
//! unfinished memories in turn and starts the syncs its Auto Resync schedules ask for;
//! API calls that change the tenant (connect, add memories, sync) take the same instance
//! between two steps, so the connector never sees two of its own calls at once. Steps of
//! all tenants queue for one pool of permits (first come, first served): a tenant gets its
//! next step only after every tenant that was waiting before it, however large its space.
//! Read-only calls (status, ask) run on instances of their own ([`super::readers`]) and
//! never wait for a step.
//! Workers run on a runtime of their own whose threads have background priority
//! ([`crate::priority`]): answering stays fast while a large ingest runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bindings::types::{ConnectorError, Memory, MemoryStatus};
use crate::driver::describe_error;
use crate::runtime::{ConnectorHost, Instance};
use crate::schedule::{Schedule, now};
use crate::service::metrics::Metrics;
use crate::service::quotas::{Limits, Quotas, usage_refusal};

/// Steps in a row a memory may fail before its worker sets it aside (until it is synced
/// again or the service restarts).
const MAX_FAILED_STEPS: u32 = 3;

/// How long an idle worker sleeps before it looks at its schedules again.
const IDLE: Duration = Duration::from_millis(500);

/// One tenant: its connector instance and what its worker needs to know.
pub struct Tenant {
    /// The instance name.
    pub namespace: String,
    instance: tokio::sync::Mutex<Instance>,
    wake: Notify,
    /// Memories set aside (after repeated failures, or over a quota), with the reason.
    parked: Mutex<HashMap<String, String>>,
}

impl Tenant {
    /// The tenant's connector instance, between two steps of its worker.
    pub async fn instance(&self) -> tokio::sync::MutexGuard<'_, Instance> {
        self.instance.lock().await
    }

    /// Tells the worker that there is new work (a new memory, a sync).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Gives a memory that was set aside another chance (a new sync asked for it).
    pub fn unpark(&self, memory: &str) {
        self.parked.lock().expect("parked lock").remove(memory);
    }

    /// Memories set aside (after repeated failures or over a quota), with the reason.
    pub fn set_aside(&self) -> HashMap<String, String> {
        self.parked.lock().expect("parked lock").clone()
    }
}

/// Every tenant of the service.
pub struct Tenants {
    host: ConnectorHost,
    /// The workers' runtime (taken and shut down by [`Tenants::join`]).
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    workers_handle: tokio::runtime::Handle,
    permits: Arc<Semaphore>,
    quotas: Quotas,
    metrics: Metrics,
    shutdown: CancellationToken,
    map: Mutex<HashMap<String, Arc<Tenant>>>,
    creating: tokio::sync::Mutex<()>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Tenants {
    /// No tenants yet; `concurrency` steps may run at once across all of them.
    pub fn new(
        host: ConnectorHost,
        concurrency: usize,
        quotas: Quotas,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Tenants> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(concurrency.max(1))
            .thread_name("tenant-worker")
            .on_thread_start(crate::priority::lower_current_thread)
            .enable_all()
            .build()?;
        Ok(Tenants {
            workers_handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            host,
            permits: Arc::new(Semaphore::new(concurrency)),
            quotas,
            metrics,
            shutdown,
            map: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// How many tenants are loaded.
    pub fn count(&self) -> usize {
        self.map.lock().expect("tenant map lock").len()
    }

    /// The names of the loaded tenants.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.map.lock().expect("tenant map lock").keys().cloned().collect();
        names.sort();
        names
    }

    /// The tenant, loaded (and its worker started) on first use.
    pub async fn get(&self, namespace: &str) -> Result<Arc<Tenant>> {
        if let Some(tenant) = self.map.lock().expect("tenant map lock").get(namespace) {
            return Ok(tenant.clone());
        }
        let _creating = self.creating.lock().await;
        if let Some(tenant) = self.map.lock().expect("tenant map lock").get(namespace) {
            return Ok(tenant.clone());
        }
        let tenant = Arc::new(Tenant {
            namespace: namespace.to_string(),
            instance: tokio::sync::Mutex::new(self.host.instance(namespace).await?),
            wake: Notify::new(),
            parked: Mutex::new(HashMap::new()),
        });
        let worker = Worker {
            limits: self.quotas.of(namespace),
            index_dir: self.host.config().data_dir.join("search").join(namespace),
            tenant: tenant.clone(),
            host: self.host.clone(),
            permits: self.permits.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            scheduled: HashSet::new(),
            counted: HashMap::new(),
            failures: HashMap::new(),
        };
        self.workers.lock().expect("worker list lock").push(self.workers_handle.spawn(worker.run()));
        self.map.lock().expect("tenant map lock").insert(namespace.to_string(), tenant.clone());
        Ok(tenant)
    }

    /// Waits for every worker to finish its current step after shutdown.
    pub async fn join(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().expect("worker list lock"));
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!("a tenant worker failed: {error}");
            }
        }
        if let Some(runtime) = self.runtime.lock().expect("runtime lock").take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        // A runtime may not be dropped where blocking is forbidden (inside async code):
        // let its threads wind down on their own.
        if let Some(runtime) = self.runtime.lock().map(|mut r| r.take()).unwrap_or(None) {
            runtime.shutdown_background();
        }
    }
}

struct Worker {
    tenant: Arc<Tenant>,
    /// The tenant's quotas.
    limits: Limits,
    /// Where the tenant's search index lives (for the index-size quota).
    index_dir: std::path::PathBuf,
    host: ConnectorHost,
    permits: Arc<Semaphore>,
    metrics: Metrics,
    shutdown: CancellationToken,
    /// Memories whose running sync this worker started for Auto Resync: their outcome
    /// updates the schedule.
    scheduled: HashSet<String>,
    /// Request and retry counters of each memory's run as last reported, for the metrics.
    counted: HashMap<String, (u32, u32)>,
    /// Failed steps in a row, by memory.
    failures: HashMap<String, u32>,
}

impl Worker {
    async fn run(mut self) {
        let namespace = self.tenant.namespace.clone();
        // Asks the connector for unfinished work only when there may be some (at start, when
        // woken, after starting a sync): an idle tenant costs no connector calls.
        let mut scan = true;
        while !self.shutdown.is_cancelled() {
            match self.start_due_syncs().await {
                Ok(started) => scan |= started,
                Err(error) => tracing::warn!(tenant = %namespace, "cannot run Auto Resync: {error:#}"),
            }
            if !scan {
                tokio::select! {
                    _ = self.tenant.wake.notified() => scan = true,
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            }
            let pending = match self.tenant.instance().await.pending().await {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(tenant = %namespace, "cannot list unfinished work: {error:#}");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            let parked = self.tenant.parked.lock().expect("parked lock").clone();
            let mut pending: Vec<String> = pending.into_iter().filter(|id| !parked.contains_key(id)).collect();
            if pending.is_empty() {
                scan = false;
                continue;
            }
            if let Some(reason) = self.over_quota().await {
                tracing::warn!(tenant = %namespace, "{reason}");
                let mut parked = self.tenant.parked.lock().expect("parked lock");
                for memory in pending {
                    parked.insert(memory, reason.clone());
                }
                continue;
            }
            if let Some(at_once) = self.limits.ingest_concurrency {
                pending.truncate(at_once.max(1) as usize);
            }
            for memory in pending {
                let permit = tokio::select! {
                    permit = self.permits.clone().acquire_owned() => permit,
                    _ = self.shutdown.cancelled() => break,
                };
                let Ok(_permit) = permit else { break };
                let outcome = self.tenant.instance().await.step(&memory).await;
                self.settle_step(&memory, outcome);
            }
        }
        tracing::debug!(tenant = %namespace, "worker stopped");
    }

    fn settle_step(
        &mut self,
        memory: &str,
        outcome: Result<Result<crate::bindings::types::StepReport, ConnectorError>>,
    ) {
        let namespace = self.tenant.namespace.clone();
        let failure = match outcome {
            Ok(Ok(report)) => {
                self.metrics.step("ok");
                self.failures.remove(memory);
                self.count_requests(&report.memory);
                if report.finished {
                    self.counted.remove(memory);
                    tracing::info!(
                        tenant = %namespace, memory, status = ?report.memory.status,
                        pages = report.memory.documents, chunks = report.memory.chunks, "settled"
                    );
                    self.finish_scheduled(&report.memory);
                }
                return;
            }
            Ok(Err(error)) => {
                self.metrics.step("refused");
                describe_error(&error)
            }
            Err(trap) => {
                self.metrics.step("failed");
                format!("{trap:#}")
            }
        };
        let count = self.failures.entry(memory.to_string()).or_default();
        *count += 1;
        tracing::warn!(tenant = %namespace, memory, failures = *count, "step failed: {failure}");
        if *count >= MAX_FAILED_STEPS {
            tracing::error!(tenant = %namespace, memory, "set aside after {count} failed steps until it is synced again");
            self.failures.remove(memory);
            self.tenant.parked.lock().expect("parked lock").insert(memory.to_string(), failure);
        }
    }

    /// Why the tenant may not grow, if it is over its document or index quota.
    async fn over_quota(&self) -> Option<String> {
        if self.limits.documents.is_none() && self.limits.index_mib.is_none() {
            return None;
        }
        let documents = match self.tenant.instance().await.status().await {
            // A run's documents are counted at its end; while it runs, what it has taken in so
            // far stands for them, so that a large ingest stops within a step of the quota.
            Ok(status) => status
                .memories
                .iter()
                .map(|m| match m.status {
                    MemoryStatus::InProgress => u64::from(m.documents.max(m.progress.done)),
                    _ => u64::from(m.documents),
                })
                .sum(),
            Err(error) => {
                tracing::warn!(tenant = %self.tenant.namespace, "cannot check the quotas: {error:#}");
                return None;
            }
        };
        usage_refusal(&self.limits, &self.tenant.namespace, documents, &self.index_dir)
    }

    fn count_requests(&mut self, memory: &Memory) {
        let now = (memory.progress.requests, memory.progress.retries);
        let before = self.counted.insert(memory.id.clone(), now).unwrap_or_default();
        // Counters start again at zero with each run.
        let (requests, retries) =
            if now.0 < before.0 { now } else { (now.0 - before.0, now.1.saturating_sub(before.1)) };
        self.metrics.confluence_requests(u64::from(requests), u64::from(retries));
    }

    /// Starts the syncs whose Auto Resync is due; returns whether it started any.
    async fn start_due_syncs(&mut self) -> Result<bool> {
        let namespace = self.tenant.namespace.clone();
        let due: Vec<Schedule> = self
            .host
            .schedules(&namespace)?
            .into_iter()
            .filter(|s| s.next_run <= now() && !self.scheduled.contains(&s.memory))
            .collect();
        let mut any = false;
        for mut schedule in due {
            let started = self.tenant.instance().await.sync(&schedule.memory, false).await;
            match started {
                Ok(Ok(memory)) => {
                    any = true;
                    self.tenant.unpark(&memory.id);
                    tracing::info!(tenant = %namespace, memory = %memory.id, "auto-resync started");
                    self.scheduled.insert(memory.id);
                }
                Ok(Err(ConnectorError::NotFound(_))) => self.host.remove_schedule(&namespace, &schedule.memory)?,
                Ok(Err(error)) => {
                    schedule.failed(now(), format!("refused: {}", describe_error(&error)));
                    self.host.save_schedule(&namespace, &schedule)?;
                }
                Err(trap) => {
                    schedule.failed(now(), format!("{trap:#}"));
                    self.host.save_schedule(&namespace, &schedule)?;
                }
            }
        }
        Ok(any)
    }

    /// Records the outcome of an Auto Resync run in the schedule as it is now (it may have
    /// been changed or turned off while the sync ran).
    fn finish_scheduled(&mut self, memory: &Memory) {
        if !self.scheduled.remove(&memory.id) {
            return;
        }
        let namespace = &self.tenant.namespace;
        let recorded = self.host.schedule(namespace, &memory.id).and_then(|current| {
            let Some(mut schedule) = current else { return Ok(()) };
            match memory.status {
                MemoryStatus::Ingested => schedule.succeeded(now()),
                _ => schedule.failed(now(), memory.error.clone().unwrap_or_else(|| "sync failed".into())),
            }
            self.host.save_schedule(namespace, &schedule)
        });
        if let Err(error) = recorded {
            tracing::warn!(tenant = %namespace, "cannot save the Auto Resync schedule: {error:#}");
        }
    }
}
