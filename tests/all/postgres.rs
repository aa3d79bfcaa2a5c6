//! The host on a PostgreSQL database (`--database-url`): the real `.wasm` ingests a space
//! into the database — connections, memories, secrets and the search index, nothing in the
//! data directory but the compile cache — and another host process on another machine's
//! data directory answers from the same database afterwards. The operator key comes from
//! the environment; a key rotation waits until no host uses the database. Several hosts
//! serving one database at once: `many_hosts`.

use crate::support::*;

pub(crate) const KEY: &str = "5f0c8e1d2b3a49577a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

fn server() -> pg_server::PgServer {
    pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"))
}

#[test]
fn a_space_ingested_into_postgres_is_answered_by_another_host() {
    let server = server();
    let url = server.database().unwrap();
    let mut world = World::new();
    world.env = vec![("CONNECTOR_HOST_DATABASE_URL".into(), url.clone()), ("CONNECTOR_HOST_KEY".into(), KEY.into())];
    world.site.add_space("OPS", "Operations");
    world.site.add_page("OPS", None, "Failover", &body("Steps", "promote the replica and repoint the pgbouncer pool"));
    world.site.add_page("OPS", None, "Lunch", &body("Today", "soup"));
    let connection = world.connect();
    let ingested = world.ingest(&connection, "OPS");
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    assert_eq!(world.ask("pgbouncer pool")[0]["title"], "Failover");
    let kept: Vec<String> = std::fs::read_dir(world.data_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "cache")
        .collect();
    assert!(kept.is_empty(), "nothing but the compile cache in the data directory: {kept:?}");
    // The token is in the database, encrypted.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for row in client.query("SELECT value FROM connector_rows", &[]).unwrap() {
        let value: Vec<u8> = row.get(0);
        assert!(!value.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the API token is never plaintext");
    }

    // Another host (its own data directory) on the same database answers and syncs.
    let other = World::sharing(&world);
    assert_eq!(other.ask("pgbouncer pool")[0]["title"], "Failover");
    let status = other.status();
    let memory_id = memory(&status, "OPS")["id"].as_str().unwrap().to_string();
    world.site.add_page("OPS", None, "Backups", &body("Nightly", "the walrus archive keeps thirty days"));
    let synced = other.json(&["sync", &memory_id]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    assert_eq!(world.ask("walrus archive")[0]["title"], "Backups");
}

#[test]
fn the_database_needs_the_operator_key_and_a_rotation_waits_for_the_hosts() {
    let server = server();
    let url = server.database().unwrap();
    let mut world = World::new();
    world.env = vec![("CONNECTOR_HOST_DATABASE_URL".into(), url.clone())];
    let output = world.run(&["status"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("the operator key comes from CONNECTOR_HOST_KEY"), "{}", text(&output));

    world.env.push(("CONNECTOR_HOST_KEY".into(), KEY.into()));
    let connection = world.connect();
    assert!(!connection.is_empty());
    // A different key does not open the stored token.
    let mut wrong = World::sharing(&world);
    wrong.env =
        vec![("CONNECTOR_HOST_DATABASE_URL".into(), url.clone()), ("CONNECTOR_HOST_KEY".into(), "ab".repeat(32))];
    let output = wrong.run(&["status"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("does not open the secrets stored in this database"), "{}", text(&output));

    // Hosts use the database together; a key rotation waits until none does.
    let host = connector_store::Store::connect(&url).unwrap();
    let serving = host.claim(connector_store::ClaimMode::Shared).unwrap().expect("hosts share the database");
    assert!(world.run(&["status"]).status.success(), "another host at the same time");
    world.env.push(("NEXT_OPERATOR_KEY".into(), "c3".repeat(32)));
    let output = world.run(&["operator-key", "rotate", "--new-key-env", "NEXT_OPERATOR_KEY"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("stop every host on it first"), "{}", text(&output));
    drop(serving);
    let rotating = host.claim(connector_store::ClaimMode::Exclusive).unwrap().expect("no host left");
    let output = world.run(&["status"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("is being rotated"), "{}", text(&output));
    drop(rotating);
    assert!(world.run(&["status"]).status.success(), "free again once the rotation is over");
}

#[test]
fn the_operator_key_of_a_database_rotates() {
    let server = server();
    let url = server.database().unwrap();
    let new_key = "c3".repeat(32);
    let mut world = World::new();
    world.env = vec![
        ("CONNECTOR_HOST_DATABASE_URL".into(), url.clone()),
        ("CONNECTOR_HOST_KEY".into(), KEY.into()),
        ("NEXT_OPERATOR_KEY".into(), new_key.clone()),
    ];
    world.site.add_space("OPS", "Operations");
    world.site.add_page("OPS", None, "Failover", &body("Steps", "promote the replica"));
    let connection = world.connect();
    world.ingest(&connection, "OPS");

    let rotated = world.ok(&["operator-key", "rotate", "--new-key-env", "NEXT_OPERATOR_KEY"]);
    assert!(rotated.contains("re-encrypted 1 secrets"), "{rotated}");
    // The old key no longer opens the database; the new one does, and the token with it.
    let output = world.run(&["status"]);
    assert!(text(&output).contains("does not open the secrets stored in this database"), "{}", text(&output));
    world.env[1].1 = new_key;
    let status = world.status();
    let synced = world.json(&["sync", memory(&status, "OPS")["id"].as_str().unwrap()]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "the stored token still reaches Confluence: {synced}");
}
