//! The wasmtime side of the host: one engine, the component compiled once and cached
//! on disk, one `InstancePre`, and guarded calls into connector instances.
//!
//! Every call into the guest runs under a memory cap, a CPU budget (charged for each
//! epoch tick in which guest code runs) and a wall-clock limit (checked at those ticks
//! and by an async timeout while the guest waits). A call that traps or times out
//! discards its store; the next call gets a fresh instance from the same `InstancePre`
//! (about half a millisecond), so a misbehaving guest never takes the host down.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::since_v0_1::{self, Upgrade as _};
use crate::bindings::{self, Connector, ConnectorPre, types};
use crate::capabilities::http::{OutboundPolicy, SiteLimiter, canonical_origin, is_loopback_origin, site_allowed};
use crate::profile::{CallProfile, Totals};
use crate::report::StatusView;
use crate::semantic::{EmbeddingModelState, InstanceSearch, MemoryCoverage, SemanticStatusView, SemanticView};
use crate::state::{CallBudget, Grants, HostState, Limit};
use connector_search::semantic::EmbedRound;

/// The connector component built with this host (`plugin/`, for wasm32-wasip2).
pub const BUNDLED_COMPONENT: &[u8] = include_bytes!(env!("CONNECTOR_COMPONENT_PATH"));

/// The configuration field through which 0.1.x connectors learnt the loopback policy.
const LEGACY_LOOPBACK_FIELD: &str = "allow-loopback";

/// Epoch tick: the granularity of CPU deadlines.
const TICK: Duration = Duration::from_millis(10);

/// Host limits and locations.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where the store, search indexes and operator key live.
    pub data_dir: PathBuf,
    /// Where compiled components are cached (`None`: `<data_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// A component to run instead of the bundled one.
    pub component: Option<PathBuf>,
    /// Guest linear-memory cap in bytes.
    pub memory_limit: usize,
    /// Wall-clock limit of one call into the guest (waits on HTTP and storage count).
    pub call_timeout: Duration,
    /// CPU limit of one call into the guest (epoch ticks while it runs guest code).
    pub cpu_limit: Duration,
    /// Largest HTTP response body a connector may receive; the host cuts longer ones off.
    pub max_response_bytes: u64,
    /// Whether the search index's indexing threads run at background priority (the service
    /// sets it, so that answering stays fast while another tenant ingests).
    pub background_priority: bool,
    /// Host patterns the origins of a connection must match, e.g. `*.atlassian.net`
    /// (empty: any public host). Enforced by the host on every origin a connector asks for.
    pub allowed_sites: Vec<String>,
    /// The sentence-embedding model directory for semantic retrieval (`None`: lexical
    /// only). Instances use it once semantic retrieval is turned on for them.
    pub embedding_model: Option<PathBuf>,
    /// A PostgreSQL database for connections, memories, secrets, host metadata and the
    /// search indexes (`None`: the embedded store and tantivy in the data directory). The
    /// operator key then comes from `CONNECTOR_HOST_KEY`, and one host process at a time
    /// may use the database.
    pub database_url: Option<String>,
}

