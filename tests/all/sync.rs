//! Sync: the memory follows the space (edits, moves, renames, deletions, restrictions),
//! costs follow the change, and disconnect/expiry behave as the product page says.

use crate::support::*;

fn synced(world: &World, memory: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["sync", memory];
    args.extend(extra);
    let document = world.json(&args);
    document["memories"][0].clone()
}

#[test]
fn sync_applies_every_kind_of_change_and_fetches_only_what_changed() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    let parent = world.site.add_page("KB", None, "Handbook", &body("Intro", "handbook intro"));
    let other = world.site.add_page("KB", None, "Archive", &body("Intro", "old things live here"));
    let edited =
        world.site.add_page("KB", Some(&parent), "Vacation", &body("Policy", "employees get twenty days of vacation"));
    let renamed =
        world.site.add_page("KB", Some(&parent), "Laptops", &body("Policy", "laptops are replaced every three years"));
    let moved = world.site.add_page(
        "KB",
        Some(&parent),
        "Parking",
        &body("Policy", "parking spots are first come first served"),
    );
    let trashed = world.site.add_page("KB", Some(&parent), "Fax", &body("Policy", "the fax machine is in room nine"));
    let restricted =
        world.site.add_page("KB", Some(&parent), "Salaries", &body("Bands", "salary bands are confidential xylophone"));
    let blog = world.site.add_blogpost("KB", "Launch", &body("News", "we launched the marmalade feature"));
    let connection = world.connect();
    let ingested = world.ingest(&connection, "KB");
    let memory_id = ingested["memories"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ingested["memories"][0]["pages"], 9);

    // Nothing changed: listing only, no bodies.
    world.site.reset_requests();
    let unchanged = synced(&world, &memory_id, &[]);
    assert_eq!(unchanged["status"], "INGESTED");
    let progress = &unchanged["progress"];
    assert_eq!(
        (progress["fetched"].as_u64(), progress["updated"].as_u64(), progress["deleted"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(progress["listed"], 9);
    let requests = world.site.requests();
    assert!(
        requests.iter().all(|r| !r.query.contains("body-format")),
        "an unchanged sync fetches no bodies: {requests:?}"
    );
    assert_eq!(requests.len() as u64, progress["requests"].as_u64().unwrap());
    assert_eq!(
        requests.len(),
        6,
        "one listing each of labels, pages, blog posts, comments, attachments and folders/whiteboards/databases/embeds: {requests:?}"
    );

    world.site.edit_page(&edited, None, Some(&body("Policy", "employees get thirty days of vacation")));
    world.site.edit_page(&renamed, Some("Computers"), None);
    world.site.move_page(&moved, &other);
    world.site.trash_page(&trashed);
    world.site.restrict_page(&restricted, true);
    world.site.edit_page(&blog, None, Some(&body("News", "we launched the marmalade feature twice")));
    let added =
        world.site.add_page("KB", Some(&parent), "Coffee", &body("Machines", "the espresso machine needs descaling"));
    let after = synced(&world, &memory_id, &[]);
    assert_eq!(after["status"], "INGESTED", "{after}");
    let progress = &after["progress"];
    assert_eq!(progress["updated"], 4, "edited, renamed, blog post, added: {after}");
    assert_eq!(progress["fetched"], 4);
    assert_eq!(progress["deleted"], 2, "trashed and restricted");
    assert_eq!(after["pages"], 8);

    let vacation = world.ask("how many days of vacation");
    assert!(vacation[0]["text"].as_str().unwrap().contains("thirty"), "{vacation:?}");
    assert!(vacation.iter().all(|p| !p["text"].as_str().unwrap().contains("twenty")));
    let laptops = world.ask("laptops replaced every three years");
    assert_eq!(laptops[0]["title"], "Computers");
    assert!(laptops[0]["breadcrumb"].as_str().unwrap().contains("Handbook › Computers"));
    let parking = world.ask("parking spots first come");
    assert_eq!(
        parking[0]["breadcrumb"], "Knowledge Base › Archive › Parking › Policy",
        "moves re-label the breadcrumb"
    );
    assert!(world.ask("fax machine room nine").iter().all(|p| p["page_id"] != trashed.as_str()));
    assert!(world.ask("confidential xylophone salary").iter().all(|p| p["page_id"] != restricted.as_str()));
    assert!(world.ask("marmalade feature")[0]["text"].as_str().unwrap().contains("twice"));
    assert_eq!(world.ask("espresso descaling")[0]["page_id"], added.as_str());
}

#[test]
fn a_sync_that_would_delete_most_of_a_space_asks_for_confirmation() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    let pages: Vec<String> = (0..8)
        .map(|n| world.site.add_page("KB", None, &format!("Page {n}"), &body("Text", &format!("pelican {n}"))))
        .collect();
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    for page in &pages[..6] {
        world.site.trash_page(page);
    }
    let output = world.run(&["sync", &memory_id, "--json"]);
    assert!(!output.status.success());
    let refused = parse(&String::from_utf8_lossy(&output.stdout))["memories"][0].clone();
    assert_eq!(refused["status"], "ERROR");
    assert!(refused["error"].as_str().unwrap().contains("would remove 6 of the 9 pages"), "{refused}");
    assert_eq!(world.ask("pelican").len(), 8, "nothing was removed");

    let confirmed = synced(&world, &memory_id, &["--allow-mass-delete"]);
    assert_eq!(confirmed["status"], "INGESTED");
    assert_eq!(confirmed["pages"], 3);
    assert_eq!(world.ask("pelican").len(), 2);
}

#[test]
fn disconnect_keeps_memories_and_reconnect_reenables_sync() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Tea", &body("Kettle", "the kettle is in the kitchen"));
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    world.ok(&["disconnect", &connection]);

    assert_eq!(world.ask("where is the kettle")[0]["title"], "Tea", "memories stay answerable");
    let status = world.status();
    assert_eq!(status["connections"][0]["connected"], false);
    assert_eq!(memory(&status, "KB")["status"], "INGESTED");
    let output = world.run(&["sync", &memory_id]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is disconnected"), "{}", text(&output));

    let again = world.connect();
    assert_eq!(again, connection, "same site and account: same connection");
    world.site.add_page("KB", None, "Coffee", &body("Beans", "beans are in the cupboard"));
    let after = synced(&world, &memory_id, &[]);
    assert_eq!(after["status"], "INGESTED");
    assert_eq!(after["progress"]["updated"], 1, "no re-ingest: only the new page is indexed");
}

#[test]
fn an_expired_token_turns_sync_into_error_and_keeps_content() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Tea", &body("Kettle", "the kettle is in the kitchen"));
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    world.site.revoke_token(TOKEN);
    let output = world.run(&["sync", &memory_id, "--json"]);
    assert!(!output.status.success());
    let failed = parse(&String::from_utf8_lossy(&output.stdout))["memories"][0].clone();
    assert_eq!(failed["status"], "ERROR");
    assert!(failed["error"].as_str().unwrap().starts_with("token expired or revoked — reconnect"), "{failed}");
    assert_eq!(world.ask("where is the kettle")[0]["title"], "Tea");
}

