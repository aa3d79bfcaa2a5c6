//! Semantic retrieval with the real all-MiniLM-L6-v2 model: pages answer lexically first
//! and are embedded after; a paraphrase wins once fused; syncs embed only what changed; a
//! killed embedding resumes; a missing or corrupt model is a clear error and lexical
//! search keeps working; the service turns it on per instance and embeds in the
//! background, and the dashboard shows the coverage.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service_support::*;
use crate::support::*;

/// A space where the question "How often should I rotate my API key?" is answered by a
/// page that words it differently, while another page has more of its words.
fn handbook(world: &World) -> (String, String) {
    world.site.add_space("SEC", "Security");
    let paraphrase = world.site.add_page(
        "SEC",
        None,
        "Credential renewal schedule",
        &body(
            "Schedule",
            "Should my access tokens expire? Roll each service credential every ninety days: create a \
             replacement token in the admin console, update the services that use it, then revoke the old one.",
        ),
    );
    let words = world.site.add_page(
        "SEC",
        None,
        "Keyboard shortcuts",
        &body("Search", "Press the K key with Ctrl to open search; hold the Shift key and an arrow key to select."),
    );
    for (title, text) in [
        (
            "Travel policy",
            "Book trains for trips under four hours, submit receipts within a month, and ask your manager \
             before booking hotels often used by the sales team during the spring conference season.",
        ),
        ("Lunch menu", "The cafeteria serves soup, salads and a hot dish every weekday at noon."),
        ("Office Wi-Fi", "Can I join the guest network? Use the password printed at the reception desk."),
        ("Parking", "Visitors park on level two of the garage; the intercom explains how the barrier opens."),
        ("Holiday calendar", "The office closes between Christmas and New Year; plan releases accordingly."),
        ("Coffee machine", "Descale the machine on Fridays and refill the beans from the cupboard."),
    ] {
        world.site.add_page("SEC", None, title, &body("About", text));
    }
    (paraphrase, words)
}

const QUESTION: &str = "How often should I rotate my API key?";

fn page_ids(passages: &[Value]) -> Vec<String> {
    passages.iter().map(|p| p["page_id"].as_str().unwrap().to_string()).collect()
}

