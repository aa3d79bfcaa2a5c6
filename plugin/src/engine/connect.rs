//! Connections: validating the site, detecting the kind of token, proving scopes.

use super::*;

/// The fields `connect` takes.
pub fn config_fields() -> Vec<ConfigField> {
    let field = |name: &str, label: &str, help: &str, secret: bool, required: bool| ConfigField {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        secret,
        required,
        operator_only: false,
    };
    vec![
        field(
            "site",
            "Site URL",
            "Your Atlassian cloud URL, e.g. https://your-company.atlassian.net (any page URL of the site works too)",
            false,
            true,
        ),
        field(
            "token",
            "API token",
            "Classic or scoped API token from id.atlassian.com (scoped: read:space, read:page and read:content-details for Confluence)",
            true,
            true,
        ),
        field(
            "email",
            "Atlassian-account e-mail",
            "The e-mail of the Atlassian account the API token belongs to",
            false,
            true,
        ),
        ConfigField {
            operator_only: true,
            ..field(
                "attachment-max-mb",
                "Largest attachment (MB)",
                "Attachments larger than this are not indexed (default 20; 0 indexes none)",
                false,
                false,
            )
        },
        ConfigField {
            operator_only: true,
            ..field(
                "attachment-max-chars",
                "Most text per attachment (characters)",
                "Attachments with more text than this are not indexed (default 200000)",
                false,
                false,
            )
        },
        ConfigField {
            operator_only: true,
            ..field(
                "gateway",
                "API gateway origin",
                "Override of https://api.atlassian.com for scoped tokens (tests)",
                false,
                false,
            )
        },
    ]
}

/// An origin the configuration may need; plain http only for a loopback test site.
fn described(url: String, purpose: &str, conditional: bool) -> Origin {
    Origin { insecure: url.starts_with("http://"), url, purpose: purpose.into(), conditional }
}

struct ConnectConfig {
    site: Site,
    options: SiteOptions,
    email: String,
    token: String,
    attachment_max_bytes: u64,
    attachment_max_chars: u32,
}

/// A whole number field, or its default when not given.
fn number(config: &[(String, String)], name: &str, default: u64, max: u64) -> Result<u64, ConnectorError> {
    match config_value(config, name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => value.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            ConnectorError::InvalidInput(format!("{name} must be a whole number from 0 to {max}, not '{value}'"))
        }),
    }
}

fn config_value<'c>(config: &'c [(String, String)], name: &str) -> Option<&'c str> {
    config.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse_site(config: &[(String, String)]) -> Result<(Site, SiteOptions), ConnectorError> {
    for (key, _) in config {
        if !config_fields().iter().any(|f| &f.name == key) {
            return Err(ConnectorError::InvalidInput(format!(
                "unknown configuration field '{key}' (expected: site, email, token, attachment-max-mb, attachment-max-chars, gateway)"
            )));
        }
    }
    // Whether a loopback site may be reached is the host's policy (see the WIT): the
    // connector marks such an origin insecure and the host grants it or refuses.
    let mut options = SiteOptions { allow_loopback: true, ..SiteOptions::default() };
    if let Some(gateway) = config_value(config, "gateway").map(str::trim).filter(|g| !g.is_empty()) {
        let origin = site::origin_of(gateway)
            .filter(|o| o.starts_with("https://") || (o.starts_with("http://") && site::is_loopback_origin(o)))
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
    let attachment_max_mb = number(config, "attachment-max-mb", default_attachment_max_bytes() / 1_000_000, 1_000)?;
    let attachment_max_chars =
        number(config, "attachment-max-chars", default_attachment_max_chars().into(), 10_000_000)?;
    Ok(ConnectConfig {
        site,
        options,
        email,
        token,
        attachment_max_bytes: attachment_max_mb * 1_000_000,
        attachment_max_chars: attachment_max_chars as u32,
    })
}

impl Engine<'_> {
    /// The origins the configuration may need: the site; the API gateway where a scoped
    /// token would go (conditional: `connect` finds out which kind the token is); and the
    /// media service attachment downloads redirect to (conditional: a host may refuse it).
    pub fn required_origins(&self, config: &[(String, String)]) -> Result<Vec<Origin>, ConnectorError> {
        let (site, options) = parse_site(config)?;
        Ok(match site {
            Site::Cloud { origin } if origin == options.gateway_origin => {
                vec![described(origin, "the Confluence site and its API gateway", false)]
            }
            Site::Cloud { origin } => vec![
                described(origin, "the Confluence site", false),
                described(options.gateway_origin, "the Atlassian API gateway (scoped API tokens only)", true),
            ],
            Site::Gateway { origin, .. } => vec![described(origin, "the Atlassian API gateway", false)],
        }
        .into_iter()
        .chain([described(
            MEDIA_ORIGIN.to_string(),
            "Confluence's media service, where attachment downloads redirect (attachments only)",
            true,
        )])
        .collect())
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
            attachment_max_bytes: config.attachment_max_bytes,
            attachment_max_chars: config.attachment_max_chars,
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
                    // Say what happened rather than blaming the credentials.
                    Err(ConnectorError::Network(cause)) => Err(ConnectorError::Network(format!(
                        "{origin} refused the e-mail and API token as a classic token, and the API gateway {} \
                         (where scoped tokens work) could not be reached: {cause}",
                        config.options.gateway_origin
                    ))),
                    Err(ConnectorError::Denied(cause)) => Err(ConnectorError::Denied(format!(
                        "{origin} refused the e-mail and API token as a classic token, and the host does not let the \
                         connector reach the API gateway {} (where scoped tokens work): {cause}",
                        config.options.gateway_origin
                    ))),
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
}
