//! `connector-bench`: measures the Confluence connector end to end and prints a table
//! (and writes the same numbers as JSON).
//!
//! Sections (all against the fake Confluence on loopback):
//!
//! - **ingest**: generated spaces (1,000 and 10,000 pages; `--quick`: 200 and 1,000) at
//!   0 ms and 100 ms of added per-request latency. Each ingest runs in a fresh child
//!   process (this binary, `child` subcommand, running the host library exactly like
//!   `connector-host ingest`) so that its peak RSS (`VmHWM`) is the host's alone; the fake
//!   runs in the parent and counts the HTTP requests.
//! - **sync**: the largest space unchanged, then with 1% of its pages edited.
//! - **retrieve**: p50/p99 latency of `retrieve` through the component over 1,000 queries
//!   against an index of about 100,000 chunks (`--quick`: 10,000).
//! - **cold start**: first load (compile) and cached load of the component, per-call
//!   instantiation.
//! - **convert**: native storage-format conversion throughput (the wasm side is not
//!   measurable without a conversion-only export; reported as such).
//! - **quality** (`--datasets DIR`): every BEIR dataset in DIR (e.g. SciFact, ArguAna)
//!   through the fake and the full pipeline, nDCG@10 of `retrieve` with limit 10 and
//!   Recall@100 with limit 100, next to published BM25 figures and `bm25s` on the same files;
//!   with `--embedding-model`, the hybrid rows too.
//! - **scale** (`--datasets DIR --embedding-model DIR`): `retrieve` timed lexical and fused
//!   over every dataset's pages in one instance (page vectors from `tune`'s cache).
//! - **serve**: `ask` through the service's HTTP API from 50 concurrent clients while a
//!   10,000-page ingest (`--quick`: 1,000) runs in another tenant of the same service.
//! - **peers** (`--peers`): LangChain's `ConfluenceLoader` and LlamaIndex's
//!   `ConfluenceReader` against the same fake (legacy v1 mode), space and latency.

mod beir;
mod convert;
mod embedding_cache;
mod hosts;
mod metrics;
mod peers;
mod service;
mod soak;
mod tune;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use connector_host::bindings::types::Memory;
use connector_host::profile::Totals;
use connector_host::runtime::{ConnectPolicy, ConnectorHost, HostConfig, Instance};
use fake_confluence::{FakeConfluence, TokenKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The benchmark user's e-mail on the fake site.
pub const EMAIL: &str = "bench@example.com";
/// The benchmark user's classic API token on the fake site.
pub const TOKEN: &str = "bench-token";
/// Key of generated benchmark spaces.
pub const SPACE: &str = "BENCH";

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "connector-bench", about = "Benchmarks of the Confluence connector")]
struct Cli {
    /// Small sizes (200/1,000 pages, 10,000 chunks, 200 queries): a run of a minute or two.
    #[arg(long)]
    quick: bool,
    /// BEIR datasets (a directory of dataset directories, or one dataset directory, each
    /// with corpus.jsonl, queries.jsonl, qrels/test.tsv): measure retrieval quality.
    #[arg(long, alias = "scifact")]
    datasets: Option<PathBuf>,
    /// With --datasets: also score every dataset with semantic retrieval on, using this
    /// sentence-embedding model directory (`tools/embedding-model/install.py` installs one).
    #[arg(long)]
    embedding_model: Option<PathBuf>,
    /// Also run LangChain and LlamaIndex against the same fake (needs --python).
    #[arg(long)]
    peers: bool,
    /// Python interpreter with langchain-community, atlassian-python-api and
    /// llama-index-readers-confluence (for --peers) or bm25s and PyStemmer (for
    /// --datasets) installed (bench/run.sh makes one).
    #[arg(long, default_value = "target/bench-venv/bin/python")]
    python: PathBuf,
    /// Directory of the peer scripts.
    #[arg(long, default_value = "bench/peers")]
    peers_dir: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench-results.json")]
    out: PathBuf,
    /// Run only these sections (comma separated: ingest,sync,retrieve,coldstart,convert,serve,quality,scale,peers,hosts;
    /// hosts needs --postgres).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Scratch directory for data directories (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Run the hosts on PostgreSQL: a server started for the run (as the tests start one),
    /// a fresh database per data directory.
    #[arg(long)]
    postgres: bool,
    #[command(subcommand)]
    child: Option<ChildCommand>,
}

