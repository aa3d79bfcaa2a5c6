//! Included content and Cloud content types through the real `.wasm`: `include` and
//! `excerpt-include` show the other page's text (or its excerpt) in the including page,
//! fetched in bulk by title, to a depth limit and without cycles, and followed by sync when
//! the included page changes, appears or lives in another space; folders, whiteboards,
//! databases and embeds are indexed by title, counted, and sit in breadcrumbs.

use serde_json::Value;

use crate::support::*;

/// A storage body that includes `title` (of `space`, when given) whole.
fn include(title: &str, space: Option<&str>) -> String {
    macro_of("include", title, space)
}

/// A storage body that shows the excerpt of `title`.
fn excerpt_include(title: &str) -> String {
    macro_of("excerpt-include", title, None)
}

fn macro_of(name: &str, title: &str, space: Option<&str>) -> String {
    let space = space.map(|key| format!(" ri:space-key=\"{key}\"")).unwrap_or_default();
    format!(
        "<ac:structured-macro ac:name=\"{name}\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\"><ac:link>\
         <ri:page ri:content-title=\"{title}\"{space}/></ac:link></ac:parameter></ac:structured-macro>"
    )
}

fn titles(passages: &[Value]) -> Vec<&str> {
    passages.iter().map(|p| p["title"].as_str().unwrap()).collect()
}

fn passage_of<'a>(passages: &'a [Value], title: &str) -> Option<&'a Value> {
    passages.iter().find(|p| p["title"] == title)
}

