//! Outbound HTTP policy: the guest reaches only the origins granted to its instance.
//!
//! Grants come from the connector's own `required-origins` for a connection the
//! operator made; nothing else is reachable. Names are resolved once, before connecting:
//! requests to loopback, private, link-local or metadata addresses are refused unless
//! the origin itself was granted as a loopback test site (`--allow-loopback`), and the
//! connection goes to the addresses that were checked ([`super::send`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::capabilities::send::{self, DEFAULT_MAX_RESPONSE_BYTES, Resolver, SystemResolver};
use crate::profile::CallProfile;

/// Requests in flight to one site at most, across every instance of a host
/// (Atlassian reports 429s from about 20 parallel calls; 2–4 is their advice).
pub const MAX_IN_FLIGHT_PER_SITE: usize = 4;
/// Longest pause a `Retry-After` can impose on a site.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// How long a host may keep a slot of a site shared with other hosts ([`SiteLimiter::shared`])
/// before the others may take it: a host that dies mid-request gives its slots back then.
pub const SHARED_SLOT_TERM: Duration = Duration::from_secs(120);

/// Longest wait between two looks for a free shared slot.
const SHARED_SLOT_POLL: Duration = Duration::from_millis(200);

/// One rate limiter per site, shared by every instance of a host: it bounds requests in
/// flight, and after a 429 or 503 with `Retry-After` no request to that site starts
/// before the pause is over, whichever instance sends it. Hosts sharing a database share
/// both ([`SiteLimiter::shared`]).
#[derive(Clone, Default)]
pub struct SiteLimiter {
    sites: Arc<Mutex<HashMap<String, Arc<SiteState>>>>,
    shared: Option<SharedSites>,
}

impl std::fmt::Debug for SiteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteLimiter").field("shared", &self.shared.is_some()).finish_non_exhaustive()
    }
}

/// The slots and pauses of sites, kept as leases in the database the hosts share: slot
/// `n` of a site is the lease `site/<origin>/<n>` (held per request, for at most
/// [`SHARED_SLOT_TERM`]), and a pause the lease `site-pause/<origin>`, which lasts as long
/// as the pause.
#[derive(Clone)]
struct SharedSites {
    store: connector_store::Store,
    /// This host's lease holder name; each request holds its slot as `<holder>/<n>`.
    holder: Arc<str>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
struct SiteState {
    in_flight: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
}

/// A request's place among those in flight to its site; given back when dropped.
pub struct SiteSlot {
    _local: OwnedSemaphorePermit,
    /// The shared slot (its holder's leases and the slot's name), when hosts share sites.
    shared: Option<(connector_store::Leases, String)>,
}

impl Drop for SiteSlot {
    fn drop(&mut self) {
        let Some((leases, slot)) = self.shared.take() else { return };
        crate::blocking::in_background(move || {
            if let Err(error) = leases.release(&slot) {
                tracing::warn!(%slot, "cannot give a shared request slot back (it frees itself in {SHARED_SLOT_TERM:?}): {error}");
            }
        });
    }
}

impl SiteLimiter {
    /// A limiter whose bounds hold across every host on `store`'s database: at most
    /// [`MAX_IN_FLIGHT_PER_SITE`] requests in flight to a site from all of them together, and
    /// a `Retry-After` one host receives pauses them all. `holder` names this host.
    pub fn shared(store: connector_store::Store, holder: &str) -> SiteLimiter {
        SiteLimiter {
            sites: Arc::default(),
            shared: Some(SharedSites { store, holder: holder.into(), requests: Arc::default() }),
        }
    }