/// Subcommands besides the benchmark itself.
#[derive(Subcommand, Debug)]
enum ChildCommand {
    /// Runs one ingest or sync with the host library and prints a JSON report.
    #[command(hide = true)]
    Child {
        /// Host data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Compile cache directory (shared between children).
        #[arg(long)]
        cache_dir: PathBuf,
        /// Site origin (ingest).
        #[arg(long)]
        origin: Option<String>,
        /// Space key (ingest).
        #[arg(long)]
        space: Option<String>,
        /// Memory id (sync).
        #[arg(long)]
        memory: Option<String>,
    },
    /// A bounded soak of `connector-host serve` (a child process): three tenants, 20 asking
    /// clients, edits and syncs, Auto Resync every minute, 5% Confluence faults.
    Soak {
        /// How long the mixed load runs.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Diagnostics: retrieval quality of analyzer and ranking variants on BEIR datasets,
    /// natively (not through the component).
    #[command(alias = "tune-scifact")]
    Tune {
        /// BEIR dataset directories, or directories of them.
        #[arg(required = true)]
        datasets: Vec<PathBuf>,
        /// Score fusion variants of semantic retrieval with this embedding model directory
        /// instead of the lexical variants (page vectors are cached in
        /// `target/bench-cache/`, so only the first run embeds).
        #[arg(long)]
        embedding_model: Option<PathBuf>,
    },
}

/// What a child process reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// Wall time of the ingest (or sync) call plus the step loop, in seconds.
    pub seconds: f64,
    /// The memory id.
    pub memory_id: String,
    /// Documents (pages and blog posts) in the memory afterwards.
    pub documents: u32,
    /// Chunks in the memory afterwards.
    pub chunks: u32,
    /// HTTP requests of the run as counted by the connector.
    pub connector_requests: u32,
    /// Bodies fetched in the run.
    pub fetched: u32,
    /// Documents updated in the run.
    pub updated: u32,
    /// Peak resident set size of the child process (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Where the wall time went.
    pub split: TimeSplit,
}

/// Where a run's wall time went, in seconds, from the host's call profile.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TimeSplit {
    /// At least one HTTP request waiting for its response.
    pub http_wait: f64,
    /// Search index writes and commits.
    pub index_write: f64,
    /// Key-value storage.
    pub storage: f64,
    /// Wall time outside index writes and key-value calls: the connector's own work in
    /// the component (parsing, conversion, chunking) plus HTTP waits it could not hide
    /// behind that work.
    pub guest_and_waits: f64,
}

impl TimeSplit {
    fn between(before: Totals, after: Totals, seconds: f64) -> TimeSplit {
        let http_wait = (after.http_wait - before.http_wait).as_secs_f64();
        let index_write = (after.index_write - before.index_write).as_secs_f64();
        let storage = (after.storage - before.storage).as_secs_f64();
        TimeSplit { http_wait, index_write, storage, guest_and_waits: (seconds - index_write - storage).max(0.0) }
    }
}