impl HostConfig {
    /// Defaults for a data directory: 512 MiB of guest memory, 5 minutes per call (wall
    /// clock and CPU), responses up to 64 MiB, any public site.
    pub fn new(data_dir: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            data_dir: data_dir.into(),
            cache_dir: None,
            component: None,
            memory_limit: 512 << 20,
            call_timeout: Duration::from_secs(300),
            cpu_limit: Duration::from_secs(300),
            allowed_sites: Vec::new(),
            background_priority: false,
            embedding_model: None,
            database_url: None,
            max_response_bytes: crate::capabilities::send::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A loaded host: engine, compiled component and storage, shared by its instances.
/// Cheap to clone: every field is a shared handle, so a service can hand clones to its
/// tasks and instances can own theirs.
#[derive(Clone)]
pub struct ConnectorHost {
    engine: Engine,
    pre: Pre,
    store: connector_store::Store,
    key: connector_store::OperatorKey,
    config: HostConfig,
    indexes: Arc<Mutex<HashMap<String, Arc<InstanceSearch>>>>,
    embedding: EmbeddingModelState,
    limiter: SiteLimiter,
    profile: CallProfile,
    /// This process's claim on a shared database (held as long as any clone lives).
    _claim: Arc<Option<connector_store::Claim>>,
    /// What this process goes by in the leases of a shared database.
    holder: Arc<str>,
    /// When each instance's next Auto Resync falls due, as far as this process knows.
    due_times: crate::schedule::DueTimes,
}

pub use crate::operator_key::OPERATOR_KEY_VAR;

/// Host metadata key prefix naming the instances of a shared database.
const INSTANCE_PREFIX: &str = "instance/";

/// Opens the host's store: the embedded file of `data_dir`, or the PostgreSQL database at
/// `database_url` (migrated) with this process's claim on it: `Shared` for a host (hosts
/// serve together), `Exclusive` for a change no running host may see half of.
pub fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
    mode: connector_store::ClaimMode,
) -> Result<(connector_store::Store, Option<connector_store::Claim>)> {
    let Some(url) = database_url else {
        let db_path = data_dir.join("store.redb");
        let store = connector_store::Store::open(&db_path).map_err(|e| {
            anyhow!(
                "cannot open {}: {e} (is another connector-host process using this data directory?)",
                db_path.display()
            )
        })?;
        return Ok((store, None));
    };
    let store = connector_store::Store::connect(url).map_err(|e| anyhow!("{e}"))?;
    let Some(claim) = store.claim(mode).map_err(|e| anyhow!("{e}"))? else {
        return Err(match mode {
            connector_store::ClaimMode::Shared => anyhow!(
                "the operator key of this PostgreSQL database is being rotated (operator-key rotate): start the host \
                 when the rotation has finished"
            ),
            connector_store::ClaimMode::Exclusive => anyhow!(
                "connector-host processes are using this PostgreSQL database: stop every host on it first (they hold \
                 the current key)"
            ),
        });
    };
    Ok((store, Some(claim)))
}

/// A name for this process in the leases of a shared database: its machine, its process id
/// and a random part (a restarted process is another holder).
fn holder_name() -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".into());
    let mut random = [0u8; 4];
    // Without randomness the process id still tells this process from the others of its machine.
    let _ = getrandom::fill(&mut random);
    format!("{machine}-{}-{:08x}", std::process::id(), u32::from_le_bytes(random))
}

/// The operator key of a shared database: from `CONNECTOR_HOST_KEY` (required: no key file
/// sits beside a database other hosts read), checked against the stored secrets.
fn database_key(store: &connector_store::Store) -> Result<connector_store::OperatorKey> {
    let text = std::env::var(OPERATOR_KEY_VAR).ok().filter(|value| !value.trim().is_empty()).ok_or_else(|| {
        anyhow!(
            "with a PostgreSQL database the operator key comes from {OPERATOR_KEY_VAR} (64 hex digits or base64 of 32 \
             bytes, e.g. from `openssl rand -hex 32`); set it, the same on every host"
        )
    })?;
    let key = connector_store::OperatorKey::parse(&text, &format!("environment variable {OPERATOR_KEY_VAR}"))
        .map_err(|e| anyhow!("{e}"))?;
    if !store.opens_secrets(&key).map_err(|e| anyhow!("{e}"))? {
        return Err(anyhow!(
            "{OPERATOR_KEY_VAR} does not open the secrets stored in this database: set the key they were stored with"
        ));
    }
    Ok(key)
}

impl ConnectorHost {
    /// Opens the data directory and loads the component (from the compile cache when
    /// possible).
    pub fn open(config: HostConfig) -> Result<ConnectorHost> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let engine = new_engine()?;
        spawn_epoch_ticker(&engine);

        let bytes: Cow<[u8]> = match &config.component {
            Some(path) => Cow::Owned(
                std::fs::read(path).with_context(|| format!("cannot read the component {}", path.display()))?,
            ),
            None => Cow::Borrowed(BUNDLED_COMPONENT),
        };
        let cache_dir = config.cache_dir.clone().unwrap_or_else(|| config.data_dir.join("cache"));
        let component = load_component(&engine, &bytes, &cache_dir)?;
        let pre = Pre::new(linker(&engine)?.instantiate_pre(&component).map_err(|e| anyhow!("{e}"))?)?;

