//! Side by side: LangChain's `ConfluenceLoader` and LlamaIndex's `ConfluenceReader`
//! (Python, in a virtualenv) against the same fake site, space and latency as the
//! connector. The Python libraries call the legacy v1 endpoints, so the fake runs in
//! legacy v1 mode (which leaves the v2 endpoints the connector uses unchanged).

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::{EMAIL, SPACE, TOKEN, child_ingest, fake_with_space};

/// Longest a peer may take for one load before it is stopped.
const PEER_TIMEOUT: Duration = Duration::from_secs(1800);

/// Runs one peer script and parses its JSON line.
fn run_peer(python: &Path, script: &Path, url: &str) -> Result<Value> {
    let mut child = Command::new(python)
        .arg(script)
        .args(["--url", url, "--user", EMAIL, "--token", TOKEN, "--space", SPACE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > PEER_TIMEOUT {
            child.kill()?;
            child.wait()?;
            bail!("{} did not finish within {PEER_TIMEOUT:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{} failed ({status}): {}", script.display(), err.lines().rev().take(15).collect::<Vec<_>>().join("\n"));
    }
    let line =
        out.lines().rev().find(|l| l.trim_start().starts_with('{')).ok_or_else(|| anyhow!("no JSON from peer"))?;
    Ok(serde_json::from_str(line)?)
}

/// Runs the connector and both peers on a `pages`-page space at each latency.
pub fn run(python: &Path, scripts: &Path, pages: usize, latencies: &[u64], work: &Path, cache: &Path) -> Result<Value> {
    if !python.exists() {
        bail!("no Python at {} (bench/run.sh --peers creates target/bench-venv)", python.display());
    }
    let site = fake_with_space(pages)?;
    site.set_legacy_v1(true);
    let url = format!("{}/wiki", site.origin());
    let mut rows = Vec::new();
    for &latency in latencies {
        site.set_latency(Duration::from_millis(latency));
        let dir = work.join(format!("peers-{pages}-{latency}ms"));
        let _ = std::fs::remove_dir_all(&dir);
        site.reset_requests();
        let ours = child_ingest(&dir, cache, &site.origin(), SPACE)?;
        let our_requests = site.requests().len();
        let our_docs_per_s = f64::from(ours.documents) / ours.seconds;
        eprintln!("[peers] connector {latency} ms: {ours:?}, {our_requests} requests");
        let mut row = json!({
            "pages": pages,
            "latency_ms": latency,
            "connector": {
                "documents": ours.documents,
                "seconds": ours.seconds,
                "docs_per_second": our_docs_per_s,
                "http_requests": our_requests,
                "peak_rss_mib": ours.peak_rss_kib as f64 / 1024.0,
            },
        });
        for (name, file) in [("langchain", "langchain_peer.py"), ("llamaindex", "llamaindex_peer.py")] {
            site.reset_requests();
            let result = run_peer(python, &scripts.join(file), &url);
            let requests = site.requests().len();
            let value = match result {
                Ok(v) => {
                    let seconds = v["seconds"].as_f64().unwrap_or(f64::NAN);
                    let docs = v["pages"].as_f64().unwrap_or(0.0);
                    let docs_per_second = docs / seconds;
                    json!({
                        "documents": v["pages"],
                        "seconds": seconds,
                        "docs_per_second": docs_per_second,
                        "http_requests": requests,
                        "peak_rss_mib": v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                        "connector_speedup_docs_per_s": our_docs_per_s / docs_per_second,
                        "requests_ratio_peer_over_connector": requests as f64 / our_requests as f64,
                    })
                }
                Err(e) => json!({"error": format!("{e:#}"), "http_requests": requests}),
            };
            eprintln!("[peers] {name} {latency} ms: {value}");
            row[name] = value;
        }
        rows.push(row);
    }
    print_table(&rows);
    Ok(Value::Array(rows))
}

fn print_table(rows: &[Value]) {
    println!("\n## Side by side (same fake, same space, same latency; Python peers in legacy v1 mode)\n");
    println!(
        "| pages | latency | loader | documents | wall time | docs/s | HTTP requests | peak RSS | connector speed-up (docs/s) |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        for name in ["connector", "langchain", "llamaindex"] {
            let v = &row[name];
            if let Some(error) = v.get("error") {
                println!(
                    "| {} | {} ms | {name} | failed: {} | | | {} | | |",
                    row["pages"],
                    row["latency_ms"],
                    error.as_str().unwrap_or("").lines().next().unwrap_or(""),
                    v["http_requests"]
                );
                continue;
            }
            let speedup = v.get("connector_speedup_docs_per_s").and_then(Value::as_f64);
            println!(
                "| {} | {} ms | {name} | {} | {:.2} s | {:.0} | {} | {:.0} MiB | {} |",
                row["pages"],
                row["latency_ms"],
                v["documents"],
                v["seconds"].as_f64().unwrap_or(f64::NAN),
                v["docs_per_second"].as_f64().unwrap_or(f64::NAN),
                v["http_requests"],
                v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
                speedup.map_or("—".to_string(), |s| format!("{s:.1}×")),
            );
        }
    }
}
