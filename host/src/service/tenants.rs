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
//!
//! On a database several hosts share, every host loads every tenant, and a tenant's work
//! is leased: a worker drives its tenant only while this host holds the tenant's work lease
//! (taken with a step permit in hand, so that hosts split the tenants between them; renewed
//! by [`super::spawn_coordination`]; given up when the tenant has no work left or the host
//! stops). A host that dies stops renewing; when its lease expires, another host's worker
//! takes it and continues from the last checkpoint. Changes to a tenant (steps, API
//! calls) are locked across hosts on top ([`crate::runtime::ConnectorHost::lock_instance`]).
//! Workers run on a runtime of their own whose threads have background priority
//! ([`crate::priority`]): answering stays fast while a large ingest runs.

use std::collections::HashMap;
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

/// The prefix of the tenants' work leases (`work/<tenant>`).
pub const WORK_LEASES: &str = "work/";

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
    /// How long a work lease lasts unless renewed (shared databases).
    lease: Duration,
    map: Mutex<HashMap<String, Arc<Tenant>>>,
    creating: tokio::sync::Mutex<()>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Tenants {
    /// No tenants yet; `concurrency` steps may run at once across all of them; on a shared
    /// database a tenant's work lease lasts `lease` unless renewed.
    pub fn new(
        host: ConnectorHost,
        concurrency: usize,
        lease: Duration,
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
            lease,
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
            lease: self.lease,
            leased: false,
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
    /// How long the work lease lasts unless renewed.
    lease: Duration,
    /// Whether this host held the tenant's work lease when it last looked.
    leased: bool,
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
                // Nothing to do here: the lease (taken for a due time another host claimed,
                // say) goes to whichever host gets work for the tenant.
                self.release_lease().await;
                tokio::select! {
                    _ = self.tenant.wake.notified() => scan = true,
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            }
            if !self.leased && !self.take_lease_in_turn().await {
                // Another host drives the tenant (and sees its new work); look again later,
                // in case it stops.
                tokio::select! {
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
                self.release_lease().await;
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
                if !self.hold_lease().await {
                    break;
                }
                let outcome = self.tenant.instance().await.step(&memory).await;
                self.settle_step(&memory, outcome).await;
            }
        }
        // Another host may take the tenant's work at once rather than when the lease expires.
        self.release_lease().await;
        tracing::debug!(tenant = %namespace, "worker stopped");
    }

    /// The name of the tenant's work lease.
    fn lease_name(&self) -> String {
        format!("{WORK_LEASES}{}", self.tenant.namespace)
    }

    /// Takes the work lease with a step permit in hand, so that a host whose permits are
    /// all busy leaves the tenant to a host that has one free. Whether this host has it.
    async fn take_lease_in_turn(&mut self) -> bool {
        if !self.host.shares_database() {
            self.leased = true;
            return true;
        }
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit,
            _ = self.shutdown.cancelled() => return false,
        };
        let Ok(_permit) = permit else { return false };
        self.hold_lease().await
    }

    /// Whether this host may drive the tenant's work now: always on an embedded store; on
    /// a shared database while it holds the tenant's work lease (taking or extending it).
    async fn hold_lease(&mut self) -> bool {
        if !self.host.shares_database() {
            return true;
        }
        let (leases, name, lease) = (self.host.leases(), self.lease_name(), self.lease);
        let held = match crate::blocking::off_runtime(move || Ok(leases.acquire(&name, lease)?)).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(tenant = %self.tenant.namespace, "cannot take the work lease: {error:#}");
                false
            }
        };
        if held != self.leased {
            match held {
                true => tracing::info!(tenant = %self.tenant.namespace, "this host drives the tenant's work"),
                false => tracing::info!(tenant = %self.tenant.namespace, "another host drives the tenant's work"),
            }
        }
        self.leased = held;
        held
    }

    /// Gives the work lease up (nothing left to do, or the host stops).
    async fn release_lease(&mut self) {
        if !self.host.shares_database() || !self.leased {
            return;
        }
        self.leased = false;
        let (leases, name) = (self.host.leases(), self.lease_name());
        if let Err(error) = crate::blocking::off_runtime(move || Ok(leases.release(&name)?)).await {
            tracing::warn!(tenant = %self.tenant.namespace, "cannot give the work lease up: {error:#}");
        }
    }

    async fn settle_step(
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
                    self.finish_scheduled(&report.memory.id, scheduled_outcome(&report.memory)).await;
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
            self.tenant.parked.lock().expect("parked lock").insert(memory.to_string(), failure.clone());
            self.finish_scheduled(memory, Err(failure)).await;
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

    /// Starts the syncs whose Auto Resync is due; returns whether it started any. On a
    /// shared database only the host driving the tenant starts them, and each due time
    /// is claimed once ([`ConnectorHost::claim_due_schedule`]).
    async fn start_due_syncs(&mut self) -> Result<bool> {
        let namespace = self.tenant.namespace.clone();
        if !self.host.due_times().may_be_due(&namespace, now()) {
            return Ok(false);
        }
        let host = self.host.clone();
        let reading = namespace.clone();
        let due: Vec<Schedule> = crate::blocking::off_runtime(move || host.due_schedules(&reading)).await?;
        if due.is_empty() || !self.hold_lease().await {
            return Ok(false);
        }
        let mut any = false;
        for schedule in due {
            let Some((due, mut schedule)) = self.host.claim_due_schedule(&namespace, &schedule.memory).await? else {
                continue;
            };
            let started = self.tenant.instance().await.sync(&schedule.memory, false).await;
            match started {
                Ok(Ok(memory)) => {
                    any = true;
                    self.tenant.unpark(&memory.id);
                    tracing::info!(tenant = %namespace, memory = %memory.id, due, "auto-resync started");
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
    /// been changed or turned off while the sync ran), if Auto Resync started the run.
    async fn finish_scheduled(&mut self, memory: &str, outcome: Result<(), String>) {
        let recorded = self
            .host
            .change_schedule(&self.tenant.namespace, memory, move |schedule| {
                schedule.running.then(|| match outcome {
                    Ok(()) => schedule.succeeded(now()),
                    Err(error) => schedule.failed(now(), error),
                })
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(tenant = %self.tenant.namespace, "cannot save the Auto Resync schedule: {error:#}");
        }
    }
}

/// What a finished run means for its Auto Resync schedule.
fn scheduled_outcome(memory: &Memory) -> Result<(), String> {
    match memory.status {
        MemoryStatus::Ingested => Ok(()),
        _ => Err(memory.error.clone().unwrap_or_else(|| "sync failed".into())),
    }
}