fn main() -> Result<()> {
    // As connector-host runs: SAFETY: first thing in main, no other thread exists yet.
    unsafe { connector_embed::single_threaded_products() };
    let cli = Cli::parse();
    if let Some(ChildCommand::Child { data_dir, cache_dir, origin, space, memory }) = &cli.child {
        let rt = runtime()?;
        let report = rt.block_on(child(data_dir, cache_dir, origin.as_deref(), space.as_deref(), memory.as_deref()))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    if let Some(ChildCommand::Tune { datasets, embedding_model }) = &cli.child {
        let mut all = Vec::new();
        for root in datasets {
            all.extend(beir::datasets_in(root)?);
        }
        return match embedding_model {
            Some(model) => tune::run_semantic(&all, model),
            None => tune::run(&all),
        };
    }
    if let Some(ChildCommand::Soak { minutes }) = &cli.child {
        let work = tempfile::Builder::new().prefix("connector-soak").tempdir()?;
        let cache = work.path().join("compile-cache");
        let value = runtime()?.block_on(soak::run(work.path(), &cache, *minutes))?;
        std::fs::write(&cli.out, serde_json::to_string_pretty(&value)?)?;
        println!("\nresults written to {}", cli.out.display());
        return Ok(());
    }
    run(cli)
}

/// A multi-thread tokio runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Resident set (VmRSS) of this process in KiB, from /proc/self/status (0 where unavailable).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS (VmHWM) of this process in KiB, from /proc/self/status (0 where unavailable).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a host on `data_dir` with a shared compile cache.
pub fn open_host(data_dir: &Path, cache_dir: &Path) -> Result<ConnectorHost> {
    open_host_with(data_dir, cache_dir, None)
}

/// [`open_host`] with an embedding model for semantic retrieval.
pub fn open_host_with(data_dir: &Path, cache_dir: &Path, embedding_model: Option<&Path>) -> Result<ConnectorHost> {
    let mut config = HostConfig::new(data_dir);
    config.cache_dir = Some(cache_dir.to_path_buf());
    config.embedding_model = embedding_model.map(Path::to_path_buf);
    config.database_url = std::fs::read_to_string(data_dir.join(DATABASE_FILE)).ok();
    ConnectorHost::open(config)
}

/// A data directory's PostgreSQL database, when the run uses one (`--postgres`).
const DATABASE_FILE: &str = "database-url";

/// With `--postgres`, vacuums a data directory's database: what autovacuum does within a
/// minute of an ingest on a live database (the visibility map that lets index-only scans
/// skip the table), before latencies are measured.
pub fn settle_database(data_dir: &Path) -> Result<()> {
    let Ok(url) = std::fs::read_to_string(data_dir.join(DATABASE_FILE)) else { return Ok(()) };
    let started = Instant::now();
    // On a thread of its own: the blocking client cannot run on the runtime's threads.
    std::thread::spawn(move || -> Result<()> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        client.batch_execute("VACUUM (ANALYZE)")?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("the vacuum thread panicked"))??;
    eprintln!("[postgres] vacuumed the database in {:.1?}", started.elapsed());
    Ok(())
}

/// The run's PostgreSQL server (`--postgres`), stopped at the end of the run.
static POSTGRES: std::sync::Mutex<Option<pg_server::PgServer>> = std::sync::Mutex::new(None);

/// Prepares a data directory: with `--postgres`, a fresh database that its hosts use.
pub fn prepare_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(server) = POSTGRES.lock().expect("postgres lock").as_ref() {
        let url = server.database().map_err(|e| anyhow!("{e}"))?;
        std::fs::write(dir.join(DATABASE_FILE), url)?;
    }
    Ok(())
}

/// Connects `instance` to the fake at `origin` with the benchmark user; returns the connection id.
pub async fn connect(instance: &mut Instance, origin: &str) -> Result<String> {
    let connection = instance
        .connect(
            vec![("site".into(), origin.to_string()), ("email".into(), EMAIL.into()), ("token".into(), TOKEN.into())],
            ConnectPolicy { allow_loopback: true },
        )
        .await?
        .map_err(|e| anyhow!("connect failed: {}", connector_host::driver::describe_error(&e)))?;
    Ok(connection.id)
}

/// Registers an ingest of `space` and steps it to the end; returns the final memory.
pub async fn ingest(instance: &mut Instance, connection: &str, space: &str) -> Result<Memory> {
    let outcomes = instance
        .ingest(connection, &[space.to_string()])
        .await?
        .map_err(|e| anyhow!("ingest failed: {}", connector_host::driver::describe_error(&e)))?;
    let memory = outcomes
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no ingest outcome"))?
        .outcome
        .map_err(|e| anyhow!("ingest rejected: {}", connector_host::driver::describe_error(&e)))?;
    settle(instance, &memory.id).await
}

