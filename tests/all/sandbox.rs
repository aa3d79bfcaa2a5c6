//! The sandbox, proved with a purpose-built misbehaving component
//! (`tests/guests/hostile`): CPU, wall-clock and memory limits, bounded response bodies, the HTTP
//! allow-list, and isolation of storage and search between instances. A trapped instance never
//! takes the host down: the next call works.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use connector_host::bindings::types::ConnectorError;
use connector_host::runtime::{ConnectPolicy, ConnectorHost, HostConfig};
use tokio::io::AsyncWriteExt;

use crate::support::cache_dir;

/// The host's policy for a connect that may reach loopback test servers.
const LOOPBACK: ConnectPolicy = ConnectPolicy { allow_loopback: true };
/// The host's default policy: public https sites only.
const HOSTED: ConnectPolicy = ConnectPolicy { allow_loopback: false };

fn hostile_host(dir: &std::path::Path) -> ConnectorHost {
    hostile_host_with(dir, Duration::from_secs(2), Duration::from_secs(30))
}

fn hostile_host_with(dir: &std::path::Path, cpu: Duration, wall_clock: Duration) -> ConnectorHost {
    let mut config = HostConfig::new(dir);
    config.component = Some(PathBuf::from(env!("HOSTILE_COMPONENT_PATH")));
    config.cache_dir = Some(cache_dir());
    config.memory_limit = 64 << 20;
    config.cpu_limit = cpu;
    config.call_timeout = wall_clock;
    ConnectorHost::open(config).expect("open the host with the hostile component")
}

