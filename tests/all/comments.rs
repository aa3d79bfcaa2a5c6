//! Comments: footer comments, replies and open inline comments are indexed with their page
//! (cited as the page, opened at the comment), listed for the whole space in bulk — never a
//! request per page — and a sync follows a new, edited or deleted comment on a page whose
//! own version did not change.

use crate::support::*;

/// The searches for comments (the space's attachments are listed by a search of their own).
fn comment_requests(world: &World) -> Vec<fake_confluence::RequestRecord> {
    let searches = world.site.requests().into_iter().filter(|r| r.path.ends_with("/rest/api/content/search"));
    searches.filter(|r| !r.query.contains("attachment") && !r.query.contains("whiteboard")).collect()
}

#[test]
fn comments_are_indexed_with_their_page_listed_in_bulk_and_followed_by_sync() {
    let world = World::new();
    world.site.add_space("OPS", "Operations");
    let database = world.site.add_page("OPS", None, "Database choice", &body("Options", "we compared several stores"));
    let runbook = world.site.add_page("OPS", None, "Runbook", &body("Restarts", "restart the queue workers nightly"));
    // Enough pages that a request per page would show.
    for n in 0..30 {
        let page = world.site.add_page("OPS", None, &format!("Note {n}"), &body("Text", &format!("filler {n}")));
        world.site.add_comment(&page, &format!("<p>acknowledged note {n}</p>"));
    }
    let decision = world.site.add_comment(&database, "<p>Decision: we standardise on pelicanbase for queues.</p>");
    let reply = world.site.add_comment(&decision, "<p>Agreed, and the migration starts in walrus week.</p>");
    let inline = world.site.add_inline_comment(
        &runbook,
        "restart the queue workers",
        "<p>Only after draining the albatross buffer first.</p>",
    );
    let resolved = world.site.add_inline_comment(&runbook, "nightly", "<p>Typo in kumquat schedule.</p>");
    world.site.resolve_comment(&resolved);

    let connection = world.connect();
    world.site.reset_requests();
    let ingested = world.ingest(&connection, "OPS");
    let memory_id = ingested["memories"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    assert_eq!(comment_requests(&world).len(), 1, "33 comments on 32 pages, one listing request");
    let counts = &ingested["memories"][0]["progress"]["counts"];
    assert_eq!(counts["comments"], 33, "the resolved inline comment is left out: {counts}");
    let per_page: Vec<_> = world.site.requests().into_iter().filter(|r| r.path.contains("comments")).collect();
    assert!(per_page.is_empty(), "no per-page comment endpoints: {per_page:?}");

    // A comment answers for its page, opened at the comment, and says whose it is.
    let answer = world.ask("which store for queues pelicanbase");
    let first = &answer[0];
    assert_eq!(first["title"], "Database choice", "{answer:?}");
    assert!(first["text"].as_str().unwrap().contains("pelicanbase"), "{first}");
    let url = first["url"].as_str().unwrap();
    assert!(url.contains(&format!("focusedCommentId={decision}#comment-{decision}")), "{url}");
    assert!(first["breadcrumb"].as_str().unwrap().contains("Database choice › Comment by "), "{first}");
    let titles: Vec<&str> = answer.iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles.iter().filter(|t| **t == "Database choice").count(), 1, "one source per page: {titles:?}");
    let replied = world.ask("migration walrus week");
    assert!(replied[0]["breadcrumb"].as_str().unwrap().contains("Reply by "), "{replied:?}");
    let anchored = world.ask("draining the albatross buffer");
    assert_eq!(anchored[0]["title"], "Runbook");
    assert!(anchored[0]["url"].as_str().unwrap().ends_with(&format!("#comment-{inline}")), "{anchored:?}");
    assert!(
        anchored[0]["breadcrumb"].as_str().unwrap().contains("Inline comment by ")
            && anchored[0]["breadcrumb"].as_str().unwrap().contains("restart the queue workers"),
        "{anchored:?}"
    );
    assert!(world.ask("kumquat schedule typo").iter().all(|p| !p["text"].as_str().unwrap().contains("kumquat")));

    // Comments change on pages whose own version does not.
    world.site.add_page("OPS", None, "Quiet page", &body("Text", "nothing to see"));
    world.site.edit_comment(&decision, "<p>Decision: we standardise on heronstore for queues.</p>");
    world.site.delete_comment(&reply);
    world.site.add_comment(&runbook, "<p>New: the ibis dashboard shows queue depth.</p>");
    world.site.reset_requests();
    let synced = world.json(&["sync", &memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    assert_eq!(synced["memories"][0]["progress"]["counts"]["comments"], 33, "one deleted, one added: {synced}");
    let requests = world.site.requests();
    let page_bodies: Vec<_> = requests.iter().filter(|r| r.query.contains("body-format")).collect();
    assert_eq!(page_bodies.len(), 1, "only the new page's body: {requests:?}");
    assert_eq!(comment_requests(&world).len(), 2, "the listing, then the changed comments' bodies: {requests:?}");
    assert!(world.ask("ibis dashboard queue depth")[0]["text"].as_str().unwrap().contains("ibis"));
    assert!(world.ask("heronstore queues")[0]["text"].as_str().unwrap().contains("heronstore"));
    assert!(world.ask("pelicanbase").iter().all(|p| !p["text"].as_str().unwrap().contains("pelicanbase")));
    assert!(world.ask("walrus week").iter().all(|p| !p["text"].as_str().unwrap().contains("walrus")));
}
