//! Fault injection observed by raw TCP clients.

mod client;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use client::{basic, get};
use fake_confluence::{ALL_SCOPES, FakeConfluence, Fault, FaultPlan, TokenKind};

const EMAIL: &str = "alice@example.com";
const TOKEN: &str = "classic-token-1";
const SCOPED: &str = "scoped-token-1";

fn site() -> (FakeConfluence, String) {
    let s = FakeConfluence::start().expect("start");
    s.add_user(EMAIL, TOKEN, TokenKind::Classic);
    s.add_user(EMAIL, SCOPED, TokenKind::Scoped { scopes: ALL_SCOPES.iter().map(|x| x.to_string()).collect() });
    let space = s.add_space("ENG", "Engineering");
    for i in 0..5 {
        s.add_page("ENG", None, &format!("Page {i}"), "<p>Hello there.</p>");
    }
    (s, space)
}

fn only(fault: Fault) -> Option<FaultPlan> {
    Some(FaultPlan { seed: 1, rate: 1.0, faults: vec![fault], endpoints: None })
}

/// Sends a GET and returns everything the server sent before closing, or the read error.
fn raw(site: &FakeConfluence, path: &str, timeout: Option<Duration>) -> (Vec<u8>, Option<ErrorKind>) {
    let mut s = TcpStream::connect(("127.0.0.1", site.port())).expect("connect");
    s.set_read_timeout(timeout.or(Some(Duration::from_secs(10)))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
        basic(EMAIL, TOKEN)
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return (buf, None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return (buf, Some(e.kind())),
        }
    }
}

fn head_and_body(raw: &[u8]) -> (String, &[u8]) {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("complete header block");
    (String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(), &raw[split + 4..])
}

fn pages_path(space: &str) -> String {
    format!("/wiki/api/v2/spaces/{space}/pages?limit=2")
}

#[test]
fn rate_limited_is_429_with_json_and_retry_after() {
    let (s, space) = site();
    let url = format!("{}{}", s.origin(), pages_path(&space));
    let auth = basic(EMAIL, TOKEN);
    s.set_faults(only(Fault::RateLimited { retry_after_secs: Some(3) }));
    let r = get(&url, Some(&auth));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("3"));
    assert_eq!(r.json()["statusCode"], 429);
    assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
    s.set_faults(only(Fault::RateLimited { retry_after_secs: None }));
    let r = get(&url, Some(&auth));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), None);
    assert_eq!(s.faults_injected(), 1);
    assert_eq!(s.requests().last().unwrap().status, 429);
}

#[test]
fn unavailable_and_server_errors_have_html_or_empty_bodies() {
    let (s, space) = site();
    let url = format!("{}{}", s.origin(), pages_path(&space));
    let auth = basic(EMAIL, TOKEN);
    s.set_faults(only(Fault::Unavailable { retry_after_secs: Some(2) }));
    let mut kinds = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = get(&url, Some(&auth));
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("2"));
        assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
        kinds.insert(r.body.is_empty());
    }
    assert_eq!(kinds.len(), 2, "both HTML and empty bodies occur");
    for code in [500, 502, 504] {
        s.set_faults(only(Fault::ServerError(code)));
        let r = get(&url, Some(&auth));
        assert_eq!(r.status, code);
        assert!(r.body.is_empty() || r.body.contains("<html>"));
        assert_eq!(s.requests().last().unwrap().status, code);
    }
}

#[test]
fn reset_closes_the_connection_without_a_response() {
    let (s, space) = site();
    s.set_faults(only(Fault::Reset));
    for _ in 0..3 {
        let (bytes, err) = raw(&s, &pages_path(&space), None);
        assert!(bytes.is_empty(), "no response bytes expected, got {:?}", String::from_utf8_lossy(&bytes));
        if let Some(k) = err {
            assert!(matches!(k, ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted), "{k:?}");
        }
    }
    assert_eq!(s.faults_injected(), 3);
    assert!(s.requests().iter().all(|r| r.status == 0));
    // The server keeps serving afterwards.
    s.set_faults(None);
    let r = get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&basic(EMAIL, TOKEN)));
    assert_eq!(r.status, 200);
}

#[test]
fn truncated_sends_half_the_announced_body_then_closes() {
    let (s, space) = site();
    s.set_faults(only(Fault::Truncated));
    let (bytes, _err) = raw(&s, &pages_path(&space), None);
    let (head, body) = head_and_body(&bytes);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let announced: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).expect("content-length").trim().parse().unwrap();
    assert!(announced > 100);
    assert_eq!(body.len(), announced / 2, "half the body, then EOF");
    assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
    assert_eq!(s.requests().last().unwrap().status, 200);
}

