//! Ingesting spaces: several keys, an invalid one, duplicates, large spaces, blog posts.

use crate::support::*;

#[test]
fn several_keys_settle_independently_and_duplicates_are_rejected() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    for n in 0..300 {
        world.site.add_page(
            "ENG",
            None,
            &format!("Runbook {n}"),
            &body("Steps", &format!("runbook number {n} restarts service {n}")),
        );
    }
    world.site.add_space("OPS", "Operations");
    world.site.add_page("OPS", None, "Pager", &body("Rotation", "the pager rotates weekly"));
    world.site.add_blogpost("OPS", "Quarterly review", &body("Highlights", "uptime was excellent this quarter"));
    world.site.add_blogpost("OPS", "New hires", &body("Welcome", "two engineers joined operations"));
    let connection = world.connect();
    world.site.reset_requests();

    let output = world.run(&["ingest", "--connection", &connection, "--spaces", "ENG, OPS ,NOPE", "--json"]);
    assert!(!output.status.success(), "an ERROR memory makes ingest exit non-zero");
    let document = parse(&String::from_utf8_lossy(&output.stdout));
    let memories = document["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 3, "{document}");
    let eng = memories.iter().find(|m| m["space_key"] == "ENG").unwrap();
    let ops = memories.iter().find(|m| m["space_key"] == "OPS").unwrap();
    let nope = memories.iter().find(|m| m["space_key"] == "NOPE").unwrap();
    assert_eq!(eng["status"], "INGESTED");
    assert_eq!(eng["pages"], 301, "300 pages plus the homepage, across two listing pages");
    assert_eq!(ops["status"], "INGESTED");
    assert_eq!(ops["pages"], 4, "homepage, one page and two blog posts");
    assert_eq!(nope["status"], "ERROR");
    assert!(nope["error"].as_str().unwrap().contains("'NOPE' is invalid or not accessible"), "{nope}");

    let listings: Vec<_> = world
        .site
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pages") && r.path.contains("/spaces/"))
        .collect();
    assert_eq!(
        listings.iter().filter(|r| r.path.contains(&format!("/spaces/{}/", eng_id(&world)))).count(),
        2,
        "250 per request: {listings:?}"
    );

    // The same space typed differently is a duplicate pointing to Sync.
    let output = world.run(&["ingest", "--connection", &connection, "--spaces", "eng", "--json"]);
    assert!(!output.status.success());
    let document = parse(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(document["rejected"][0]["kind"], "duplicate", "{document}");
    let message = document["rejected"][0]["error"].as_str().unwrap();
    assert!(message.contains("already ingested") && message.contains("sync"), "{message}");
    assert_eq!(world.status()["memories"].as_array().unwrap().len(), 3, "no memory was added");

    // Retrieval finds content from the second listing page and from blog posts.
    let passages = world.ask("runbook number 287");
    assert_eq!(passages[0]["title"], "Runbook 287");
    let passages = world.ask("uptime this quarter");
    assert_eq!(passages[0]["title"], "Quarterly review");
}

fn eng_id(world: &World) -> String {
    world
        .site
        .requests()
        .iter()
        .find_map(|r| {
            let rest = r.path.strip_prefix("/wiki/api/v2/spaces/")?;
            rest.strip_suffix("/pages").map(str::to_string)
        })
        .expect("a page listing was requested")
}

#[test]
fn malformed_keys_are_rejected_without_creating_memories() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    let connection = world.connect();
    let output =
        world.run(&["ingest", "--connection", &connection, "--spaces", "ENG/../x, bad key, ENG, ENG", "--json"]);
    assert!(!output.status.success());
    let document = parse(&String::from_utf8_lossy(&output.stdout));
    let rejected = document["rejected"].as_array().unwrap();
    let kinds: Vec<&str> = rejected.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["invalid-input", "invalid-input", "duplicate"], "{document}");
    assert_eq!(document["memories"].as_array().unwrap().len(), 1, "ENG itself is ingested once");

    for spaces in ["", " , ,"] {
        let output = world.run(&["ingest", "--connection", &connection, "--spaces", spaces]);
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("no space keys given"));
    }
    let output = world.run(&["ingest", "--connection", "conn-404", "--spaces", "ENG"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no connection 'conn-404'"));
}

#[test]
fn a_revoked_token_is_reported_as_such() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    let connection = world.connect();
    world.site.revoke_token(TOKEN);
    let output = world.run(&["ingest", "--connection", &connection, "--spaces", "ENG"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("token expired or revoked — reconnect"), "{stderr}");
    assert!(world.status()["memories"].as_array().unwrap().is_empty(), "nothing half-registered");
}

/// While one listing page is converted and indexed, the next is already on its way: the
/// request for it reaches the site before the next `step`, and is not sent twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_listing_page_is_requested_while_this_one_is_indexed() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    for n in 0..600 {
        world.site.add_page("ENG", None, &format!("Runbook {n}"), &body("Steps", &format!("runbook {n}")));
    }
    let connection = world.connect();
    let mut config = connector_host::runtime::HostConfig::new(world.data_dir());
    config.cache_dir = Some(cache_dir());
    let host = connector_host::runtime::ConnectorHost::open(config).unwrap();
    let mut instance = host.instance("default").await.unwrap();
    let outcomes = instance.ingest(&connection, &["ENG".to_string()]).await.unwrap().unwrap();
    let memory = outcomes[0].outcome.as_ref().expect("ENG is accepted").id.clone();
    world.site.reset_requests();
    let later_pages = |world: &World| {
        world.site.requests().into_iter().filter(|r| r.path.ends_with("/pages") && r.query.contains("cursor=")).count()
    };

    let report = instance.step(&memory).await.unwrap().unwrap();
    assert!(!report.finished);
    assert_eq!(report.memory.progress.listed, 500, "the first step took two listing pages of 250");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while later_pages(&world) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(later_pages(&world), 2, "the third listing page was requested without another step");

    loop {
        let report = instance.step(&memory).await.unwrap().unwrap();
        if report.finished {
            assert_eq!(report.memory.documents, 601, "{:?}", report.memory);
            break;
        }
    }
    assert_eq!(later_pages(&world), 2, "the prefetched response was used, not requested again");
}

#[test]
fn a_page_that_mentions_a_person_is_found_by_their_name() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    world.site.add_user("grace.hopper@example.com", "another-token", fake_confluence::TokenKind::Classic);
    let account = world.site.account_id("grace.hopper@example.com").expect("the user exists");
    for page in ["Escalation", "On call"] {
        world.site.add_page(
            "OPS",
            None,
            page,
            &format!("<p>Page <ac:link><ri:user ri:account-id=\"{account}\"/></ac:link> for the database.</p>"),
        );
    }
    let connection = world.connect();
    world.site.reset_requests();
    let ingested = world.ingest(&connection, "OPS");
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    let lookups = world.site.requests().into_iter().filter(|r| r.path.ends_with("/user/bulk")).count();
    assert_eq!(lookups, 1, "the mentioned accounts are named in one bulk lookup");
    let answer = world.ask("Grace Hopper");
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert!(answer[0]["text"].as_str().unwrap().contains("@Grace Hopper"), "{}", answer[0]);
}
