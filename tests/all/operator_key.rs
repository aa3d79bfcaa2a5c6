//! Rotating the operator key: every secret moves to the new key at once, the old key opens
//! nothing, and a running service must be stopped first.

use std::process::Command;

use crate::service_support::Served;
use crate::support::*;

#[test]
fn a_rotated_key_opens_the_secrets_and_the_old_one_no_longer_does() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    world.site.add_page("KB", None, "Menu", &body("Today", "the soup of the day is tomato"));
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    let old_key = std::fs::read_to_string(world.data_dir().join("operator.key")).unwrap();

    let served = Served::start(world.data_dir(), &[]);
    let refused = world.run(&["operator-key", "rotate"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it, rotate"), "{}", text(&refused));
    drop(served);

    let rotated = world.ok(&["operator-key", "rotate"]);
    assert!(rotated.contains("re-encrypted 1 secrets"), "{rotated}");
    let new_key = std::fs::read_to_string(world.data_dir().join("operator.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!world.data_dir().join("operator.key.next").exists());
    let synced = world.json(&["sync", &memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "the new key opens the token: {synced}");

    let with_old_key = Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .arg("--data-dir")
        .arg(world.data_dir())
        .args(["sync", &memory_id, "--json"])
        .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
        .env("CONNECTOR_HOST_KEY", old_key.trim())
        .output()
        .unwrap();
    let answer =
        String::from_utf8_lossy(&with_old_key.stdout).to_string() + &String::from_utf8_lossy(&with_old_key.stderr);
    assert!(!with_old_key.status.success(), "{answer}");
    assert!(answer.contains("operator key"), "the old key opens nothing, and says so: {answer}");
    // The host's secrets say the token is unreadable (not missing, not broken): the
    // connector turns that into what to do.
    assert!(answer.contains("not authorised") && answer.contains("connect the account again"), "{answer}");
    assert!(!answer.contains(TOKEN));
}
