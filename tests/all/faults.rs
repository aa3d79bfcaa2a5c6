//! Faults from Confluence: with a fifth of all requests failing in every way the fake
//! knows (429, 503, 5xx, resets, truncated bodies, invalid JSON, looping links), ingest
//! and sync still end with exactly the index of a fault-free run.

use std::time::Instant;

use fake_confluence::{Fault, FaultPlan};

use crate::support::*;

fn export(world: &World) -> String {
    world.ok(&["export"])
}

#[test]
fn a_20_percent_fault_rate_changes_nothing_but_the_retry_count() {
    let clean = World::new();
    fake_confluence::generate_space(&clean.site, "BIG", 600, 3);
    let connection = clean.connect();
    clean.ingest(&connection, "BIG");

    let faulty = World::sharing(&clean);
    faulty.connect();
    faulty.site.set_faults(Some(FaultPlan { seed: 20, rate: 0.2, faults: Fault::all_fast(), endpoints: None }));
    let started = Instant::now();
    let ingested = faulty.ingest(&connection, "BIG");
    let ingest_time = started.elapsed();
    let ingest_faults = faulty.site.faults_injected();
    faulty.site.set_faults(None);
    let progress = &ingested["memories"][0]["progress"];
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    assert!(
        ingest_faults > 0 && progress["retries"].as_u64().unwrap() > 0,
        "faults were injected and retried: {progress}"
    );
    assert_eq!(export(&faulty), export(&clean), "ingest under faults: identical index");
    println!(
        "ingest with 20% faults: {} requests, {} retries, {ingest_faults} faults, {:.1}s",
        progress["requests"],
        progress["retries"],
        ingest_time.as_secs_f64()
    );

    fake_confluence::edit_fraction(&clean.site, "BIG", 0.2, 5);
    let memory_id = memory(&clean.status(), "BIG")["id"].as_str().unwrap().to_string();
    clean.json(&["sync", &memory_id]);
    faulty.site.set_faults(Some(FaultPlan { seed: 21, rate: 0.2, faults: Fault::all_fast(), endpoints: None }));
    let started = Instant::now();
    let synced = faulty.json(&["sync", &memory_id]);
    let sync_faults = faulty.site.faults_injected();
    faulty.site.set_faults(None);
    let progress = &synced["memories"][0]["progress"];
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    assert_eq!(export(&faulty), export(&clean), "sync under faults: identical index");
    println!(
        "sync with 20% faults: {} requests, {} retries, {sync_faults} faults, {:.1}s",
        progress["requests"],
        progress["retries"],
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn exhausted_retries_and_real_loops_become_clear_errors() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Page", &body("Text", "text"));
    let connection = world.connect();
    world.site.set_faults(Some(FaultPlan {
        seed: 1,
        rate: 1.0,
        faults: vec![Fault::LoopingNext],
        endpoints: Some(vec!["/pages".into()]),
    }));
    let output = world.run(&["ingest", "--connection", &connection, "--spaces", "KB", "--json"]);
    assert!(!output.status.success());
    let failed = parse(&String::from_utf8_lossy(&output.stdout))["memories"][0].clone();
    assert_eq!(failed["status"], "ERROR");
    assert!(failed["error"].as_str().unwrap().contains("pagination link that repeats"), "{failed}");
}

/// A step that fails after indexing part of its batch leaves nothing behind: the next
/// commit in the same host (another memory's) publishes none of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_leaves_no_chunks_behind() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Looping page", &body("Text", "zebra crossings everywhere"));
    world.site.add_space("OPS", "Operations");
    world.site.add_page("OPS", None, "Pager", &body("Rotation", "the pager rotates weekly"));
    let connection = world.connect();
    let kb_id = world.site.spaces().into_iter().find(|s| s.key == "KB").unwrap().id;
    let mut config = connector_host::runtime::HostConfig::new(world.data_dir());
    config.cache_dir = Some(cache_dir());
    let host = connector_host::runtime::ConnectorHost::open(config).unwrap();
    let mut instance = host.instance("default").await.unwrap();

    world.site.set_faults(Some(FaultPlan {
        seed: 1,
        rate: 1.0,
        faults: vec![Fault::LoopingNext],
        endpoints: Some(vec![format!("/spaces/{kb_id}/pages")]),
    }));
    let kb = instance.ingest(&connection, &["KB".to_string()]).await.unwrap().unwrap();
    let kb = kb[0].outcome.as_ref().unwrap().id.clone();
    let failed = connector_host::driver::drive(&mut instance, std::slice::from_ref(&kb), |_| {}).await.unwrap();
    assert!(failed[0].error.as_deref().unwrap_or_default().contains("pagination link that repeats"), "{failed:?}");
    world.site.set_faults(None);

    let ops = instance.ingest(&connection, &["OPS".to_string()]).await.unwrap().unwrap();
    let ops = ops[0].outcome.as_ref().unwrap().id.clone();
    let done = connector_host::driver::drive(&mut instance, std::slice::from_ref(&ops), |_| {}).await.unwrap();
    assert!(done[0].error.is_none(), "{done:?}");

    let chunks = instance.export().unwrap();
    assert!(chunks.iter().any(|c| c.memory_id == ops), "OPS was indexed");
    assert!(
        !chunks.iter().any(|c| c.memory_id == kb),
        "the failed KB step's chunks were published by a later commit: {chunks:?}"
    );
}
