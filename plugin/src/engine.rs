//! The connector's product logic: connect, ingest, sync, step, retrieve, status.
//!
//! Everything is plain Rust over the capability traits of [`crate::caps`] and the
//! [`Transport`]; the WebAssembly layer only translates types. State lives in
//! key-value storage and every step ends with a checkpoint, so work survives a host
//! crash at any point: a repeated step re-does at most one batch, and every write it
//! makes is idempotent.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::caps::{HostError, IndexChunk, KeyValue, SearchIndex, SecretStore};
use crate::chunk::{ChunkConfig, chunk};
use crate::client::{ApiError, Client};
use crate::http::Transport;
use crate::model::{Content, CurrentUser, Listing, Space, TenantInfo};
use crate::records::*;
use crate::site::{self, Site, SiteOptions};
use crate::storage;

/// Listing page size: the v2 maximum, so a space costs one request per 250 pages.
const PAGE_LIMIT: u32 = 250;
/// Documents removed per step.
const DELETE_BATCH: usize = 500;
/// Spaces resolved per lookup request.
const KEYS_PER_LOOKUP: usize = 100;
/// Scopes a scoped token needs, and the probe that proves each.
const SCOPE_PROBES: [(&str, &str); 3] = [
    ("read:content-details:confluence", "/wiki/rest/api/user/current"),
    ("read:space:confluence", "/wiki/api/v2/spaces?limit=1"),
    ("read:page:confluence", "/wiki/api/v2/pages?limit=1"),
];

/// Why an operation failed; mirrors the WIT `connector-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Malformed input.
    #[error("{0}")]
    InvalidInput(String),
    /// Credentials rejected.
    #[error("{0}")]
    Unauthorized(String),
    /// Scopes to add to the token.
    #[error("the API token is missing the scopes: {}", .0.join(", "))]
    MissingScopes(Vec<String>),
    /// Unknown connection, memory or space.
    #[error("{0}")]
    NotFound(String),
    /// Already a memory.
    #[error("{0}")]
    Duplicate(String),
    /// Not possible in the current state.
    #[error("{0}")]
    Unavailable(String),
    /// Confluence unreachable or failing.
    #[error("{0}")]
    Network(String),
    /// The host refused something.
    #[error("{0}")]
    Denied(String),
    /// A host capability failed.
    #[error("{0}")]
    Host(String),
}

impl From<HostError> for ConnectorError {
    fn from(error: HostError) -> Self {
        ConnectorError::Host(format!("host storage failed: {error}"))
    }
}

/// The outcome of one requested space in `ingest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The key as typed (trimmed).
    pub requested: String,
    /// The memory, or why the key was rejected.
    pub outcome: Result<Memory, ConnectorError>,
}

/// Everything the instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Connections.
    pub connections: Vec<Connection>,
    /// Memories.
    pub memories: Vec<Memory>,
}

/// The connector, bound to its capabilities for one call.
pub struct Engine<'a> {
    kv: &'a dyn KeyValue,
    index: &'a dyn SearchIndex,
    secrets: &'a dyn SecretStore,
    transport: &'a dyn Transport,
    chunking: ChunkConfig,
}

/// The fields `connect` takes.
pub fn config_fields() -> Vec<ConfigField> {
    vec![
        ConfigField {
            name: "site",
            label: "Site URL",
            help: "Your Atlassian cloud URL, e.g. https://your-company.atlassian.net (any page URL of the site works too)",
            secret: false,
            required: true,
        },
        ConfigField {
            name: "email",
            label: "Atlassian account e-mail",
            help: "The e-mail of the Atlassian account the API token belongs to",
            secret: false,
            required: true,
        },
        ConfigField {
            name: "token",
            label: "API token",
            help: "Classic or scoped API token from id.atlassian.com (scoped: read:space, read:page and read:content-details for Confluence)",
            secret: true,
            required: true,
        },
        ConfigField {
            name: "allow-loopback",
            label: "Allow loopback http site",
            help: "true only for tests and the demo: accept an http:// site on 127.0.0.1/localhost",
            secret: false,
            required: false,
        },
        ConfigField {
            name: "gateway",
            label: "API gateway origin",
            help: "Override of https://api.atlassian.com for scoped tokens (tests)",
            secret: false,
            required: false,
        },
    ]
}

struct ConnectConfig {
    site: Site,
    options: SiteOptions,
    email: String,
    token: String,
}

fn config_value<'c>(config: &'c [(String, String)], name: &str) -> Option<&'c str> {
    config.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse_site(config: &[(String, String)]) -> Result<(Site, SiteOptions), ConnectorError> {
    for (key, _) in config {
        if !config_fields().iter().any(|f| f.name == key) {
            return Err(ConnectorError::InvalidInput(format!(
                "unknown configuration field '{key}' (expected: site, email, token, allow-loopback, gateway)"
            )));
        }
    }
    let allow_loopback = match config_value(config, "allow-loopback").map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ConnectorError::InvalidInput(format!("allow-loopback must be true or false, not '{other}'")));
        }
    };
    let mut options = SiteOptions { allow_loopback, ..SiteOptions::default() };
    if let Some(gateway) = config_value(config, "gateway").map(str::trim).filter(|g| !g.is_empty()) {
        let origin = site::origin_of(gateway)
            .filter(|o| o.starts_with("https://") || allow_loopback)
            .ok_or_else(|| ConnectorError::InvalidInput(format!("gateway '{gateway}' is not an https origin")))?;
        options.gateway_origin = origin;
    }
    let raw = config_value(config, "site").unwrap_or_default();
    let site = site::normalize(raw, &options).map_err(|e| ConnectorError::InvalidInput(e.to_string()))?;
    Ok((site, options))
}

