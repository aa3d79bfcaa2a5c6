//! Cold start, storage-format conversion and `retrieve` latency.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::{EMAIL, TOKEN, connect, ingest, open_host};

/// A tiny SplitMix64 generator (deterministic queries).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One element of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The `q`-quantile (0..=1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// Cold start: `ConnectorHost::open` with an empty compile cache (compiles the component),
/// then with the cache filled (deserialises it; also measured for the component alone,
/// without the store and linker), then the cost of one instantiation
/// (`host.instance(..)`, which the host does per instance and after every trap).
pub async fn cold_start(work: &Path) -> Result<Value> {
    let root = work.join("coldstart");
    let _ = std::fs::remove_dir_all(&root);
    let cache = root.join("cache");
    let started = Instant::now();
    let host = open_host(&root.join("first"), &cache)?;
    let first = started.elapsed();
    drop(host);
    let mut cached = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let host = open_host(&root.join(format!("cached-{i}")), &cache)?;
        cached.push(started.elapsed());
        drop(host);
    }
    cached.sort();
    // The component alone, from the filled compile cache (hash, read, deserialise).
    let engine = connector_host::runtime::new_engine()?;
    let mut component_loads = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let component =
            connector_host::runtime::load_component(&engine, connector_host::runtime::BUNDLED_COMPONENT, &cache)?;
        component_loads.push(started.elapsed());
        drop(component);
    }
    component_loads.sort();
    let host = open_host(&root.join("instances"), &cache)?;
    drop(host.instance("bench").await?); // opens the search index once
    let mut per_call = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let instance = host.instance("bench").await?;
        per_call.push(started.elapsed());
        drop(instance);
    }
    per_call.sort();
    let value = json!({
        "component_bytes": connector_host::runtime::BUNDLED_COMPONENT.len(),
        "first_load_ms": first.as_secs_f64() * 1000.0,
        "cached_load_ms_median": quantile_ms(&cached, 0.5),
        "cached_component_load_ms_median": quantile_ms(&component_loads, 0.5),
        "instantiate_ms_p50": quantile_ms(&per_call, 0.5),
        "instantiate_ms_p99": quantile_ms(&per_call, 0.99),
    });
    println!(
        "\n## Cold start (component {:.1} MiB)\n",
        connector_host::runtime::BUNDLED_COMPONENT.len() as f64 / 1048576.0
    );
    println!("| first load (compile) | cached component load | cached host open | per-call instantiation p50 / p99 |");
    println!("| ---: | ---: | ---: | ---: |");
    println!(
        "| {:.0} ms | {:.1} ms | {:.1} ms | {:.3} / {:.3} ms |",
        value["first_load_ms"].as_f64().unwrap_or(f64::NAN),
        value["cached_component_load_ms_median"].as_f64().unwrap_or(f64::NAN),
        value["cached_load_ms_median"].as_f64().unwrap_or(f64::NAN),
        value["instantiate_ms_p50"].as_f64().unwrap_or(f64::NAN),
        value["instantiate_ms_p99"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(value)
}

/// Throughput of `confluence_connector::storage::convert` over generated bodies, compiled
/// natively and compiled to wasm (the benchmark-only `bench/convert-guest` component, run
/// by the same wasmtime as the host), in wasm both plain and with the epoch-interruption
/// checks the host compiles in to stop runaway guests.
pub fn convert_throughput() -> Value {
    let bodies: Vec<String> =
        (0..1000u64).map(|i| fake_confluence::storage_body(i * 7919 + 1, &format!("Page {i}"))).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    // The same work on both sides: convert, then render the text.
    let native = measure(bytes, |rounds| {
        let mut produced = 0u64;
        for _ in 0..rounds {
            for body in &bodies {
                produced += confluence_connector::storage::convert(body).plain_text().len() as u64;
            }
        }
        Ok(produced)
    });
    // wasmtime's synchronous calls must not run on the async runtime's threads.
    let in_wasm = |epoch_interruption: bool| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut converter = crate::convert::WasmConverter::load(epoch_interruption)?;
                    measure(bytes, |rounds| converter.convert(&bodies, rounds))
                })
                .join()
                .map_err(|_| anyhow!("the wasm conversion benchmark panicked"))?
        })
    };
    let (native, wasm, limited) = match (native, in_wasm(false), in_wasm(true)) {
        (Ok(native), Ok(wasm), Ok(limited)) => (native, wasm, limited),
        (native, wasm, limited) => {
            let error = native.err().or(wasm.err()).or(limited.err()).map(|e| e.to_string()).unwrap_or_default();
            println!("\n## Storage-format conversion\n\nfailed: {error}");
            return json!({ "error": error });
        }
    };
    let (ratio, limited_ratio) = (native / wasm, native / limited);
    println!("\n## Storage-format conversion ({} bodies, {:.1} MB)\n", bodies.len(), bytes as f64 / 1e6);
    println!(
        "| native | wasm | wasm time / native time | wasm with the host's CPU-limit checks | its time / native time |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    println!("| {native:.1} MB/s | {wasm:.1} MB/s | {ratio:.2} | {limited:.1} MB/s | {limited_ratio:.2} |");
    json!({
        "bodies": bodies.len(),
        "body_bytes": bytes,
        "native_mb_per_s": native,
        "wasm_mb_per_s": wasm,
        "ratio_wasm_time_over_native": ratio,
        "wasm_epoch_interruption_mb_per_s": limited,
        "ratio_wasm_epoch_interruption_time_over_native": limited_ratio,
    })
}

