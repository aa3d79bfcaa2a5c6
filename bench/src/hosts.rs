//! Several hosts on one PostgreSQL database (`--postgres --only hosts`): four tenants, each
//! ingesting a 2,500-page space, driven by one `connector-host serve` process and then by
//! two on a fresh database, on the same machine (the hosts, PostgreSQL and the fake share its
//! cores). The `serve` processes are the release binary beside this one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use connector_host::keys::Role;
use connector_host::service::handoff;
use fake_confluence::{FakeConfluence, TokenKind};

use crate::service::call;
use crate::{EMAIL, TOKEN, open_host, prepare_data_dir};

/// Tenants, and pages in each one's space.
const TENANTS: usize = 4;
const PAGES: usize = 2_500;

/// A `serve` process of the run.
struct Host {
    child: Child,
    url: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    /// Peak RSS of the process so far, MiB.
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

fn serve_binary() -> Result<PathBuf> {
    let binary = std::env::current_exe()?.with_file_name("connector-host");
    if !binary.exists() {
        bail!("{} is missing: build it with `cargo build --release -p connector-host`", binary.display());
    }
    Ok(binary)
}

/// Starts `serve` on `dir` (whose database the run prepared) and waits until it listens.
async fn start_host(binary: &Path, dir: &Path, cache: &Path) -> Result<Host> {
    let url = std::fs::read_to_string(dir.join("database-url")).context("the host's database")?;
    let child = Command::new(binary)
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", &url, "serve", "--listen", "127.0.0.1:0", "--allow-loopback"])
        .env("CONNECTOR_HOST_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start connector-host serve")?;
    let mut host = Host { child, url: String::new() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = handoff::find(dir) {
            host.url = found.url;
            return Ok(host);
        }
        if host.child.try_wait()?.is_some() || Instant::now() > deadline {
            bail!("connector-host serve on {} did not start", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One run: `hosts` serve processes on a fresh database ingest every tenant's space;
/// returns the wall time from the first request to the last settled memory, and the hosts.
async fn run_once(site: &FakeConfluence, work: &Path, cache: &Path, hosts: usize) -> Result<(f64, Vec<Host>)> {
    let binary = serve_binary()?;
    let first = work.join(format!("hosts-{hosts}-0"));
    if first.exists() {
        std::fs::remove_dir_all(&first)?;
    }
    prepare_data_dir(&first)?;
    let url = std::fs::read_to_string(first.join("database-url"))?;
    // The tenants' keys, made as an operator makes them (the CLI on the same database).
    let keys: Vec<String> = {
        let admin = open_host(&first, cache)?;
        (0..TENANTS)
            .map(|n| Ok(admin.create_key(&format!("tenant-{n}"), Role::Admin, None)?.key))
            .collect::<Result<_>>()?
    };
    let mut started = Vec::new();
    for n in 0..hosts {
        let dir = work.join(format!("hosts-{hosts}-{n}"));
        if n > 0 {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("database-url"), &url)?;
        }
        started.push(start_host(&binary, &dir, cache).await?);
    }
    let client = reqwest::Client::new();
    let began = Instant::now();
    let mut memories = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let base = &started[n % hosts].url;
        let body = json!({"site": site.origin(), "email": EMAIL, "token": TOKEN, "allow_loopback": true});
        let connection = call(&client, &format!("{base}/api/v1/connections"), key, reqwest::Method::POST, body).await?;
        let body = json!({"connection": connection["id"], "spaces": format!("T{n}")});
        let added = call(&client, &format!("{base}/api/v1/memories"), key, reqwest::Method::POST, body).await?;
        let memory = added["memories"][0]["id"].as_str().ok_or_else(|| anyhow!("no memory: {added}"))?.to_string();
        memories.push((base.clone(), key.clone(), memory));
    }
    for (base, key, memory) in &memories {
        loop {
            let view =
                call(&client, &format!("{base}/api/v1/memories/{memory}"), key, reqwest::Method::GET, Value::Null)
                    .await?;
            if view["status"] == "INGESTED" {
                break;
            }
            if view["status"] != "IN_PROGRESS" {
                bail!("tenant memory {memory} ended {view}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok((began.elapsed().as_secs_f64(), started))
}

/// Runs the comparison at each latency; prints a table and returns the rows.
pub async fn one_host_against_two(work: &Path, cache: &Path, latencies: &[u64]) -> Result<Value> {
    let site = FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    for n in 0..TENANTS {
        fake_confluence::generate_space(&site, &format!("T{n}"), PAGES, 30 + n as u64);
    }
    println!("\n## {TENANTS} tenants of {PAGES} pages each on PostgreSQL: one host against two\n");
    println!("| latency | hosts | wall time | pages per second | peak RSS per host |");
    println!("| ---: | ---: | ---: | ---: | --- |");
    let mut rows = Vec::new();
    for &latency in latencies {
        site.set_latency(Duration::from_millis(latency));
        for hosts in [1, 2] {
            eprintln!("[hosts] {TENANTS} tenants x {PAGES} pages, {hosts} host(s), {latency} ms");
            let (seconds, started) = run_once(&site, work, cache, hosts).await?;
            let rss: Vec<f64> = started.iter().map(Host::peak_rss_mib).collect();
            let pages = (TENANTS * PAGES) as f64;
            println!(
                "| {latency} ms | {hosts} | {seconds:.2} s | {:.0} | {} |",
                pages / seconds,
                rss.iter().map(|mib| format!("{mib:.0} MiB")).collect::<Vec<_>>().join(", ")
            );
            rows.push(json!({"latency_ms": latency, "hosts": hosts, "seconds": seconds, "peak_rss_mib": rss}));
        }
    }
    Ok(json!({"tenants": TENANTS, "pages_each": PAGES, "rows": rows}))
}