async fn settle(instance: &mut Instance, memory_id: &str) -> Result<Memory> {
    let done = connector_host::driver::drive(instance, &[memory_id.to_string()], |_| {}).await?;
    let memory = done.into_iter().next().ok_or_else(|| anyhow!("memory {memory_id} did not finish"))?;
    if let Some(error) = &memory.error {
        bail!("memory {} ended in error: {error}", memory.id);
    }
    Ok(memory)
}

async fn child(
    data_dir: &Path,
    cache_dir: &Path,
    origin: Option<&str>,
    space: Option<&str>,
    memory: Option<&str>,
) -> Result<ChildReport> {
    let host = open_host(data_dir, cache_dir)?;
    let mut instance = host.instance("bench").await?;
    let mut before = host.profile();
    let (seconds, memory) = match (origin, space, memory) {
        (Some(origin), Some(space), None) => {
            let connection = connect(&mut instance, origin).await?;
            before = host.profile();
            let started = Instant::now();
            let memory = ingest(&mut instance, &connection, space).await?;
            (started.elapsed().as_secs_f64(), memory)
        }
        (None, None, Some(memory_id)) => {
            let started = Instant::now();
            instance
                .sync(memory_id, false)
                .await?
                .map_err(|e| anyhow!("sync failed: {}", connector_host::driver::describe_error(&e)))?;
            let memory = settle(&mut instance, memory_id).await?;
            (started.elapsed().as_secs_f64(), memory)
        }
        _ => bail!("child wants --origin and --space (ingest) or --memory (sync)"),
    };
    Ok(ChildReport {
        seconds,
        memory_id: memory.id.clone(),
        documents: memory.documents,
        chunks: memory.chunks,
        connector_requests: memory.progress.requests,
        fetched: memory.progress.fetched,
        updated: memory.progress.updated,
        peak_rss_kib: peak_rss_kib(),
        split: TimeSplit::between(before, host.profile(), seconds),
    })
}

/// Runs this binary's `child` subcommand and parses its report.
fn run_child(data_dir: &Path, cache_dir: &Path, args: &[&str]) -> Result<ChildReport> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .arg("child")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(args)
        .output()
        .context("cannot start the child process")?;
    if !output.status.success() {
        bail!("child failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().ok_or_else(|| anyhow!("child printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("unreadable child report {line:?}"))
}

/// Pages per footer comment in generated spaces (a fourth of those comments get a reply).
pub const PAGES_PER_COMMENT: usize = 5;
/// Pages per attached file (Markdown or CSV) in generated spaces.
pub const PAGES_PER_ATTACHMENT: usize = 20;
/// Pages per labelled page in generated spaces.
pub const PAGES_PER_LABEL: usize = 10;

/// Starts a fake with the benchmark user and a generated space of `pages` pages, with
/// comments on every [`PAGES_PER_COMMENT`]-th page, a file on every
/// [`PAGES_PER_ATTACHMENT`]-th and labels on every [`PAGES_PER_LABEL`]-th.
pub fn fake_with_space(pages: usize) -> Result<FakeConfluence> {
    let site = FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    fake_confluence::generate_space(&site, SPACE, pages, 1);
    fake_confluence::generate_comments(&site, SPACE, PAGES_PER_COMMENT, 1);
    fake_confluence::generate_attachments(&site, SPACE, PAGES_PER_ATTACHMENT, 1);
    fake_confluence::generate_labels(&site, SPACE, PAGES_PER_LABEL);
    Ok(site)
}

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Generated space sizes (pages, including the homepage).
    pub spaces: Vec<usize>,
    /// Added per-request latencies, in ms.
    pub latencies: Vec<u64>,
    /// Chunks wanted in the retrieval index.
    pub retrieve_chunks: u32,
    /// Retrieval queries timed.
    pub queries: usize,
    /// Space size for the Python peers.
    pub peer_pages: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                spaces: vec![200, 1_000],
                latencies: vec![0, 100],
                retrieve_chunks: 10_000,
                queries: 200,
                peer_pages: 200,
            }
        } else {
            Sizes {
                spaces: vec![1_000, 10_000],
                latencies: vec![0, 100],
                retrieve_chunks: 100_000,
                queries: 1_000,
                peer_pages: 1_000,
            }
        }
    }
}