fn parse_connect_config(config: &[(String, String)]) -> Result<ConnectConfig, ConnectorError> {
    let (site, options) = parse_site(config)?;
    let email = config_value(config, "email").unwrap_or_default().trim().to_string();
    if email.is_empty() {
        return Err(ConnectorError::InvalidInput("the e-mail is empty: give the Atlassian account e-mail".into()));
    }
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) || !email.contains('@') || email.len() > 254 {
        return Err(ConnectorError::InvalidInput(
            "the e-mail is not valid: give the Atlassian account e-mail, like name@company.com".into(),
        ));
    }
    let token = config_value(config, "token").unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(ConnectorError::InvalidInput(
            "the API token is empty: create one at id.atlassian.com → Security → API tokens".into(),
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) || token.len() > 4096 {
        return Err(ConnectorError::InvalidInput(
            "the API token contains spaces or control characters: paste it again without extra characters".into(),
        ));
    }
    Ok(ConnectConfig { site, options, email, token })
}

/// Checks the characters of a space key (Confluence keys are letters, digits and `_`;
/// personal spaces start with `~`).
fn check_space_key(key: &str) -> Result<(), ConnectorError> {
    let body = key.strip_prefix('~').unwrap_or(key);
    let valid = !body.is_empty()
        && key.len() <= 255
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (key.starts_with('~') && (c == '-' || c == ':')));
    if valid {
        Ok(())
    } else {
        Err(ConnectorError::InvalidInput(format!(
            "'{}' is not a space key: keys are letters, digits and _ (personal spaces start with ~), as in the space's URL /wiki/spaces/KEY",
            key.chars().take(60).collect::<String>()
        )))
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| ConnectorError::Host(format!("stored {what} is unreadable: {e}")))
}

/// RFC 3339 (UTC, seconds) for a Unix time.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

enum Advance {
    More,
    Finished,
}

/// A failure inside a run, before it is turned into the memory's error message.
enum RunFailure {
    Api(ApiError),
    Stop(String),
    Host(HostError),
}

impl From<ApiError> for RunFailure {
    fn from(error: ApiError) -> Self {
        RunFailure::Api(error)
    }
}

impl From<HostError> for RunFailure {
    fn from(error: HostError) -> Self {
        RunFailure::Host(error)
    }
}

