//! `connector-bench soak`: a bounded soak of one `connector-host serve` process (a child, so
//! its RSS and open descriptors are its own): three tenants, 20 clients asking without
//! pause, page edits and syncs every 20 s, Auto Resync every minute, and 5% of Confluence
//! requests failing. Reports client-visible errors, ask p99 per 30 s window, RSS and open
//! file descriptors at start and end, and whether the final indexes equal a fault-free run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use connector_host::service::handoff::{self, INSTANCE_HEADER};
use fake_confluence::{FakeConfluence, FaultPlan, TokenKind};

use crate::metrics::{quantile_ms, questions};
use crate::{EMAIL, TOKEN};

const TENANTS: [(&str, &str); 3] = [("alpha", "SA"), ("beta", "SB"), ("gamma", "SC")];
const CLIENTS: usize = 20;
const PAGES: usize = 300;
const WINDOW: Duration = Duration::from_secs(30);

struct Service {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory and open descriptors of a process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Resident set (VmRSS), KiB: includes the pages of memory-mapped index files.
    rss_kib: u64,
    /// Anonymous resident memory (RssAnon), KiB: the heap and guest memories, where a leak shows.
    anon_kib: u64,
    /// Open file descriptors.
    fds: usize,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    Usage { rss_kib: field("VmRSS:"), anon_kib: field("RssAnon:"), fds }
}