/// One ingest measurement.
#[derive(Debug, Clone, Serialize)]
pub struct IngestRow {
    /// Pages generated (including the homepage; plus pages/50 blog posts).
    pub pages: usize,
    /// Added latency per request, ms.
    pub latency_ms: u64,
    /// Documents ingested (pages and blog posts).
    pub documents: u32,
    /// Chunks indexed.
    pub chunks: u32,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Documents per second.
    pub docs_per_second: f64,
    /// HTTP requests served by the fake.
    pub http_requests: usize,
    /// Peak RSS of the host process, MiB.
    pub peak_rss_mib: f64,
    /// Where the wall time went.
    pub split: TimeSplit,
}

/// One sync measurement.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    /// Pages in the space.
    pub pages: usize,
    /// Added latency per request, ms.
    pub latency_ms: u64,
    /// What changed: `unchanged` or `1% edited`.
    pub change: String,
    /// Pages edited before the sync.
    pub edited: usize,
    /// Documents re-indexed by the sync.
    pub updated: u32,
    /// Wall time, seconds.
    pub seconds: f64,
    /// HTTP requests served by the fake.
    pub http_requests: usize,
    /// Peak RSS of the host process, MiB.
    pub peak_rss_mib: f64,
}

struct Bench {
    cli: Cli,
    sizes: Sizes,
    work: PathBuf,
    cache: PathBuf,
    results: serde_json::Map<String, Value>,
    /// Data directory of the largest 0 ms ingest (reused by the retrieval benchmark).
    largest: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl Bench {
    fn wants(&self, section: &str) -> bool {
        if self.cli.only.is_empty() {
            match section {
                "quality" => self.cli.datasets.is_some(),
                "scale" => self.cli.datasets.is_some() && self.cli.embedding_model.is_some(),
                "peers" => self.cli.peers,
                "hosts" => self.cli.postgres,
                _ => true,
            }
        } else {
            self.cli.only.iter().any(|s| s == section)
        }
    }

    fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        prepare_data_dir(&dir)?;
        Ok(dir)
    }