#[test]
fn included_pages_and_excerpts_are_indexed_with_their_includers_and_followed_by_sync() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    world.site.add_space("ENG", "Engineering");
    let rotation = world.site.add_page(
        "OPS",
        None,
        "Credential rotation",
        "<p>Why we rotate.</p><ac:structured-macro ac:name=\"excerpt\"><ac:rich-text-body>\
         <p>Rotate the kestrel keys every ninety days.</p></ac:rich-text-body></ac:structured-macro>\
         <p>The quokka vault holds the old keys.</p>",
    );
    let mut includers = Vec::new();
    for team in ["Payments", "Search", "Mobile", "Billing", "Identity", "Storage", "Network", "Data"] {
        let body =
            format!("<h2>Security</h2><p>{team} follows the shared steps.</p>{}", include("Credential rotation", None));
        includers.push(world.site.add_page("OPS", None, &format!("{team} onboarding"), &body));
    }
    world.site.add_page(
        "OPS",
        None,
        "Overview",
        &format!("<p>In short:</p>{}", excerpt_include("Credential rotation")),
    );
    // A cycle, a chain deeper than the limit, a page nobody can read, a page in another
    // space, and a title no page has yet.
    world.site.add_page("OPS", None, "Ping", &format!("<p>ping marmot</p>{}", include("Pong", None)));
    world.site.add_page("OPS", None, "Pong", &format!("<p>pong wombat</p>{}", include("Ping", None)));
    for level in 1..=6 {
        let next = if level < 6 { include(&format!("Level {}", level + 1), None) } else { String::new() };
        world.site.add_page("OPS", None, &format!("Level {level}"), &format!("<p>stratum{level} word</p>{next}"));
    }
    let secret = world.site.add_page("OPS", None, "Sealed", "<p>the narwhal code</p>");
    world.site.restrict_page(&secret, true);
    world.site.add_page("OPS", None, "Reads sealed", &include("Sealed", None));
    let glossary = world.site.add_page("ENG", None, "Glossary", "<p>A pangolin is a deploy freeze.</p>");
    world.site.add_page("OPS", None, "Terms", &format!("<p>See the glossary.</p>{}", include("Glossary", Some("ENG"))));
    world.site.add_page("OPS", None, "Forward", &format!("<p>Soon:</p>{}", include("Future plan", None)));

    let connection = world.connect();
    world.site.reset_requests();
    let ingested = world.ingest(&connection, "OPS");
    let memory = &ingested["memories"][0];
    assert_eq!(memory["status"], "INGESTED", "{ingested}");
    let title_searches = world.site.requests().into_iter().filter(|r| r.query.contains("title%20in")).count();
    assert!(
        title_searches <= 6,
        "included pages are found in bulk, a search per level and space, not per including page: {title_searches}"
    );
    let counts = &memory["progress"]["counts"];
    assert!(counts["included pages"].as_u64().unwrap() > 8, "{counts}");
    assert!(counts["inclusions skipped: page not found or not readable"].as_u64().unwrap() >= 2, "{counts}");
    assert!(counts["inclusions skipped: cycle or nested too deep"].as_u64().unwrap() >= 1, "{counts}");

    // The whole page shows in every includer; the excerpt alone where it is excerpted.
    let vault = world.ask("quokka vault old keys");
    let vault_titles = titles(&vault);
    assert!(vault_titles.contains(&"Payments onboarding"), "{vault_titles:?}");
    let overview = world.ask("kestrel quokka");
    let overview = passage_of(&overview, "Overview").expect("the excerpt is indexed");
    assert!(overview["text"].as_str().unwrap().contains("kestrel"), "{overview}");
    assert!(
        !overview["text"].as_str().unwrap().contains("quokka"),
        "an excerpt-include shows the excerpt only: {overview}"
    );
    let included = passage_of(&vault, "Payments onboarding").unwrap();
    assert!(included["breadcrumb"].as_str().unwrap().contains("Security"), "{included}");
    let kestrel = world.ask("kestrel keys ninety days");
    assert!(titles(&kestrel).contains(&"Overview"), "{:?}", titles(&kestrel));
    // Another space's page, when the account can read it.
    assert!(titles(&world.ask("pangolin deploy freeze")).contains(&"Terms"));
    // Nothing of a page the account cannot read.
    assert!(!titles(&world.ask("narwhal code")).contains(&"Reads sealed"));
    // A cycle ends: each shows the other once.
    let ping = world.ask("pong wombat");
    assert!(titles(&ping).contains(&"Ping"), "{:?}", titles(&ping));
    // Four levels deep, no deeper.
    let level1_words: Vec<String> = world
        .ask("stratum5 stratum6")
        .iter()
        .filter(|p| p["title"] == "Level 1")
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert!(level1_words.iter().any(|t| t.contains("stratum5")), "{level1_words:?}");
    assert!(level1_words.iter().all(|t| !t.contains("stratum6")), "{level1_words:?}");

    // An unchanged space: the included pages are checked by version, no body comes.
    world.site.reset_requests();
    let memory_id = memory["id"].as_str().unwrap();
    let synced = world.json(&["sync", memory_id]);
    assert_eq!(synced["memories"][0]["progress"]["updated"], 0, "{synced}");
    let requests = world.site.requests();
    assert!(
        requests.iter().all(|r| !r.query.contains("body")),
        "an unchanged space fetches no bodies: {:?}",
        requests.iter().map(|r| format!("{}?{}", r.path, r.query)).collect::<Vec<_>>()
    );

    // The included page changes; its includers follow, their own versions unchanged.
    world.site.edit_page(
        &rotation,
        None,
        Some(
            "<p>The ibex safe now holds the old keys.</p><ac:structured-macro ac:name=\"excerpt\"><ac:rich-text-body>\
              <p>Rotate the kestrel keys every thirty days.</p></ac:rich-text-body></ac:structured-macro>",
        ),
    );
    world.site.edit_page(&glossary, None, Some("<p>A pangolin is a release train.</p>"));
    world.site.add_page("OPS", None, "Future plan", "<p>Adopt the axolotl scheduler.</p>");
    world.site.reset_requests();
    let synced = world.json(&["sync", memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    let ibex = titles(&world.ask("ibex safe old keys")).iter().map(|t| t.to_string()).collect::<Vec<_>>();
    for team in ["Payments", "Data"] {
        assert!(ibex.contains(&format!("{team} onboarding")), "{ibex:?}");
    }
    assert!(!titles(&world.ask("quokka vault")).contains(&"Payments onboarding"), "the old text is gone");
    let thirty = world.ask("kestrel thirty days");
    assert!(titles(&thirty).contains(&"Overview"), "{:?}", titles(&thirty));
    assert!(titles(&world.ask("pangolin release train")).contains(&"Terms"), "another space's change is followed");
    assert!(titles(&world.ask("axolotl scheduler")).contains(&"Forward"), "a page that appears is included");
    let fetched_includers = world
        .site
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/api/v2/pages") && r.query.contains(&includers[0]))
        .count();
    assert_eq!(fetched_includers, 1, "the includers are fetched again in one batch");
}

#[test]
fn folders_whiteboards_databases_and_embeds_are_indexed_by_title_and_counted() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    let folder = world.site.add_titled("OPS", "folder", None, "Runbooks");
    world.site.add_page("OPS", Some(&folder), "Disk full", &body("Steps", "delete the heron logs first"));
    let board = world.site.add_titled("OPS", "whiteboard", Some(&folder), "Q3 architecture sketch");
    world.site.add_titled("OPS", "database", None, "Vendor tracker");
    world.site.add_titled("OPS", "embed", None, "Status dashboard");

    let connection = world.connect();
    let ingested = world.ingest(&connection, "OPS");
    let memory = &ingested["memories"][0];
    assert_eq!(memory["status"], "INGESTED", "{ingested}");
    let counts = &memory["progress"]["counts"];
    assert_eq!(counts["folders (title only: a folder has no body)"], 1, "{counts}");
    assert_eq!(counts["whiteboards (title only: drawings not indexed)"], 1, "{counts}");
    assert_eq!(counts["databases (title only: entries not indexed)"], 1, "{counts}");
    assert_eq!(counts["embeds (title only: embedded sites not indexed)"], 1, "{counts}");

    let sketch = world.ask("architecture sketch");
    assert_eq!(sketch[0]["title"], "Q3 architecture sketch", "{sketch:?}");
    assert!(sketch[0]["url"].as_str().unwrap().ends_with(&format!("/whiteboard/{board}")), "{}", sketch[0]);
    assert_eq!(world.ask("vendor tracker")[0]["title"], "Vendor tracker");
    let disk = world.ask("heron logs");
    assert_eq!(disk[0]["title"], "Disk full");
    assert!(disk[0]["breadcrumb"].as_str().unwrap().contains("Runbooks › Disk full"), "{}", disk[0]);

    // Renamed and removed: a sync follows.
    world.site.edit_page(&folder, Some("Playbooks"), None);
    world.site.trash_page(&board);
    let synced = world.json(&["sync", memory["id"].as_str().unwrap()]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    let disk = world.ask("heron logs");
    assert!(disk[0]["breadcrumb"].as_str().unwrap().contains("Playbooks › Disk full"), "{}", disk[0]);
    assert!(!titles(&world.ask("architecture sketch")).contains(&"Q3 architecture sketch"));
}
