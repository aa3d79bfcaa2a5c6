//! Several `serve` processes on one PostgreSQL database (a real server started by the test):
//! a tenant's work is leased to one host at a time, a host killed with SIGKILL loses its
//! lease and another host finishes its work to exactly the index one embedded host builds,
//! any host answers for any tenant, and an Auto Resync due time runs once across hosts.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::postgres::KEY;
use crate::service_support::{Api, Served, create_key};
use crate::support::*;

/// Leases this short let the test see a takeover within seconds (the default is 30 s).
const LEASE: &str = "3s";

fn database() -> (pg_server::PgServer, String) {
    let server =
        pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
    let url = server.database().unwrap();
    (server, url)
}

fn shared_env(url: &str) -> Vec<(String, String)> {
    vec![("CONNECTOR_HOST_DATABASE_URL".into(), url.into()), ("CONNECTOR_HOST_KEY".into(), KEY.into())]
}

/// A `serve` host on a data directory of its own, logging JSON lines to `log`.
fn host(dir: &Path, env: &[(String, String)], log: &Path) -> Served {
    host_with(dir, env, log, &[])
}

/// [`host`] with more options.
fn host_with(dir: &Path, env: &[(String, String)], log: &Path, extra: &[&str]) -> Served {
    let stderr = Stdio::from(File::create(log).unwrap());
    let args = [&["--allow-loopback", "--lease", LEASE, "--log-format", "json"], extra].concat();
    Served::spawn_with(dir, &args, env, stderr)
}

/// The JSON log lines of a host whose message is `message`.
fn logged(log: &Path, message: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

/// Who holds a tenant's work lease now (asked from a thread of its own: the blocking client
/// cannot run on the test's runtime).
fn work_holder(url: &str, tenant: &str) -> Option<String> {
    let (url, name) = (url.to_string(), format!("work/{tenant}"));
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query_opt(
                "SELECT holder FROM connector_leases WHERE name = $1 AND expires_at > clock_timestamp()",
                &[&name],
            )
            .unwrap()
            .map(|row| row.get(0))
    })
    .join()
    .unwrap()
}

