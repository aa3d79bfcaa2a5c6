//! Auto Resync: schedules survive restarts, one process at a time, failing memories back off.

use std::time::Duration;

use crate::service_support::Served;
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
    let served = world.ok(&["serve", "--listen", "127.0.0.1:0", "--run-for", "3s"]);
    assert!(served.contains("listening on http://127.0.0.1:"), "{served}");
    assert!(world.ask("soup of the day")[0]["text"].as_str().unwrap().contains("pumpkin"));
    let status = world.status();
    let auto = &memory(&status, "KB")["auto_resync"];
    assert!(auto["last_success"].as_u64().is_some() && auto["failures"] == 0, "{auto}");

    // A crash of the serving process loses nothing: the schedule is still there and runs.
    world.site.edit_page(&page, None, Some(&body("Today", "the soup of the day is lentil")));
    let served = Served::start(world.data_dir(), &[]);
    std::thread::sleep(Duration::from_millis(2500));
    // While it serves, a sync from the CLI goes through it (one process drives the memory).
    let synced = world.json(&["sync", &memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    served.kill();
    assert!(world.ask("soup of the day")[0]["text"].as_str().unwrap().contains("lentil"));
    let status = world.status();
    assert_eq!(memory(&status, "KB")["auto_resync"]["every_secs"], 1, "{status}");

    // A revoked token: each failure doubles the wait, and status says so.
    world.site.revoke_token(TOKEN);
    world.ok(&["serve", "--listen", "127.0.0.1:0", "--run-for", "4s"]);
    let status = world.status();
    let auto = &memory(&status, "KB")["auto_resync"];
    assert_eq!(auto["backing_off"], true, "{status}");
    assert!(auto["failures"].as_u64().unwrap() >= 1, "{auto}");
    assert!(
        auto["next_run"].as_u64().unwrap() > auto["last_success"].as_u64().unwrap() + 1,
        "the wait doubles: {auto}"
    );
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