    fn site(&self, origin: &str) -> Arc<SiteState> {
        let mut sites = self.sites.lock().expect("limiter lock");
        sites
            .entry(origin.to_string())
            .or_insert_with(|| {
                Arc::new(SiteState {
                    in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_SITE)),
                    paused_until: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits for a slot for `origin` and for any pause to end.
    pub async fn acquire(&self, origin: &str) -> SiteSlot {
        let site = self.site(origin);
        let permit = site.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let until = *site.paused_until.lock().expect("pause lock");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        let shared = match &self.shared {
            Some(shared) => shared.acquire(origin).await,
            None => None,
        };
        SiteSlot { _local: permit, shared }
    }

    /// Notes a response: 429 and 503 with `Retry-After` pause the site.
    pub fn note(&self, origin: &str, status: u16, retry_after: Option<&str>) {
        if status != 429 && status != 503 {
            return;
        }
        let Some(seconds) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) else { return };
        let pause = Duration::from_secs(seconds).min(MAX_PAUSE);
        let until = Instant::now() + pause;
        let site = self.site(origin);
        let mut paused = site.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
        if let Some(shared) = &self.shared {
            shared.pause(origin, pause);
        }
    }
}

impl SharedSites {
    /// A slot of `origin` among those all hosts share, after any pause another host noted;
    /// `None` (this host's own bounds alone) when the database cannot be asked.
    async fn acquire(&self, origin: &str) -> Option<(connector_store::Leases, String)> {
        let request = self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let leases = self.store.leases(&format!("{}/{request}", self.holder));
        let slots: Vec<String> = (0..MAX_IN_FLIGHT_PER_SITE).map(|n| format!("site/{origin}/{n}")).collect();
        let pause = format!("site-pause/{origin}");
        let mut wait = Duration::from_millis(5);
        loop {
            let (asking, slots, pause) = (leases.clone(), slots.clone(), pause.clone());
            let answer = crate::blocking::off_runtime(move || {
                if let Some(left) = asking.time_left(&pause)? {
                    return Ok((Some(left), None));
                }
                Ok((None, asking.acquire_any(&slots, SHARED_SLOT_TERM)?))
            })
            .await;
            match answer {
                Ok((Some(paused), _)) => tokio::time::sleep(paused.min(MAX_PAUSE)).await,
                Ok((None, Some(slot))) => return Some((leases, slot)),
                Ok((None, None)) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(SHARED_SLOT_POLL);
                }
                Err(error) => {
                    tracing::warn!(%origin, "cannot share the site's request slots with the other hosts; this host's own limit alone holds: {error}");
                    return None;
                }
            }
        }
    }

    /// Pauses `origin` for every host for `pause` (a pause only grows).
    fn pause(&self, origin: &str, pause: Duration) {
        let leases = self.store.leases("retry-after");
        let name = format!("site-pause/{origin}");
        crate::blocking::in_background(move || {
            let longer = leases.time_left(&name).map(|left| left.is_none_or(|left| left < pause));
            if let Err(error) =
                longer.and_then(|longer| if longer { leases.acquire(&name, pause).map(drop) } else { Ok(()) })
            {
                tracing::warn!(site = %name, "cannot tell the other hosts about a Retry-After: {error}");
            }
        });
    }
}

/// The set of origins (`scheme://host:port`, explicit port) an instance may reach, the
/// host's shared per-site limiter, how names are resolved and which addresses and
/// response sizes are refused.
#[derive(Clone)]
pub struct OutboundPolicy {
    allowed: Arc<RwLock<BTreeSet<String>>>,
    limiter: SiteLimiter,
    profile: CallProfile,
    resolver: Arc<dyn Resolver>,
    forbidden: fn(IpAddr) -> bool,
    max_response_bytes: u64,
}

impl std::fmt::Debug for OutboundPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPolicy")
            .field("allowed", &self.allowed)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
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

/// Whether an origin's host matches one of the operator's site patterns: `*.example.net`
/// matches every subdomain of `example.net` (not the bare domain), any other pattern
/// matches that host exactly; case is ignored. No patterns: every host matches.
pub fn site_allowed(patterns: &[String], origin: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(host) = url::Url::parse(origin).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)) else {
        return false;
    };
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == pattern,
        }
    })
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
    /// A policy allowing exactly these origins, pacing requests with `limiter` and
    /// charging their waits to `profile`.
    pub fn new(
        origins: impl IntoIterator<Item = String>,
        limiter: SiteLimiter,
        profile: CallProfile,
    ) -> OutboundPolicy {
        let policy = OutboundPolicy {
            allowed: Arc::default(),
            limiter,
            profile,
            resolver: Arc::new(SystemResolver),
            forbidden: is_forbidden_address,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        };
        for origin in origins {
            policy.allow(&origin);
        }
        policy
    }

    /// Resolves names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> OutboundPolicy {
        self.resolver = resolver;
        self
    }

    /// Refuses the resolved addresses for which `forbidden` is true (default:
    /// [`is_forbidden_address`]).
    pub fn with_forbidden_addresses(mut self, forbidden: fn(IpAddr) -> bool) -> OutboundPolicy {
        self.forbidden = forbidden;
        self
    }

    /// Cuts response bodies off after `bytes` (default 64 MiB).
    pub fn with_max_response_bytes(mut self, bytes: u64) -> OutboundPolicy {
        self.max_response_bytes = bytes;
        self
    }

    /// Adds an origin.
    pub fn allow(&self, origin: &str) {
        if let Some(origin) = canonical_origin(origin) {
            self.allowed.write().expect("policy lock").insert(origin);
        }
    }

    /// Replaces the allowed origins; every holder of this policy (the live instance
    /// included) sees the change at once.
    pub fn reset(&self, origins: impl IntoIterator<Item = String>) {
        let mut allowed = self.allowed.write().expect("policy lock");
        allowed.clear();
        allowed.extend(origins.into_iter().filter_map(|origin| canonical_origin(&origin)));
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
        let origin = canonical_origin(&url).unwrap_or_default();
        let loopback_grant = is_loopback_origin(&origin);
        let limiter = self.limiter.clone();
        let profile = self.profile.clone();
        let resolver = self.resolver.clone();
        let forbidden = self.forbidden;
        let max_response_bytes = self.max_response_bytes;
        let host = request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port =
            request.uri().port_u16().unwrap_or(if request.uri().scheme_str() == Some("http") { 80 } else { 443 });
        Box::new(async move {
            let _waiting = profile.http_waiting();
            let addresses: Vec<SocketAddr> =
                resolver.resolve(host.clone(), port).await.map_err(|_| Error::DestinationNotFound)?;
            let refused = if loopback_grant {
                // A loopback test site stays on loopback, whatever its name resolves to.
                !addresses.iter().all(|a| a.ip().is_loopback())
            } else {
                addresses.iter().any(|a| forbidden(a.ip()))
            };
            if addresses.is_empty() {
                return Err(Error::DestinationNotFound);
            }
            if refused {
                tracing::warn!(target: "connector_host::http", %url, "denied: resolves to a private or loopback address");
                return Err(Error::DestinationIpProhibited);
            }
            use http_body_util::BodyExt;
            let _slot = limiter.acquire(&origin).await;
            let (response, io) = send::send_to(&addresses, &host, request, options, max_response_bytes).await?;
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
            limiter.note(&origin, response.status().as_u16(), retry_after);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_with_explicit_ports() {
        let policy = OutboundPolicy::new(
            ["https://Acme.atlassian.net".to_string(), "http://127.0.0.1:8080".to_string()],
            SiteLimiter::default(),
            CallProfile::default(),
        );
        assert!(policy.allows("https://acme.atlassian.net:443/wiki/api/v2/spaces"));
        assert!(policy.allows("http://127.0.0.1:8080/wiki"));
        assert!(!policy.allows("http://acme.atlassian.net/wiki"), "scheme matters");
        assert!(!policy.allows("https://acme.atlassian.net.evil.example/"));
        assert!(!policy.allows("http://127.0.0.1:8081/"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_pauses_the_whole_site_and_only_that_site() {
        let limiter = SiteLimiter::default();
        let site = "https://acme.atlassian.net:443";
        drop(limiter.acquire(site).await);
        limiter.note(site, 429, Some("7"));
        limiter.note(site, 503, Some("2")); // a shorter pause does not cut the longer one
        limiter.note(site, 500, Some("600")); // only 429/503 pause
        let started = Instant::now();
        drop(limiter.acquire("https://other.atlassian.net:443").await);
        assert_eq!(started.elapsed(), Duration::ZERO, "other sites are not paused");
        drop(limiter.acquire(site).await);
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        limiter.note(site, 429, Some("100000"));
        let started = Instant::now();
        drop(limiter.acquire(site).await);
        assert_eq!(started.elapsed(), MAX_PAUSE, "pauses are clamped");
    }

    #[tokio::test]
    async fn in_flight_requests_per_site_are_bounded() {
        let limiter = SiteLimiter::default();
        let mut held = Vec::new();
        for _ in 0..MAX_IN_FLIGHT_PER_SITE {
            held.push(limiter.acquire("https://a:443").await);
        }
        let blocked = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("https://a:443")).await;
        assert!(blocked.is_err(), "a fifth request waits");
        held.pop();
        assert!(tokio::time::timeout(Duration::from_millis(50), limiter.acquire("https://a:443")).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn hosts_sharing_a_database_share_the_bounds_of_a_site() {
        let server =
            pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
        let url = server.database().unwrap();
        let store =
            |url: String| std::thread::spawn(move || connector_store::Store::connect(&url).unwrap()).join().unwrap();
        let (one, other) = (
            SiteLimiter::shared(store(url.clone()), "host-one"),
            SiteLimiter::shared(store(url.clone()), "host-other"),
        );
        let site = "https://acme.atlassian.net:443";
        let mut held = Vec::new();
        for n in 0..MAX_IN_FLIGHT_PER_SITE {
            held.push([&one, &other][n % 2].acquire(site).await);
        }
        for limiter in [&one, &other] {
            let blocked = tokio::time::timeout(Duration::from_millis(300), limiter.acquire(site)).await;
            assert!(blocked.is_err(), "a fifth request waits, whichever host sends it");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), one.acquire("https://other.example:443")).await.is_ok(),
            "another site has slots of its own"
        );
        held.pop();
        let freed = tokio::time::timeout(Duration::from_secs(2), other.acquire(site)).await;
        assert!(freed.is_ok(), "a slot given back by one host serves the other");
        drop((held, freed));

        // A Retry-After one host receives pauses the other.
        one.note(site, 429, Some("2"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        drop(other.acquire(site).await);
        assert!(started.elapsed() >= Duration::from_millis(1500), "paused: {:?}", started.elapsed());
    }

    /// A DNS server that answers each lookup with the next address of its list.
    struct Rebinding(Mutex<Vec<SocketAddr>>);

    impl Resolver for Rebinding {
        fn resolve(&self, _host: String, _port: u16) -> send::Resolution {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { Ok(vec![next]) })
        }
    }

    /// A one-response-per-connection HTTP server; counts its connections.
    async fn server(ip: &str, body: Vec<u8>) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            }
        });
        (address, connections)
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        use http_body_util::BodyExt;
        let empty = http_body_util::Empty::<bytes::Bytes>::new().map_err(|never| match never {}).boxed_unsync();
        http::Request::get(url).body(empty).unwrap()
    }

    async fn fetch(policy: &mut OutboundPolicy, url: &str) -> Result<Vec<u8>, Error> {
        use http_body_util::BodyExt;
        let sent = Box::into_pin(policy.send_request(get(url), None, Box::new(async { Ok(()) })));
        let (response, _io) = sent.await?;
        Ok(response.into_body().collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn a_rebinding_name_is_connected_only_where_it_was_checked() {
        // 127.0.0.1 plays the public address, 127.0.0.2 the private one.
        let (public, public_hits) = server("127.0.0.1", b"ok".to_vec()).await;
        let (private, private_hits) = server("127.0.0.2", b"secret".to_vec()).await;
        let mut policy = OutboundPolicy::new(
            ["http://rebind.example:8080".to_string()],
            SiteLimiter::default(),
            CallProfile::default(),
        )
        .with_resolver(Arc::new(Rebinding(Mutex::new(vec![public, private]))))
        .with_forbidden_addresses(|ip| ip == IpAddr::from([127, 0, 0, 2]));

        assert_eq!(fetch(&mut policy, "http://rebind.example:8080/wiki").await.unwrap(), b"ok");
        let second = fetch(&mut policy, "http://rebind.example:8080/wiki").await;
        assert!(matches!(second, Err(Error::DestinationIpProhibited)), "{second:?}");
        assert_eq!(public_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(private_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "never the second answer");
    }

    #[tokio::test]
    async fn a_response_larger_than_the_limit_is_cut_off_with_an_error() {
        let (address, _) = server("127.0.0.1", vec![b'x'; 100_000]).await;
        let origin = format!("http://{address}");
        let mut policy = OutboundPolicy::new([origin.clone()], SiteLimiter::default(), CallProfile::default())
            .with_max_response_bytes(10_000);
        let body = fetch(&mut policy, &format!("{origin}/big")).await;
        assert!(matches!(body, Err(Error::HttpResponseBodySize(Some(10_000)))), "{:?}", body.map(|b| b.len()));
        let mut roomy = OutboundPolicy::new([origin.clone()], SiteLimiter::default(), CallProfile::default());
        assert_eq!(fetch(&mut roomy, &format!("{origin}/big")).await.unwrap().len(), 100_000);
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
