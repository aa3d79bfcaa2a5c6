//! Retrieval: passages carry correct citations and respect the memory filter.

use crate::support::*;

#[test]
fn passages_cite_title_url_breadcrumb_and_version() {
    let world = World::new();
    world.site.add_space("DOC", "Product Docs");
    let guides = world.site.add_page("DOC", None, "Guides", &body("About", "all the guides"));
    let install = world.site.add_page(
        "DOC",
        Some(&guides),
        "Install & Upgrade",
        "<h1>Linux</h1><p>Run the installer with <code>sudo ./setup --fast</code> on a zebra host.</p><h2>Troubleshooting</h2><p>Delete the lockfile when the quokka daemon hangs.</p>",
    );
    world.site.edit_page(&install, None, None);
    let connection = world.connect();
    world.ingest(&connection, "DOC");

    let passages = world.ask("quokka daemon hangs");
    let top = &passages[0];
    assert_eq!(top["title"], "Install & Upgrade");
    assert_eq!(top["page_id"], install.as_str());
    assert_eq!(top["space_key"], "DOC");
    assert_eq!(top["version"], 2);
    assert_eq!(top["breadcrumb"], "Product Docs › Guides › Install & Upgrade › Linux › Troubleshooting");
    let url = top["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/wiki/spaces/DOC/pages/{install}/", world.site.origin())), "{url}");
    assert!(top["text"].as_str().unwrap().contains("lockfile"), "{top}");
    assert!(top["score"].as_f64().unwrap() > 0.0);
    assert!(top["modified_at"].as_str().unwrap().starts_with("20"));

    let output = world.run(&["ask", "   "]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("question is empty"));
}

#[test]
fn the_memory_filter_limits_answers() {
    let world = World::new();
    world.site.add_space("A", "Alpha");
    world.site.add_page("A", None, "Alpha notes", &body("Shared", "the walrus protocol in alpha"));
    world.site.add_space("B", "Beta");
    world.site.add_page("B", None, "Beta notes", &body("Shared", "the walrus protocol in beta"));
    let connection = world.connect();
    world.ingest(&connection, "A, B");
    let status = world.status();
    let beta = memory(&status, "B")["id"].as_str().unwrap().to_string();

    let all = world.ask("walrus protocol");
    assert_eq!(all.len(), 2);
    let only_beta = world.json(&["ask", "walrus protocol", "--memory", &beta])["passages"].as_array().unwrap().clone();
    assert_eq!(only_beta.len(), 1);
    assert_eq!(only_beta[0]["title"], "Beta notes");
    let output = world.run(&["ask", "walrus", "--memory", "mem-99"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no memory 'mem-99'"));
}

/// A space where the right order is known: "Field notes" answers "quokka migration" in
/// every one of its three sections; "Lucky notes" has the single best passage (shortest)
/// among ten sections about lunch; "Mascot" mentions quokkas once.
fn quokka_space(world: &World) -> (String, String, String) {
    world.site.add_space("OPS", "Operations");
    let waves = ["one", "two", "three"].iter().enumerate();
    let field_notes: String =
        waves.map(|(i, n)| body(&format!("Week {i}"), &format!("Quokka migration wave {n}."))).collect();
    let thorough = world.site.add_page("OPS", None, "Field notes", &field_notes);
    let dishes = ["soup", "salad", "pasta", "curry", "stew", "tacos", "ramen", "pizza", "bread"];
    let lunch: String =
        dishes.iter().enumerate().map(|(i, d)| body(&format!("Item {i}"), &format!("Lunch menu {d} today."))).collect();
    let lucky =
        world.site.add_page("OPS", None, "Lucky notes", &format!("{}{lunch}", body("Item", "Quokka migration.")));
    let mascot = world.site.add_page("OPS", None, "Mascot", &body("About", "The quokka mascot waves hello."));
    let connection = world.connect();
    world.ingest(&connection, "OPS");
    (thorough, lucky, mascot)
}

fn page_ids(passages: &[serde_json::Value]) -> Vec<String> {
    passages.iter().map(|p| p["page_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn answers_cite_distinct_pages_unless_asked_for_more_passages_per_page() {
    let world = World::new();
    let (thorough, lucky, mascot) = quokka_space(&world);

    let distinct = page_ids(&world.ask("quokka migration"));
    assert_eq!(distinct, [thorough.clone(), lucky.clone(), mascot.clone()], "one passage per page by default");

    let raw = world.json(&["ask", "quokka migration", "--limit", "10", "--per-document", "0"]);
    let raw = page_ids(raw["passages"].as_array().unwrap());
    assert_eq!(raw.len(), 5, "every matching passage: {raw:?}");
    assert_eq!(raw.iter().filter(|p| **p == thorough).count(), 3);

    let two = world.json(&["ask", "quokka migration", "--limit", "10", "--per-document", "2"]);
    let two = page_ids(two["passages"].as_array().unwrap());
    assert_eq!(two, [thorough.clone(), thorough, lucky, mascot], "a page's passages stay together");
}

#[test]
fn a_page_that_answers_throughout_outranks_one_lucky_passage() {
    let world = World::new();
    let (thorough, lucky, _) = quokka_space(&world);

    // Passage by passage, the lucky page's short one scores best ...
    let raw = world.json(&["ask", "quokka migration", "--limit", "1", "--per-document", "0"]);
    assert_eq!(page_ids(raw["passages"].as_array().unwrap()), std::slice::from_ref(&lucky));
    // ... but as a source, the page about the question beats the page about lunch.
    let answer = world.ask("quokka migration");
    assert_eq!(page_ids(&answer[..2]), [thorough, lucky]);
    assert!(answer[0]["score"].as_f64().unwrap() > answer[1]["score"].as_f64().unwrap());
}
