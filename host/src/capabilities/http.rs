//! Outbound HTTP policy: the guest reaches only the origins granted to its instance.
//!
//! Grants come from the connector's own `required-origins` for a connection the
//! operator made; nothing else is reachable. Names are resolved before connecting and
//! requests to loopback, private, link-local or metadata addresses are refused unless
//! the origin itself was granted as a loopback test site (`--allow-loopback`).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The set of origins (`scheme://host:port`, explicit port) an instance may reach.
#[derive(Clone, Default, Debug)]
pub struct OutboundPolicy {
    allowed: Arc<RwLock<BTreeSet<String>>>,
}

/// Canonical `scheme://host:port` of an origin or URL, or `None` if it has no host.
pub fn canonical_origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let port = parsed.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", parsed.scheme()))
}

/// Whether an origin names a loopback host.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Ok(parsed) = url::Url::parse(origin) else { return false };
    match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Addresses no connector may reach through a public name (SSRF, DNS rebinding).
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || a == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_forbidden_address(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link local
            }
        },
    }
}

impl OutboundPolicy {
    /// A policy allowing exactly these origins.
    pub fn new(origins: impl IntoIterator<Item = String>) -> OutboundPolicy {
        let policy = OutboundPolicy::default();
        for origin in origins {
            policy.allow(&origin);
        }
        policy
    }

    /// Adds an origin.
    pub fn allow(&self, origin: &str) {
        if let Some(origin) = canonical_origin(origin) {
            self.allowed.write().expect("policy lock").insert(origin);
        }
    }

    /// Whether a URL's origin is allowed.
    pub fn allows(&self, url: &str) -> bool {
        canonical_origin(url).is_some_and(|o| self.allowed.read().expect("policy lock").contains(&o))
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>,
            > + Send,
    > {
        let url = request.uri().to_string();
        if !self.allows(&url) {
            tracing::warn!(target: "connector_host::http", %url, "denied: origin not granted to this instance");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let loopback_grant = canonical_origin(&url).is_some_and(|o| is_loopback_origin(&o));
        let host = request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port =
            request.uri().port_u16().unwrap_or(if request.uri().scheme_str() == Some("http") { 80 } else { 443 });
        Box::new(async move {
            if !loopback_grant {
                let addresses =
                    tokio::net::lookup_host((host.as_str(), port)).await.map_err(|_| Error::DestinationNotFound)?;
                let addresses: Vec<_> = addresses.collect();
                if addresses.is_empty() || addresses.iter().any(|a| is_forbidden_address(a.ip())) {
                    tracing::warn!(target: "connector_host::http", %url, "denied: resolves to a private or loopback address");
                    return Err(Error::DestinationIpProhibited);
                }
            }
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_with_explicit_ports() {
        let policy =
            OutboundPolicy::new(["https://Acme.atlassian.net".to_string(), "http://127.0.0.1:8080".to_string()]);
        assert!(policy.allows("https://acme.atlassian.net:443/wiki/api/v2/spaces"));
        assert!(policy.allows("http://127.0.0.1:8080/wiki"));
        assert!(!policy.allows("http://acme.atlassian.net/wiki"), "scheme matters");
        assert!(!policy.allows("https://acme.atlassian.net.evil.example/"));
        assert!(!policy.allows("http://127.0.0.1:8081/"));
    }

    #[test]
    fn private_and_metadata_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["104.192.141.1", "2606:4700::1111"] {
            assert!(!is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
