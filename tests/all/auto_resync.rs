//! Auto Resync: schedules survive restarts, one process at a time, failing memories back off.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn schedules_run_across_restarts_and_failing_memories_back_off() {
    let world = World::new();
    world.site.add_space("KB", "Knowledge Base");
    let page = world.site.add_page("KB", None, "Menu", &body("Today", "the soup of the day is tomato"));
    let connection = world.connect();
    let memory_id = world.ingest(&connection, "KB")["memories"][0]["id"].as_str().unwrap().to_string();
    world.ok(&["auto-resync", &memory_id, "--every", "1s"]);

    world.site.edit_page(&page, None, Some(&body("Today", "the soup of the day is pumpkin")));
    let served = world.ok(&["serve", "--run-for", "3s"]);
    assert!(served.contains(&format!("auto-resync {memory_id}: INGESTED")), "{served}");
    assert!(world.ask("soup of the day")[0]["text"].as_str().unwrap().contains("pumpkin"));

    // A crash of the serving process loses nothing: the schedule is still there and runs.
    world.site.edit_page(&page, None, Some(&body("Today", "the soup of the day is lentil")));
    let mut server = Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .arg("--data-dir")
        .arg(world.data_dir())
        .arg("serve")
        .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // While it serves, nobody else can start a second sync of the memory.
    let second = world.run(&["sync", &memory_id]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another connector-host process"), "{}", text(&second));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(world.ask("soup of the day")[0]["text"].as_str().unwrap().contains("lentil"));
    let status = world.status();
    assert_eq!(memory(&status, "KB")["auto_resync"]["every_secs"], 1, "{status}");

    // A revoked token: each failure doubles the wait, and status says so.
    world.site.revoke_token(TOKEN);
    let served = world.ok(&["serve", "--run-for", "4s"]);
    assert!(served.contains("failed (1 in a row), next attempt in 2s"), "{served}");
    let status = world.status();
    let auto = &memory(&status, "KB")["auto_resync"];
    assert_eq!(auto["backing_off"], true, "{status}");
    assert!(auto["last_error"].as_str().unwrap().contains("token expired or revoked"), "{auto}");
    assert!(world.ask("soup of the day")[0]["text"].as_str().unwrap().contains("lentil"), "content stays searchable");

    // Disconnected memories cannot be scheduled; turning it off removes the schedule.
    world.ok(&["auto-resync", &memory_id, "--off"]);
    assert!(memory(&world.status(), "KB")["auto_resync"].is_null());
    world.ok(&["disconnect", &connection]);
    let refused = world.run(&["auto-resync", &memory_id, "--every", "1h"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is disconnected"), "{}", text(&refused));
}