        let (store, claim) =
            open_store(&config.data_dir, config.database_url.as_deref(), connector_store::ClaimMode::Shared)?;
        let key = match config.database_url {
            Some(_) => database_key(&store)?,
            None => crate::operator_key::load(&config.data_dir, &store)?,
        };
        let embedding = EmbeddingModelState::load(config.embedding_model.as_deref());
        let holder: Arc<str> = holder_name().into();
        let limiter = match config.database_url {
            Some(_) => SiteLimiter::shared(store.clone(), &holder),
            None => SiteLimiter::default(),
        };
        Ok(ConnectorHost {
            embedding,
            engine,
            pre,
            store,
            key,
            config,
            indexes: Arc::new(Mutex::new(HashMap::new())),
            limiter,
            profile: CallProfile::default(),
            _claim: Arc::new(claim),
            holder,
            due_times: Default::default(),
        })
    }

    /// Whether the host shares its database with other hosts (PostgreSQL): then a
    /// tenant's changes are locked across hosts and its work is leased.
    pub fn shares_database(&self) -> bool {
        self.config.database_url.is_some()
    }

    /// When each instance's next Auto Resync falls due, as far as this process knows.
    pub fn due_times(&self) -> &crate::schedule::DueTimes {
        &self.due_times
    }

    /// This process's leases in the store.
    pub fn leases(&self) -> connector_store::Leases {
        self.store.leases(&self.holder)
    }

    /// Waits until no other caller — in this process or another host on the database —
    /// changes the instance `namespace`, and keeps them out while the guard lives; the
    /// instance's key-value, secret and search writes meanwhile are fenced by the lock (they
    /// fail, writing nothing, if the lock passed to another host). `None` on an embedded
    /// store: this process is its only host, and its callers take the instance in turn
    /// already.
    pub async fn lock_instance(&self, namespace: &str) -> Result<Option<connector_store::Claim>> {
        if !self.shares_database() {
            return Ok(None);
        }
        let (store, name, fenced) = (self.store.clone(), format!("instance/{namespace}"), namespace.to_string());
        let locked = crate::blocking::off_runtime(move || Ok(store.lock_writes(&name, &fenced)?)).await;
        Ok(Some(locked.map_err(|e| anyhow!("cannot change instance {namespace}: {e:#}"))?))
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Where the calls of this host's instances have spent their time so far.
    pub fn profile(&self) -> Totals {
        self.profile.totals()
    }

    /// The embedded store (host metadata lives in its private table).
    pub fn store(&self) -> &connector_store::Store {
        &self.store
    }

    /// Starts an instance (one tenant's connector) with its grants.
    pub async fn instance(&self, namespace: &str) -> Result<Instance> {
        if !valid_instance_name(namespace) {
            return Err(anyhow!("instance name '{namespace}' must be 1 to 64 letters, digits, - or _"));
        }
        let search = self.index(namespace)?;
        let grants = Grants {
            namespace: namespace.to_string(),
            store: self.store.clone(),
            search,
            secrets: self.store.secrets(namespace, self.key.clone()).map_err(|e| anyhow!("{e}"))?,
            outbound: OutboundPolicy::new(self.granted_origins(namespace)?, self.limiter.clone(), self.profile.clone())
                .with_max_response_bytes(self.config.max_response_bytes),
            profile: self.profile.clone(),
        };
        let (store, exports) = self.instantiate(grants.clone()).await?;
        Ok(Instance { host: self.clone(), grants, store, exports })
    }

    /// Every instance (tenant) this host holds: each has a search index from the first
    /// time it was opened (a directory in the data directory, or a name recorded in the
    /// shared database).
    pub fn instances(&self) -> Result<Vec<String>> {
        if self.config.database_url.is_some() {
            let mut names = Vec::new();
            loop {
                let after = names.last().map(|name| format!("{INSTANCE_PREFIX}{name}"));
                let page =
                    self.store.meta().scan_prefix(INSTANCE_PREFIX, after.as_deref(), connector_store::MAX_PAGE)?;
                if page.is_empty() {
                    return Ok(names);
                }
                names.extend(
                    page.into_iter().filter_map(|(key, _)| key.strip_prefix(INSTANCE_PREFIX).map(str::to_string)),
                );
            }
        }
        let dir = self.config.data_dir.join("search");
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(error) => return Err(anyhow!("cannot list {}: {error}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Some(name) = entry.file_name().to_str()
                && valid_instance_name(name)
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The search backend of an instance (opened once per process), with its semantic
    /// index when semantic retrieval is on for it and the model is available.
    pub fn index(&self, namespace: &str) -> Result<Arc<InstanceSearch>> {
        let mut indexes = self.indexes.lock().expect("index map lock");
        if let Some(index) = indexes.get(namespace) {
            return Ok(index.clone());
        }
        let lexical: Arc<dyn connector_search::SearchBackend> = match &self.config.database_url {
            Some(url) => {
                let index = connector_search::PgSearch::connect(url, namespace)
                    .map_err(|e| anyhow!("cannot open the search index of {namespace} in the database: {e}"))?
                    .fenced_by(self.store.fences());
                self.store.meta().set(&format!("{INSTANCE_PREFIX}{namespace}"), b"")?;
                Arc::new(index)
            }
            None => {
                let dir = self.config.data_dir.join("search").join(namespace);
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let open = || connector_search::TantivySearch::open(&dir);
                let opened =
                    if self.config.background_priority { crate::priority::on_background_thread(open) } else { open() };
                Arc::new(opened.map_err(|e| anyhow!("cannot open the search index {}: {e}", dir.display()))?)
            }
        };
        let semantic_dir = self.config.data_dir.join("semantic");
        if self.config.database_url.is_none() {
            std::fs::create_dir_all(&semantic_dir)
                .with_context(|| format!("cannot create {}", semantic_dir.display()))?;
        }
        let index = Arc::new(InstanceSearch::new(lexical, semantic_dir.join(format!("{namespace}.redb"))));
        if self.semantic_enabled(namespace)? {
            match self.embedding.model() {
                Ok(model) => index.enable(model)?,
                Err(error) => {
                    tracing::warn!(instance = namespace, "answering lexically: {error}");
                    index.want_semantic();
                }
            }
        }
        indexes.insert(namespace.to_string(), index.clone());
        Ok(index)
    }

    fn semantic_key(namespace: &str) -> String {
        format!("semantic/{namespace}")
    }

    /// Whether semantic retrieval is on for an instance (off unless an operator turned it on).
    pub fn semantic_enabled(&self, namespace: &str) -> Result<bool> {
        Ok(self.store.meta().get(&Self::semantic_key(namespace)).map_err(|e| anyhow!("{e}"))?.is_some())
    }

    /// Turns semantic retrieval on or off for an instance. On needs the embedding model
    /// and queues every page of the instance for embedding; off deletes the page vectors.
    pub fn set_semantic(&self, namespace: &str, on: bool) -> Result<()> {
        if on && self.config.database_url.is_some() {
            // Its vectors would live on this machine alone, beside a database many share.
            return Err(anyhow!(
                "semantic retrieval is not available on a PostgreSQL database in this version: answers stay lexical"
            ));
        }
        let index = self.index(namespace)?;
        if on {
            index.enable(self.embedding.model()?)?;
            self.store.meta().set(&Self::semantic_key(namespace), b"on").map_err(|e| anyhow!("{e}"))
        } else {
            self.store.meta().delete(&Self::semantic_key(namespace)).map_err(|e| anyhow!("{e}"))?;
            index.disable()
        }
    }

    /// The embedding model of this process.
    pub fn embedding_model(&self) -> &EmbeddingModelState {
        &self.embedding
    }

    /// Embeds with `embedder` instead of the `embedding_model` directory's model, for every
    /// instance opened after this call. For benchmarks that reuse vectors they computed
    /// before; a host serving users loads its model from the directory.
    pub fn use_embedder(&mut self, embedder: Arc<dyn connector_search::semantic::Embedder>) {
        self.embedding = EmbeddingModelState::Loaded(embedder);
    }

    /// Whether semantic retrieval is on for an instance, why it is not running (the model
    /// is unavailable), and the coverage of each of `memory_ids` while it runs.
    pub fn semantic_status(&self, namespace: &str, memory_ids: &[String]) -> Result<SemanticStatusView> {
        let enabled = self.semantic_enabled(namespace)?;
        let mut coverages = self.index(namespace)?.coverages();
        let memories = match &mut coverages {
            Some(coverages) => memory_ids
                .iter()
                .map(|memory| {
                    let c = coverages.remove(memory).unwrap_or_default();
                    MemoryCoverage { memory: memory.clone(), embedded: c.embedded, pages: c.pages }
                })
                .collect(),
            None => Vec::new(),
        };
        let error = if enabled { self.embedding.model().err().map(|e| e.to_string()) } else { None };
        Ok(SemanticStatusView { instance: namespace.to_string(), enabled, error, memories })
    }

    /// Fills in the semantic coverage of every memory of a status view, while semantic
    /// retrieval is on for the instance.
    pub fn add_semantic_views(&self, namespace: &str, view: &mut StatusView) -> Result<()> {
        let ids: Vec<String> = view.memories.iter().map(|m| m.id.clone()).collect();
        let status = self.semantic_status(namespace, &ids)?;
        if !status.enabled {
            return Ok(());
        }
        let mut coverages: HashMap<String, MemoryCoverage> =
            status.memories.into_iter().map(|c| (c.memory.clone(), c)).collect();
        for memory in &mut view.memories {
            let coverage = coverages.remove(&memory.id);
            memory.semantic = Some(SemanticView {
                embedded: coverage.as_ref().map_or(0, |c| c.embedded),
                pages: coverage.as_ref().map_or(0, |c| c.pages),
                error: status.error.clone(),
            });
        }
        Ok(())
    }

    /// Embeds one batch of an instance's pending pages (blocking: run it on a blocking
    /// thread). `None` while semantic retrieval is off for it or nothing is pending.
    pub fn embed_round(&self, namespace: &str) -> Result<Option<EmbedRound>> {
        match self.index(namespace)?.embed_pending() {
            None => Ok(None),
            Some(Ok(round)) if round.embedded == 0 => Ok(None),
            Some(Ok(round)) => Ok(Some(round)),
            Some(Err(error)) => Err(anyhow!("embedding pages of instance {namespace} failed: {error}")),
        }
    }

    fn grants_key(namespace: &str) -> String {
        format!("grants/{namespace}/origins")
    }

    /// Origins granted to an instance.
    pub fn granted_origins(&self, namespace: &str) -> Result<Vec<String>> {
        match self.store.meta().get(&Self::grants_key(namespace)).map_err(|e| anyhow!("{e}"))? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(Vec::new()),
        }
    }

    fn save_granted_origins(&self, namespace: &str, origins: &[String]) -> Result<()> {
        self.store.meta().set(&Self::grants_key(namespace), &serde_json::to_vec(origins)?).map_err(|e| anyhow!("{e}"))
    }

    async fn instantiate(&self, grants: Grants) -> Result<(Store<HostState>, Exports)> {
        let state = HostState {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.config.memory_limit)
                .instances(16)
                .tables(32)
                .table_elements(1 << 20)
                .build(),
            grants,
            budget: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(u64::MAX / 2);
        // Every tick the guest's code is running, this charges the call's CPU budget and
        // checks its wall clock (a spinning guest never yields to the async timeout). A
        // tick spent waiting on a host call costs at most one charge when the guest resumes.
        store.epoch_deadline_callback(|mut context| {
            let Some(budget) = context.data_mut().budget.as_mut() else {
                return Ok(UpdateDeadline::Continue(u64::MAX / 2));
            };
            budget.ticks_used += 1;
            if budget.ticks_used > budget.cpu_ticks {
                budget.exceeded = Some(Limit::Cpu);
            } else if budget.started.elapsed() > budget.wall_clock {
                budget.exceeded = Some(Limit::WallClock);
            } else {
                return Ok(UpdateDeadline::Continue(1));
            }
            Err(wasmtime::Trap::Interrupt.into())
        });
        let exports = match &self.pre {
            Pre::Current(pre) => pre.instantiate_async(&mut store).await.map(Exports::Current),
            Pre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(Exports::V0_1),
        };
        let exports = exports.map_err(|e| anyhow!("cannot instantiate the connector: {e}"))?;
        Ok((store, exports))
    }
}

/// Instance names are letters, digits, `-` and `_` (they name directories and keys).
pub fn valid_instance_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The engine configuration every host uses (epoch interruption for CPU limits). Compiled
/// components are cached per configuration, so tools that load from the same cache must
/// use this too.
pub fn new_engine() -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|e| anyhow!("{e}"))
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawn the epoch ticker");
}

fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    let e = |e: wasmtime::Error| anyhow!("{e}");
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(e)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(e)?;
    bindings::wasi::keyvalue::store::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    bindings::wasi::keyvalue::batch::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    bindings::knowledge::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    bindings::knowledge::connector::search::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    bindings::knowledge::connector::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    since_v0_1::knowledge::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    since_v0_1::knowledge::connector::search::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    since_v0_1::knowledge::connector::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(e)?;
    Ok(linker)
}

/// The component, ready to instantiate, in the contract version it speaks.
#[derive(Clone)]
enum Pre {
    /// `knowledge:connector@0.2.x`.
    Current(ConnectorPre<HostState>),
    /// `knowledge:connector@0.1.x`, upgraded on the way out.
    V0_1(since_v0_1::ConnectorPre<HostState>),
}

impl Pre {
    fn new(pre: wasmtime::component::InstancePre<HostState>) -> Result<Pre> {
        let current = match ConnectorPre::new(pre.clone()) {
            Ok(current) => return Ok(Pre::Current(current)),
            Err(error) => error,
        };
        match since_v0_1::ConnectorPre::new(pre) {
            Ok(legacy) => Ok(Pre::V0_1(legacy)),
            Err(_) => Err(anyhow!(
                "the component does not implement knowledge:connector/connector (0.2.x, nor 0.1.x): {current}"
            )),
        }
    }
}