fn with_model(args: &[&str]) -> Vec<String> {
    let model = embedding_model();
    let mut all = vec!["--embedding-model".to_string(), model.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_paraphrase_wins_once_the_pages_are_embedded_after_the_lexical_ingest() {
    let world = World::new();
    let (paraphrase, words) = handbook(&world);
    let connection = world.connect();
    world.json(&strs(&with_model(&["semantic", "on", "--no-wait"])));
    let ingested = world.json(&["ingest", "--connection", &connection, "--spaces", "SEC"]);
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    assert!(ingested.get("embedded").is_none(), "no model in this run, nothing embedded: {ingested}");

    // Ingested and answerable before any page is embedded.
    let status = world.json(&strs(&with_model(&["status"])));
    let sec = memory(&status, "SEC");
    assert_eq!(sec["status"], "INGESTED");
    assert_eq!(sec["semantic"], json!({"embedded": 0, "pages": 9, "error": null}), "{sec}");
    let lexical = page_ids(&world.ask(QUESTION));
    assert_eq!(lexical[0], words, "lexically, the page with the question's words comes first");

    let resumed = world.json(&strs(&with_model(&["resume"])));
    assert_eq!(resumed["embedded"], 9, "{resumed}");
    let status = world.json(&strs(&with_model(&["semantic"])));
    assert_eq!(status["enabled"], true);
    assert_eq!(status["memories"][0]["embedded"], 9, "{status}");

    let fused: Vec<Value> =
        world.json(&strs(&with_model(&["ask", QUESTION, "--limit", "3"])))["passages"].as_array().unwrap().clone();
    assert_eq!(page_ids(&fused)[0], paraphrase, "{fused:#?}");

    // Off: the vectors are deleted and answers are lexical again.
    world.json(&strs(&with_model(&["semantic", "off"])));
    assert_eq!(page_ids(&world.ask(QUESTION))[0], words);
    assert!(memory(&world.status(), "SEC").get("semantic").is_none_or(Value::is_null));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_embedding_resumes_and_syncs_embed_only_changed_pages() {
    let world = World::new();
    fake_confluence::generate_space(&world.site, "BIG", 160, 11);
    let connection = world.connect();
    world.json(&strs(&with_model(&["semantic", "on", "--no-wait"])));
    world.ingest(&connection, "BIG");
    let pages = memory(&world.status(), "BIG")["pages"].as_u64().unwrap();

    // The service embeds in the background and is killed (SIGKILL) part way.
    let key = create_key(&world, "default", "member");
    let model = embedding_model();
    let served = Served::start(world.data_dir(), &["--embedding-model", model.to_str().unwrap()]);
    let api = Api::new(&served.url, Some(&key));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, view) = api.get("/api/v1/semantic").await;
        let embedded = view["memories"][0]["embedded"].as_u64().unwrap_or(0);
        assert!(embedded < pages, "the embedding finished before the kill: make the space larger");
        if embedded > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no page was embedded within 120 s: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.kill();
    let coverage = &world.json(&strs(&with_model(&["semantic"])))["memories"][0];
    let embedded = coverage["embedded"].as_u64().unwrap();
    assert!(embedded > 0 && embedded < pages, "killed part way: {coverage}");
    assert_eq!(coverage["pages"], pages);

    let resumed = world.json(&strs(&with_model(&["resume"])));
    assert_eq!(resumed["embedded"].as_u64().unwrap(), pages - embedded, "the rest, once: {resumed}");

    // A sync with two edited pages and one deleted embeds the two.
    let status = world.status();
    let memory_id = memory(&status, "BIG")["id"].as_str().unwrap().to_string();
    let export: Vec<Value> = world.ok(&["export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut ids: Vec<String> = export.iter().map(|l| l["page_id"].as_str().unwrap().to_string()).collect();
    ids.dedup();
    world.site.edit_page(&ids[1], None, Some(&body("Changed", "a new paragraph about glacier maintenance")));
    world.site.edit_page(&ids[2], Some("Renamed page"), None);
    world.site.trash_page(&ids[3]);
    let synced = world.json(&strs(&with_model(&["sync", &memory_id])));
    assert_eq!(synced["embedded"], 2, "{synced}");
    let coverage = &world.json(&strs(&with_model(&["semantic"])))["memories"][0];
    assert_eq!((coverage["embedded"].as_u64(), coverage["pages"].as_u64()), (Some(pages - 1), Some(pages - 1)));
}

#[test]
fn a_missing_or_corrupt_model_is_a_clear_error_and_answers_stay_lexical() {
    let world = World::new();
    let (_, words) = handbook(&world);
    let connection = world.connect();
    world.ingest(&connection, "SEC");

    let output = world.run(&["semantic", "on"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("--embedding-model"), "{}", text(&output));

    let missing = world.data_dir().join("no-model-here");
    let output = world.run(&["--embedding-model", missing.to_str().unwrap(), "semantic", "on"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("install.py"), "{}", text(&output));

    let corrupt = world.data_dir().join("corrupt-model");
    std::fs::create_dir_all(&corrupt).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(embedding_model().join(file), corrupt.join(file)).unwrap();
    }
    std::fs::write(corrupt.join("model.safetensors"), b"not a safetensors file").unwrap();
    let corrupt = corrupt.to_str().unwrap();
    let output = world.run(&["--embedding-model", corrupt, "semantic", "on"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("model.safetensors"), "{}", text(&output));

    // On with a good model, then run with the corrupt one: lexical answers, a clear status.
    world.json(&strs(&with_model(&["semantic", "on"])));
    assert_eq!(
        page_ids(world.json(&["--embedding-model", corrupt, "ask", QUESTION])["passages"].as_array().unwrap())[0],
        words
    );
    let status = world.json(&["--embedding-model", corrupt, "status"]);
    let error = memory(&status, "SEC")["semantic"]["error"].as_str().unwrap().to_string();
    assert!(error.contains("model.safetensors"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_turns_semantic_retrieval_on_per_instance_and_embeds_in_the_background() {
    let world = World::new();
    let (paraphrase, _) = handbook(&world);
    let admin = create_key(&world, "acme", "admin");
    let member_key = create_key(&world, "acme", "member");
    let model = embedding_model();
    let served = Served::start(world.data_dir(), &["--embedding-model", model.to_str().unwrap()]);
    let admin = Api::new(&served.url, Some(&admin));
    let member = Api::new(&served.url, Some(&member_key));

    let connection = admin.connect(&world).await;
    let (status, added) = admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "SEC"})).await;
    assert_eq!(status, 202, "{added}");
    let memory = added["memories"][0]["id"].as_str().unwrap().to_string();
    admin.settled(&memory).await;

    let (status, _) = member.send(reqwest::Method::PUT, "/api/v1/semantic", Some(json!({"enabled": true}))).await;
    assert_eq!(status, 403);
    let (status, view) = admin.send(reqwest::Method::PUT, "/api/v1/semantic", Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["enabled"], true);

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, view) = member.get("/api/v1/semantic").await;
        if view["memories"][0]["embedded"] == 9 {
            break;
        }
        assert!(Instant::now() < deadline, "the background embedder did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, answer) = member.post("/api/v1/ask", json!({"question": QUESTION, "limit": 3})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["passages"][0]["page_id"], paraphrase.as_str(), "{answer:#}");

    // The dashboard shows the coverage in the memory's row.
    let (_driver, browser) = crate::dashboard::browser().await;
    crate::dashboard::sign_in(&browser, &served.url, &member_key).await;
    let line = crate::dashboard::until(
        &browser,
        "the semantic coverage line",
        &format!("document.querySelector('tr[data-memory-id=\"{memory}\"] .semantic-line')?.textContent"),
    )
    .await;
    assert_eq!(line, "Search by meaning: all 9 pages embedded");
    assert!(served.stop().success());
}