impl<'a> Engine<'a> {
    /// Binds the engine to its capabilities.
    pub fn new(
        kv: &'a dyn KeyValue,
        index: &'a dyn SearchIndex,
        secrets: &'a dyn SecretStore,
        transport: &'a dyn Transport,
    ) -> Engine<'a> {
        Engine { kv, index, secrets, transport, chunking: ChunkConfig::default() }
    }

    // ----- connections -------------------------------------------------------------

    /// The origins the configuration needs (site and, for scoped tokens, the gateway).
    pub fn required_origins(&self, config: &[(String, String)]) -> Result<Vec<String>, ConnectorError> {
        let (site, options) = parse_site(config)?;
        Ok(match site {
            Site::Cloud { origin } => {
                if origin == options.gateway_origin {
                    vec![origin]
                } else {
                    vec![origin, options.gateway_origin]
                }
            }
            Site::Gateway { origin, .. } => vec![origin],
        })
    }

    /// Validates credentials (detecting classic vs scoped tokens) and stores the connection.
    pub fn connect(&self, config: &[(String, String)]) -> Result<Connection, ConnectorError> {
        let config = parse_connect_config(config)?;
        let (api_base, access, site_identity) = self.detect_access(&config)?;
        let site = match &config.site {
            Site::Cloud { origin } => origin.clone(),
            Site::Gateway { .. } => config.site.api_base(),
        };
        let existing = self
            .connections()?
            .into_iter()
            .find(|c| c.site_identity == site_identity && c.email.eq_ignore_ascii_case(&config.email));
        let id = match &existing {
            Some(connection) => connection.id.clone(),
            None => self.next_id("conn")?,
        };
        let connection = Connection {
            id,
            site,
            api_base,
            site_identity,
            email: config.email.clone(),
            access,
            connected: true,
            allow_loopback: config.options.allow_loopback,
        };
        self.secrets.put(&token_secret(&connection.id), &config.token)?;
        self.kv.set(MAIN_BUCKET, &connection_key(&connection.id), &encode(&connection))?;
        Ok(connection)
    }

    fn detect_access(&self, config: &ConnectConfig) -> Result<(String, Access, String), ConnectorError> {
        let rejected = || {
            ConnectorError::Unauthorized(format!(
                "Confluence rejected the e-mail and API token for {}: check the e-mail ({}) and the token; it may have expired or been revoked",
                config.site.api_base(),
                config.email
            ))
        };
        match &config.site {
            Site::Gateway { cloud_id, .. } => {
                let base = config.site.api_base();
                self.check_scoped(&base, config)?;
                Ok((base, Access::Scoped, cloud_id.clone()))
            }
            Site::Cloud { origin } => {
                let client = Client::new(self.transport, origin, &config.email, &config.token);
                match client.get_json::<CurrentUser>("/wiki/rest/api/user/current") {
                    Ok(user) if user.kind == "known" => {
                        return Ok((origin.clone(), Access::Classic, self.identity(origin)));
                    }
                    Ok(_) => {}
                    Err(
                        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } | ApiError::ScopeMismatch { .. },
                    ) => {}
                    Err(ApiError::NotFound { url }) => {
                        return Err(ConnectorError::NotFound(format!(
                            "{origin} does not look like a Confluence Cloud site ({url} answered 404)"
                        )));
                    }
                    Err(error) => return Err(network(error)),
                }
                // A scoped token (or a bad one): scoped tokens only work through the gateway.
                let tenant: TenantInfo = match client.get_json("/_edge/tenant_info") {
                    Ok(tenant) => tenant,
                    Err(ApiError::NotFound { .. } | ApiError::Rejected { .. } | ApiError::Exhausted { .. }) => {
                        return Err(rejected());
                    }
                    Err(error) => return Err(network(error)),
                };
                let gateway =
                    Site::Gateway { origin: config.options.gateway_origin.clone(), cloud_id: tenant.cloud_id.clone() };
                let base = gateway.api_base();
                match self.check_scoped(&base, config) {
                    Ok(()) => Ok((base, Access::Scoped, tenant.cloud_id)),
                    // The gateway is only our second guess: when it also says no (or cannot
                    // be reached), the site's own answer stands.
                    Err(missing @ ConnectorError::MissingScopes(_)) => Err(missing),
                    Err(_) => Err(rejected()),
                }
            }
        }
    }

    /// Site identity for reconnects: the cloud id when the site tells it, else the origin.
    fn identity(&self, origin: &str) -> String {
        let anonymous = Client::new(self.transport, origin, "", "");
        match anonymous.get_json::<TenantInfo>("/_edge/tenant_info") {
            Ok(tenant) => tenant.cloud_id,
            Err(_) => origin.to_string(),
        }
    }

    /// Probes every endpoint family through the gateway and names missing scopes.
    fn check_scoped(&self, base: &str, config: &ConnectConfig) -> Result<(), ConnectorError> {
        let client = Client::new(self.transport, base, &config.email, &config.token);
        let mut missing = Vec::new();
        for (scope, probe) in SCOPE_PROBES {
            match client.get_json::<serde_json::Value>(probe) {
                Ok(_) => {}
                Err(ApiError::ScopeMismatch { .. } | ApiError::Forbidden { .. }) => missing.push(scope.to_string()),
                Err(ApiError::Unauthorized { .. }) => {
                    return Err(ConnectorError::Unauthorized(format!(
                        "the API gateway rejected the e-mail and token for {base}"
                    )));
                }
                Err(error) => return Err(network(error)),
            }
        }
        if missing.len() == SCOPE_PROBES.len() {
            return Err(ConnectorError::Unauthorized(format!(
                "the API gateway rejected the e-mail and token for {base}"
            )));
        }
        if missing.is_empty() { Ok(()) } else { Err(ConnectorError::MissingScopes(missing)) }
    }

    /// Forgets a connection's token; its memories stay.
    pub fn disconnect(&self, connection_id: &str) -> Result<Connection, ConnectorError> {
        let mut connection = self.connection(connection_id)?;
        self.secrets.remove(&token_secret(connection_id))?;
        connection.connected = false;
        self.kv.set(MAIN_BUCKET, &connection_key(connection_id), &encode(&connection))?;
        Ok(connection)
    }

    fn connection(&self, id: &str) -> Result<Connection, ConnectorError> {
        match self.kv.get(MAIN_BUCKET, &connection_key(id))? {
            Some(bytes) => decode(&bytes, "connection"),
            None => Err(ConnectorError::NotFound(format!(
                "no connection '{id}' (see `status` for the connections of this instance)"
            ))),
        }
    }

    fn connections(&self) -> Result<Vec<Connection>, ConnectorError> {
        self.records("conn/", "connection")
    }

    fn memories(&self) -> Result<Vec<Memory>, ConnectorError> {
        self.records("mem/", "memory")
    }

    fn records<T: serde::de::DeserializeOwned>(&self, prefix: &str, what: &str) -> Result<Vec<T>, ConnectorError> {
        let keys: Vec<String> = self.all_keys(MAIN_BUCKET)?.into_iter().filter(|k| k.starts_with(prefix)).collect();
        let mut records = Vec::with_capacity(keys.len());
        for value in self.kv.get_many(MAIN_BUCKET, &keys)?.into_iter().flatten() {
            records.push(decode(&value, what)?);
        }
        Ok(records)
    }

    fn all_keys(&self, bucket: &str) -> Result<Vec<String>, HostError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = self.kv.list_keys(bucket, cursor)?;
            keys.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    fn next_id(&self, kind: &str) -> Result<String, ConnectorError> {
        let key = format!("counter/{kind}");
        let next = match self.kv.get(MAIN_BUCKET, &key)? {
            Some(bytes) => decode::<u64>(&bytes, "counter")? + 1,
            None => 1,
        };
        self.kv.set(MAIN_BUCKET, &key, &encode(&next))?;
        Ok(format!("{kind}-{next}"))
    }

    fn client_for(&self, connection: &Connection) -> Result<(Client<'a>, String), ConnectorError> {
        if !connection.connected {
            return Err(ConnectorError::Unavailable(format!(
                "connection {} ({}) is disconnected: connect the Confluence account again to sync its memories",
                connection.id, connection.site
            )));
        }
        let token = self.secrets.get(&token_secret(&connection.id))?.ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "connection {} has no stored token: connect the Confluence account again",
                connection.id
            ))
        })?;
        Ok((Client::new(self.transport, &connection.api_base, &connection.email, &token), token))
    }

    // ----- memories ----------------------------------------------------------------

    fn memory(&self, id: &str) -> Result<Memory, ConnectorError> {
        match self.kv.get(MAIN_BUCKET, &memory_key(id))? {
            Some(bytes) => decode(&bytes, "memory"),
            None => Err(ConnectorError::NotFound(format!(
                "no memory '{id}' (see `status` for the memories of this instance)"
            ))),
        }
    }

    fn save_memory(&self, memory: &Memory) -> Result<(), HostError> {
        self.kv.set(MAIN_BUCKET, &memory_key(&memory.id), &encode(memory))
    }

    /// Registers one memory per space key; each key succeeds or fails on its own.
    pub fn ingest(&self, connection_id: &str, sources: &[String]) -> Result<Vec<IngestOutcome>, ConnectorError> {
        let connection = self.connection(connection_id)?;
        let (client, _token) = self.client_for(&connection)?;
        let requested: Vec<String> =
            sources.iter().flat_map(|s| s.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if requested.is_empty() {
            return Err(ConnectorError::InvalidInput(
                "no space keys given: enter one or more keys, comma-separated (e.g. SD, TD)".into(),
            ));
        }
        if requested.len() > 1000 {
            return Err(ConnectorError::InvalidInput(format!(
                "{} space keys in one request; add at most 1000 at a time",
                requested.len()
            )));
        }
        // None = valid so far, to be resolved against Confluence.
        let mut checked: Vec<(String, Option<ConnectorError>)> = Vec::with_capacity(requested.len());
        let mut seen_typed = HashSet::new();
        for key in requested {
            let rejection = match check_space_key(&key) {
                Err(error) => Some(error),
                Ok(()) if !seen_typed.insert(key.to_ascii_uppercase()) => {
                    Some(ConnectorError::Duplicate(format!("space key '{key}' is listed twice in this request")))
                }
                Ok(()) => None,
            };
            checked.push((key, rejection));
        }
        let to_resolve: Vec<String> = checked.iter().filter(|(_, r)| r.is_none()).map(|(k, _)| k.clone()).collect();
        let spaces = self.resolve_spaces(&client, &to_resolve).map_err(|error| match error {
            ApiError::Unauthorized { .. } => token_rejected(&connection),
            ApiError::ScopeMismatch { url } => {
                ConnectorError::MissingScopes(vec![format!("read:space:confluence (for {url})")])
            }
            other => network(other),
        })?;
        let mut memories = self.memories()?;
        let mut outcomes = Vec::with_capacity(checked.len());
        for (key, rejection) in checked {
            let outcome = match rejection {
                Some(error) => Err(error),
                None => {
                    let resolved = spaces
                        .iter()
                        .find(|s| s.key == key)
                        .or_else(|| spaces.iter().find(|s| s.key.eq_ignore_ascii_case(&key)));
                    self.register(&connection, &key, resolved, &mut memories)
                }
            };
            outcomes.push(IngestOutcome { requested: key, outcome });
        }
        Ok(outcomes)
    }

    fn resolve_spaces(&self, client: &Client<'_>, keys: &[String]) -> Result<Vec<Space>, ApiError> {
        let mut spaces = Vec::new();
        for batch in keys.chunks(KEYS_PER_LOOKUP) {
            // Global space keys are upper case in Confluence; people type them in any case.
            let mut wanted: Vec<String> = Vec::with_capacity(batch.len() * 2);
            for key in batch {
                for variant in [key.clone(), if key.starts_with('~') { key.clone() } else { key.to_ascii_uppercase() }]
                {
                    if !wanted.contains(&variant) {
                        wanted.push(variant);
                    }
                }
            }
            let encoded: Vec<String> = wanted.iter().map(|k| url_encode(k)).collect();
            let mut link = Some(format!("/wiki/api/v2/spaces?keys={}&limit={PAGE_LIMIT}", encoded.join(",")));
            let mut visited = HashSet::new();
            while let Some(current) = link.take() {
                visited.insert(current.clone());
                let listing: Listing<Space> = fetch_listing(client, &current, |next| visited.contains(next))?;
                if listing.links.next.as_ref().is_some_and(|next| visited.contains(next)) {
                    return Err(ApiError::Looping(current));
                }
                spaces.extend(listing.results);
                link = listing.links.next;
            }
        }
        Ok(spaces)
    }

    fn register(
        &self,
        connection: &Connection,
        typed: &str,
        space: Option<&Space>,
        memories: &mut Vec<Memory>,
    ) -> Result<Memory, ConnectorError> {
        let mine = |m: &&mut Memory| m.connection_id == connection.id;
        let Some(space) = space else {
            // Unknown or invisible key: an ERROR memory that names it (re-adding it later retries).
            if let Some(existing) = memories
                .iter_mut()
                .filter(mine)
                .find(|m| m.space_id.is_none() && m.space_key.eq_ignore_ascii_case(typed))
            {
                existing.error = Some(space_not_found(typed, connection));
                existing.status = MemoryStatus::Error;
                self.save_memory(existing)?;
                return Ok(existing.clone());
            }
            let mut memory = new_memory(self.next_id("mem")?, connection, typed);
            memory.status = MemoryStatus::Error;
            memory.error = Some(space_not_found(typed, connection));
            self.save_memory(&memory)?;
            memories.push(memory.clone());
            return Ok(memory);
        };
        if let Some(existing) =
            memories.iter_mut().filter(mine).find(|m| m.space_id.as_deref() == Some(space.id.as_str()))
        {
            if existing.run.is_some() {
                return Ok(existing.clone()); // unfinished: ingest continues it
            }
            return Err(ConnectorError::Duplicate(format!(
                "space {} is already ingested for this account as memory {}: use sync {} instead",
                space.key, existing.id, existing.id
            )));
        }
        let retry =
            memories.iter_mut().filter(mine).find(|m| m.space_id.is_none() && m.space_key.eq_ignore_ascii_case(typed));
        let mut memory = match retry {
            Some(existing) => existing.clone(),
            None => new_memory(self.next_id("mem")?, connection, typed),
        };
        memory.space_key = space.key.clone();
        memory.space_id = Some(space.id.clone());
        memory.space_name = if space.name.is_empty() { space.key.clone() } else { space.name.clone() };
        memory.homepage_id = space.homepage_id.clone();
        memory.status = MemoryStatus::InProgress;
        memory.error = None;
        memory.generation += 1;
        memory.progress = Progress { phase: Phase::Pages.label().into(), ..Progress::default() };
        memory.run = Some(Run::start(RunKind::Ingest, true));
        self.save_memory(&memory)?;
        match memories.iter_mut().find(|m| m.id == memory.id) {
            Some(slot) => *slot = memory.clone(),
            None => memories.push(memory.clone()),
        }
        Ok(memory)
    }

    /// Starts a sync of a memory (or continues its unfinished run).
    pub fn sync(&self, memory_id: &str, allow_mass_delete: bool) -> Result<Memory, ConnectorError> {
        let mut memory = self.memory(memory_id)?;
        let connection = self.connection(&memory.connection_id)?;
        self.client_for(&connection)?;
        if let Some(run) = memory.run.as_mut() {
            run.allow_mass_delete |= allow_mass_delete;
            self.save_memory(&memory)?;
            return Ok(memory);
        }
        if memory.space_id.is_none() {
            return Err(ConnectorError::NotFound(format!(
                "memory {} never resolved space '{}': ingest the key again once it exists and is visible to {}",
                memory.id, memory.space_key, connection.email
            )));
        }
        memory.generation += 1;
        memory.status = MemoryStatus::InProgress;
        memory.progress = Progress { phase: Phase::Pages.label().into(), ..Progress::default() };
        memory.run = Some(Run::start(RunKind::Sync, allow_mass_delete));
        self.save_memory(&memory)?;
        Ok(memory)
    }

    /// Memories with unfinished runs.
    pub fn pending(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self.memories()?.into_iter().filter(|m| m.run.is_some()).map(|m| m.id).collect())
    }

    /// Connections and memories.
    pub fn status(&self) -> Result<StatusReport, ConnectorError> {
        let mut connections = self.connections()?;
        connections.sort_by_key(|c| numeric_suffix(&c.id));
        let mut memories = self.memories()?;
        memories.sort_by_key(|m| numeric_suffix(&m.id));
        Ok(StatusReport { connections, memories })
    }

    // ----- the work loop -----------------------------------------------------------

    /// One bounded piece of work on a memory, ending in a checkpoint.
    pub fn step(&self, memory_id: &str) -> Result<StepReport, ConnectorError> {
        let mut memory = self.memory(memory_id)?;
        let Some(mut run) = memory.run.take() else {
            return Ok(StepReport { memory, finished: true });
        };
        let connection = self.connection(&memory.connection_id)?;
        let client = match self.client_for(&connection) {
            Ok((client, _)) => client,
            Err(error) => {
                memory.status = MemoryStatus::Error;
                memory.error = Some(error.to_string());
                self.save_memory(&memory)?;
                return Ok(StepReport { memory, finished: true });
            }
        };
        let result = self.advance(&client, &connection, &mut memory, &mut run);
        let traffic = client.traffic();
        memory.progress.requests += traffic.requests;
        memory.progress.retries += traffic.retries;
        let finished = match result {
            Ok(Advance::More) => {
                memory.progress.phase = run.phase.label().into();
                memory.run = Some(run);
                false
            }
            Ok(Advance::Finished) => {
                memory.status = MemoryStatus::Ingested;
                memory.error = None;
                memory.progress.phase = "done".into();
                memory.synced_at = Some(rfc3339(self.transport.unix_time()));
                true
            }
            Err(failure) => {
                memory.status = MemoryStatus::Error;
                memory.error = Some(self.explain(failure, &connection, &memory));
                memory.progress.phase = "failed".into();
                true
            }
        };
        self.save_memory(&memory)?;
        Ok(StepReport { memory, finished })
    }

    fn explain(&self, failure: RunFailure, connection: &Connection, memory: &Memory) -> String {
        let kept = if memory.documents > 0 { " (the last good content stays searchable)" } else { "" };
        match failure {
            RunFailure::Api(ApiError::Unauthorized { .. }) => format!("{}{kept}", token_rejected(connection)),
            RunFailure::Api(ApiError::ScopeMismatch { url }) => format!(
                "the API token lacks a scope needed for {url}: add read:page:confluence and read:space:confluence to the token, then reconnect{kept}"
            ),
            RunFailure::Api(ApiError::NotFound { .. }) => {
                format!("{}{kept}", space_not_found(&memory.space_key, connection))
            }
            RunFailure::Api(error) => format!("{error}{kept}"),
            RunFailure::Stop(message) => format!("{message}{kept}"),
            RunFailure::Host(error) => format!("host storage failed: {error}{kept}"),
        }
    }

    fn advance(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        match run.phase {
            Phase::Pages | Phase::BlogPosts => self.list(client, connection, memory, run),
            Phase::Fetch => self.fetch(client, memory, run),
            Phase::Count => self.count(memory, run),
            Phase::Delete => self.delete(memory, run),
        }
    }

    fn list(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let space_id = memory.space_id.clone().unwrap_or_default();
        let (collection, kind) = match run.phase {
            Phase::Pages => ("pages", 'p'),
            _ => ("blogposts", 'b'),
        };
        let with_bodies = run.kind == RunKind::Ingest;
        let link = run.cursor.clone().unwrap_or_else(|| listing_start(&space_id, collection, with_bodies));
        let listing: Listing<Content> = fetch_listing(client, &link, |next| run.visited.contains(&hash_of(next)))?;
        if let Some(base) = listing.links.base.as_deref().filter(|b| !b.is_empty()) {
            memory.wiki_base = base.trim_end_matches('/').to_string();
        } else if memory.wiki_base.is_empty() {
            memory.wiki_base = format!("{}/wiki", connection.site);
        }
        memory.progress.listed += listing.results.len() as u32;
        memory.progress.known += listing.results.len() as u32;
        // The next listing request travels while this batch is converted and indexed.
        match (&listing.links.next, run.phase) {
            (Some(next), _) if *next != link && !run.visited.contains(&hash_of(next)) => client.prefetch(next),
            (None, Phase::Pages) => client.prefetch(&listing_start(&space_id, "blogposts", with_bodies)),
            _ => {}
        }
        self.absorb(memory, run, kind, listing.results, with_bodies)?;
        match listing.links.next {
            Some(next) => {
                let fingerprint = hash_of(&next);
                if run.visited.contains(&fingerprint) || next == link {
                    return Err(RunFailure::Api(ApiError::Looping(next)));
                }
                run.visited.push(fingerprint);
                run.cursor = Some(next);
            }
            None => {
                run.cursor = None;
                run.visited.clear();
                run.phase = match run.phase {
                    Phase::Pages => Phase::BlogPosts,
                    _ if run.pending.is_empty() => Phase::Count,
                    _ => Phase::Fetch,
                };
            }
        }
        Ok(Advance::More)
    }

    /// Takes listed documents into the memory: indexes new and changed ones (when the
    /// bodies are at hand) or queues them for fetching, and marks everything seen.
    fn absorb(
        &self,
        memory: &mut Memory,
        run: &mut Run,
        kind: char,
        contents: Vec<Content>,
        with_bodies: bool,
    ) -> Result<(), RunFailure> {
        if contents.is_empty() {
            return Ok(());
        }
        let bucket = docs_bucket(&memory.id);
        let ids: Vec<String> = contents.iter().map(|c| c.id.clone()).collect();
        let existing = self.kv.get_many(&bucket, &ids)?;
        let mut writes = Vec::with_capacity(contents.len());
        let mut indexed = false;
        for (content, stored) in contents.into_iter().zip(existing) {
            let stored: Option<DocRecord> = stored.and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let changed =
                stored.as_ref().is_none_or(|r| r.version != content.version.number || r.title != content.title);
            let webui = content.links.webui.clone().unwrap_or_default();
            if changed && with_bodies {
                let chunks = self.chunks_of(&content);
                let count = chunks.len() as u32;
                self.index.replace_document(&memory.id, &content.id, chunks)?;
                indexed = true;
                memory.progress.updated += 1;
                let record = DocRecord {
                    kind,
                    title: content.title,
                    parent: content.parent_id,
                    version: content.version.number,
                    modified: content.version.created_at,
                    webui,
                    chunks: count,
                    seen: memory.generation,
                };
                writes.push((content.id, encode(&record)));
            } else if changed {
                run.pending.push(format!("{kind}:{}", content.id));
            } else if let Some(mut record) = stored {
                // Unchanged body; a move or a new link still updates the citation.
                record.parent = content.parent_id;
                record.webui = webui;
                record.seen = memory.generation;
                writes.push((content.id, encode(&record)));
            }
            memory.progress.done += u32::from(!changed || with_bodies);
        }
        if indexed {
            self.index.commit()?;
        }
        if !writes.is_empty() {
            self.kv.set_many(&bucket, writes)?;
        }
        Ok(())
    }

    fn chunks_of(&self, content: &Content) -> Vec<IndexChunk> {
        let converted = storage::convert(content.storage());
        let mut chunks: Vec<IndexChunk> = chunk(&converted, &self.chunking)
            .into_iter()
            .enumerate()
            .map(|(ordinal, c)| IndexChunk {
                ordinal: ordinal as u32,
                title: content.title.clone(),
                heading: c.headings.join(" › "),
                text: c.text,
            })
            .collect();
        if chunks.is_empty() {
            // A page with no text is still findable by its title.
            chunks.push(IndexChunk {
                ordinal: 0,
                title: content.title.clone(),
                heading: String::new(),
                text: content.title.clone(),
            });
        }
        chunks
    }

    fn fetch(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let kind = run.pending.first().and_then(|p| p.chars().next()).unwrap_or('p');
        let batch: Vec<String> = run
            .pending
            .iter()
            .filter(|p| p.starts_with(kind))
            .take(PAGE_LIMIT as usize)
            .map(|p| p[2..].to_string())
            .collect();
        let collection = if kind == 'b' { "blogposts" } else { "pages" };
        let mut link =
            Some(format!("/wiki/api/v2/{collection}?id={}&body-format=storage&limit={PAGE_LIMIT}", batch.join(",")));
        let mut visited = HashSet::new();
        while let Some(current) = link.take() {
            if !visited.insert(current.clone()) {
                return Err(RunFailure::Api(ApiError::Looping(current)));
            }
            let listing: Listing<Content> = fetch_listing(client, &current, |next| visited.contains(next))?;
            memory.progress.fetched += listing.results.len() as u32;
            let wanted: Vec<Content> = listing.results.into_iter().filter(|c| batch.contains(&c.id)).collect();
            self.absorb(memory, run, kind, wanted, true)?;
            link = listing.links.next;
        }
        let done: HashSet<String> = batch.into_iter().map(|id| format!("{kind}:{id}")).collect();
        run.pending.retain(|p| !done.contains(p));
        if run.pending.is_empty() {
            run.phase = Phase::Count;
        }
        Ok(Advance::More)
    }

    fn count(&self, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let bucket = docs_bucket(&memory.id);
        let keys = self.all_keys(&bucket)?;
        let (mut documents, mut chunks, mut stale) = (0u32, 0u32, Vec::new());
        for (batch, values) in keys.chunks(1000).map(|batch| (batch, self.kv.get_many(&bucket, batch))) {
            for (key, value) in batch.iter().zip(values?) {
                let Some(record) = value.and_then(|bytes| serde_json::from_slice::<DocRecord>(&bytes).ok()) else {
                    stale.push(key.clone());
                    continue;
                };
                if record.seen < memory.generation {
                    stale.push(key.clone());
                } else {
                    documents += 1;
                    chunks += record.chunks;
                }
            }
        }
        let total = documents + stale.len() as u32;
        if run.kind == RunKind::Sync && !run.allow_mass_delete && stale.len() > 2 && stale.len() * 2 > total as usize {
            return Err(RunFailure::Stop(format!(
                "this sync would remove {} of the {total} pages of space {}: nothing was removed; if that is right, sync again allowing mass deletion",
                stale.len(),
                memory.space_key
            )));
        }
        memory.documents = documents;
        memory.chunks = chunks;
        run.stale = stale;
        run.phase = Phase::Delete;
        Ok(Advance::More)
    }

    fn delete(&self, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let take = run.stale.len().min(DELETE_BATCH);
        let batch: Vec<String> = run.stale.drain(..take).collect();
        if !batch.is_empty() {
            self.index.remove_documents(&memory.id, &batch)?;
            self.index.commit()?;
            self.kv.delete_many(&docs_bucket(&memory.id), &batch)?;
            memory.progress.deleted += batch.len() as u32;
        }
        Ok(if run.stale.is_empty() { Advance::Finished } else { Advance::More })
    }

    // ----- answers -----------------------------------------------------------------

    /// The best passages for a question, with citations.
    pub fn retrieve(&self, question: &str, memory_ids: &[String], limit: u32) -> Result<Vec<Passage>, ConnectorError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(ConnectorError::InvalidInput("the question is empty".into()));
        }
        let limit = if limit == 0 { 5 } else { limit.min(1000) };
        let mut memories: HashMap<String, Memory> = HashMap::new();
        for id in memory_ids {
            memories.insert(id.clone(), self.memory(id)?);
        }
        let hits = self.index.query(question, memory_ids, limit)?;
        let mut passages = Vec::with_capacity(hits.len());
        let mut records: HashMap<(String, String), Option<DocRecord>> = HashMap::new();
        for hit in hits {
            if !memories.contains_key(&hit.memory_id) {
                match self.memory(&hit.memory_id) {
                    Ok(memory) => {
                        memories.insert(hit.memory_id.clone(), memory);
                    }
                    Err(_) => continue, // a memory being removed
                }
            }
            let memory = &memories[&hit.memory_id];
            let Some(record) = self.doc_record(&mut records, memory, &hit.document_id)? else { continue };
            let mut trail = vec![memory.space_name.clone()];
            trail.extend(self.ancestors(&mut records, memory, record.parent.as_deref())?);
            trail.push(record.title.clone());
            if !hit.heading.is_empty() {
                trail.push(hit.heading.clone());
            }
            passages.push(Passage {
                title: record.title.clone(),
                url: format!("{}{}", memory.wiki_base, record.webui),
                breadcrumb: trail.join(" › "),
                text: hit.text,
                score: hit.score,
                document_id: hit.document_id,
                document_version: record.version,
                modified_at: record.modified.clone(),
                source_key: memory.space_key.clone(),
                memory_id: memory.id.clone(),
            });
        }
        Ok(passages)
    }

    fn doc_record(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memory: &Memory,
        id: &str,
    ) -> Result<Option<DocRecord>, ConnectorError> {
        let key = (memory.id.clone(), id.to_string());
        if let Some(record) = cache.get(&key) {
            return Ok(record.clone());
        }
        let record = self.kv.get(&docs_bucket(&memory.id), id)?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        cache.insert(key, record.clone());
        Ok(record)
    }

    fn ancestors(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memory: &Memory,
        parent: Option<&str>,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut titles = Vec::new();
        let mut parent = parent.map(str::to_string);
        let mut seen = HashSet::new();
        while let Some(id) = parent.take() {
            if memory.homepage_id.as_deref() == Some(id.as_str()) || !seen.insert(id.clone()) || titles.len() >= 32 {
                break;
            }
            let Some(record) = self.doc_record(cache, memory, &id)? else { break };
            titles.push(record.title);
            parent = record.parent;
        }
        titles.reverse();
        Ok(titles)
    }
}