async fn ask(instance: &mut connector_host::runtime::Instance, question: &str) -> String {
    let passages = instance.retrieve(question, &[], 1).await.expect("no trap").expect("no connector error");
    passages[0].text.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_and_memory_limits_stop_the_guest_and_the_next_call_works() {
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host(data.path());
    let mut instance = host.instance("limits").await.unwrap();

    let started = Instant::now();
    let error = instance.describe().await.expect_err("a spin loop must be stopped");
    assert!(error.to_string().contains("ran out of CPU time"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(8), "stopped near the 2 s limit: {:?}", started.elapsed());
    assert_eq!(ask(&mut instance, "kv-set:alive=yes").await, "ok", "a fresh instance serves the next call");

    let error = instance.status().await.expect_err("a memory bomb must be stopped");
    assert!(error.to_string().contains("failed in call_status and was restarted"), "{error:#}");
    assert_eq!(ask(&mut instance, "kv-get:alive").await, "yes", "state in storage survives the restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_guest_is_stopped_by_the_wall_clock_limit_too() {
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host_with(data.path(), Duration::from_secs(600), Duration::from_secs(2));
    let mut instance = host.instance("wall").await.unwrap();
    let started = Instant::now();
    let error = instance.describe().await.expect_err("a spin loop must be stopped");
    assert!(error.to_string().contains("wall-clock limit"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(8), "stopped near the 2 s limit: {:?}", started.elapsed());
    assert_eq!(ask(&mut instance, "kv-set:alive=yes").await, "ok", "a fresh instance serves the next call");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_goes_only_to_granted_origins() {
    let site = fake_confluence::FakeConfluence::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host(data.path());
    let mut instance = host.instance("egress").await.unwrap();
    let target = format!("{}/_edge/tenant_info", site.origin());

    let config = |origin: &str| vec![("origin".to_string(), origin.to_string()), ("url".to_string(), target.clone())];
    // Granted something else: the request to the fake is refused before it leaves.
    let outcome = instance.connect(config("https://allowed.example"), HOSTED).await.unwrap();
    assert!(matches!(&outcome, Err(ConnectorError::Network(m)) if m.contains("HttpRequestDenied")), "{outcome:?}");
    assert!(site.requests().is_empty(), "nothing reached the server");
    // A loopback origin is not granted unless the host's policy allows loopback sites.
    let outcome = instance.connect(config(&site.origin()), HOSTED).await.unwrap();
    assert!(matches!(&outcome, Err(ConnectorError::Denied(m)) if m.contains("--allow-loopback")), "{outcome:?}");
    // Granted exactly that origin: the request goes through.
    let outcome = instance.connect(config(&site.origin()), LOOPBACK).await.unwrap();
    assert!(matches!(&outcome, Err(ConnectorError::Network(m)) if m == "status 200"), "{outcome:?}");
    assert_eq!(site.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_stopped_by_its_cpu_limit_grants_nothing() {
    let site = fake_confluence::FakeConfluence::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host(data.path());
    let mut instance = host.instance("egress").await.unwrap();
    let target = format!("{}/_edge/tenant_info", site.origin());
    let mut spinning = vec![("origin".to_string(), site.origin()), ("url".to_string(), target.clone())];
    spinning.push(("spin".into(), "true".into()));
    instance.connect(spinning, LOOPBACK).await.expect_err("the spinning connect is stopped");
    // Granted something else now: the origin the stopped connect asked for is not reachable.
    let other = vec![("origin".to_string(), "https://allowed.example".to_string()), ("url".to_string(), target)];
    let outcome = instance.connect(other, HOSTED).await.unwrap();
    assert!(matches!(&outcome, Err(ConnectorError::Network(m)) if m.contains("HttpRequestDenied")), "{outcome:?}");
    assert!(site.requests().is_empty(), "nothing reached the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_cannot_see_each_others_storage_or_index() {
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host(data.path());
    let mut alpha = host.instance("alpha").await.unwrap();
    let mut beta = host.instance("beta").await.unwrap();

    assert_eq!(ask(&mut alpha, "kv-set:secret=alpha-only").await, "ok");
    assert_eq!(ask(&mut beta, "kv-get:secret").await, "none");
    assert_eq!(ask(&mut beta, "kv-set:secret=beta-only").await, "ok");
    assert_eq!(ask(&mut alpha, "kv-get:secret").await, "alpha-only", "beta's write did not reach alpha");

    assert_eq!(ask(&mut alpha, "index:zebra stripes in alpha").await, "ok");
    assert_eq!(ask(&mut beta, "query:zebra").await, "");
    assert_eq!(ask(&mut alpha, "query:zebra").await, "zebra stripes in alpha");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_call_leaves_no_index_writes_for_a_later_commit() {
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host(data.path());
    let mut instance = host.instance("alpha").await.unwrap();
    instance.retrieve("index-then-spin:quokka sightings", &[], 1).await.expect_err("the spin loop is stopped");
    assert_eq!(ask(&mut instance, "index:zebra stripes").await, "ok", "a later call indexes and commits");
    assert_eq!(ask(&mut instance, "query:quokka").await, "", "the stopped call's write was dropped, not committed");
    assert_eq!(ask(&mut instance, "query:zebra").await, "zebra stripes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_blocked_on_slow_io_hits_the_wall_clock_limit() {
    let site = fake_confluence::FakeConfluence::start().unwrap();
    site.set_latency(Duration::from_secs(6));
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host_with(data.path(), Duration::from_secs(2), Duration::from_secs(2));
    let mut instance = host.instance("slow").await.unwrap();
    let config = vec![
        ("origin".to_string(), site.origin()),
        ("url".to_string(), format!("{}/_edge/tenant_info", site.origin())),
    ];
    let started = Instant::now();
    let error = instance.connect(config, LOOPBACK).await.expect_err("the 2 s wall-clock limit must end the call");
    assert!(error.to_string().contains("did not finish call_connect within 2s"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    site.set_latency(Duration::ZERO);
    assert_eq!(ask(&mut instance, "kv-set:after=ok").await, "ok", "the next call works");
}

/// A loopback HTTP server: reads each request, then lets `respond` write the answer.
/// Returns its origin.
async fn raw_server<F, Answer>(respond: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Answer + Send + Sync + 'static,
    Answer: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let respond = std::sync::Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                respond(stream).await;
            });
        }
    });
    origin
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_trickles_ends_at_the_wall_clock_limit() {
    let origin = raw_server(|mut stream| async move {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n").await;
        for _ in 0..1000 {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let host = hostile_host_with(data.path(), Duration::from_secs(2), Duration::from_secs(2));
    let mut instance = host.instance("trickle").await.unwrap();
    let config = vec![
        ("origin".to_string(), origin.clone()),
        ("url".to_string(), format!("{origin}/_edge/tenant_info")),
        ("read-body".to_string(), "true".to_string()),
    ];
    let started = Instant::now();
    let error = instance.connect(config, LOOPBACK).await.expect_err("a trickling body must not hold the call");
    // Stopped while it waits (the async timeout) or as it resumes for the next byte (the
    // deadline check in the guest): either way by the 2 s wall-clock limit.
    let message = error.to_string();
    assert!(
        message.contains("did not finish call_connect within 2s") || message.contains("past the 2s wall-clock limit"),
        "{error:#}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(ask(&mut instance, "kv-set:after=ok").await, "ok", "the next call works");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_size_limit_is_cut_off_by_the_host() {
    let origin = raw_server(|mut stream| async move {
        let body = vec![b'x'; 3 << 20];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(data.path());
    config.component = Some(PathBuf::from(env!("HOSTILE_COMPONENT_PATH")));
    config.cache_dir = Some(cache_dir());
    config.max_response_bytes = 1 << 20;
    let host = ConnectorHost::open(config).unwrap();
    let mut instance = host.instance("big").await.unwrap();
    let connect = vec![
        ("origin".to_string(), origin.clone()),
        ("url".to_string(), format!("{origin}/wiki/api/v2/pages")),
        ("read-body".to_string(), "true".to_string()),
    ];
    let outcome = instance.connect(connect, LOOPBACK).await.expect("no trap");
    let Err(ConnectorError::Network(message)) = outcome else { panic!("{outcome:?}") };
    assert!(message.contains("body size exceeds limit: 1048576 bytes"), "a clear error: {message}");
    let read: usize = message.trim_start_matches("body error after ").split(' ').next().unwrap().parse().unwrap();
    assert!(read <= 1 << 20, "no more than the limit reaches the guest: {message}");
}
