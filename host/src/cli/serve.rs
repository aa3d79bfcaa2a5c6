//! `connector-host serve`: the long-running service (see `connector_host::service`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use connector_host::schedule::parse_interval;
use connector_host::service::config::LimitSettings;
use connector_host::service::{LogFormat, ServeSettings};

use crate::Cli;

/// Options of `serve`; every one can also be set in the `--config` file.
#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as documented in the README).
    #[arg(long, env = "CONNECTOR_HOST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks a free one).
    #[arg(long, env = "CONNECTOR_HOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Log format: text or json.
    #[arg(long, env = "CONNECTOR_HOST_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Steps running at once across all tenants (default 2).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Connector calls for API requests running at once (default 16).
    #[arg(long)]
    max_concurrent_calls: Option<usize>,
    /// A site pattern connections must match, e.g. '*.atlassian.net' (repeat for more).
    #[arg(long = "allowed-site")]
    allowed_sites: Vec<String>,
    /// Accept http:// sites on loopback when a connect request asks for it (tests, demos).
    #[arg(long)]
    allow_loopback: bool,
    /// A connect field fixed for every connection, NAME=VALUE (repeatable; only the
    /// operator may set such a field otherwise).
    #[arg(long = "connect-field", value_name = "NAME=VALUE")]
    connect_fields: Vec<String>,
    /// Origin of the Confluence connector's scoped-token API gateway (`--connect-field gateway=ORIGIN`).
    #[arg(long)]
    gateway: Option<String>,
    /// Largest API request body in bytes (default 1 MiB).
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Guest memory cap per call in MiB (default 512).
    #[arg(long)]
    memory_limit_mib: Option<usize>,
    /// CPU time per call, e.g. 5m (default 5m).
    #[arg(long)]
    cpu_limit: Option<String>,
    /// Wall-clock time per call, e.g. 5m (default 5m).
    #[arg(long)]
    call_timeout: Option<String>,
    /// Largest HTTP response a connector may receive, in MiB (default 64).
    #[arg(long)]
    max_response_mib: Option<u64>,
    /// How long a work lease on a tenant lasts unless renewed (default 30s): on a shared
    /// database, how soon another host takes over the work of a host that died.
    #[arg(long)]
    lease: Option<String>,
    /// Stop after this long (e.g. 30s); default: run until SIGTERM or SIGINT.
    #[arg(long)]
    run_for: Option<String>,
}

/// `--connect-field` and its `--gateway` shorthand, by name.
fn connect_fields(args: &ServeArgs) -> Result<std::collections::BTreeMap<String, String>> {
    let mut fields = std::collections::BTreeMap::new();
    for field in &args.connect_fields {
        match field.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => fields.insert(name.trim().to_string(), value.to_string()),
            _ => bail!("--connect-field takes NAME=VALUE, not '{field}'"),
        };
    }
    if let Some(gateway) = &args.gateway {
        fields.insert("gateway".into(), gateway.clone());
    }
    Ok(fields)
}

/// Runs the service until it is stopped.
pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    let file = match &args.config {
        Some(path) => ServeSettings::from_file(path)?,
        None => ServeSettings::default(),
    };
    let flags = ServeSettings {
        listen: args.listen,
        log_format: args.log_format,
        concurrency: args.concurrency,
        max_concurrent_calls: args.max_concurrent_calls,
        allowed_sites: Some(args.allowed_sites.clone()),
        allow_loopback: args.allow_loopback.then_some(true),
        connect_fields: Some(connect_fields(args)?),
        max_body_bytes: args.max_body_bytes,
        limits: Some(LimitSettings {
            memory_mib: args.memory_limit_mib,
            cpu: args.cpu_limit.clone(),
            wall_clock: args.call_timeout.clone(),
            response_mib: args.max_response_mib,
        }),
        quotas: None,
        embedding_model: cli.embedding_model.clone(),
        database_url: cli.database_url.clone(),
        lease: args.lease.clone(),
    };
    let config = flags.resolve(file)?;
    crate::init_logging("info", config.log_format == LogFormat::Json);
    let run_for = args.run_for.as_deref().map(parse_interval).transpose()?;
    let data_dir = cli.data_dir();
    if let Some(running) = super::remote::Remote::find(&data_dir, &cli.instance).await {
        bail!("a service ({}) is already serving {}", running.describe(), data_dir.display());
    }
    let mut host_config = cli.host_config(data_dir);
    host_config.memory_limit = config.memory_limit;
    host_config.cpu_limit = config.cpu_limit;
    host_config.call_timeout = config.call_timeout;
    host_config.allowed_sites = config.allowed_sites.clone();
    host_config.background_priority = true;
    host_config.max_response_bytes = config.max_response_bytes;
    host_config.embedding_model = config.embedding_model.clone();
    host_config.database_url = config.database_url.clone();
    let host = connector_host::runtime::ConnectorHost::open(host_config)?;
    connector_host::service::run(host, config, run_for).await?;
    Ok(ExitCode::SUCCESS)
}
