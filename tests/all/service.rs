//! `connector-host serve`: the HTTP API with roles, tenants, the CLI beside a running
//! service, crashes and restarts, and fairness between tenants.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::service_support::*;
use crate::support::*;

/// POSTs a JSON body of about `size` bytes to `/api/v1/ask` over a raw connection, reading
/// the answer while the body is still being written; returns what the service answered.
async fn send_raw(url: &str, key: &str, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let body = format!("{{\"question\": \"{}\"}}", "a".repeat(size));
    let head = format!(
        "POST /api/v1/ask HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(body.as_bytes()).await;
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    writing.abort();
    String::from_utf8_lossy(&answer).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_by_role_and_tenants_stay_apart() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    world.site.add_page("ENG", None, "Deploys", &body("Rollback", "roll back a deploy with the red lever"));
    let served = Served::start(world.data_dir(), &[]);

    // Keys made through the CLI while the service holds the data directory.
    let admin = Api::new(&served.url, Some(&create_key(&world, "tenant-a", "admin")));
    let member = Api::new(&served.url, Some(&create_key(&world, "tenant-a", "member")));
    let owner_b = Api::new(&served.url, Some(&create_key(&world, "tenant-b", "domain-owner")));
    let nobody = Api::new(&served.url, None);
    let forger = Api::new(&served.url, Some("ckh_0123456789abcdef_not-a-real-secret"));

    for api in [&nobody, &forger] {
        let (status, body) = api.get("/api/v1/status").await;
        assert_eq!((status, body["error"]["kind"].as_str()), (401, Some("unauthenticated")), "{body}");
    }
    let (status, who) = member.get("/api/v1/whoami").await;
    assert_eq!((status, who["role"].as_str(), who["instance"].as_str()), (200, Some("member"), Some("tenant-a")));

    // A member may do nothing that changes the instance.
    let site = world.site.origin();
    let refused = [
        (
            Method::POST,
            "/api/v1/connections",
            json!({"site": site, "email": EMAIL, "token": TOKEN, "allow_loopback": true}),
        ),
        (Method::DELETE, "/api/v1/connections/conn-1", json!({})),
        (Method::POST, "/api/v1/memories", json!({"connection": "conn-1", "spaces": "ENG"})),
        (Method::POST, "/api/v1/memories/mem-1/sync", json!({})),
        (Method::PUT, "/api/v1/memories/mem-1/auto-resync", json!({"every": "1h"})),
        (Method::POST, "/api/v1/keys", json!({"role": "admin"})),
    ];
    for (method, path, body) in &refused {
        let (status, answer) = member.send(method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 403, "member {method} {path}: {answer}");
        assert_eq!(answer["error"]["kind"], "forbidden");
    }

    // Connect: bad input first, each with its own status.
    let (status, answer) = admin
        .post("/api/v1/connections", json!({"site": site, "email": EMAIL, "token": "wrong", "allow_loopback": true}))
        .await;
    assert_eq!((status, answer["error"]["kind"].as_str()), (422, Some("unauthorized")), "{answer}");
    let (status, answer) =
        admin.post("/api/v1/connections", json!({"site": site, "email": EMAIL, "allow_loopback": true})).await;
    assert_eq!((status, answer["error"]["kind"].as_str()), (422, Some("invalid-input")), "missing token: {answer}");
    let (status, answer) =
        admin.post("/api/v1/connections", json!({"site": site, "email": EMAIL, "token": TOKEN, "colour": "red"})).await;
    assert_eq!((status, answer["error"]["kind"].as_str()), (422, Some("invalid-input")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("no field 'colour'"), "{answer}");
    // Where scoped tokens are sent is the operator's to say, never a tenant's.
    let redirect = json!({"site": site, "email": EMAIL, "token": TOKEN, "gateway": "https://collector.example"});
    let (status, answer) = admin.post("/api/v1/connections", redirect).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("only the operator may set gateway"), "{answer}");
    let raw = reqwest::Client::new();
    let bearer = format!("Bearer {}", admin.key.as_deref().unwrap());
    let malformed = raw
        .post(format!("{}/api/v1/connections", served.url))
        .header("authorization", &bearer)
        .header("content-type", "application/json")
        .body("{\"site\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let form = raw
        .post(format!("{}/api/v1/connections", served.url))
        .header("authorization", &bearer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("site=x&email=y&token=z")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // A 10 MB body: the service answers 413 without reading it (a client that is still
    // writing may see its connection closed, so this one reads while it writes).
    let answer = send_raw(&served.url, admin.key.as_deref().unwrap(), 10 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too-large"), "{answer}");

    let connection = admin.connect(&world).await;
    let (status, added) =
        admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "ENG, NOPE"})).await;
    assert_eq!(status, 202, "{added}");
    // As the product page says: an invalid key shows as a memory in ERROR with the cause.
    let invalid = added["memories"].as_array().unwrap().iter().find(|m| m["space_key"] == "NOPE").unwrap();
    assert_eq!(invalid["status"], "ERROR", "{added}");
    assert!(invalid["error"].as_str().unwrap().contains("invalid or not accessible"), "{added}");
    let memory_id = added["memories"][0]["id"].as_str().unwrap().to_string();
    let settled = admin.settled(&memory_id).await;
    assert_eq!((settled["status"].as_str(), settled["pages"].as_u64()), (Some("INGESTED"), Some(2)), "{settled}");

    let (status, duplicate) = admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "ENG"})).await;
    assert_eq!((status, duplicate["error"]["kind"].as_str()), (409, Some("duplicate")), "{duplicate}");
    assert!(duplicate["error"]["message"].as_str().unwrap().contains("use sync"), "{duplicate}");
    let (status, _) = admin.post("/api/v1/memories", json!({"connection": "conn-9", "spaces": "ENG"})).await;
    assert_eq!(status, 404);

    // Ask: every role; members see memories but not e-mails.
    let (status, answer) = member.post("/api/v1/ask", json!({"question": "how do I roll back a deploy?"})).await;
    assert_eq!(status, 200, "{answer}");
    let first = &answer["passages"][0];
    assert!(first["text"].as_str().unwrap().contains("red lever"), "{answer}");
    assert!(first["url"].as_str().unwrap().contains("/wiki/spaces/ENG/pages/"), "{answer}");
    let (_, status_doc) = member.get("/api/v1/status").await;
    assert!(status_doc["connections"][0]["email"].is_null(), "{status_doc}");
    assert_eq!(status_doc["memories"][0]["status"], "INGESTED");
    let (_, admin_doc) = admin.get("/api/v1/status").await;
    assert_eq!(admin_doc["connections"][0]["email"], EMAIL);
    let (status, _) = member.post("/api/v1/ask", json!({"question": "  "})).await;
    assert_eq!(status, 422);
    let (status, _) = member.post("/api/v1/ask", json!({"question": "deploy", "limit": 1000})).await;
    assert_eq!(status, 422);

    // The other tenant sees nothing of tenant-a.
    let (_, other) = owner_b.get("/api/v1/status").await;
    assert_eq!(other["connections"].as_array().unwrap().len(), 0, "{other}");
    assert_eq!(other["memories"].as_array().unwrap().len(), 0, "{other}");
    let (status, _) = owner_b.get(&format!("/api/v1/memories/{memory_id}")).await;
    assert_eq!(status, 404);
    let (_, answer) = owner_b.post("/api/v1/ask", json!({"question": "red lever"})).await;
    assert_eq!(answer["passages"].as_array().unwrap().len(), 0, "{answer}");
    let (status, _) = owner_b.post(&format!("/api/v1/memories/{memory_id}/sync"), json!({})).await;
    assert_eq!(status, 404, "a domain owner manages only its own instance");

    // Sync (an empty body is fine) and Auto Resync.
    world.site.add_page("ENG", None, "Canary", &body("Canary", "canaries take ten percent of traffic"));
    let synced = raw
        .post(format!("{}/api/v1/memories/{memory_id}/sync", served.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), 202);
    assert_eq!(admin.settled(&memory_id).await["pages"], 3);
    let path = format!("/api/v1/memories/{memory_id}/auto-resync");
    let (status, view) = admin.send(Method::PUT, &path, Some(json!({"every": "1h"}))).await;
    assert_eq!((status, view["auto_resync"]["every_secs"].as_u64()), (200, Some(3600)), "{view}");
    let (status, _) = admin.send(Method::PUT, &path, Some(json!({"every": "soon"}))).await;
    assert_eq!(status, 422);
    let (status, _) = admin.send(Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(status, 422);
    let (status, view) = admin.send(Method::PUT, &path, Some(json!({"off": true}))).await;
    assert_eq!((status, view["auto_resync"].is_null()), (200, true), "{view}");
    let (status, _) = admin.send(Method::PUT, "/api/v1/memories/mem-404/auto-resync", Some(json!({"off": true}))).await;
    assert_eq!(status, 404);

    // The CLI works beside the service, through it.
    let status_cli = world.json(&["--instance", "tenant-a", "status"]);
    assert_eq!(memory(&status_cli, "ENG")["pages"], 3, "{status_cli}");
    let asked = world.json(&["--instance", "tenant-a", "ask", "canary traffic"]);
    assert!(asked["passages"][0]["text"].as_str().unwrap().contains("ten percent"), "{asked}");
    let synced = world.json(&["--instance", "tenant-a", "sync", &memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");

    // Disconnect: memories stay, syncs are refused.
    let (status, gone) = admin.send(Method::DELETE, &format!("/api/v1/connections/{connection}"), None).await;
    assert_eq!((status, gone["connected"].as_bool()), (200, Some(false)), "{gone}");
    let (status, refused) = admin.post(&format!("/api/v1/memories/{memory_id}/sync"), json!({})).await;
    assert_eq!(status, 409, "{refused}");
    let (_, answer) = member.post("/api/v1/ask", json!({"question": "red lever"})).await;
    assert!(!answer["passages"].as_array().unwrap().is_empty(), "memories stay searchable");

    // Every admin action is in the audit log, with the key that did it and how it ended.
    let (_, who) = admin.get("/api/v1/whoami").await;
    let (status, log) = admin.get("/api/v1/audit").await;
    assert_eq!(status, 200, "{log}");
    let entries = log.as_array().unwrap();
    for action in ["connect", "add-memories", "sync", "auto-resync", "disconnect"] {
        let entry = entries.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action} in {log}"));
        assert_eq!(entry["actor"], who["key_id"], "{entry}");
        assert_eq!(entry["instance"], "tenant-a");
    }
    assert!(
        entries.iter().any(|e| e["action"] == "connect" && e["outcome"].as_str().unwrap().starts_with("error:")),
        "the refused connect is recorded too: {log}"
    );
    assert!(!log.to_string().contains(TOKEN), "no token in the audit log");
    assert_eq!(member.get("/api/v1/audit").await.0, 403);
    let (_, other_log) = owner_b.get("/api/v1/audit").await;
    assert!(other_log.as_array().unwrap().iter().all(|e| e["instance"] == "tenant-b"), "{other_log}");
    let through_cli = world.json(&["--instance", "tenant-a", "audit"]);
    let created = through_cli.as_array().unwrap().iter().filter(|e| e["action"] == "key-create").count();
    assert_eq!(created, 2, "the two keys of tenant-a, created by the operator: {through_cli}");

    // The rest of the surface.
    let (status, _) = nobody.get("/api/v1/nowhere").await;
    assert_eq!(status, 404);
    let (status, health) = nobody.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, openapi) = nobody.get("/openapi.json").await;
    assert_eq!(status, 200);
    for route in ["/api/v1/status", "/api/v1/connections", "/api/v1/memories/{id}/sync", "/api/v1/ask"] {
        assert!(openapi["paths"].get(route).is_some(), "{route} in the OpenAPI document");
    }
    let metrics = raw.get(format!("{}/metrics", served.url)).send().await.unwrap().text().await.unwrap();
    for metric in
        ["connector_host_api_requests_total", "connector_host_steps_total", "connector_host_ask_duration_seconds"]
    {
        assert!(metrics.contains(metric), "{metric} in\n{metrics}");
    }
    assert!(metrics.contains("status=\"403\""), "{metrics}");
    assert!(metrics.contains("connector_host_memories{status=\"INGESTED\"} 1"), "{metrics}");

    // Revoking a key takes effect at once; secrets never show in any answer.
    let keys = world.json(&["keys", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 3, "{keys}");
    assert!(!keys.to_string().contains(member.key.as_deref().unwrap()), "keys list never shows a key");
    let member_id = keys.as_array().unwrap().iter().find(|k| k["role"] == "member").unwrap()["id"].as_str().unwrap();
    world.ok(&["keys", "revoke", member_id]);
    assert_eq!(member.get("/api/v1/status").await.0, 401);
    let export = world.ok(&["--instance", "tenant-a", "export"]);
    assert!(!export.contains(TOKEN) && !status_doc.to_string().contains(TOKEN));

    let status = served.stop();
    assert!(status.success(), "SIGTERM ends serve with exit 0: {status:?}");
    assert!(!world.data_dir().join("serve.json").exists(), "the hand-off file is removed");
    // Without the service the CLI opens the store itself again.
    assert_eq!(memory(&world.json(&["--instance", "tenant-a", "status"]), "ENG")["pages"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_parallel_requests_get_answers_and_the_service_keeps_serving() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    world.site.add_page("OPS", None, "Pager", &body("On call", "the pager rotates weekly"));
    let served = Served::start(world.data_dir(), &[]);
    let admin = Api::new(&served.url, Some(&create_key(&world, "default", "admin")));
    let connection = admin.connect(&world).await;
    let (_, added) = admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "OPS"})).await;
    admin.settled(added["memories"][0]["id"].as_str().unwrap()).await;

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let api = admin.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                api.post("/api/v1/ask", json!({"question": "pager rotation"})).await.0
            } else {
                api.get("/api/v1/status").await.0
            }
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|s| *s == 200 || *s == 503), "only answers or 'busy': {statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    let (status, answer) = admin.post("/api/v1/ask", json!({"question": "pager rotation"})).await;
    assert_eq!(status, 200);
    assert!(answer["passages"][0]["text"].as_str().unwrap().contains("weekly"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_service_resumes_its_ingest_when_it_starts_again() {
    let world = World::new();
    fake_confluence::generate_space(&world.site, "BIG", 1500, 7);
    world.site.set_latency(Duration::from_millis(40));
    let served = Served::start(world.data_dir(), &[]);
    let admin = Api::new(&served.url, Some(&create_key(&world, "default", "admin")));
    let connection = admin.connect(&world).await;
    let (status, added) = admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "BIG"})).await;
    assert_eq!(status, 202, "{added}");
    let memory_id = added["memories"][0]["id"].as_str().unwrap().to_string();

    // Kill it once some listing pages are in, but well before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, view) = admin.get(&format!("/api/v1/memories/{memory_id}")).await;
        if view["progress"]["done"].as_u64().unwrap_or(0) >= 250 {
            assert_eq!(view["status"], "IN_PROGRESS", "the ingest finished before the kill point: {view}");
            break;
        }
        assert!(Instant::now() < deadline, "the ingest made no progress: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served.kill();

    let restarted = Served::start(world.data_dir(), &[]);
    let admin = Api::new(&restarted.url, admin.key.as_deref());
    let settled = admin.settled(&memory_id).await;
    assert_eq!(settled["status"], "INGESTED", "{settled}");
    assert_eq!(settled["pages"].as_u64(), Some(1530), "every page and blog post once: {settled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_tenant_is_not_starved_by_a_large_one() {
    let world = World::new();
    fake_confluence::generate_space(&world.site, "HUGE", 3000, 11);
    world.site.add_space("TINY", "Tiny");
    world.site.add_page("TINY", None, "Lunch", &body("Menu", "tacos on tuesday"));
    world.site.set_latency(Duration::from_millis(30));
    let served = Served::start(world.data_dir(), &["--concurrency", "1"]);
    let big = Api::new(&served.url, Some(&create_key(&world, "big", "admin")));
    let small = Api::new(&served.url, Some(&create_key(&world, "small", "admin")));
    let big_connection = big.connect(&world).await;
    let small_connection = small.connect(&world).await;

    let (_, added) = big.post("/api/v1/memories", json!({"connection": big_connection, "spaces": "HUGE"})).await;
    let huge = added["memories"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, added) = small.post("/api/v1/memories", json!({"connection": small_connection, "spaces": "TINY"})).await;
    let tiny = added["memories"][0]["id"].as_str().unwrap().to_string();

    let settled = small.settled(&tiny).await;
    assert_eq!(settled["status"], "INGESTED", "{settled}");
    let (_, large) = big.get(&format!("/api/v1/memories/{huge}")).await;
    assert_eq!(large["status"], "IN_PROGRESS", "the small space finished while the large one still ran: {large}");
    assert!(big.settled(&huge).await["pages"].as_u64().unwrap() >= 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operators_configuration_file_is_enforced() {
    let world = World::new();
    let config = world.data_dir().join("serve.toml");
    std::fs::write(
        &config,
        "log_format = \"json\"\nallowed_sites = [\"*.atlassian.net\"]\n[limits]\nmemory_mib = 256\n",
    )
    .unwrap();
    let log = world.data_dir().join("serve.log");
    let served = Served::spawn(
        world.data_dir(),
        &["--config", config.to_str().unwrap()],
        std::fs::File::create(&log).unwrap().into(),
    );
    let admin = Api::new(&served.url, Some(&create_key(&world, "default", "admin")));

    let site = world.site.origin();
    let (status, answer) = admin
        .post("/api/v1/connections", json!({"site": site, "email": EMAIL, "token": TOKEN, "allow_loopback": true}))
        .await;
    assert_eq!(status, 403, "loopback sites need serve --allow-loopback: {answer}");
    let (status, answer) = admin
        .post("/api/v1/connections", json!({"site": "https://intranet.example.com", "email": EMAIL, "token": TOKEN}))
        .await;
    assert_eq!((status, answer["error"]["kind"].as_str()), (403, Some("denied")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("*.atlassian.net"), "{answer}");

    assert!(served.stop().success());
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["level"].is_string(), "{line}");
    }
    assert!(!logs.contains(TOKEN), "no token in the logs");

    std::fs::write(&config, "listn = \"0.0.0.0:1\"\n").unwrap();
    let refused = world.run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown field `listn`"), "{}", text(&refused));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_quota_stops_with_a_clear_error_and_the_others_go_on() {
    let world = World::new();
    fake_confluence::generate_space(&world.site, "DOCS", 1200, 5);
    let config = world.data_dir().join("serve.toml");
    std::fs::write(&config, "[quotas.instances.small]\ndocuments = 100\nmemories = 1\n").unwrap();
    let served = Served::start(world.data_dir(), &["--config", config.to_str().unwrap()]);
    let small = Api::new(&served.url, Some(&create_key(&world, "small", "admin")));
    let big = Api::new(&served.url, Some(&create_key(&world, "big", "admin")));
    let small_connection = small.connect(&world).await;
    let big_connection = big.connect(&world).await;

    let (_, added) = small.post("/api/v1/memories", json!({"connection": small_connection, "spaces": "DOCS"})).await;
    let small_memory = added["memories"][0]["id"].as_str().unwrap().to_string();
    let (_, added) = big.post("/api/v1/memories", json!({"connection": big_connection, "spaces": "DOCS"})).await;
    let big_memory = added["memories"][0]["id"].as_str().unwrap().to_string();

    let over = small.settled(&small_memory).await;
    assert_eq!(over["status"], "ERROR", "{over}");
    assert!(over["error"].as_str().unwrap().contains("over its quota of 100"), "{over}");
    let fine = big.settled(&big_memory).await;
    assert_eq!((fine["status"].as_str(), fine["pages"].as_u64()), (Some("INGESTED"), Some(1224)), "{fine}");

    let (status, refused) =
        small.post("/api/v1/memories", json!({"connection": small_connection, "spaces": "MORE"})).await;
    assert_eq!((status, refused["error"]["kind"].as_str()), (403, Some("quota-exceeded")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("may hold 1 memories"), "{refused}");
    let (status, _) = big.post("/api/v1/memories", json!({"connection": big_connection, "spaces": "MORE"})).await;
    assert_eq!(status, 202, "the other tenant has no such quota");
}