/// A holder name's process id (`machine-pid-random`).
fn holder_pid(holder: &str) -> u32 {
    holder.rsplit('-').nth(1).and_then(|pid| pid.parse().ok()).unwrap_or_else(|| panic!("holder {holder}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_hosts_ingest_is_finished_by_another_host_to_the_identical_index() {
    let (_server, url) = database();
    // What one embedded host builds from the space.
    let reference = World::new();
    fake_confluence::generate_space(&reference.site, "BIG", 2000, 7);
    let connection = reference.connect();
    let ingested = reference.ingest(&connection, "BIG");
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    let expected = reference.ok(&["export"]);

    let mut world = World::sharing(&reference);
    world.env = shared_env(&url);
    let key = create_key(&world, "acme", "admin");
    let logs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let mut hosts =
        vec![(host(dir_a.path(), &world.env, &log_a), log_a), (host(dir_b.path(), &world.env, &log_b), log_b)];

    world.site.set_latency(Duration::from_millis(20));
    world.site.reset_requests();
    let first = Api::new(&hosts[0].0.url, Some(&key));
    let connection = first.connect(&world).await;
    let (status, added) = first.post("/api/v1/memories", json!({"connection": connection, "spaces": "BIG"})).await;
    assert_eq!(status, 202, "{added}");
    let memory_id = added["memories"][0]["id"].as_str().unwrap().to_string();

    // Kill whichever host drives the ingest, in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while world.site.requests().iter().filter(|r| r.path.contains("/pages")).count() < 3 {
        assert!(Instant::now() < deadline, "the ingest never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let holder = work_holder(&url, "acme").expect("a host drives the tenant's work");
    let killed = hosts.iter().position(|(served, _)| served.child.id() == holder_pid(&holder)).expect("a host of ours");
    let (served, _) = hosts.remove(killed);
    served.kill();
    let (survivor, survivor_log) = hosts.pop().unwrap();
    let status = world.json(&["--instance", "acme", "status"]);
    let interrupted = memory(&status, "BIG");
    assert_eq!(interrupted["status"], "IN_PROGRESS", "killed in the middle of the ingest: {interrupted}");

    // The other host takes the lease over once it expires and finishes from the checkpoint.
    let other = Api::new(&survivor.url, Some(&key));
    let settled = other.settled(&memory_id).await;
    assert_eq!(settled["status"], "INGESTED", "{settled}");
    assert!(
        !logged(&survivor_log, "this host drives the tenant's work").is_empty(),
        "the survivor drove the tenant's work"
    );
    let holder_now = work_holder(&url, "acme");
    assert!(holder_now.as_deref() != Some(holder.as_str()), "the killed host's lease is gone: {holder_now:?}");
    world.site.set_latency(Duration::ZERO);

    // Any host answers for any tenant; the index is the one a single embedded host builds.
    let (status, answer) = other.post("/api/v1/ask", json!({"question": expected_question(&expected)})).await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer["passages"].as_array().unwrap().is_empty(), "{answer}");
    let exported = world.ok(&["--instance", "acme", "export"]);
    assert_eq!(exported.lines().count(), expected.lines().count(), "as many chunks as one embedded host makes");
    assert!(exported == expected, "the same chunks, none missing, none doubled");
    survivor.stop();
}

/// A few words of the first exported chunk, to ask about.
fn expected_question(export: &str) -> String {
    let first: Value = serde_json::from_str(export.lines().next().expect("a chunk")).expect("export lines are JSON");
    first["text"].as_str().unwrap_or_default().split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_resync_due_time_runs_once_across_hosts() {
    let (_server, url) = database();
    let mut world = World::new();
    world.env = shared_env(&url);
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Menu", &body("Today", "the soup of the day is tomato"));
    let key = create_key(&world, "acme", "admin");
    let logs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let a = host(dir_a.path(), &world.env, &log_a);
    let b = host(dir_b.path(), &world.env, &log_b);

    let api = Api::new(&a.url, Some(&key));
    let connection = api.connect(&world).await;
    let (status, added) = api.post("/api/v1/memories", json!({"connection": connection, "spaces": "KB"})).await;
    assert_eq!(status, 202, "{added}");
    let memory_id = added["memories"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(api.settled(&memory_id).await["status"], "INGESTED");
    // Both hosts serve the tenant and know it has no schedule; then a third process, the
    // CLI, turns Auto Resync on: neither host saved it, so each learns of it from its look
    // at every tenant's schedules (every third of the lease).
    let (status, served) = Api::new(&b.url, Some(&key)).get("/api/v1/status").await;
    assert_eq!(status, 200, "{served}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.ok(&["--instance", "acme", "auto-resync", &memory_id, "--every", "1s"]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    a.stop();
    b.stop();

    let starts: Vec<u64> = [&log_a, &log_b]
        .iter()
        .flat_map(|log| logged(log, "auto-resync started"))
        .map(|line| line["fields"]["due"].as_u64().expect("the due time is logged"))
        .collect();
    assert!(starts.len() >= 3, "Auto Resync ran: {starts:?}");
    let mut distinct = starts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), starts.len(), "each due time started once across both hosts: {starts:?}");
    let status = world.json(&["--instance", "acme", "status"]);
    let auto = &memory(&status, "KB")["auto_resync"];
    assert!(auto["last_success"].as_u64().is_some() && auto["failures"] == 0, "{auto}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_ingesting_from_one_site_keep_together_to_its_requests_in_flight() {
    let (_server, url) = database();
    let mut world = World::new();
    world.env = shared_env(&url);
    const SPACES: [&str; 6] = ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX"];
    for space in SPACES {
        fake_confluence::generate_space(&world.site, space, 40, 3);
    }
    let logs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    // Three steps at once on each host: six requests in flight if each host kept to its own bound.
    let a = host_with(dir_a.path(), &world.env, &log_a, &["--concurrency", "3"]);
    let b = host_with(dir_b.path(), &world.env, &log_b, &["--concurrency", "3"]);

    // Six tenants, one space each, added at once through both hosts: each host drives some.
    let mut tenants = Vec::new();
    for n in 0..SPACES.len() {
        let api = Api::new([&a.url, &b.url][n % 2], Some(&create_key(&world, &format!("tenant-{n}"), "admin")));
        let connection = api.connect(&world).await;
        tenants.push((api, connection));
    }
    world.site.set_latency(Duration::from_millis(1000));
    world.site.reset_requests();
    let mut memories = Vec::new();
    for ((api, connection), space) in tenants.into_iter().zip(SPACES) {
        let (status, added) = api.post("/api/v1/memories", json!({"connection": connection, "spaces": space})).await;
        assert_eq!(status, 202, "{added}");
        memories.push((api, added["memories"][0]["id"].as_str().unwrap().to_string()));
    }
    for (api, memory) in &memories {
        assert_eq!(api.settled(memory).await["status"], "INGESTED");
    }
    let most = world.site.most_in_flight();
    assert!(most <= 4, "at most four requests in flight to the site across both hosts, saw {most}");
    // Each host alone allows four, and three steps at once: without sharing, six.
    assert!(most >= 3, "the hosts sent at once: {most}");
    for log in [&log_a, &log_b] {
        assert!(!logged(log, "this host drives the tenant's work").is_empty(), "both hosts drove tenants");
    }
    a.stop();
    b.stop();
}