/// A live instance's exports, in the contract version it speaks.
enum Exports {
    Current(Connector),
    V0_1(since_v0_1::Connector),
}

/// What the host's policy lets a `connect` reach beyond public https sites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// Grant `http` origins and origins on loopback addresses (tests and demos; the
    /// operator's `--allow-loopback`).
    pub allow_loopback: bool,
}

/// Loads a component, compiling it only when no cached compilation for this exact
/// component and engine exists. The cache holds only files this host wrote.
pub fn load_component(engine: &Engine, bytes: &[u8], cache_dir: &Path) -> Result<Component> {
    let digest = Sha256::digest(bytes);
    let mut compat = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let name = format!("{digest:.32x}-{:016x}.cwasm", compat.finish());
    let path = cache_dir.join(name);
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of a compatible engine
        // (the name carries the component hash and the engine's compatibility hash).
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => tracing::warn!("ignoring unusable compile cache {}: {error}", path.display()),
        }
    }
    let compiled = engine.precompile_component(bytes).map_err(|e| anyhow!("the component does not compile: {e}"))?;
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&temporary, &compiled).is_ok() {
            let _ = std::fs::rename(&temporary, &path);
        }
    }
    // SAFETY: `compiled` was just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| anyhow!("{e}"))
}

/// A running connector instance.
pub struct Instance {
    host: ConnectorHost,
    grants: Grants,
    store: Store<HostState>,
    exports: Exports,
}