fn start(binary: &Path, data: &Path, cache: &Path) -> Result<Service> {
    let child = Command::new(binary)
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(cache)
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-loopback"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = handoff::find(data) {
            return Ok(Service { child, url: found.url, token: found.token });
        }
        if Instant::now() > deadline {
            bail!("the service did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates an admin key for `tenant` (as the operator), connects the site and adds `space`
/// as a memory; returns the key.
async fn add_tenant(
    client: &reqwest::Client,
    service: &Service,
    tenant: &str,
    space: &str,
    site: &str,
) -> Result<String> {
    let keys = client.post(format!("{}/api/v1/keys", service.url)).bearer_auth(&service.token);
    let created = call(client, keys.header(INSTANCE_HEADER, tenant).json(&json!({"role": "admin"}))).await?;
    let key = created["key"].as_str().ok_or_else(|| anyhow!("no key: {created}"))?.to_string();
    let connect = client.post(format!("{}/api/v1/connections", service.url)).bearer_auth(&key);
    let body = json!({"site": site, "email": EMAIL, "token": TOKEN, "allow_loopback": true});
    let connection = call(client, connect.json(&body)).await?;
    let connection = connection["id"].as_str().unwrap_or_default().to_string();
    let add = client.post(format!("{}/api/v1/memories", service.url)).bearer_auth(&key);
    call(client, add.json(&json!({"connection": connection, "spaces": space}))).await?;
    Ok(key)
}

async fn call(client: &reqwest::Client, request: reqwest::RequestBuilder) -> Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let _ = client;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until a tenant's memory is no longer in progress; returns its status.
async fn settled(client: &reqwest::Client, url: &str, key: &str) -> Result<String> {
    loop {
        let memory = call(client, client.get(format!("{url}/api/v1/memories/mem-1")).bearer_auth(key)).await?;
        let status = memory["status"].as_str().unwrap_or_default().to_string();
        if status != "IN_PROGRESS" {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The exported passages of a tenant, without the memory id.
fn passages(lines: &str) -> BTreeSet<String> {
    lines
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|v| format!("{}|{}|{}|{}|{}", v["page_id"], v["ordinal"], v["title"], v["heading"], v["text"]))
        .collect()
}

/// Runs the soak for `minutes`.
pub async fn run(work: &Path, cache: &Path, minutes: u64) -> Result<Value> {
    let binary: PathBuf = std::env::current_exe()?.with_file_name("connector-host");
    if !binary.exists() {
        bail!("{} is missing: build it with `cargo build --release -p connector-host`", binary.display());
    }
    let site = FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    for (seed, (_, space)) in TENANTS.iter().enumerate() {
        fake_confluence::generate_space(&site, space, PAGES, 100 + seed as u64);
    }
    let data = work.join("soak");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    std::fs::create_dir_all(&data)?;
    let service = start(&binary, &data, cache)?;
    let client = reqwest::Client::new();
    let operator = |request: reqwest::RequestBuilder, instance: &str| {
        request.bearer_auth(&service.token).header(INSTANCE_HEADER, instance)
    };
    let mut keys = Vec::new();
    for (tenant, space) in TENANTS {
        keys.push(add_tenant(&client, &service, tenant, space, &site.origin()).await?);
    }
    for key in &keys {
        settled(&client, &service.url, key).await?;
        call(
            &client,
            client
                .put(format!("{}/api/v1/memories/mem-1/auto-resync", service.url))
                .bearer_auth(key)
                .json(&json!({"every": "1m"})),
        )
        .await?;
    }
    eprintln!("[soak] {minutes} min: {CLIENTS} clients, 3 tenants, 5% faults");
    site.set_faults(Some(FaultPlan::new(7, 0.05)));
    // Start is sampled once the load has run for one window (pools warm, clients connected).
    let mut start_usage = None;
    let mut usage_series = Vec::new();

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ask_errors = Arc::new(AtomicUsize::new(0));
    let questions = Arc::new(questions(500));
    let mut askers = Vec::new();
    for index in 0..CLIENTS {
        let (client, url, keys, stop, errors, questions) =
            (client.clone(), service.url.clone(), keys.clone(), stop.clone(), ask_errors.clone(), questions.clone());
        askers.push(tokio::spawn(async move {
            let mut latencies: Vec<(u64, Duration)> = Vec::new();
            let mut turn = index;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[turn % keys.len()];
                let question = &questions[turn % questions.len()];
                turn += CLIENTS;
                let asked = Instant::now();
                let request =
                    client.post(format!("{url}/api/v1/ask")).bearer_auth(key).json(&json!({"question": question}));
                match call(&client, request).await {
                    Ok(_) => latencies.push((started.elapsed().as_secs() / WINDOW.as_secs(), asked.elapsed())),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut sync_errors = 0usize;
    let mut edits = 0usize;
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let now = usage(service.child.id());
        usage_series.push((started.elapsed().as_secs(), now));
        if start_usage.is_none() && started.elapsed() >= WINDOW {
            start_usage = Some(now);
        }
        let (tenant, space) = TENANTS[round % TENANTS.len()];
        edits += fake_confluence::edit_fraction(&site, space, 0.02, round as u64);
        let request =
            client.post(format!("{}/api/v1/memories/mem-1/sync", service.url)).bearer_auth(&keys[round % keys.len()]);
        if let Err(error) = call(&client, request.json(&json!({}))).await {
            eprintln!("[soak] sync of {tenant} refused: {error}");
            sync_errors += 1;
        }
        round += 1;
    }
    let end_usage = usage(service.child.id());
    let start_usage = start_usage.unwrap_or(end_usage);
    stop.store(true, Ordering::Relaxed);
    let mut windows: Vec<Vec<Duration>> = Vec::new();
    for asker in askers {
        for (window, latency) in asker.await? {
            let window = window as usize;
            if windows.len() <= window {
                windows.resize(window + 1, Vec::new());
            }
            windows[window].push(latency);
        }
    }
    let p99s: Vec<f64> = windows
        .iter_mut()
        .map(|w| {
            w.sort();
            quantile_ms(w, 0.99)
        })
        .collect();
    let asks: usize = windows.iter().map(Vec::len).sum();
    let faults = site.faults_injected();

    // Faults off: bring every tenant up to date and compare with a fault-free run.
    site.set_faults(None);
    let mut ended_in_error = 0;
    for key in &keys {
        settled(&client, &service.url, key).await?;
        let request = client.post(format!("{}/api/v1/memories/mem-1/sync", service.url)).bearer_auth(key);
        call(&client, request.json(&json!({}))).await?;
        if settled(&client, &service.url, key).await? != "INGESTED" {
            ended_in_error += 1;
        }
    }
    let mut soaked = Vec::new();
    for (tenant, _) in TENANTS {
        let request = operator(client.get(format!("{}/api/v1/export", service.url)), tenant);
        soaked.push(passages(&request.send().await?.text().await?));
    }
    drop(service);
    let reference_dir = work.join("soak-reference");
    if reference_dir.exists() {
        std::fs::remove_dir_all(&reference_dir)?;
    }
    std::fs::create_dir_all(&reference_dir)?;
    let reference = start(&binary, &reference_dir, cache)?;
    let mut equal = true;
    for ((tenant, space), soaked) in TENANTS.iter().zip(&soaked) {
        let key = add_tenant(&client, &reference, tenant, space, &site.origin()).await?;
        settled(&client, &reference.url, &key).await?;
        let export = client
            .get(format!("{}/api/v1/export", reference.url))
            .bearer_auth(&reference.token)
            .header(INSTANCE_HEADER, *tenant)
            .send()
            .await?
            .text()
            .await?;
        equal &= passages(&export) == *soaked;
    }

    println!("\n## Soak ({minutes} min)\n");
    println!(
        "| asks | ask errors | sync requests refused | Confluence faults injected | pages edited | runs not INGESTED after the final sync | final index equals a fault-free run |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| {asks} | {} | {sync_errors} | {faults} | {edits} | {ended_in_error} | {} |",
        ask_errors.load(Ordering::Relaxed),
        if equal { "yes" } else { "NO" }
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n| | RSS | of which anonymous | open fds |\n| --- | ---: | ---: | ---: |");
    for (when, u) in [
        (format!("after the first {} s of load", WINDOW.as_secs()), start_usage),
        ("at the end of the load".into(), end_usage),
    ] {
        println!("| {when} | {:.1} MiB | {:.1} MiB | {} |", mib(u.rss_kib), mib(u.anon_kib), u.fds);
    }
    println!(
        "\nRSS / anonymous MiB / open fds every 20 s: {}",
        usage_series
            .iter()
            .map(|(at, u)| format!("{at}s {:.0}/{:.0}/{}", mib(u.rss_kib), mib(u.anon_kib), u.fds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\nask p99 per 30 s window (ms): {}",
        p99s.iter().map(|p| format!("{p:.1}")).collect::<Vec<_>>().join(", ")
    );
    Ok(json!({
        "minutes": minutes, "asks": asks, "ask_errors": ask_errors.load(Ordering::Relaxed), "sync_errors": sync_errors,
        "faults_injected": faults, "pages_edited": edits, "not_ingested_after_final_sync": ended_in_error,
        "index_equal": equal, "rss_kib": [start_usage.rss_kib, end_usage.rss_kib],
        "anon_kib": [start_usage.anon_kib, end_usage.anon_kib], "fds": [start_usage.fds, end_usage.fds],
        "p99_ms_per_window": p99s,
        "usage_every_20s": usage_series
            .iter()
            .map(|(at, u)| json!({"at_s": at, "rss_kib": u.rss_kib, "anon_kib": u.anon_kib, "fds": u.fds}))
            .collect::<Vec<_>>(),
    }))
}