#[test]
fn slow_answers_correctly_after_the_delay() {
    let (s, space) = site();
    s.set_faults(only(Fault::Slow(Duration::from_millis(600))));
    let (bytes, err) = raw(&s, &pages_path(&space), Some(Duration::from_millis(150)));
    assert!(bytes.is_empty());
    assert!(matches!(err, Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)));
    let t = Instant::now();
    let r = get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&basic(EMAIL, TOKEN)));
    assert!(t.elapsed() >= Duration::from_millis(600));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 2);
}

#[test]
fn invalid_json_is_200_with_a_non_json_body() {
    let (s, space) = site();
    s.set_faults(only(Fault::InvalidJson));
    let r = get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&basic(EMAIL, TOKEN)));
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().contains("json"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
}

#[test]
fn looping_next_points_at_the_request_itself() {
    let (s, space) = site();
    s.set_faults(only(Fault::LoopingNext));
    let auth = basic(EMAIL, TOKEN);
    for path in [
        pages_path(&space),
        format!("{}&sort=-title&body-format=storage", pages_path(&space)),
        "/wiki/api/v2/spaces?keys=ENG".to_string(),
    ] {
        let r = get(&format!("{}{path}", s.origin()), Some(&auth));
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["_links"]["next"], path.as_str());
        assert!(r.header("Link").unwrap().starts_with(&format!("<{path}>")));
    }
    // Following the link gives the same page again.
    let first = get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&auth)).json();
    let next = first["_links"]["next"].as_str().unwrap().to_string();
    let second = get(&format!("{}{next}", s.origin()), Some(&auth)).json();
    assert_eq!(first["results"], second["results"]);
    // Through the gateway: the same site-relative form as real `next` links.
    let scoped = basic(EMAIL, SCOPED);
    let r = get(&format!("{}/wiki/api/v2/spaces/{space}/pages?limit=1", s.gateway_base()), Some(&scoped));
    assert_eq!(r.json()["_links"]["next"], format!("/wiki/api/v2/spaces/{space}/pages?limit=1"));
    // Not a list: 500 instead.
    let home = s.homepage_id("ENG").unwrap();
    let r = get(&format!("{}/wiki/api/v2/pages/{home}", s.origin()), Some(&auth));
    assert_eq!(r.status, 500);
}

/// Statuses of `n` list requests under `plan` on a fresh site.
fn run(plan: FaultPlan, n: usize) -> (Vec<u16>, u64) {
    let (s, space) = site();
    s.set_faults(Some(plan));
    let auth = basic(EMAIL, TOKEN);
    let statuses =
        (0..n).map(|_| get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&auth)).status).collect::<Vec<_>>();
    let recorded: Vec<u16> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(recorded, statuses);
    (statuses, s.faults_injected())
}

#[test]
fn same_seed_same_faults_and_rate_zero_none() {
    let plan = |seed| FaultPlan {
        seed,
        rate: 0.3,
        faults: vec![
            Fault::ServerError(500),
            Fault::RateLimited { retry_after_secs: Some(1) },
            Fault::ServerError(502),
        ],
        endpoints: None,
    };
    let (a, na) = run(plan(42), 60);
    let (b, nb) = run(plan(42), 60);
    assert_eq!(a, b);
    assert_eq!(na, nb);
    let faulted = a.iter().filter(|s| **s != 200).count() as u64;
    assert_eq!(faulted, na);
    assert!((5..=35).contains(&faulted), "{faulted} of 60 at rate 0.3");
    let (c, _) = run(plan(43), 60);
    assert_ne!(a, c, "another seed gives another sequence");

    let (z, nz) = run(FaultPlan { rate: 0.0, ..plan(42) }, 40);
    assert!(z.iter().all(|s| *s == 200));
    assert_eq!(nz, 0);
}

#[test]
fn endpoint_filter_and_tenant_info_exemption() {
    let (s, space) = site();
    let auth = basic(EMAIL, TOKEN);
    s.set_faults(Some(FaultPlan {
        seed: 9,
        rate: 1.0,
        faults: vec![Fault::ServerError(500)],
        endpoints: Some(vec!["/pages".into()]),
    }));
    assert_eq!(get(&format!("{}/wiki/api/v2/spaces", s.origin()), Some(&auth)).status, 200);
    assert_eq!(get(&format!("{}{}", s.origin(), pages_path(&space)), Some(&auth)).status, 500);
    assert_eq!(s.faults_injected(), 1);
    s.set_faults(only(Fault::ServerError(500)));
    assert_eq!(get(&format!("{}/_edge/tenant_info", s.origin()), None).status, 200);
    assert_eq!(get(&format!("{}/wiki/api/v2/spaces", s.origin()), Some(&auth)).status, 500);
    s.set_faults(None);
    assert_eq!(get(&format!("{}/wiki/api/v2/spaces", s.origin()), Some(&auth)).status, 200);
    assert_eq!(s.faults_injected(), 0);
}
