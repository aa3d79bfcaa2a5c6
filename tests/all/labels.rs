//! Labels: kept with every passage, searchable (they rank like the title), usable as a filter
//! in `ask` (the API's `labels`), fetched in bulk (the space's label names, then the labelled
//! content by CQL), and followed by sync when a page's labels change but its version does not.

use serde_json::Value;

use crate::support::*;

fn ask_labelled(world: &World, question: &str, labels: &[&str]) -> Vec<Value> {
    let mut args = vec!["ask", question, "--limit", "10"];
    for label in labels {
        args.extend(["--label", label]);
    }
    world.json(&args)["passages"].as_array().expect("passages").clone()
}

fn titles(passages: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = passages.iter().map(|p| p["title"].as_str().unwrap().to_string()).collect();
    titles.sort();
    titles
}

#[test]
fn labels_are_kept_searchable_filterable_and_followed_by_sync() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    let restart =
        world.site.add_page("OPS", None, "Restart procedure", &body("Steps", "drain the workers then restart them"));
    let failover =
        world.site.add_page("OPS", None, "Failover", &body("Steps", "promote the replica and restart the workers"));
    let lunch = world.site.add_page("OPS", None, "Lunch menu", &body("Today", "soup and restart-free salad"));
    let file = world.site.add_attachment(&lunch, "floorplan.txt", "text/plain", b"The workers sit on floor three.");
    world.site.add_label(&restart, "runbook");
    world.site.add_label(&failover, "runbook");
    world.site.add_label(&failover, "postgres");
    world.site.add_label(&file, "diagram");

    let connection = world.connect();
    world.site.reset_requests();
    let ingested = world.ingest(&connection, "OPS");
    let memory = &ingested["memories"][0];
    assert_eq!(memory["progress"]["counts"]["labels"], 3, "{ingested}");
    let label_requests: Vec<_> = world
        .site
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/content/labels") || r.query.contains("label%20in"))
        .collect();
    assert_eq!(label_requests.len(), 2, "the label names, then one search of the labelled content: {label_requests:?}");

    // Kept with the passages, and searchable: no page says "postgres".
    let answer = world.ask("postgres");
    assert_eq!(answer[0]["title"], "Failover", "{answer:?}");
    assert_eq!(answer[0]["labels"], serde_json::json!(["postgres", "runbook"]));

    // A filter: only labelled documents answer.
    let runbooks = ask_labelled(&world, "restart the workers", &["runbook"]);
    assert_eq!(titles(&runbooks), ["Failover", "Restart procedure"], "{runbooks:?}");
    let diagrams = ask_labelled(&world, "workers", &["diagram"]);
    assert_eq!(titles(&diagrams), ["floorplan.txt"], "attachments carry labels too: {diagrams:?}");
    assert!(ask_labelled(&world, "workers", &["nothing-has-this"]).is_empty());

    // Labels change without a new version; a sync follows.
    world.site.add_label(&lunch, "runbook");
    world.site.remove_label(&restart, "runbook");
    let synced = world.json(&["sync", memory["id"].as_str().unwrap()]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    let runbooks = ask_labelled(&world, "restart", &["runbook"]);
    assert_eq!(titles(&runbooks), ["Failover", "Lunch menu"], "{runbooks:?}");
}