    fn ingest_and_sync(&mut self) -> Result<()> {
        let do_sync = self.wants("sync");
        let mut ingest_rows = Vec::new();
        let mut sync_rows = Vec::new();
        let largest = *self.sizes.spaces.iter().max().unwrap_or(&0);
        for &pages in &self.sizes.spaces.clone() {
            let started = Instant::now();
            let site = fake_with_space(pages)?;
            eprintln!("[ingest] generated {pages} pages in {:.1?}", started.elapsed());
            let mut dirs = Vec::new();
            for &latency in &self.sizes.latencies.clone() {
                site.set_latency(Duration::from_millis(latency));
                let dir = self.fresh_dir(&format!("ingest-{pages}-{latency}ms"))?;
                site.reset_requests();
                let origin = site.origin();
                let report = run_child(&dir, &self.cache, &["--origin", &origin, "--space", SPACE])?;
                let row = IngestRow {
                    pages,
                    latency_ms: latency,
                    documents: report.documents,
                    chunks: report.chunks,
                    seconds: report.seconds,
                    docs_per_second: f64::from(report.documents) / report.seconds,
                    http_requests: site.requests().len(),
                    peak_rss_mib: report.peak_rss_kib as f64 / 1024.0,
                    split: report.split,
                };
                eprintln!("[ingest] {row:?}");
                ingest_rows.push(row);
                if do_sync && pages == largest {
                    site.reset_requests();
                    let report = run_child(&dir, &self.cache, &["--memory", &report.memory_id])?;
                    let row = SyncRow {
                        pages,
                        latency_ms: latency,
                        change: "unchanged".into(),
                        edited: 0,
                        updated: report.updated,
                        seconds: report.seconds,
                        http_requests: site.requests().len(),
                        peak_rss_mib: report.peak_rss_kib as f64 / 1024.0,
                    };
                    eprintln!("[sync] {row:?}");
                    sync_rows.push(row);
                }
                dirs.push((latency, dir, report.memory_id));
            }
            if pages == largest {
                if do_sync {
                    let edited = fake_confluence::edit_fraction(&site, SPACE, 0.01, 7);
                    for (latency, dir, memory) in &dirs {
                        site.set_latency(Duration::from_millis(*latency));
                        site.reset_requests();
                        let report = run_child(dir, &self.cache, &["--memory", memory])?;
                        let row = SyncRow {
                            pages,
                            latency_ms: *latency,
                            change: "1% edited".into(),
                            edited,
                            updated: report.updated,
                            seconds: report.seconds,
                            http_requests: site.requests().len(),
                            peak_rss_mib: report.peak_rss_kib as f64 / 1024.0,
                        };
                        eprintln!("[sync] {row:?}");
                        sync_rows.push(row);
                    }
                }
                self.largest = dirs.iter().find(|(l, _, _)| *l == 0).map(|(_, d, _)| d.clone());
            }
        }
        print_ingest(&ingest_rows);
        self.results.insert("ingest".into(), serde_json::to_value(&ingest_rows)?);
        if do_sync {
            print_sync(&sync_rows);
            self.results.insert("sync".into(), serde_json::to_value(&sync_rows)?);
        }
        Ok(())
    }
}

fn print_ingest(rows: &[IngestRow]) {
    println!("\n## Ingest (host in a fresh child process; fake Confluence on loopback)\n");
    println!("| pages | latency | documents | chunks | wall time | docs/s | HTTP requests | peak RSS |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} ms | {} | {} | {:.2} s | {:.0} | {} | {:.0} MiB |",
            r.pages, r.latency_ms, r.documents, r.chunks, r.seconds, r.docs_per_second, r.http_requests, r.peak_rss_mib
        );
    }
    println!("\nWhere the ingest time goes (host call profile; requests in flight overlap the connector's work):\n");
    println!(
        "| pages | latency | wall time | HTTP in flight | index writes | key-value | guest work + unhidden waits |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let s = r.split;
        println!(
            "| {} | {} ms | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            r.pages, r.latency_ms, r.seconds, s.http_wait, s.index_write, s.storage, s.guest_and_waits
        );
    }
}

fn print_sync(rows: &[SyncRow]) {
    println!("\n## Sync\n");
    println!("| pages | latency | change | re-indexed | wall time | HTTP requests | peak RSS |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} ms | {} | {} | {:.2} s | {} | {:.0} MiB |",
            r.pages, r.latency_ms, r.change, r.updated, r.seconds, r.http_requests, r.peak_rss_mib
        );
    }
}

