//! The command line as a user meets it: the demo and the JSON shapes.

use crate::support::*;

#[test]
fn the_demo_answers_from_the_sample_space() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("demo")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("INGESTED"), "{stdout}");
    assert!(stdout.contains("1. Acme Engineering Handbook ›") && stdout.contains("Rotate the API Key"), "{stdout}");
    assert!(stdout.contains("/wiki/spaces/DOCS/pages/"), "citations open the page: {stdout}");
}

#[test]
fn status_json_has_the_documented_shape() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    world.site.add_page("ENG", None, "One", &body("A", "alpha"));
    let connection = world.connect();
    world.ingest(&connection, "ENG");
    let status = world.status();
    let c = &status["connections"][0];
    for field in ["id", "site", "email", "access", "connected"] {
        assert!(!c[field].is_null(), "connections[].{field} in {status}");
    }
    let m = &status["memories"][0];
    for field in ["id", "connection", "space_key", "status", "pages", "chunks", "progress", "synced_at"] {
        assert!(!m[field].is_null(), "memories[].{field} in {status}");
    }
    assert!(m.get("error").is_some());
    assert_eq!(
        (m["status"].as_str(), m["pages"].as_u64(), m["connection"].as_str()),
        (Some("INGESTED"), Some(2), Some(connection.as_str()))
    );
    assert!(m["chunks"].as_u64().unwrap() >= 2);
}