/// Calls one export under the limits, recovering from traps and timeouts. The export is
/// called on the current contract's instance as written, and on a 0.1.x one with the
/// `legacy` arguments (the same unless given), its answer converted by the `legacy`
/// function (upgraded to the current types unless given).
macro_rules! guarded {
    ($self:ident, $call:ident ( $($arg:expr),* )) => {
        guarded!($self, $call($($arg),*), legacy($($arg),*) => |answer| answer.upgrade())
    };
    ($self:ident, $call:ident ( $($arg:expr),* ), legacy ( $($legacy:expr),* )) => {
        guarded!($self, $call($($arg),*), legacy($($legacy),*) => |answer| answer.upgrade())
    };
    ($self:ident, $call:ident ( $($arg:expr),* ), legacy ( $($legacy:expr),* ) => $convert:expr) => {{
        let config = &$self.host.config;
        $self.store.data_mut().budget = Some(CallBudget {
            started: std::time::Instant::now(),
            wall_clock: config.call_timeout,
            cpu_ticks: (config.cpu_limit.as_millis() / TICK.as_millis()).max(1) as u64,
            ticks_used: 0,
            exceeded: None,
        });
        $self.store.set_epoch_deadline(1);
        let store = &mut $self.store;
        let call = async {
            match &$self.exports {
                Exports::Current(connector) => {
                    connector.knowledge_connector_knowledge_connector().$call(&mut *store, $($arg),*).await
                }
                Exports::V0_1(connector) => connector
                    .knowledge_connector_knowledge_connector()
                    .$call(&mut *store, $($legacy),*)
                    .await
                    .map($convert),
            }
        };
        let outcome = tokio::time::timeout(config.call_timeout, call).await;
        $self.store.set_epoch_deadline(u64::MAX / 2);
        $self.settle(outcome, stringify!($call)).await
    }};
}