#[test]
fn an_incomplete_listing_applies_no_deletions() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    let doomed = world.site.add_page("KB", None, "Doomed", &body("Text", "the ocelot page"));
    world.site.add_page("KB", None, "Kept", &body("Text", "the kept page"));
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    world.site.trash_page(&doomed);
    // Pages list fine; the blog-post listing keeps failing, so the listing is incomplete.
    world.site.set_faults(Some(fake_confluence::FaultPlan {
        seed: 1,
        rate: 1.0,
        faults: vec![fake_confluence::Fault::ServerError(500)],
        endpoints: Some(vec!["/blogposts".into()]),
    }));
    let output = world.run(&["sync", &memory_id, "--json"]);
    assert!(!output.status.success());
    let failed = parse(&String::from_utf8_lossy(&output.stdout))["memories"][0].clone();
    assert_eq!(failed["status"], "ERROR");
    assert!(failed["error"].as_str().unwrap().contains("kept failing"), "{failed}");
    assert_eq!(failed["progress"]["deleted"], 0);
    assert_eq!(world.ask("ocelot")[0]["title"], "Doomed", "nothing removed on an incomplete listing");

    world.site.set_faults(None);
    let after = synced(&world, &memory_id, &[]);
    assert_eq!(after["progress"]["deleted"], 1);
    assert!(world.ask("ocelot").iter().all(|p| p["title"] != "Doomed"));
}