/// The first page of a space's `pages` or `blogposts` listing, with bodies for an ingest.
fn listing_start(space_id: &str, collection: &str, with_bodies: bool) -> String {
    let body = if with_bodies { "&body-format=storage" } else { "" };
    format!("/wiki/api/v2/spaces/{space_id}/{collection}?limit={PAGE_LIMIT}{body}")
}

/// GETs one page of a listing. A `next` link that points back into the listing
/// (`loops`) is re-asked twice before it is believed: a transient glitch heals, a real
/// loop is left to the caller to stop on.
fn fetch_listing<T: serde::de::DeserializeOwned>(
    client: &Client<'_>,
    link: &str,
    loops: impl Fn(&str) -> bool,
) -> Result<Listing<T>, ApiError> {
    let mut listing: Listing<T> = client.get_json(link)?;
    for _ in 0..2 {
        match listing.links.next.as_deref() {
            Some(next) if next == link || loops(next) => listing = client.get_json(link)?,
            _ => break,
        }
    }
    Ok(listing)
}

fn new_memory(id: String, connection: &Connection, key: &str) -> Memory {
    Memory {
        id,
        connection_id: connection.id.clone(),
        space_key: key.to_string(),
        space_id: None,
        space_name: key.to_string(),
        homepage_id: None,
        wiki_base: String::new(),
        status: MemoryStatus::InProgress,
        error: None,
        documents: 0,
        chunks: 0,
        progress: Progress::default(),
        synced_at: None,
        generation: 0,
        run: None,
    }
}