impl Instance {
    async fn settle<T>(
        &mut self,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        call: &str,
    ) -> Result<T> {
        let exceeded = self.store.data_mut().budget.take().and_then(|budget| budget.exceeded);
        let failure = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(trap)) => {
                let detail = match (trap.downcast_ref::<wasmtime::Trap>(), exceeded) {
                    (Some(wasmtime::Trap::Interrupt), Some(Limit::WallClock)) => {
                        format!("it ran past the {:?} wall-clock limit", self.host.config.call_timeout)
                    }
                    (Some(wasmtime::Trap::Interrupt), _) => {
                        format!("it ran out of CPU time (limit {:?})", self.host.config.cpu_limit)
                    }
                    _ => format!("{trap:#}"),
                };
                anyhow!("the connector failed in {call} and was restarted: {detail}")
            }
            Err(_) => anyhow!(
                "the connector did not finish {call} within {:?} and was restarted",
                self.host.config.call_timeout
            ),
        };
        // Index writes of the interrupted call have no records behind them: drop them
        // before anything else can commit them.
        let failure = match self.grants.search.rollback() {
            Ok(()) => failure,
            Err(error) => anyhow!("{failure}; its uncommitted search writes could not be dropped either: {error}"),
        };
        let (store, exports) = self.host.instantiate(self.grants.clone()).await?;
        self.store = store;
        self.exports = exports;
        Err(failure)
    }

    /// Keeps other callers — in this process or other hosts on a shared database — from
    /// changing the instance while the guard lives ([`ConnectorHost::lock_instance`]), and
    /// takes up the grants another host may have changed since this instance's last call.
    async fn exclusive(&mut self) -> Result<Option<connector_store::Claim>> {
        let held = self.host.lock_instance(&self.grants.namespace).await?;
        if held.is_some() {
            self.grants.outbound.reset(self.host.granted_origins(&self.grants.namespace)?);
        }
        Ok(held)
    }

    /// The instance's namespace.
    pub fn namespace(&self) -> &str {
        &self.grants.namespace
    }

    /// Describes the connector.
    pub async fn describe(&mut self) -> Result<types::ConnectorInfo> {
        guarded!(self, call_describe())
    }

    /// Grants the origins the configuration needs, as far as the host's policy allows
    /// (an `http` or loopback origin only under `policy.allow_loopback`), then connects.
    /// Afterwards the instance keeps only the origins its connections use.
    pub async fn connect(
        &mut self,
        mut config: Vec<(String, String)>,
        policy: ConnectPolicy,
    ) -> Result<Result<types::Connection, types::ConnectorError>> {
        let _exclusive = self.exclusive().await?;
        if policy.allow_loopback && matches!(self.exports, Exports::V0_1(_)) {
            // 0.1.x connectors learnt the loopback policy from a field of their own.
            let info = self.describe().await?;
            let named = |(name, _): &(String, String)| name == LEGACY_LOOPBACK_FIELD;
            if info.config_fields.iter().any(|f| f.name == LEGACY_LOOPBACK_FIELD) && !config.iter().any(named) {
                config.push((LEGACY_LOOPBACK_FIELD.into(), "true".into()));
            }
        }
        let origins = match guarded!(self, call_required_origins(&config), legacy(&config) => |answer| {
            answer.map(since_v0_1::origins).map_err(|error| error.upgrade())
        })? {
            Ok(origins) => origins,
            Err(error) => return Ok(Err(error)),
        };
        let mut wanted = Vec::new();
        for origin in &origins {
            let canonical = canonical_origin(&origin.url)
                .ok_or_else(|| anyhow!("the connector asked for an invalid origin '{}'", origin.url))?;
            let insecure = origin.insecure || canonical.starts_with("http://");
            let loopback = is_loopback_origin(&canonical);
            let refused = ((insecure || loopback) && !(policy.allow_loopback && loopback))
                || !site_allowed(&self.host.config.allowed_sites, &canonical);
            if refused && origin.conditional {
                // Needed only in some cases: not granted, and the connector is told so if
                // it ever tries (the request is denied).
                tracing::info!(origin = %canonical, purpose = %origin.purpose, "not granting a conditional origin the host's policy refuses");
                continue;
            }
            if (insecure || loopback) && !(policy.allow_loopback && loopback) {
                let what = if insecure { "not an https site" } else { "on a loopback address" };
                return Ok(Err(types::ConnectorError::Denied(format!(
                    "{} ({}) is {what}: loopback http sites are only for tests and demos and need --allow-loopback",
                    origin.url, origin.purpose
                ))));
            }
            if !site_allowed(&self.host.config.allowed_sites, &canonical) {
                return Ok(Err(types::ConnectorError::Denied(format!(
                    "{} ({}) is not among the sites this service allows ({})",
                    origin.url,
                    origin.purpose,
                    self.host.config.allowed_sites.join(", ")
                ))));
            }
            wanted.push(canonical);
        }
        let namespace = self.grants.namespace.clone();
        let before = self.host.granted_origins(&namespace)?;
        for origin in &wanted {
            self.grants.outbound.allow(origin);
        }
        let outcome = guarded!(self, call_connect(&config));
        match &outcome {
            Ok(Ok(_)) if matches!(self.exports, Exports::Current(_)) => {
                let mut allowed = before;
                allowed.extend(wanted);
                self.narrow_grants(&allowed).await?
            }
            Ok(Ok(_)) => {
                // A 0.1.x connection does not say which origins it uses: keep all it asked for.
                let mut all = before;
                for origin in wanted {
                    if !all.contains(&origin) {
                        all.push(origin);
                    }
                }
                self.host.save_granted_origins(&namespace, &all)?;
            }
            // Nothing connected (an error, a trap or a timeout): the grants stay as they were.
            _ => self.grants.outbound.reset(before),
        }
        outcome
    }

    /// Grants the instance exactly the origins its connected accounts use, of those the
    /// host's policy `allowed` (a gateway asked for in case the token was scoped is dropped
    /// when it was classic; a connection never widens the grants by naming an origin).
    async fn narrow_grants(&mut self, allowed: &[String]) -> Result<()> {
        let mut used: Vec<String> = Vec::new();
        for connection in self.status().await?.connections.into_iter().filter(|c| c.connected) {
            for origin in connection.origins.iter().filter_map(|o| canonical_origin(o)) {
                if allowed.contains(&origin) && !used.contains(&origin) {
                    used.push(origin);
                }
            }
        }
        self.host.save_granted_origins(&self.grants.namespace, &used)?;
        self.grants.outbound.reset(used);
        Ok(())
    }

    /// Disconnects an account.
    pub async fn disconnect(
        &mut self,
        connection_id: &str,
    ) -> Result<Result<types::Connection, types::ConnectorError>> {
        let _exclusive = self.exclusive().await?;
        let outcome = guarded!(self, call_disconnect(connection_id));
        if let Ok(Ok(_)) = &outcome
            && matches!(self.exports, Exports::Current(_))
        {
            let granted = self.host.granted_origins(&self.grants.namespace)?;
            self.narrow_grants(&granted).await?;
        }
        outcome
    }

    /// Registers memories.
    pub async fn ingest(
        &mut self,
        connection_id: &str,
        sources: &[String],
    ) -> Result<Result<Vec<types::IngestOutcome>, types::ConnectorError>> {
        let _exclusive = self.exclusive().await?;
        guarded!(self, call_ingest(connection_id, sources))
    }

    /// Starts a sync.
    pub async fn sync(
        &mut self,
        memory_id: &str,
        allow_mass_delete: bool,
    ) -> Result<Result<types::Memory, types::ConnectorError>> {
        let _exclusive = self.exclusive().await?;
        let options = types::SyncOptions { allow_mass_delete };
        guarded!(self, call_sync(memory_id, options), legacy(memory_id, since_v0_1::sync_options(options)))
    }

    /// One step of work.
    pub async fn step(&mut self, memory_id: &str) -> Result<Result<types::StepReport, types::ConnectorError>> {
        let _exclusive = self.exclusive().await?;
        guarded!(self, call_step(memory_id))
    }

    /// Memories with unfinished work.
    pub async fn pending(&mut self) -> Result<Vec<String>> {
        guarded!(self, call_pending())?.map_err(|e| anyhow!("{}", crate::driver::describe_error(&e)))
    }

    /// Passages for a question, one per page (distinct sources).
    pub async fn retrieve(
        &mut self,
        question: &str,
        memory_ids: &[String],
        limit: u32,
    ) -> Result<Result<Vec<types::Passage>, types::ConnectorError>> {
        guarded!(self, call_retrieve(question, memory_ids, limit))
    }

    /// Passages for a question, at most `per_document` per page (0: raw passages), of
    /// documents with one of `labels` (any when empty).
    pub async fn retrieve_with(
        &mut self,
        question: &str,
        memory_ids: &[String],
        limit: u32,
        per_document: u32,
        labels: &[String],
    ) -> Result<Result<Vec<types::Passage>, types::ConnectorError>> {
        if !labels.is_empty() && matches!(self.exports, Exports::V0_1(_)) {
            return Ok(Err(types::ConnectorError::InvalidInput(
                "this connector (knowledge:connector 0.1) cannot filter by label".into(),
            )));
        }
        let options =
            types::RetrieveOptions { memory_ids: memory_ids.to_vec(), limit, per_document, labels: labels.to_vec() };
        guarded!(
            self,
            call_retrieve_with(question, &options),
            legacy(question, &since_v0_1::retrieve_options(&options))
        )
    }

    /// Connections and memories.
    pub async fn status(&mut self) -> Result<types::InstanceStatus> {
        guarded!(self, call_status())?.map_err(|e| anyhow!("{}", crate::driver::describe_error(&e)))
    }

    /// Every committed passage of the instance, in a stable order (host side; the guest
    /// is not involved).
    pub fn export(&self) -> Result<Vec<connector_search::Hit>> {
        self.grants.search.export().map_err(|e| anyhow!("cannot read the search index: {e}"))
    }

    /// The committed passages of one document of a memory, in order (host side).
    pub fn document(&self, memory_id: &str, document_id: &str) -> Result<Vec<connector_search::Hit>> {
        self.grants.search.document(memory_id, document_id).map_err(|e| anyhow!("cannot read the search index: {e}"))
    }

    /// The host's store (schedules and grants live in its private metadata).
    pub fn host(&self) -> &ConnectorHost {
        &self.host
    }
}
