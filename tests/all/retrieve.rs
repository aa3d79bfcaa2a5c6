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