fn numeric_suffix(id: &str) -> u64 {
    id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

fn token_rejected(connection: &Connection) -> ConnectorError {
    ConnectorError::Unauthorized(format!(
        "token expired or revoked — reconnect: Confluence rejected the stored API token of {} on {} (connection {})",
        connection.email, connection.site, connection.id
    ))
}

fn space_not_found(key: &str, connection: &Connection) -> String {
    format!(
        "space key '{key}' is invalid or not accessible: it does not exist on {} or {} cannot see it",
        connection.site, connection.email
    )
}

fn network(error: ApiError) -> ConnectorError {
    match error {
        ApiError::Denied(detail) => ConnectorError::Denied(detail),
        ApiError::Unresolvable(detail) => ConnectorError::NotFound(detail),
        other => ConnectorError::Network(other.to_string()),
    }
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn space_keys() {
        for good in ["ENG", "sd", "A_1", "~5fc9e78d2730d800760becc4", "~557058:abc-def"] {
            assert!(check_space_key(good).is_ok(), "{good}");
        }
        for bad in ["", "~", "EN G", "ENG/../x", "ENG;", "<b>", "É"] {
            assert!(check_space_key(bad).is_err(), "{bad}");
        }
        assert!(check_space_key(&"A".repeat(300)).is_err());
    }

    #[test]
    fn url_encoding_of_keys() {
        assert_eq!(url_encode("~557058:ab"), "~557058%3Aab");
    }
}
