//! `connector-host`: run the Confluence knowledge connector from the command line.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use connector_host::bindings::types::{Connection, ConnectorError, IngestOutcome, Memory, MemoryStatus, Passage};
use connector_host::driver::{describe_error, drive, error_kind};
use connector_host::runtime::{ConnectorHost, HostConfig, Instance};
use connector_host::schedule::{Schedule, now, parse_interval};

#[derive(Parser)]
#[command(
    name = "connector-host",
    version,
    about = "Run the Confluence knowledge connector (a WebAssembly component) on embedded storage and search"
)]
struct Cli {
    /// Where connections, memories, the search index and the operator key live.
    #[arg(long, global = true, env = "CONNECTOR_HOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Connector instance (tenant) to act on; each has its own storage, search and grants.
    #[arg(long, global = true, default_value = "default")]
    instance: String,
    /// Run this component instead of the bundled Confluence connector.
    #[arg(long, global = true)]
    component: Option<PathBuf>,
    /// Where compiled components are cached (default: <data-dir>/cache).
    #[arg(long, global = true, env = "CONNECTOR_HOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the bundled sample Confluence site on loopback, ingest its space and answer a question.
    Demo {
        /// The question to ask.
        #[arg(long, default_value = "How do I rotate the API key?")]
        question: String,
    },
    /// Connect a Confluence Cloud account (site URL, e-mail, API token); prints the connection id.
    Connect {
        /// Site URL, e.g. https://your-company.atlassian.net (page URLs and the gateway form work too).
        #[arg(long)]
        site: String,
        /// Atlassian account e-mail.
        #[arg(long)]
        email: String,
        /// Name of the environment variable holding the API token.
        #[arg(long, conflicts_with = "token_stdin", required_unless_present = "token_stdin")]
        token_env: Option<String>,
        /// Read the API token from standard input.
        #[arg(long)]
        token_stdin: bool,
        /// Accept an http:// site on a loopback address (tests and the demo only).
        #[arg(long)]
        allow_loopback: bool,
        /// Origin of the Atlassian API gateway (default https://api.atlassian.com).
        #[arg(long)]
        gateway: Option<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Forget a connection's token; its memories stay searchable.
    Disconnect {
        /// Connection id (see `status`).
        connection_id: String,
    },
    /// Ingest Confluence spaces as memories and wait until each settles.
    Ingest {
        /// Connection id (see `status`).
        #[arg(long)]
        connection: String,
        /// Space keys, comma-separated, e.g. "SD, TD".
        #[arg(long)]
        spaces: String,
        /// Register the memories and return without waiting.
        #[arg(long)]
        no_wait: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Bring a memory up to date with its space and wait until it settles.
    Sync {
        /// Memory id (see `status`).
        memory_id: String,
        /// Apply deletions even if they remove most of the memory.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Continue every unfinished ingest or sync (after a crash or a --no-wait).
    Resume {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Turn Auto Resync of a memory on (with an interval) or off; `serve` runs the schedules.
    AutoResync {
        /// Memory id (see `status`).
        memory_id: String,
        /// Interval, e.g. 15m, 1h, 1d.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        every: Option<String>,
        /// Turn Auto Resync off.
        #[arg(long)]
        off: bool,
    },
    /// Run continuously: finish interrupted work, then run Auto Resync schedules (one sync at a time).
    Serve {
        /// Stop after this long (e.g. 30s); default: run until stopped.
        #[arg(long)]
        run_for: Option<String>,
    },
    /// Print every indexed passage as JSON lines (for audits and exact comparisons).
    Export,
    /// Show connections and memories.
    Status {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Ask a question; prints the best passages with citations.
    Ask {
        /// The question.
        question: String,
        /// How many passages.
        #[arg(long, default_value_t = 5)]
        limit: u32,
        /// Only these memories (default: all).
        #[arg(long = "memory")]
        memories: Vec<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONNECTOR_HOST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("connector-host")
}

fn open_host(cli: &Cli, data_dir: PathBuf) -> Result<ConnectorHost> {
    let mut config = HostConfig::new(data_dir);
    config.component = cli.component.clone();
    config.cache_dir = cli.cache_dir.clone();
    ConnectorHost::open(config)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Demo { question } = &cli.command {
        return demo(&cli, question).await;
    }
    let host = open_host(&cli, cli.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let mut instance = host.instance(&cli.instance).await?;
    match &cli.command {
        Command::Demo { .. } => unreachable!("handled above"),
        Command::Connect { site, email, token_env, token_stdin, allow_loopback, gateway, json } => {
            let token = read_token(token_env.as_deref(), *token_stdin)?;
            let mut config = vec![
                ("site".to_string(), site.clone()),
                ("email".to_string(), email.clone()),
                ("token".to_string(), token),
            ];
            if *allow_loopback {
                config.push(("allow-loopback".into(), "true".into()));
            }
            if let Some(gateway) = gateway {
                config.push(("gateway".into(), gateway.clone()));
            }
            let connection = instance.connect(config).await?.map_err(fail)?;
            if *json {
                println!("{}", connection_json(&connection));
            } else {
                println!("{}", connection.id);
                eprintln!("connected {} on {} ({})", connection.account, connection.site, connection.access);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Disconnect { connection_id } => {
            let connection = instance.disconnect(connection_id).await?.map_err(fail)?;
            println!(
                "disconnected {} ({} on {}); its memories stay searchable",
                connection.id, connection.account, connection.site
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { connection, spaces, no_wait, json } => {
            let outcomes = instance.ingest(connection, std::slice::from_ref(spaces)).await?.map_err(fail)?;
            ingest(&mut instance, outcomes, *no_wait, *json).await
        }
        Command::Sync { memory_id, allow_mass_delete, json } => {
            let memory = instance.sync(memory_id, *allow_mass_delete).await?.map_err(fail)?;
            let settled = wait(&mut instance, vec![memory.id], *json).await?;
            print_memories(&settled, *json, &[]);
            Ok(exit_for(&settled, false))
        }
        Command::Resume { json } => {
            let pending = instance.pending().await?;
            let settled = wait(&mut instance, pending, *json).await?;
            print_memories(&settled, *json, &[]);
            Ok(exit_for(&settled, false))
        }
        Command::Status { json } => {
            let status = instance.status().await?;
            let namespace = instance.namespace().to_string();
            let schedules: HashMap<String, Schedule> =
                host.schedules(&namespace)?.into_iter().map(|s| (s.memory.clone(), s)).collect();
            if *json {
                let memories: Vec<Value> = status
                    .memories
                    .iter()
                    .map(|m| {
                        let mut value = memory_json(m);
                        // This process holds the data directory: nothing else is working on it.
                        value["resumable"] = json!(matches!(m.status, MemoryStatus::InProgress));
                        value["auto_resync"] = schedules.get(&m.id).map_or(Value::Null, schedule_json);
                        value
                    })
                    .collect();
                let document = json!({
                    "connections": status.connections.iter().map(connection_json).collect::<Vec<_>>(),
                    "memories": memories,
                });
                println!("{document}");
            } else {
                print_status(&status.connections, &status.memories, &schedules);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AutoResync { memory_id, every, off } => {
            let namespace = instance.namespace().to_string();
            let status = instance.status().await?;
            let memory = status
                .memories
                .iter()
                .find(|m| &m.id == memory_id)
                .ok_or_else(|| anyhow!("no memory '{memory_id}' (see `status`)"))?;
            if *off {
                host.remove_schedule(&namespace, memory_id)?;
                println!("Auto Resync of {memory_id} is off");
                return Ok(ExitCode::SUCCESS);
            }
            let connected = status.connections.iter().any(|c| c.id == memory.connection_id && c.connected);
            if !connected {
                bail!(
                    "connection {} is disconnected: connect the Confluence account again before turning on Auto Resync of {memory_id}",
                    memory.connection_id
                );
            }
            let every = parse_interval(every.as_deref().unwrap_or_default())?;
            let schedule = Schedule {
                memory: memory_id.clone(),
                every_secs: every.as_secs(),
                next_run: now() + every.as_secs(),
                failures: 0,
                last_error: None,
                last_success: None,
            };
            host.save_schedule(&namespace, &schedule)?;
            println!("Auto Resync of {memory_id} every {}s; `connector-host serve` runs it", every.as_secs());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { run_for } => {
            let run_for = run_for.as_deref().map(parse_interval).transpose()?;
            serve(&mut instance, run_for).await
        }
        Command::Export => {
            for hit in instance.export()? {
                let line = json!({
                    "memory": hit.memory_id, "page_id": hit.document_id, "ordinal": hit.ordinal,
                    "title": hit.title, "heading": hit.heading, "text": hit.text,
                });
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask { question, limit, memories, json } => {
            let passages = instance.retrieve(question, memories, *limit).await?.map_err(fail)?;
            print_passages(&passages, *json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Finishes interrupted work, then runs due Auto Resync schedules until `run_for` ends.
async fn serve(instance: &mut Instance<'_>, run_for: Option<Duration>) -> Result<ExitCode> {
    let deadline = run_for.map(|d| Instant::now() + d);
    let namespace = instance.namespace().to_string();
    let pending = instance.pending().await?;
    if !pending.is_empty() {
        eprintln!("resuming {}", pending.join(", "));
        let settled = wait(instance, pending, true).await?;
        print_memories(&settled, false, &[]);
    }
    eprintln!("serving Auto Resync schedules of instance '{namespace}'");
    while deadline.is_none_or(|d| Instant::now() < d) {
        let host = instance.host();
        let due: Vec<Schedule> = host.schedules(&namespace)?.into_iter().filter(|s| s.next_run <= now()).collect();
        for mut schedule in due {
            let outcome = match instance.sync(&schedule.memory, false).await? {
                Ok(memory) => match wait(instance, vec![memory.id], true).await?.pop() {
                    Some(memory) if matches!(memory.status, MemoryStatus::Ingested) => Ok(memory),
                    Some(memory) => Err(memory.error.unwrap_or_else(|| "sync failed".into())),
                    None => Err("sync did not finish".into()),
                },
                Err(ConnectorError::NotFound(_)) => {
                    instance.host().remove_schedule(&namespace, &schedule.memory)?;
                    continue;
                }
                Err(error) => Err(format!("refused: {}", describe_error(&error))),
            };
            match outcome {
                Ok(memory) => {
                    schedule.succeeded(now());
                    let p = &memory.progress;
                    println!(
                        "auto-resync {}: INGESTED, {} requests, {} fetched, {} updated, {} deleted",
                        memory.id, p.requests, p.fetched, p.updated, p.deleted
                    );
                }
                Err(error) => {
                    schedule.failed(now(), error.clone());
                    println!(
                        "auto-resync {}: failed ({} in a row), next attempt in {}s: {error}",
                        schedule.memory,
                        schedule.failures,
                        schedule.next_run.saturating_sub(now())
                    );
                }
            }
            // A schedule turned off meanwhile stays off.
            if instance.host().schedule(&namespace, &schedule.memory)?.is_some() {
                instance.host().save_schedule(&namespace, &schedule)?;
            }
        }
        let pause = Duration::from_millis(500);
        tokio::time::sleep(deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()).min(pause))).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn schedule_json(schedule: &Schedule) -> Value {
    json!({
        "every_secs": schedule.every_secs,
        "next_run": schedule.next_run,
        "failures": schedule.failures,
        "backing_off": schedule.backing_off(),
        "last_error": schedule.last_error,
        "last_success": schedule.last_success,
    })
}

fn fail(error: ConnectorError) -> anyhow::Error {
    anyhow!("{}", describe_error(&error))
}

fn read_token(env: Option<&str>, stdin: bool) -> Result<String> {
    let token = if stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the API token from standard input")?;
        text
    } else {
        let var = env.unwrap_or_default();
        std::env::var(var)
            .map_err(|_| anyhow!("the environment variable {var} is not set: it should hold the Atlassian API token"))?
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("the API token is empty");
    }
    Ok(token)
}

async fn ingest(
    instance: &mut Instance<'_>,
    outcomes: Vec<IngestOutcome>,
    no_wait: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut rejected = Vec::new();
    let mut started = Vec::new();
    let mut settled_now = Vec::new();
    for outcome in outcomes {
        match outcome.outcome {
            Ok(memory) if matches!(memory.status, MemoryStatus::InProgress) => started.push(memory.id),
            Ok(memory) => settled_now.push(memory),
            Err(error) => {
                if !json {
                    eprintln!("{}: {}", outcome.requested, describe_error(&error));
                }
                rejected.push((outcome.requested, error));
            }
        }
    }
    let mut memories = settled_now;
    if no_wait {
        for id in &started {
            if !json {
                eprintln!("registered {id}; run `connector-host resume` to process it");
            }
        }
        let status = instance.status().await?;
        memories.extend(status.memories.into_iter().filter(|m| started.contains(&m.id)));
    } else {
        memories.extend(wait(instance, started, json).await?);
    }
    print_memories(&memories, json, &rejected);
    Ok(exit_for(&memories, !rejected.is_empty()))
}

fn exit_for(memories: &[Memory], rejected: bool) -> ExitCode {
    if rejected || memories.iter().any(|m| matches!(m.status, MemoryStatus::Error)) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn wait(instance: &mut Instance<'_>, ids: Vec<String>, json: bool) -> Result<Vec<Memory>> {
    let bars = MultiProgress::new();
    if json || !std::io::stderr().is_terminal() {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    let mut by_id = std::collections::HashMap::new();
    for id in &ids {
        let bar = bars.add(ProgressBar::new(0).with_style(style.clone()).with_prefix(id.clone()));
        by_id.insert(id.clone(), bar);
    }
    let memories = drive(instance, &ids, |memory| {
        if let Some(bar) = by_id.get(&memory.id) {
            let progress = &memory.progress;
            bar.set_length(u64::from(progress.known.max(progress.done)));
            bar.set_position(u64::from(progress.done));
            bar.set_message(format!("{} · {}", memory.source_key, progress.phase));
        }
    })
    .await?;
    for bar in by_id.values() {
        bar.finish_and_clear();
    }
    Ok(memories)
}

fn status_name(status: &MemoryStatus) -> &'static str {
    match status {
        MemoryStatus::InProgress => "IN_PROGRESS",
        MemoryStatus::Ingested => "INGESTED",
        MemoryStatus::Error => "ERROR",
    }
}

fn connection_json(c: &Connection) -> Value {
    json!({"id": c.id, "site": c.site, "email": c.account, "access": c.access, "connected": c.connected})
}

fn memory_json(m: &Memory) -> Value {
    let p = &m.progress;
    json!({
        "id": m.id,
        "connection": m.connection_id,
        "space_key": m.source_key,
        "space_name": m.source_name,
        "status": status_name(&m.status),
        "pages": m.documents,
        "chunks": m.chunks,
        "error": m.error,
        "synced_at": m.synced_at,
        "progress": {
            "phase": p.phase, "done": p.done, "known": p.known, "requests": p.requests, "retries": p.retries,
            "listed": p.listed, "fetched": p.fetched, "updated": p.updated, "deleted": p.deleted,
        },
    })
}

fn print_memories(memories: &[Memory], json: bool, rejected: &[(String, ConnectorError)]) {
    if json {
        let document = json!({
            "memories": memories.iter().map(memory_json).collect::<Vec<_>>(),
            "rejected": rejected.iter().map(|(key, error)| json!({
                "space_key": key, "kind": error_kind(error), "error": describe_error(error),
            })).collect::<Vec<_>>(),
        });
        println!("{document}");
        return;
    }
    for m in memories {
        let p = &m.progress;
        match &m.error {
            Some(error) => println!("{} {} ERROR: {error}", m.id, m.source_key),
            None => println!(
                "{} {} ({}) {}: {} pages, {} chunks · {} requests, {} listed, {} fetched, {} updated, {} deleted",
                m.id,
                m.source_key,
                m.source_name,
                status_name(&m.status),
                m.documents,
                m.chunks,
                p.requests,
                p.listed,
                p.fetched,
                p.updated,
                p.deleted
            ),
        }
    }
}

fn print_status(connections: &[Connection], memories: &[Memory], schedules: &HashMap<String, Schedule>) {
    if connections.is_empty() {
        println!("no connections: run `connector-host connect --site URL --email EMAIL --token-env VAR`");
    }
    for c in connections {
        let state = if c.connected { "connected" } else { "disconnected" };
        println!("{}  {}  {}  {}  {}", c.id, c.site, c.account, c.access, state);
    }
    for m in memories {
        let p = &m.progress;
        let detail = match (&m.status, &m.error) {
            (MemoryStatus::Error, Some(error)) => error.clone(),
            (MemoryStatus::InProgress, _) => {
                format!("{} ({}/{} pages) — resumable: run `connector-host resume`", p.phase, p.done, p.known)
            }
            _ => format!("synced {}", m.synced_at.clone().unwrap_or_default()),
        };
        let auto = match schedules.get(&m.id) {
            Some(s) if s.backing_off() => format!(
                "  [auto-resync every {}s, backing off after {} failures: {}]",
                s.every_secs,
                s.failures,
                s.last_error.clone().unwrap_or_default()
            ),
            Some(s) => format!("  [auto-resync every {}s]", s.every_secs),
            None => String::new(),
        };
        println!(
            "{}  {}  {:<11}  {} pages  {} chunks  {}{auto}",
            m.id,
            m.source_key,
            status_name(&m.status),
            m.documents,
            m.chunks,
            detail
        );
    }
}

fn print_passages(passages: &[Passage], json: bool) {
    if json {
        let document = json!({
            "passages": passages.iter().map(|p| json!({
                "title": p.title, "url": p.url, "breadcrumb": p.breadcrumb, "text": p.text, "score": p.score,
                "page_id": p.document_id, "version": p.document_version, "modified_at": p.modified_at,
                "space_key": p.source_key, "memory": p.memory_id,
            })).collect::<Vec<_>>(),
        });
        println!("{document}");
        return;
    }
    if passages.is_empty() {
        println!("no passage matches that question");
    }
    for (rank, p) in passages.iter().enumerate() {
        println!("{}. {}  (score {:.2})", rank + 1, p.breadcrumb, p.score);
        println!("   {}", p.url);
        for line in p.text.lines().filter(|l| !l.trim().is_empty()).take(8) {
            println!("   │ {line}");
        }
        println!();
    }
}

async fn demo(cli: &Cli, question: &str) -> Result<ExitCode> {
    let site = fake_confluence::demo_site().context("cannot start the sample Confluence site")?;
    println!("sample Confluence site running at {}", site.origin());
    let (data_dir, temporary) = match &cli.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("connector-host-demo-{}", std::process::id())), true),
    };
    let outcome = async {
        let host = open_host(cli, data_dir.clone())?;
        let mut instance = host.instance("demo").await?;
        let connection = instance
            .connect(vec![
                ("site".into(), format!("{}/wiki/spaces/{}/overview", site.origin(), fake_confluence::DEMO_SPACE_KEY)),
                ("email".into(), fake_confluence::DEMO_EMAIL.into()),
                ("token".into(), fake_confluence::DEMO_TOKEN.into()),
                ("allow-loopback".into(), "true".into()),
            ])
            .await?
            .map_err(fail)?;
        println!("connected {} as {} ({})", connection.site, connection.account, connection.id);
        let outcomes =
            instance.ingest(&connection.id, &[fake_confluence::DEMO_SPACE_KEY.to_string()]).await?.map_err(fail)?;
        let ids: Vec<String> = outcomes.into_iter().filter_map(|o| o.outcome.ok()).map(|m| m.id).collect();
        let memories = wait(&mut instance, ids, false).await?;
        print_memories(&memories, false, &[]);
        println!("\nQ: {question}\n");
        let passages = instance.retrieve(question, &[], 3).await?.map_err(fail)?;
        print_passages(&passages, false);
        if passages.is_empty() {
            bail!("the demo found no passage for its question");
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    outcome
}
