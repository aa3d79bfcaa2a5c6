//! `connector-host`: run the Confluence knowledge connector from the command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use connector_host::runtime::{ConnectorHost, HostConfig};

#[derive(Parser)]
#[command(
    name = "connector-host",
    version,
    about = "Run the Confluence knowledge connector (a WebAssembly component) on embedded storage and search, or on PostgreSQL"
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
    /// Sentence-embedding model directory for semantic retrieval (install one with
    /// `python3 tools/embedding-model/install.py DIR`); instances use it once
    /// `semantic on` is set for them.
    #[arg(long, global = true, env = "CONNECTOR_HOST_EMBEDDING_MODEL")]
    embedding_model: Option<PathBuf>,
    /// PostgreSQL database for everything the data directory would hold but the compile
    /// cache (`postgres://user:password@host:port/db`); the operator key then comes from
    /// CONNECTOR_HOST_KEY. Without it: the embedded store and index in the data directory.
    #[arg(long, global = true, env = "CONNECTOR_HOST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
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
    /// Connect an account of the connector's source (Confluence: site URL, e-mail, API
    /// token); prints the connection id.
    Connect(cli::connect::ConnectArgs),
    /// What the connector is and the fields `connect` takes.
    Describe {
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
        /// Space keys (the connector's sources), comma-separated, e.g. "SD, TD".
        #[arg(long, visible_alias = "sources")]
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
    /// Run the service: HTTP API, dashboard and MCP for every instance; resumes their work
    /// and runs their Auto Resync schedules until SIGTERM/SIGINT.
    Serve(cli::serve::ServeArgs),
    /// Create, list and revoke API keys of the service.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// The operator key that encrypts secrets at rest.
    #[command(subcommand)]
    OperatorKey(OperatorKeyCommand),
    /// Semantic retrieval of the instance: page embeddings fused with the lexical ranking
    /// (off by default; needs --embedding-model).
    Semantic {
        /// `on`, `off`, or `status`.
        #[arg(value_enum, default_value = "status")]
        action: SemanticAction,
        /// With `on`: return at once; `resume`, `sync` or `serve` embeds the pages.
        #[arg(long)]
        no_wait: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print every indexed passage as JSON lines (for audits and exact comparisons).
    Export,
    /// Show the audit log of the instance: who connected, added, synced, changed what.
    Audit {
        /// How many of the newest entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
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
        /// Passages per page, at most: 1 gives distinct sources; 0 gives raw passages,
        /// ranked one by one.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
        per_document: u32,
        /// Only these memories (default: all).
        #[arg(long = "memory")]
        memories: Vec<String>,
        /// Only pages (blog posts, files) with this label (repeatable: any of them).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    connector_host::allocator::limit_arenas();
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { connector_embed::single_threaded_products() };
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

/// Logs go to stderr; `CONNECTOR_HOST_LOG` sets the filter (default `warn`, `info` for `serve`).
fn init_logging(default_level: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CONNECTOR_HOST_LOG").unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("connector-host")
}

impl Cli {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    fn host_config(&self, data_dir: PathBuf) -> HostConfig {
        let mut config = HostConfig::new(data_dir);
        config.component = self.component.clone();
        config.cache_dir = self.cache_dir.clone();
        config.embedding_model = self.embedding_model.clone();
        config.database_url = self.database_url.clone();
        config
    }

    fn open_host(&self) -> Result<ConnectorHost> {
        ConnectorHost::open(self.host_config(self.data_dir()))
    }
}

/// What `semantic` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SemanticAction {
    /// Turn semantic retrieval on: every page is embedded in the background.
    On,
    /// Turn it off and delete the page vectors.
    Off,
    /// Show whether it is on and each memory's coverage.
    Status,
}

/// What to do with the operator key.
#[derive(Subcommand)]
enum OperatorKeyCommand {
    /// Re-encrypt every stored secret under a new key in one transaction (stop `serve` first).
    Rotate {
        /// With the key in CONNECTOR_HOST_KEY: the environment variable holding the new key
        /// (64 hex digits or base64 of 32 bytes). Without: a new key is generated into
        /// <data-dir>/operator.key.
        #[arg(long)]
        new_key_env: Option<String>,
    },
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Demo { question } => {
            init_logging("warn", false);
            return cli::local::demo(&cli, question).await;
        }
        Command::Serve(args) => return cli::serve::run(&cli, args).await,
        Command::OperatorKey(OperatorKeyCommand::Rotate { new_key_env }) => {
            init_logging("warn", false);
            return cli::keys::rotate_operator_key(
                &cli.data_dir(),
                cli.database_url.as_deref(),
                new_key_env.as_deref(),
            )
            .await;
        }
        _ => init_logging("warn", false),
    }
    if let Some(remote) = cli::remote::Remote::find(&cli.data_dir(), &cli.instance).await {
        return cli::through_service(&cli, &remote).await;
    }
    cli::local::run(&cli).await
}