/// Throughput in MB/s of `work(rounds)` over `bytes` of input per round, for at least
/// two seconds after one warm-up round. `work` returns the characters it produced.
fn measure(bytes: usize, mut work: impl FnMut(u32) -> Result<u64>) -> Result<f64> {
    std::hint::black_box(work(1)?);
    let mut rounds = 0u32;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(work(2)?);
        rounds += 2;
    }
    Ok(bytes as f64 * f64::from(rounds) / started.elapsed().as_secs_f64() / 1e6)
}

const Q_STARTS: &[&str] =
    &["How do I", "Who", "When should we", "What is the procedure to", "Why does the team", "Where do we"];
const Q_VERBS: &[&str] = &[
    "validate",
    "retry",
    "publish",
    "monitor",
    "rotate",
    "archive",
    "throttle",
    "replicate",
    "review",
    "migrate",
    "aggregate",
    "schedule",
    "encrypt",
];
const Q_OBJECTS: &[&str] = &[
    "the schema migration",
    "failed webhook deliveries",
    "the weekly capacity report",
    "error budgets",
    "credentials in the vault",
    "stale feature branches",
    "audit log entries",
    "cross-region snapshots",
    "latency percentiles",
    "refund requests",
    "tenant configuration",
    "the release candidate",
    "the rollback procedure",
    "timeout settings",
];
const Q_AREAS: &[&str] = &[
    "payments",
    "search",
    "identity",
    "billing",
    "notifications",
    "data platform",
    "mobile",
    "checkout",
    "observability",
    "storage",
    "networking",
    "onboarding",
    "reporting",
    "security",
];

/// `n` deterministic natural-language questions in the vocabulary of the generated spaces.
pub fn questions(n: usize) -> Vec<String> {
    let mut r = Rng(42);
    (0..n)
        .map(|_| format!("{} {} {} for {}?", r.pick(Q_STARTS), r.pick(Q_VERBS), r.pick(Q_OBJECTS), r.pick(Q_AREAS)))
        .collect()
}

/// `retrieve` latency through the component: opens the host on `data_dir` (normally the
/// largest 0 ms ingest), ingests further generated spaces until the index holds at least
/// `target_chunks` chunks, then times `queries` calls of `retrieve` (limit 10, all
/// memories) after 20 warm-up calls.
pub async fn retrieve_latency(data_dir: &Path, cache: &Path, target_chunks: u32, queries: usize) -> Result<Value> {
    let host = open_host(data_dir, cache)?;
    let mut instance = host.instance("bench").await?;
    let mut status = instance.status().await?;
    let mut chunks: u32 = status.memories.iter().map(|m| m.chunks).sum();
    let mut documents: u32 = status.memories.iter().map(|m| m.documents).sum();
    let mut sites = Vec::new();
    let mut extra = 0;
    while chunks < target_chunks {
        let per_doc = if documents > 0 { f64::from(chunks) / f64::from(documents) } else { 8.0 };
        let pages = (f64::from(target_chunks - chunks) / per_doc * 1.02).ceil().max(50.0) as usize;
        extra += 1;
        let key = format!("RET{extra}");
        eprintln!("[retrieve] index has {chunks} chunks; ingesting {pages} more pages as {key}");
        let site = fake_confluence::FakeConfluence::start()?;
        site.add_user(EMAIL, TOKEN, fake_confluence::TokenKind::Classic);
        fake_confluence::generate_space(&site, &key, pages, 100 + extra);
        let connection = connect(&mut instance, &site.origin()).await?;
        ingest(&mut instance, &connection, &key).await?;
        sites.push(site);
        status = instance.status().await?;
        chunks = status.memories.iter().map(|m| m.chunks).sum();
        documents = status.memories.iter().map(|m| m.documents).sum();
        if extra > 5 {
            return Err(anyhow!("could not reach {target_chunks} chunks"));
        }
    }
    crate::settle_database(data_dir)?;
    let questions = questions(queries);
    for q in questions.iter().take(20) {
        instance.retrieve(q, &[], 10).await?.map_err(|e| anyhow!("{}", connector_host::driver::describe_error(&e)))?;
    }
    let mut times = Vec::with_capacity(queries);
    let mut empty = 0;
    let before = host.profile();
    let total = Instant::now();
    for q in &questions {
        let started = Instant::now();
        let passages = instance
            .retrieve(q, &[], 10)
            .await?
            .map_err(|e| anyhow!("{}", connector_host::driver::describe_error(&e)))?;
        times.push(started.elapsed());
        if passages.is_empty() {
            empty += 1;
        }
    }
    let total = total.elapsed();
    let after = host.profile();
    let per_query_ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / queries as f64;
    times.sort();
    let value = json!({
        "chunks": chunks,
        "documents": documents,
        "memories": status.memories.len(),
        "queries": queries,
        "limit": 10,
        "p50_ms": quantile_ms(&times, 0.5),
        "p99_ms": quantile_ms(&times, 0.99),
        "mean_ms": total.as_secs_f64() * 1000.0 / queries as f64,
        "empty_answers": empty,
        "index_query_mean_ms": per_query_ms(after.index_query - before.index_query),
        "storage_mean_ms": per_query_ms(after.storage - before.storage),
    });
    println!(
        "\n## retrieve through the component ({chunks} chunks, {documents} documents, {queries} queries, limit 10)\n"
    );
    println!("| p50 | p99 | mean | of which search index | of which key-value |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let ms = |key: &str| value[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "| {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        ms("p50_ms"),
        ms("p99_ms"),
        ms("mean_ms"),
        ms("index_query_mean_ms"),
        ms("storage_mean_ms")
    );
    drop(instance);
    drop(sites);
    Ok(value)
}
