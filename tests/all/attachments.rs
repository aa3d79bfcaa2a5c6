//! Attachments: each file of a type with text (plain text, Markdown, CSV, JSON, XML, HTML,
//! PDF, DOCX, PPTX, XLSX) is its own document of the memory, cited with its file name under
//! its page's breadcrumb; files over a limit, encrypted, corrupt or of another type are
//! skipped and counted. They are listed for the whole space in bulk; a file is downloaded
//! (through the media service's redirect) only when it is new or replaced.

use crate::support::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/attachments");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn downloads(world: &World) -> usize {
    world.site.requests().iter().filter(|r| r.path.starts_with("/media/")).count()
}

#[test]
fn attachments_of_every_type_are_indexed_skipped_with_reasons_and_followed_by_sync() {
    let world = World::new();
    world.site.add_space("DOC", "Documents");
    let handbook = world.site.add_page("DOC", None, "Handbook", &body("About", "the handbook page itself"));
    let files = [
        ("storage-plan.pdf", "application/pdf", "kittiwake cluster"),
        ("guide.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "gannet badge"),
        (
            "review.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "cormorant campaign",
        ),
        ("owners.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "puffin team"),
        ("runbook.md", "text/markdown", "skua rota"),
        ("contacts.csv", "text/csv", "shearwater gate"),
        ("config.json", "application/json", "petrel"),
        ("feed.xml", "application/xml", "tern release"),
        ("faq.html", "text/html", "fulmar kiosk"),
        ("notes.txt", "text/plain", "guillemot backup"),
    ];
    let mut ids = Vec::new();
    for (name, media_type, _) in files {
        ids.push(world.site.add_attachment(&handbook, name, media_type, &fixture(name)));
    }
    world.site.add_attachment(&handbook, "corrupt.docx", "application/octet-stream", &fixture("corrupt.docx"));
    world.site.add_attachment(&handbook, "locked.xlsx", "application/octet-stream", &fixture("locked.xlsx"));
    world.site.add_attachment(&handbook, "photo.png", "image/png", &[0x89, b'P', b'N', b'G']);
    let big = "a line of a large log file\n".repeat(1_000);
    world.site.add_attachment(&handbook, "huge.log", "text/plain", big.as_bytes());

    let origin = world.site.origin();
    let connect =
        ["connect", "--site", &origin, "--email", EMAIL, "--token-env", "CONFLUENCE_TOKEN", "--allow-loopback"];
    let connected = world.json(&connect);
    assert_eq!(connected["origins"], serde_json::json!([origin]), "a loopback site serves its own files: {connected}");
    let connection = connected["id"].as_str().unwrap().to_string();
    world.site.reset_requests();
    let ingested = world.ingest(&connection, "DOC");
    let memory = &ingested["memories"][0];
    assert_eq!(memory["status"], "INGESTED", "{ingested}");
    let counts = &memory["progress"]["counts"];
    assert_eq!(counts["attachments"], 11, "the ten fixtures and the log: {counts}");
    assert_eq!(counts["attachments skipped: unreadable"], 1, "{counts}");
    assert_eq!(counts["attachments skipped: encrypted"], 1, "{counts}");
    assert_eq!(counts["attachments skipped: other type"], 1, "{counts}");
    assert_eq!(downloads(&world), 13, "one download per file with text, none for the image");
    let listings = world.site.requests().iter().filter(|r| r.path.ends_with("/content/search")).count();
    assert!(
        listings <= 5,
        "comments, attachments and the Cloud content types in bulk, plus the metadata of two download batches: {listings}"
    );

    for ((name, _, words), id) in files.iter().zip(&ids) {
        let answer = world.ask(words);
        let hit = answer.iter().find(|p| p["page_id"] == id.as_str()).unwrap_or_else(|| panic!("{name}: {answer:?}"));
        assert_eq!(hit["title"], *name);
        assert!(hit["breadcrumb"].as_str().unwrap().starts_with("Documents › Handbook › "), "{hit}");
        assert!(hit["url"].as_str().unwrap().contains("preview="), "{hit}");
    }

    // A replaced file is downloaded again, a deleted one goes, an unchanged one is not fetched.
    world.site.replace_attachment(&ids[9], b"Plain notes: the dotterel backup runs at one.");
    world.site.purge_page(&ids[0]);
    world.site.reset_requests();
    let synced = world.json(&["sync", memory["id"].as_str().unwrap()]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    assert_eq!(downloads(&world), 1, "only the replaced file: the unreadable ones are remembered as such");
    let counts = &synced["memories"][0]["progress"]["counts"];
    assert_eq!(
        (counts["attachments skipped: unreadable"].as_u64(), counts["attachments skipped: encrypted"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    assert!(world.ask("dotterel backup")[0]["text"].as_str().unwrap().contains("dotterel"));
    assert!(world.ask("guillemot").iter().all(|p| !p["text"].as_str().unwrap().contains("guillemot")));
    assert!(world.ask("kittiwake cluster").iter().all(|p| p["page_id"] != ids[0].as_str()));

    // Over the operator's size limit: skipped and counted, and what was indexed goes.
    world.json(&[&connect[..], &["--field", "attachment-max-chars=1000"]].concat());
    world
        .site
        .replace_attachment(&ids[4], format!("# Runbook\n\n{}", "promote the skua replica ".repeat(100)).as_bytes());
    let synced = world.json(&["sync", memory["id"].as_str().unwrap()]);
    let counts = &synced["memories"][0]["progress"]["counts"];
    assert_eq!(counts["attachments skipped: too large"], 1, "{synced}");
    assert!(world.ask("skua rota").iter().all(|p| p["page_id"] != ids[4].as_str()));
}
