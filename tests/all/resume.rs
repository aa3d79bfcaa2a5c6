//! Crash safety: `connector-host` is killed with SIGKILL in the middle of an ingest and
//! of a sync, several times; resuming gives exactly the index of an uninterrupted run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn spawn(world: &World, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .arg("--data-dir")
        .arg(world.data_dir())
        .args(args)
        .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
        .env("CONFLUENCE_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn connector-host")
}

/// Kills `child` with SIGKILL once the fake has served `requests` matching `pattern`,
/// plus a pause that moves the kill point into the processing of that batch.
fn kill_after(world: &World, child: &mut Child, pattern: &str, requests: usize, pause: Duration) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while world.site.requests().iter().filter(|r| r.path.contains(pattern) || r.query.contains(pattern)).count()
        < requests
    {
        assert!(child.try_wait().unwrap().is_none(), "connector-host finished before the kill point");
        assert!(Instant::now() < deadline, "kill point never reached");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(pause);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

fn export(world: &World) -> Vec<String> {
    let lines: Vec<String> = world.ok(&["export"]).lines().map(str::to_string).collect();
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "no duplicate chunks");
    assert!(lines.len() > 800, "every page has at least one chunk: {}", lines.len());
    lines
}

#[test]
fn killed_ingests_and_syncs_resume_to_the_identical_index() {
    let reference = World::new();
    fake_confluence::generate_space(&reference.site, "BIG", 800, 7);
    let connection = reference.connect();
    reference.ingest(&connection, "BIG");

    // The interrupted run talks to the same site from a second data directory.
    let crashed = World::sharing(&reference);
    crashed.connect();
    crashed.site.set_latency(Duration::from_millis(40));
    crashed.site.reset_requests();

    let mut child = spawn(&crashed, &["ingest", "--connection", &connection, "--spaces", "BIG"]);
    kill_after(&crashed, &mut child, "/pages", 1, Duration::ZERO);
    let status = crashed.status();
    let interrupted = memory(&status, "BIG");
    assert_eq!(interrupted["status"], "IN_PROGRESS");
    assert_eq!(interrupted["resumable"], true, "{interrupted}");

    let mut child = spawn(&crashed, &["resume"]);
    kill_after(&crashed, &mut child, "/pages", 3, Duration::from_millis(150));
    // Ingesting the key again continues the unfinished memory instead of rejecting it.
    let mut child = spawn(&crashed, &["ingest", "--connection", &connection, "--spaces", "BIG"]);
    kill_after(&crashed, &mut child, "/blogposts", 1, Duration::from_millis(60));
    crashed.site.set_latency(Duration::ZERO);
    let resumed = crashed.json(&["resume"]);
    assert_eq!(resumed["memories"][0]["status"], "INGESTED", "{resumed}");
    assert_eq!(export(&crashed), export(&reference), "ingest: same chunks, none missing, none doubled");

    // Now a sync with edits, additions and deletions, killed while fetching bodies.
    let edited = fake_confluence::edit_fraction(&reference.site, "BIG", 0.4, 11);
    assert!(edited > 100);
    reference.site.add_page("BIG", None, "Late addition", &body("News", "a page added after the ingest"));
    let memory_id = memory(&reference.status(), "BIG")["id"].as_str().unwrap().to_string();
    let synced = reference.json(&["sync", &memory_id]);
    assert_eq!(synced["memories"][0]["progress"]["updated"].as_u64(), Some(edited as u64 + 1));

    crashed.site.set_latency(Duration::from_millis(40));
    crashed.site.reset_requests();
    let mut child = spawn(&crashed, &["sync", &memory_id]);
    kill_after(&crashed, &mut child, "id=", 1, Duration::from_millis(100));
    let mut child = spawn(&crashed, &["resume"]);
    kill_after(&crashed, &mut child, "id=", 2, Duration::ZERO);
    crashed.site.set_latency(Duration::ZERO);
    let resumed = crashed.json(&["sync", &memory_id]);
    assert_eq!(resumed["memories"][0]["status"], "INGESTED", "{resumed}");
    assert_eq!(export(&crashed), export(&reference), "sync: same chunks, none missing, none doubled");
}