fn run(cli: Cli) -> Result<()> {
    let sizes = Sizes::new(cli.quick);
    let (work, temp) = match &cli.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new().prefix("connector-bench").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let cache = work.join("compile-cache");
    std::fs::create_dir_all(&cache)?;
    if cli.postgres {
        let server = pg_server::PgServer::start().map_err(|e| anyhow!("--postgres: {e}"))?;
        eprintln!("[postgres] server on port {}", server.port());
        *POSTGRES.lock().expect("postgres lock") = Some(server);
        // The key every host of the run (children too) reads, made as a host makes its own.
        let key_file = work.join("operator.key");
        let _ = std::fs::remove_file(&key_file); // a reused work directory's, from another run
        connector_store::OperatorKey::generate().save_new(&key_file)?;
        let key = std::fs::read_to_string(&key_file)?;
        // SAFETY: no other thread exists yet: the runtime starts below.
        unsafe { std::env::set_var(connector_host::runtime::OPERATOR_KEY_VAR, key.trim()) };
    }
    let mut bench = Bench { cli, sizes, work, cache, results: serde_json::Map::new(), largest: None, _temp: temp };
    bench.results.insert(
        "machine".into(),
        json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "cpu_model": cpu_model(),
            "os": std::env::consts::OS,
            "quick": bench.cli.quick,
        }),
    );
    let rt = runtime()?;

    if bench.wants("coldstart") {
        let value = rt.block_on(metrics::cold_start(&bench.work))?;
        bench.results.insert("cold_start".into(), value);
    }
    if bench.wants("convert") {
        let value = metrics::convert_throughput();
        bench.results.insert("convert".into(), value);
    }
    if bench.wants("ingest") || bench.wants("sync") {
        bench.ingest_and_sync()?;
    }
    if bench.wants("retrieve") {
        let dir = match &bench.largest {
            Some(dir) => dir.clone(),
            None => bench.fresh_dir("retrieve")?,
        };
        let value = rt.block_on(metrics::retrieve_latency(
            &dir,
            &bench.cache,
            bench.sizes.retrieve_chunks,
            bench.sizes.queries,
        ))?;
        bench.results.insert("retrieve".into(), value);
    }
    if bench.wants("serve") {
        let pages = if bench.cli.quick { 1_000 } else { 10_000 };
        let value = rt.block_on(service::ask_under_ingest(&bench.work, &bench.cache, pages))?;
        bench.results.insert("serve".into(), value);
    }
    if bench.wants("quality") {
        match bench.cli.datasets.clone() {
            Some(root) => {
                let dir = bench.fresh_dir("quality")?;
                let python = bench.cli.python.exists().then_some(bench.cli.python.as_path());
                if python.is_none() {
                    eprintln!("[quality] bm25s not run: no {} (bench/run.sh makes it)", bench.cli.python.display());
                }
                let model = bench.cli.embedding_model.as_deref();
                if model.is_none() {
                    eprintln!("[quality] hybrid rows not run: no --embedding-model DIR");
                }
                let value = rt.block_on(beir::run_all(&root, &dir, &bench.cache, python, model))?;
                bench.results.insert("quality".into(), value);
            }
            None => eprintln!("[quality] skipped: no --datasets DIR"),
        }
    }
    if bench.wants("scale")
        && let (Some(root), Some(model)) = (bench.cli.datasets.clone(), bench.cli.embedding_model.clone())
    {
        let dir = bench.fresh_dir("scale")?;
        let value = rt.block_on(beir::fused_latency_at_scale(&root, &dir, &bench.cache, &model))?;
        bench.results.insert("scale".into(), value);
    }
    if bench.wants("hosts") {
        match bench.cli.postgres {
            true => {
                let value =
                    rt.block_on(hosts::one_host_against_two(&bench.work, &bench.cache, &bench.sizes.latencies))?;
                bench.results.insert("hosts".into(), value);
            }
            false => eprintln!("[hosts] skipped: several hosts share a PostgreSQL database (--postgres)"),
        }
    }
    if bench.wants("peers") {
        let value = peers::run(
            &bench.cli.python,
            &bench.cli.peers_dir,
            bench.sizes.peer_pages,
            &bench.sizes.latencies,
            &bench.work,
            &bench.cache,
        )?;
        bench.results.insert("peers".into(), value);
    }

    if bench.cli.postgres {
        bench.results.insert("postgres".into(), json!(true));
    }
    POSTGRES.lock().expect("postgres lock").take();
    if let Some(parent) = bench.cli.out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&bench.cli.out, serde_json::to_string_pretty(&Value::Object(bench.results.clone()))?)
        .with_context(|| format!("cannot write {}", bench.cli.out.display()))?;
    println!("\nresults written to {}", bench.cli.out.display());
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// Runs a child ingest of `space` at `origin` into a fresh data directory (used by peers).
pub fn child_ingest(data_dir: &Path, cache_dir: &Path, origin: &str, space: &str) -> Result<ChildReport> {
    run_child(data_dir, cache_dir, &["--origin", origin, "--space", space])
}
