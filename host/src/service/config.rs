//! The operator's configuration of `serve`: one TOML file, every key also a flag (and an
//! environment variable where that is the convention). A flag beats the file; the file
//! beats the default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// How the service writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event (for log collectors).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format '{other}': use text or json")),
        }
    }
}

/// Everything `serve` can be told; `None` means "not given here".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on (default `127.0.0.1:7878`).
    pub listen: Option<SocketAddr>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Steps (ingest and sync work) running at once across all tenants (default 2).
    pub concurrency: Option<usize>,
    /// Calls into connectors for API requests running at once (default 16); more wait.
    pub max_concurrent_calls: Option<usize>,
    /// Host patterns a connection's origins must match, e.g. `["*.atlassian.net",
    /// "api.atlassian.com"]` (default: any public host).
    pub allowed_sites: Option<Vec<String>>,
    /// Accept `http://` sites on loopback when a request asks for it (tests, demos).
    pub allow_loopback: Option<bool>,
    /// Connect fields the operator fixes for every connection, by name (e.g. the
    /// Confluence connector's `gateway`); flags win per field over the file.
    pub connect_fields: Option<BTreeMap<String, String>>,
    /// Largest request body the API accepts, in bytes (default 1 MiB).
    pub max_body_bytes: Option<usize>,
    /// Limits of every call into a connector.
    pub limits: Option<LimitSettings>,
    /// Per-tenant quotas (file only).
    pub quotas: Option<crate::service::quotas::Quotas>,
    /// Sentence-embedding model directory for semantic retrieval (the global
    /// `--embedding-model` flag wins over it).
    pub embedding_model: Option<std::path::PathBuf>,
    /// PostgreSQL database URL (the global `--database-url` flag and
    /// `CONNECTOR_HOST_DATABASE_URL` win over it).
    pub database_url: Option<String>,
    /// How long a host's work lease on a tenant lasts unless renewed, e.g. `30s` (default):
    /// on a shared database, how soon another host takes over the work of one that died.
    pub lease: Option<String>,
}

/// Limits of every call into a connector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Guest memory cap in MiB (default 512).
    pub memory_mib: Option<usize>,
    /// CPU time of one call, e.g. `5m` (default 5 minutes).
    pub cpu: Option<String>,
    /// Wall-clock time of one call, e.g. `5m` (default 5 minutes).
    pub wall_clock: Option<String>,
    /// Largest HTTP response a connector may receive, in MiB (default 64).
    pub response_mib: Option<u64>,
}

/// The settings `serve` runs with, defaults applied.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Steps running at once across tenants.
    pub concurrency: usize,
    /// Connector calls for API requests running at once.
    pub max_concurrent_calls: usize,
    /// Site patterns (empty: any public host).
    pub allowed_sites: Vec<String>,
    /// Whether loopback `http://` sites may be connected.
    pub allow_loopback: bool,
    /// Connect fields fixed for every connection.
    pub connect_fields: BTreeMap<String, String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Guest memory cap in bytes.
    pub memory_limit: usize,
    /// CPU limit of one call.
    pub cpu_limit: Duration,
    /// Wall-clock limit of one call.
    pub call_timeout: Duration,
    /// Largest HTTP response a connector may receive, in bytes.
    pub max_response_bytes: u64,
    /// Per-tenant quotas.
    pub quotas: crate::service::quotas::Quotas,
    /// Sentence-embedding model directory (`None`: semantic retrieval unavailable).
    pub embedding_model: Option<std::path::PathBuf>,
    /// PostgreSQL database (`None`: the embedded store in the data directory).
    pub database_url: Option<String>,
    /// How long a work lease lasts unless renewed (shared databases).
    pub lease: Duration,
}

