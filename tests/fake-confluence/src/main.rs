//! `fake-confluence [--port N] [--demo]`: runs the fake Confluence Cloud site until Ctrl-C.

use std::time::Duration;

use fake_confluence::{
    DEMO_EMAIL, DEMO_SCOPED_TOKEN, DEMO_SPACE_KEY, DEMO_TOKEN, FakeConfluence, populate_demo,
};

fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut demo = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--port needs a value"))?;
                port = v.parse()?;
            }
            "--demo" => demo = true,
            "-h" | "--help" => {
                println!("usage: fake-confluence [--port N] [--demo]");
                return Ok(());
            }
            other => anyhow::bail!(
                "unknown argument {other:?} (usage: fake-confluence [--port N] [--demo])"
            ),
        }
    }
    let site = FakeConfluence::start_on(port)?;
    println!("fake Confluence Cloud site: {}", site.origin());
    println!("  REST base (classic tokens): {}/wiki", site.origin());
    println!("  gateway base (scoped tokens): {}", site.gateway_base());
    println!("  cloudId: {}", site.cloud_id());
    if demo {
        populate_demo(&site);
        println!("  demo space: {DEMO_SPACE_KEY}");
        println!("  e-mail: {DEMO_EMAIL}");
        println!("  classic token: {DEMO_TOKEN}");
        println!("  scoped token: {DEMO_SCOPED_TOKEN}");
    } else {
        println!("  (empty site; start with --demo for the demo space and user)");
    }
    println!("press Ctrl-C to stop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    drop(site);
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}
