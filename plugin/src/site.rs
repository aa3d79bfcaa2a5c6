//! Site URL normalisation: every form a person pastes maps to one canonical site.
//!
//! People paste `acme.atlassian.net`, `https://acme.atlassian.net/wiki/`, a page URL,
//! `HTTP://ACME.Atlassian.NET`, or the scoped-token gateway form
//! `https://api.atlassian.com/ex/confluence/{cloudId}`. All of them must reach the same
//! REST base, and none of them may send the token anywhere unexpected (plain `http`,
//! user-info tricks, IP literals, private addresses).
//!
//! ```
//! use confluence_connector::site::{normalize, Site, SiteOptions};
//! let site = normalize("ACME.atlassian.net/wiki/spaces/ENG/overview", &SiteOptions::default()).unwrap();
//! assert_eq!(site, Site::Cloud { origin: "https://acme.atlassian.net".into() });
//! ```

use std::net::IpAddr;

/// The public Atlassian API gateway that scoped tokens must use.
pub const ATLASSIAN_GATEWAY: &str = "https://api.atlassian.com";

/// Where a connection's REST calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// A Confluence Cloud site (or custom domain), e.g. `https://acme.atlassian.net`.
    Cloud {
        /// Scheme, host and port; no path.
        origin: String,
    },
    /// The API gateway for one cloud site: `{origin}/ex/confluence/{cloud_id}`.
    Gateway {
        /// Gateway origin, normally [`ATLASSIAN_GATEWAY`].
        origin: String,
        /// The site's cloud id.
        cloud_id: String,
    },
}

impl Site {
    /// The base that REST paths (`/wiki/...`) are appended to.
    pub fn api_base(&self) -> String {
        match self {
            Site::Cloud { origin } => origin.clone(),
            Site::Gateway { origin, cloud_id } => format!("{origin}/ex/confluence/{cloud_id}"),
        }
    }
}

/// Knobs of [`normalize`].
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Accept `http://` sites on loopback addresses (tests and the demo). The connector
    /// always does, marking their origin insecure: whether one is reached is the host's
    /// loopback policy.
    pub allow_loopback: bool,
    /// Origin of the API gateway (tests point it at a fake).
    pub gateway_origin: String,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions { allow_loopback: false, gateway_origin: ATLASSIAN_GATEWAY.to_string() }
    }
}

/// Why a site URL was refused; the message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    /// Nothing was given.
    #[error("the site URL is empty: give your Atlassian cloud URL, e.g. https://your-company.atlassian.net")]
    Empty,
    /// The text is not a URL.
    #[error("'{0}' is not a site URL: give your Atlassian cloud URL, e.g. https://your-company.atlassian.net")]
    Malformed(String),
    /// A scheme other than https (or http on loopback).
    #[error("unsupported URL scheme '{0}': Confluence Cloud sites use https://")]
    Scheme(String),
    /// `user:password@` in the URL.
    #[error("remove the user name and password from the site URL; give the e-mail and API token separately")]
    UserInfo,
    /// An IP literal or a loopback/private host.
    #[error(
        "'{0}' is an IP address or a local/private host, not a Confluence Cloud site (use the site's name, e.g. your-company.atlassian.net)"
    )]
    Address(String),
    /// The gateway form without a cloud id.
    #[error("the gateway URL must look like {0}/ex/confluence/<cloudId>")]
    Gateway(String),
}

/// Normalises what a person typed into a [`Site`].
pub fn normalize(input: &str, options: &SiteOptions) -> Result<Site, SiteError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(SiteError::Empty);
    }
    if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(SiteError::Malformed(printable(trimmed)));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else if is_bare_subdomain(trimmed) {
        format!("https://{}.atlassian.net", trimmed.to_ascii_lowercase())
    } else {
        let scheme = if options.allow_loopback && is_loopback_text(trimmed) { "http" } else { "https" };
        format!("{scheme}://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| SiteError::Malformed(printable(trimmed)))?;
    let scheme = url.scheme().to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(SiteError::Scheme(scheme));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SiteError::UserInfo);
    }
    let host = match url.host() {
        Some(host) => host,
        None => return Err(SiteError::Malformed(printable(trimmed))),
    };
    let loopback = match &host {
        url::Host::Domain(name) => is_loopback_name(name),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    };
    let host_text = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match &host {
        _ if loopback && options.allow_loopback => {}
        url::Host::Domain(name) if !loopback && name.contains('.') => {}
        _ => return Err(SiteError::Address(host_text)),
    }
    // Cloud is HTTPS-only: never send a token over plain http, except to loopback in tests.
    let scheme = if loopback && options.allow_loopback { scheme } else { "https".to_string() };
    let origin = match url.port() {
        Some(port) => format!("{scheme}://{host_text}:{port}"),
        None => format!("{scheme}://{host_text}"),
    };

    let gateway = options.gateway_origin.trim_end_matches('/').to_ascii_lowercase();
    let is_gateway_host = origin == gateway || host_text == "api.atlassian.com";
    let mut segments = url.path_segments().into_iter().flatten().filter(|s| !s.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (Some("ex"), Some("confluence"), Some(cloud_id)) if is_gateway_host && is_cloud_id(cloud_id) => {
            return Ok(Site::Gateway { origin, cloud_id: cloud_id.to_string() });
        }
        _ if host_text == "api.atlassian.com" => return Err(SiteError::Gateway(origin)),
        _ => {}
    }
    Ok(Site::Cloud { origin })
}

