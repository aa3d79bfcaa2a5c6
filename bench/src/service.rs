//! `serve` under load: `ask` through the HTTP API from 50 concurrent clients of one tenant
//! while another tenant ingests a large space in the same service.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use connector_host::keys::Role;
use connector_host::service::{ServeSettings, handoff};
use fake_confluence::{FakeConfluence, TokenKind};

use crate::metrics::{quantile_ms, questions};
use connector_host::runtime::{ConnectorHost, HostConfig};

use crate::{EMAIL, TOKEN};

/// Concurrent clients asking.
const CLIENTS: usize = 50;

/// Sends `body` to `url` with `key`; the answer's JSON, or an error naming the status.
pub async fn call(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    method: reqwest::Method,
    body: Value,
) -> Result<Value> {
    let response = client.request(method, url).bearer_auth(key).json(&body).send().await?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url} answered {status}: {value}");
    }
    Ok(value)
}

async fn wait_settled(client: &reqwest::Client, base: &str, key: &str, memory: &str) -> Result<Value> {
    loop {
        let url = format!("{base}/api/v1/memories/{memory}");
        let view = call(client, &url, key, reqwest::Method::GET, Value::Null).await?;
        if view["status"] != "IN_PROGRESS" {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Load = Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>;

/// Starts the clients: each asks, waits for the answer and asks again until `stop`.
fn ask_load(client: &reqwest::Client, base: &str, key: &str, stop: Arc<AtomicBool>) -> Load {
    let questions = Arc::new(questions(1_000));
    (0..CLIENTS)
        .map(|index| {
            let (client, url, key, stop, questions) =
                (client.clone(), format!("{base}/api/v1/ask"), key.to_string(), stop.clone(), questions.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut turn = index;
                while !stop.load(Ordering::Relaxed) {
                    let question = &questions[turn % questions.len()];
                    turn += CLIENTS;
                    let asked = Instant::now();
                    let body = json!({"question": question, "limit": 10});
                    match call(&client, &url, &key, reqwest::Method::POST, body).await {
                        Ok(_) => latencies.push(asked.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect()
}

/// Waits for the clients; returns every latency, sorted, and the errors.
async fn collect(load: Load) -> Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for handle in load {
        let (mut some, failed) = handle.await.context("an asking client failed")?;
        latencies.append(&mut some);
        errors += failed;
    }
    latencies.sort();
    Ok((latencies, errors))
}

/// Runs the measurement; `pages` is the size of the space ingested meanwhile.
pub async fn ask_under_ingest(work: &Path, cache: &Path, pages: usize) -> Result<Value> {
    let site = FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    fake_confluence::generate_space(&site, "BIG", pages, 21);
    fake_confluence::generate_space(&site, "ASK", 1_000, 22);
    let dir = work.join("serve");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut host_config = HostConfig::new(&dir);
    host_config.cache_dir = Some(cache.to_path_buf());
    host_config.background_priority = true; // as `connector-host serve` runs
    let host = ConnectorHost::open(host_config)?;
    let asker = host.create_key("readers", Role::Admin, None)?.key;
    let writer = host.create_key("writers", Role::Admin, None)?.key;
    let settings =
        ServeSettings { listen: Some("127.0.0.1:0".parse()?), allow_loopback: Some(true), ..Default::default() };
    let config = settings.resolve(ServeSettings::default())?;
    let service = tokio::spawn(connector_host::service::run(host, config, None));
    let base = loop {
        if let Some(found) = handoff::find(&dir) {
            break found.url;
        }
        if service.is_finished() {
            bail!("the service stopped before it listened");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let client = reqwest::Client::new();
    let connect = |key: String| {
        let client = client.clone();
        let url = format!("{base}/api/v1/connections");
        let body = json!({"site": site.origin(), "email": EMAIL, "token": TOKEN, "allow_loopback": true});
        async move { call(&client, &url, &key, reqwest::Method::POST, body).await }
    };
    let asker_connection = connect(asker.clone()).await?["id"].as_str().unwrap_or_default().to_string();
    let writer_connection = connect(writer.clone()).await?["id"].as_str().unwrap_or_default().to_string();
    let memories = format!("{base}/api/v1/memories");
    let added = call(
        &client,
        &memories,
        &asker,
        reqwest::Method::POST,
        json!({"connection": asker_connection, "spaces": "ASK"}),
    )
    .await?;
    let small = added["memories"][0]["id"].as_str().ok_or_else(|| anyhow!("no memory: {added}"))?.to_string();
    wait_settled(&client, &base, &asker, &small).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let idle = ask_load(&client, &base, &asker, stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (idle_latencies, idle_errors) = collect(idle).await?;

    eprintln!("[serve] ingesting {pages} pages in one tenant while {CLIENTS} clients ask in another");
    let started = Instant::now();
    let added = call(
        &client,
        &memories,
        &writer,
        reqwest::Method::POST,
        json!({"connection": writer_connection, "spaces": "BIG"}),
    )
    .await?;
    let big = added["memories"][0]["id"].as_str().ok_or_else(|| anyhow!("no memory: {added}"))?.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = ask_load(&client, &base, &asker, stop.clone());
    let settled = wait_settled(&client, &base, &writer, &big).await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (latencies, errors) = collect(busy).await?;
    let (idle_p50, idle_p99) = (quantile_ms(&idle_latencies, 0.5), quantile_ms(&idle_latencies, 0.99));
    let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
    println!("\n## Ask through HTTP while another tenant ingests\n");
    println!("| clients | asks | errors | ask p50 | ask p99 | meanwhile in the other tenant |");
    println!("| ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| {CLIENTS} | {} | {idle_errors} | {idle_p50:.1} ms | {idle_p99:.1} ms | nothing (5 s) |",
        idle_latencies.len()
    );
    println!(
        "| {CLIENTS} | {} | {errors} | {p50:.1} ms | {p99:.1} ms | {} pages, {} documents in {ingest_seconds:.1} s ({}) |",
        latencies.len(),
        pages,
        settled["pages"],
        settled["status"].as_str().unwrap_or_default()
    );
    service.abort();
    Ok(json!({
        "clients": CLIENTS, "asks": latencies.len(), "errors": errors, "p50_ms": p50, "p99_ms": p99,
        "idle": {"asks": idle_latencies.len(), "errors": idle_errors, "p50_ms": idle_p50, "p99_ms": idle_p99},
        "ingest_pages": pages, "ingest_documents": settled["pages"], "ingest_seconds": ingest_seconds,
    }))
}
