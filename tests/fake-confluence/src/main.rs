//! `fake-confluence`: runs the fake Confluence Cloud site until killed or Ctrl-C.
//!
//! Prints one JSON line on stdout once it is listening (origin, gateway base, cloud id, spaces with
//! their ids and page/blog post counts); human-readable notes go to stderr.

use std::io::Write as _;
use std::time::Duration;

use fake_confluence::{
    DEMO_EMAIL, DEMO_SCOPED_TOKEN, DEMO_SPACE_KEY, DEMO_TOKEN, FakeConfluence, FaultPlan, TokenKind, generate_space,
    populate_demo,
};
use serde_json::{Map, Value, json};

const USAGE: &str = "usage: fake-confluence [--port N] [--demo] [--latency-ms N] [--legacy-v1]
                       [--generate KEY:N]... [--seed S] [--user EMAIL:TOKEN]...
                       [--faults RATE] [--fault-seed S]

  --port N            listen on 127.0.0.1:N (default: an ephemeral port)
  --demo              add the demo space (DOCS) and the demo users
  --latency-ms N      add N ms of latency to every response
  --legacy-v1         serve the legacy v1 content endpoints instead of 410 Gone
  --generate KEY:N    create space KEY with N pages (incl. the homepage) and N/50 blog posts
  --seed S            seed of the generated content (default 1)
  --user EMAIL:TOKEN  register a user with a classic API token (repeatable)
  --faults RATE       inject faults (every kind except slow responses) into RATE (0..1) of requests
  --fault-seed S      seed of the fault sequence (default 1)

Prints one JSON line to stdout: {\"origin\",\"gateway\",\"cloud_id\",\"spaces\":{KEY:{id,pages,blogposts}}}";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    port: u16,
    demo: bool,
    latency_ms: u64,
    legacy_v1: bool,
    generate: Vec<(String, usize)>,
    seed: u64,
    users: Vec<(String, String)>,
    fault_rate: Option<f64>,
    fault_seed: u64,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut a = Args { seed: 1, fault_seed: 1, ..Args::default() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow::anyhow!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--port" => a.port = value("--port")?.parse()?,
            "--demo" => a.demo = true,
            "--latency-ms" => a.latency_ms = value("--latency-ms")?.parse()?,
            "--legacy-v1" => a.legacy_v1 = true,
            "--generate" => {
                let v = value("--generate")?;
                let (key, n) = v.split_once(':').ok_or_else(|| anyhow::anyhow!("--generate wants KEY:N, got {v:?}"))?;
                anyhow::ensure!(!key.is_empty(), "--generate wants KEY:N, got {v:?}");
                a.generate.push((key.to_string(), n.parse()?));
            }
            "--seed" => a.seed = value("--seed")?.parse()?,
            "--user" => {
                let v = value("--user")?;
                let (email, token) =
                    v.split_once(':').ok_or_else(|| anyhow::anyhow!("--user wants EMAIL:TOKEN, got {v:?}"))?;
                a.users.push((email.to_string(), token.to_string()));
            }
            "--faults" => {
                let rate: f64 = value("--faults")?.parse()?;
                anyhow::ensure!((0.0..=1.0).contains(&rate), "--faults wants a rate in 0..1");
                a.fault_rate = Some(rate);
            }
            "--fault-seed" => a.fault_seed = value("--fault-seed")?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let site = FakeConfluence::start_on(args.port)?;
    if args.demo {
        populate_demo(&site);
        eprintln!(
            "demo space {DEMO_SPACE_KEY}; e-mail {DEMO_EMAIL}; classic token {DEMO_TOKEN}; scoped token {DEMO_SCOPED_TOKEN}"
        );
    }
    for (email, token) in &args.users {
        site.add_user(email, token, TokenKind::Classic);
    }
    for (key, n) in &args.generate {
        let started = std::time::Instant::now();
        generate_space(&site, key, *n, args.seed);
        eprintln!("generated space {key} with {n} pages in {:.2?}", started.elapsed());
    }
    if args.latency_ms > 0 {
        site.set_latency(Duration::from_millis(args.latency_ms));
    }
    site.set_legacy_v1(args.legacy_v1);
    if let Some(rate) = args.fault_rate {
        site.set_faults(Some(FaultPlan::new(args.fault_seed, rate)));
    }

    let mut spaces = Map::new();
    for s in site.spaces() {
        spaces.insert(s.key, json!({"id": s.id, "pages": s.pages, "blogposts": s.blogposts}));
    }
    let line = json!({
        "origin": site.origin(),
        "gateway": site.gateway_base(),
        "cloud_id": site.cloud_id(),
        "spaces": Value::Object(spaces),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    drop(out);
    eprintln!("fake Confluence Cloud site at {} (REST base {}/wiki); Ctrl-C to stop", site.origin(), site.origin());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
    drop(site);
    Ok(())
}
