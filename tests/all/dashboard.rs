//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver): an admin signs in, connects, adds two spaces (one invalid),
//! watches the row go IN_PROGRESS → INGESTED, syncs, toggles Auto Resync and asks; a
//! member sees the memories but no management controls. A screenshot is left in the
//! target directory for a person to look at.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::service_support::*;
use crate::support::*;

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian's chromium and chromium-driver when they are missing and this runs as
/// root (a fresh machine, where the README's test command must work as it is); otherwise
/// says how to install them.
fn ensure_chromium() {
    if on_path("chromedriver") && std::path::Path::new("/usr/bin/chromium").exists() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root && on_path("apt-get"),
        "the dashboard test needs Chromium and ChromeDriver: apt-get install chromium chromium-driver"
    );
    for args in [&["update", "-qq"][..], &["install", "-y", "-qq", "chromium", "chromium-driver"][..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .expect("run apt-get");
        assert!(status.success(), "apt-get {args:?} failed: install chromium and chromium-driver by hand");
    }
}

/// Starts ChromeDriver and a headless Chromium session; fails loudly when either is missing.
pub(crate) async fn browser() -> (Driver, Client) {
    ensure_chromium();
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromedriver ({e}): install Debian's chromium and chromium-driver (.ci/run does)")
        });
    let driver = Driver(driver);
    let profile = tempfile::tempdir().unwrap().keep();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1700", format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(error) => {
                assert!(Instant::now() < deadline, "no Chromium session through chromedriver: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Evaluates `expression` in the page until it returns something truthy; returns it.
pub(crate) async fn until(client: &Client, what: &str, expression: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let value = client.execute(&format!("return ({expression});"), vec![]).await.unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} ({expression})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

pub(crate) async fn sign_in(client: &Client, url: &str, key: &str) {
    client.goto(url).await.unwrap();
    until(client, "the sign-in form", "!document.querySelector('#signin-view').hidden").await;
    fill(client, "#signin-form input[name=key]", key).await;
    click(client, "#signin-form button[type=submit]").await;
    until(client, "the signed-in view", "!document.querySelector('#app-view').hidden").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_runs_the_product_flow_in_a_browser_and_a_member_only_reads() {
    let world = World::new();
    fake_confluence::generate_space(&world.site, "ENG", 400, 3);
    world.site.set_latency(Duration::from_millis(60));
    let served = Served::start(world.data_dir(), &[]);
    let admin_key = create_key(&world, "acme", "admin");
    let member_key = create_key(&world, "acme", "member");
    let (_driver, client) = browser().await;

    sign_in(&client, &served.url, &admin_key).await;
    let who = until(&client, "who am I", "document.querySelector('#whoami').textContent").await;
    assert_eq!(who, "acme · admin");
    let cookie = client.execute("return document.cookie;", vec![]).await.unwrap();
    assert_eq!(cookie, "", "the session cookie is HttpOnly: scripts cannot read the key");

    // Connectors: the Confluence card, the form in the product page's words.
    until(&client, "the Connect button", "!document.querySelector('#connect-open').disabled").await;
    click(&client, "#connect-open").await;
    let labels = until(
        &client,
        "the form's labels",
        "[...document.querySelectorAll('#connect-form label')].map(l => l.textContent).join('|')",
    )
    .await;
    for label in ["Site URL", "API token", "Atlassian-account e-mail"] {
        assert!(labels.as_str().unwrap().contains(label), "{label} in {labels}");
    }
    fill(&client, "#connect-form input[name=site]", &world.site.origin()).await;
    fill(&client, "#connect-form input[name=token]", "not-the-token").await;
    fill(&client, "#connect-form input[name=email]", EMAIL).await;
    click(&client, "#connect-form input[name=allow_loopback]").await;
    click(&client, "#connect-form button[type=submit]").await;
    let error = until(&client, "the connect error", "document.querySelector('#connect-error').textContent").await;
    assert!(error.as_str().unwrap().contains("not authorised"), "errors show next to the form: {error}");
    fill(&client, "#connect-form input[name=token]", TOKEN).await;
    click(&client, "#connect-form button[type=submit]").await;
    until(
        &client,
        "the connected account",
        "document.querySelector('#connections li[data-connection-id] .disconnect')",
    )
    .await;
    let account = until(&client, "the account row", "document.querySelector('#connections li').textContent").await;
    assert!(account.as_str().unwrap().contains(EMAIL), "{account}");

    // Confluence Memory: two keys, one invalid; the row goes IN_PROGRESS → INGESTED live.
    click(&client, "#add-memory-open").await;
    fill(&client, "#memory-form input[name=spaces]", "ENG, NOPE").await;
    click(&client, "#memory-form button[type=submit]").await;
    // The invalid key becomes a row in ERROR with its cause, as the product page describes.
    let invalid = until(
        &client,
        "the invalid key's row",
        "[...document.querySelectorAll('tr[data-memory-id]')].find(r => r.textContent.includes('NOPE') && r.querySelector('.status-value').textContent === 'ERROR')?.querySelector('.error')?.textContent",
    )
    .await;
    assert!(invalid.as_str().unwrap().contains("invalid or not accessible"), "{invalid}");
    let status = "document.querySelector('tr[data-memory-id=\"mem-1\"] .status-value')?.textContent";
    until(&client, "the row IN_PROGRESS", &format!("{status} === 'IN_PROGRESS'")).await;
    until(&client, "a live progress bar", "document.querySelector('tr[data-memory-id=\"mem-1\"] progress')").await;
    until(&client, "the row INGESTED", &format!("{status} === 'INGESTED'")).await;
    let pages =
        until(&client, "the page count", "document.querySelector('tr[data-memory-id=\"mem-1\"] td.pages').textContent")
            .await;
    assert_eq!(pages, "408", "400 pages and 8 blog posts");

    // A duplicate key is refused with the product page's advice.
    click(&client, "#add-memory-open").await;
    fill(&client, "#memory-form input[name=spaces]", "ENG").await;
    click(&client, "#memory-form button[type=submit]").await;
    let duplicate =
        until(&client, "the duplicate message", "document.querySelector('#memory-error').textContent.includes('already ingested') && document.querySelector('#memory-error').textContent").await;
    assert!(duplicate.as_str().unwrap().contains("sync"), "{duplicate}");

    // Sync, then Auto Resync on and off.
    world.site.reset_requests();
    click(&client, "tr[data-memory-id='mem-1'] button.sync").await;
    until(&client, "the sync to run", "document.querySelector('#message').textContent.includes('Sync started')").await;
    until(&client, "the row INGESTED after the sync", &format!("{status} === 'INGESTED'")).await;
    assert!(world.site.requests().iter().any(|r| r.path.contains("/pages")), "the sync reached Confluence");
    click(&client, "tr[data-memory-id='mem-1'] button.auto-toggle").await;
    until(
        &client,
        "Auto Resync on",
        "document.querySelector('tr[data-memory-id=\"mem-1\"] .auto-state').textContent === 'every 1h'",
    )
    .await;
    click(&client, "tr[data-memory-id='mem-1'] button.auto-toggle").await;
    until(
        &client,
        "Auto Resync off",
        "document.querySelector('tr[data-memory-id=\"mem-1\"] .auto-state').textContent === 'off'",
    )
    .await;

    // Ask.
    fill(&client, "#ask-form input[name=question]", "How do I configure the retry backoff?").await;
    click(&client, "#ask-form button[type=submit]").await;
    let link = until(&client, "an answer", "document.querySelector('#passages li a.title')?.href").await;
    assert!(link.as_str().unwrap().contains("/wiki/spaces/ENG/pages/"), "{link}");
    let breadcrumb =
        until(&client, "a breadcrumb", "document.querySelector('#passages li .breadcrumb').textContent").await;
    assert!(breadcrumb.as_str().unwrap().starts_with("ENG Knowledge Base"), "{breadcrumb}");

    click(&client, "#memory-form button.cancel").await;
    client.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
    let screenshot = client.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-admin.png");
    std::fs::write(&shot, &screenshot).unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot at {}", shot.display());

    // Sign out; a member sees the list and can ask, but gets no management controls.
    click(&client, "#signout").await;
    until(&client, "the sign-in view", "!document.querySelector('#signin-view').hidden").await;
    sign_in(&client, &served.url, &member_key).await;
    until(&client, "the memory row", &format!("{status} === 'INGESTED'")).await;
    let controls = client
        .execute(
            "return ['#connect-open', '#connect-form', '#add-memory-open', '#memory-form', '.sync', '.auto-toggle', '.disconnect']
                .filter(s => document.querySelector(s)).join(',');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(controls, "", "a member gets no management controls");
    let member_shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-member.png");
    std::fs::write(member_shot, client.screenshot().await.unwrap()).unwrap();
    client.close().await.unwrap();

    // And the API refuses the member's management calls anyway (the cookie is not a way around it).
    let member = Api::new(&served.url, Some(&member_key));
    let (code, _) = member.post("/api/v1/memories/mem-1/sync", json!({})).await;
    assert_eq!(code, 403);
}