fn is_bare_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && !text.contains('.')
        && !text.contains(':')
        && !text.contains('/')
        && !text.eq_ignore_ascii_case("localhost")
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !text.chars().all(|c| c.is_ascii_digit())
}

/// Whether an origin (`scheme://host[:port]`) is on a loopback host.
pub fn is_loopback_origin(origin: &str) -> bool {
    origin.split_once("://").is_some_and(|(_, rest)| is_loopback_text(rest))
}

fn is_loopback_text(text: &str) -> bool {
    let authority = text.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    is_loopback_name(host) || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn is_cloud_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn printable(text: &str) -> String {
    let shown: String = text.chars().take(80).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    shown
}

/// The origin (`scheme://host[:port]`) of an absolute URL, lower-cased.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(input: &str) -> Result<Site, SiteError> {
        normalize(input, &SiteOptions::default())
    }

    fn acme() -> Site {
        Site::Cloud { origin: "https://acme.atlassian.net".into() }
    }

    #[test]
    fn every_pasted_form_maps_to_the_site_origin() {
        for input in [
            "https://acme.atlassian.net",
            "https://acme.atlassian.net/",
            "https://acme.atlassian.net/wiki",
            "https://acme.atlassian.net/wiki/",
            "https://acme.atlassian.net/wiki/spaces/ENG/pages/123456/Title+Here",
            "https://acme.atlassian.net/wiki/spaces/ENG/overview",
            "https://acme.atlassian.net/wiki/display/ENG/Title",
            "https://acme.atlassian.net/wiki/x/AYBfAg",
            "acme.atlassian.net",
            "acme.atlassian.net/wiki",
            "http://acme.atlassian.net",
            "acme",
            "https://ACME.Atlassian.NET",
            "  https://acme.atlassian.net/wiki?x=1#frag  ",
        ] {
            assert_eq!(cloud(input), Ok(acme()), "{input}");
        }
    }

    #[test]
    fn custom_domains_and_ports_are_kept() {
        assert_eq!(cloud("https://wiki.acme.com/wiki"), Ok(Site::Cloud { origin: "https://wiki.acme.com".into() }));
        assert_eq!(cloud("wiki.acme.com:8443"), Ok(Site::Cloud { origin: "https://wiki.acme.com:8443".into() }));
    }

    #[test]
    fn gateway_form_is_recognised() {
        let site = cloud("https://api.atlassian.com/ex/confluence/0a1b-2c3d/wiki/api/v2/spaces").unwrap();
        assert_eq!(site, Site::Gateway { origin: ATLASSIAN_GATEWAY.into(), cloud_id: "0a1b-2c3d".into() });
        assert_eq!(site.api_base(), "https://api.atlassian.com/ex/confluence/0a1b-2c3d");
        assert!(matches!(cloud("https://api.atlassian.com/"), Err(SiteError::Gateway(_))));
    }

    #[test]
    fn refuses_what_is_not_a_cloud_site() {
        assert_eq!(cloud(""), Err(SiteError::Empty));
        assert_eq!(cloud("   "), Err(SiteError::Empty));
        assert!(matches!(cloud("ftp://acme.atlassian.net"), Err(SiteError::Scheme(_))));
        assert!(matches!(cloud("javascript:alert(1)"), Err(SiteError::Malformed(_)) | Err(SiteError::Scheme(_))));
        assert_eq!(cloud("https://user:pw@acme.atlassian.net"), Err(SiteError::UserInfo));
        assert!(matches!(cloud("https://acme .atlassian.net"), Err(SiteError::Malformed(_))));
        assert!(matches!(cloud("https://acme.atlassian.net\n/wiki"), Err(SiteError::Malformed(_))));
        for address in [
            "http://127.0.0.1:8080",
            "localhost",
            "https://10.0.0.5",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/wiki",
            "https://192.168.1.20",
            "https://intranet",
            "2130706433",
        ] {
            assert!(matches!(cloud(address), Err(SiteError::Address(_))), "{address}: {:?}", cloud(address));
        }
    }

    #[test]
    fn loopback_is_accepted_only_when_allowed() {
        let options = SiteOptions { allow_loopback: true, gateway_origin: "http://127.0.0.1:9".into() };
        assert_eq!(
            normalize("http://127.0.0.1:8080/wiki/spaces/DOCS", &options),
            Ok(Site::Cloud { origin: "http://127.0.0.1:8080".into() })
        );
        assert_eq!(normalize("127.0.0.1:8080", &options), Ok(Site::Cloud { origin: "http://127.0.0.1:8080".into() }));
        assert_eq!(normalize("LOCALHOST:81/wiki/", &options), Ok(Site::Cloud { origin: "http://localhost:81".into() }));
        assert_eq!(
            normalize("http://127.0.0.1:9/ex/confluence/abc/wiki", &options),
            Ok(Site::Gateway { origin: "http://127.0.0.1:9".into(), cloud_id: "abc".into() })
        );
        assert!(matches!(normalize("https://10.1.2.3", &options), Err(SiteError::Address(_))));
        // A site that shares its origin with the gateway (the fake serves both) stays a site.
        assert_eq!(
            normalize("http://127.0.0.1:9/wiki", &options),
            Ok(Site::Cloud { origin: "http://127.0.0.1:9".into() })
        );
    }

    #[test]
    fn origin_of_absolute_urls() {
        assert_eq!(origin_of("HTTP://Example.COM:81/x").as_deref(), Some("http://example.com:81"));
        assert_eq!(origin_of("/relative"), None);
    }
}