impl ServeSettings {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<ServeSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid configuration {}", path.display()))
    }

    /// `self` (flags) over `file`, over the defaults.
    pub fn resolve(self, file: ServeSettings) -> Result<ServeConfig> {
        let limits = self.limits.unwrap_or_default();
        let file_limits = file.limits.unwrap_or_default();
        let duration = |value: Option<String>, what: &str| -> Result<Duration> {
            match value {
                Some(text) => crate::schedule::parse_interval(&text).with_context(|| format!("limits.{what}")),
                None => Ok(Duration::from_secs(300)),
            }
        };
        let config = ServeConfig {
            listen: self.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:7878".parse().expect("valid address")),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            concurrency: self.concurrency.or(file.concurrency).unwrap_or(2),
            max_concurrent_calls: self.max_concurrent_calls.or(file.max_concurrent_calls).unwrap_or(16),
            allowed_sites: self.allowed_sites.filter(|s| !s.is_empty()).or(file.allowed_sites).unwrap_or_default(),
            allow_loopback: self.allow_loopback.or(file.allow_loopback).unwrap_or(false),
            connect_fields: {
                let mut fields = file.connect_fields.unwrap_or_default();
                fields.extend(self.connect_fields.unwrap_or_default());
                fields
            },
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes).unwrap_or(1 << 20),
            memory_limit: limits.memory_mib.or(file_limits.memory_mib).unwrap_or(512) << 20,
            cpu_limit: duration(limits.cpu.or(file_limits.cpu), "cpu")?,
            call_timeout: duration(limits.wall_clock.or(file_limits.wall_clock), "wall_clock")?,
            max_response_bytes: limits.response_mib.or(file_limits.response_mib).unwrap_or(64) << 20,
            quotas: self.quotas.or(file.quotas).unwrap_or_default(),
            embedding_model: self.embedding_model.or(file.embedding_model),
            database_url: self.database_url.or(file.database_url),
            lease: match self.lease.or(file.lease) {
                Some(text) => crate::schedule::parse_interval(&text).context("lease")?,
                None => Duration::from_secs(30),
            },
        };
        if config.database_url.is_some()
            && (config.quotas.index_mib.is_some() || config.quotas.instances.values().any(|l| l.index_mib.is_some()))
        {
            bail!(
                "quotas.index_mib measures a search index directory, and with a PostgreSQL database the index is in \
                 the database: use quotas.documents there"
            );
        }
        if config.lease < Duration::from_secs(3) {
            bail!("lease must be at least 3s: hosts renew their leases every third of it");
        }
        if config.concurrency == 0 || config.max_concurrent_calls == 0 {
            bail!("concurrency and max_concurrent_calls must be at least 1");
        }
        if config.memory_limit < 16 << 20 {
            bail!("limits.memory_mib must be at least 16");
        }
        if config.max_response_bytes == 0 {
            bail!("limits.response_mib must be at least 1");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: ServeSettings = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            concurrency = 4
            allowed_sites = ["*.atlassian.net"]
            log_format = "json"
            [limits]
            memory_mib = 256
            cpu = "30s"
            "#,
        )
        .unwrap();
        let flags = ServeSettings { concurrency: Some(1), ..Default::default() };
        let config = flags.resolve(file).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.allowed_sites, vec!["*.atlassian.net".to_string()]);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.memory_limit, 256 << 20);
        assert_eq!(config.cpu_limit, Duration::from_secs(30));
        assert_eq!(config.call_timeout, Duration::from_secs(300));
        assert_eq!(config.max_body_bytes, 1 << 20);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<ServeSettings>("listn = \"x\"").is_err());
        let zero = ServeSettings { concurrency: Some(0), ..Default::default() };
        assert!(zero.resolve(ServeSettings::default()).is_err());
        // An index-size quota measures a directory: not there with a database.
        let file: ServeSettings =
            toml::from_str("database_url = \"postgres://h/db\"\n[quotas.instances.acme]\nindex_mib = 10").unwrap();
        let refused = ServeSettings::default().resolve(file).unwrap_err().to_string();
        assert!(refused.contains("quotas.documents"), "{refused}");
    }
}
