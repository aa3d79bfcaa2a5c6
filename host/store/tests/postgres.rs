//! What only the PostgreSQL backend has: many hosts on one database (migrations applied once
//! when they start together, one truth for all of them), and what it says when it cannot
//! serve. Runs on a real server started by the test.

use connector_store::{ClaimMode, OperatorKey, Store, StoreError};
use pg_server::PgServer;

fn server() -> PgServer {
    PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"))
}

#[test]
fn hosts_starting_together_migrate_once_and_share_one_truth() {
    let server = server();
    let url = server.database().unwrap();
    let stores: Vec<Store> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..8).map(|_| s.spawn(|| Store::connect(&url))).collect();
        starts.into_iter().map(|start| start.join().unwrap().unwrap_or_else(|e| panic!("{e}"))).collect()
    });
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM connector_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3], "each migration applied once");

    // What one host writes, every other reads.
    let key = OperatorKey::generate();
    stores[0].bucket("tenant-a", "default").unwrap().set("mem/1", b"memory").unwrap();
    stores[1].secrets("tenant-a", key.clone()).unwrap().put("token/conn-1", "t0k3n").unwrap();
    stores[2].meta().set("lease/mem-1", b"host-2").unwrap();
    for store in &stores {
        assert_eq!(store.bucket("tenant-a", "default").unwrap().get("mem/1").unwrap().as_deref(), Some(&b"memory"[..]));
        assert_eq!(
            store.secrets("tenant-a", key.clone()).unwrap().get("token/conn-1").unwrap().as_deref(),
            Some("t0k3n")
        );
        assert_eq!(store.meta().get("lease/mem-1").unwrap().as_deref(), Some(&b"host-2"[..]));
    }
}

#[test]
fn secrets_are_never_plaintext_in_the_database() {
    let server = server();
    let url = server.database().unwrap();
    let store = Store::connect(&url).unwrap();
    let plaintext = "PLAINTEXT-never-in-the-database-8d1e";
    store.secrets("ns", OperatorKey::generate()).unwrap().put("token", plaintext).unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = client.query("SELECT key, value FROM connector_rows", &[]).unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let value: Vec<u8> = row.get(1);
        assert!(!value.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()), "plaintext in the database");
    }
}

#[test]
fn a_newer_schema_or_an_unreachable_database_is_refused_with_a_clear_error() {
    let server = server();
    let url = server.database().unwrap();
    drop(Store::connect(&url).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.execute("INSERT INTO connector_schema (version) VALUES (999)", &[]).unwrap();
    let error = Store::connect(&url).expect_err("a newer schema is refused").to_string();
    assert!(error.contains("999") && error.contains("upgrade the host"), "{error}");

    let unreachable = format!("postgres://app:hunter2@127.0.0.1:{}/none", server.port() + 1);
    let error = Store::connect(&unreachable).expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Postgres(_)));
    let message = error.to_string();
    assert!(message.contains("cannot connect to postgres://app:***@127.0.0.1"), "{message}");
    assert!(!message.contains("hunter2"), "the password never shows: {message}");
}

#[test]
fn the_store_serves_callers_on_an_async_runtime() {
    // The host's capabilities call the store from tokio's threads, where a blocking
    // PostgreSQL client of its own could not run.
    let server = server();
    let url = server.database().unwrap();
    let store = Store::connect(&url).unwrap();
    for flavor in ["current_thread", "multi_thread"] {
        let runtime = match flavor {
            "current_thread" => tokio::runtime::Builder::new_current_thread().build().unwrap(),
            _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap(),
        };
        let bucket = store.bucket("tenant", flavor).unwrap();
        runtime.block_on(async {
            bucket.set("k", b"v").unwrap();
            assert_eq!(bucket.get("k").unwrap().as_deref(), Some(&b"v"[..]));
            // Connecting (and migrating) from inside the runtime works too.
            let again = Store::connect(&url).unwrap();
            assert_eq!(again.bucket("tenant", flavor).unwrap().get("k").unwrap().as_deref(), Some(&b"v"[..]));
        });
    }
}

#[test]
fn hosts_claim_the_database_together_and_a_key_rotation_alone() {
    let server = server();
    let url = server.database().unwrap();
    let (first, second) = (Store::connect(&url).unwrap(), Store::connect(&url).unwrap());
    let serving = first.claim(ClaimMode::Shared).unwrap().expect("the first host may serve");
    let also_serving = second.claim(ClaimMode::Shared).unwrap().expect("hosts serve together");
    assert!(first.claim(ClaimMode::Exclusive).unwrap().is_none(), "no rotation while hosts serve");
    drop((serving, also_serving));
    let rotating = first.claim(ClaimMode::Exclusive).unwrap().expect("alone once the hosts are gone");
    assert!(second.claim(ClaimMode::Shared).unwrap().is_none(), "no host starts during a rotation");
    drop(rotating);
    assert!(second.claim(ClaimMode::Shared).unwrap().is_some());
}

/// Ends the server session that holds the one advisory lock held, as the server ends the
/// sessions of a host that died or whose connection broke.
fn end_the_session_of_the_one_lock(url: &str) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let holders: Vec<i32> = admin
        .query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(holders.len(), 1, "one advisory lock held");
    admin.execute("SELECT pg_terminate_backend($1)", &[&holders[0]]).unwrap();
}

#[test]
fn the_locks_of_a_killed_host_go_with_it() {
    // A host's locks live on its sessions: when its process dies, the server ends them. Here
    // the "host" is a psql-like raw session whose backend is terminated, as a SIGKILLed
    // host's connections are closed.
    let server = server();
    let url = server.database().unwrap();
    let store = Store::connect(&url).unwrap();
    let held = store.lock("tenant/acme").unwrap();
    end_the_session_of_the_one_lock(&url);
    let other = Store::connect(&url).unwrap();
    let (sender, taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(other.lock("tenant/acme").map(|_| ())).unwrap());
    taken.recv_timeout(std::time::Duration::from_secs(10)).expect("the lock of a dead session is free").unwrap();
    drop(held); // its connection is gone already: dropping it is no error
}

#[test]
fn writes_under_a_lock_that_passed_to_another_host_are_refused() {
    // The lock connection alone breaks (its backend is terminated) while the host's other
    // connections work: another host takes the lock, and what the first host still writes
    // under its old lock fails, writing nothing; the new holder's writes go through.
    let server = server();
    let url = server.database().unwrap();
    let (first, second) = (Store::connect(&url).unwrap(), Store::connect(&url).unwrap());
    let (first_kv, second_kv) = (first.bucket("acme", "pages").unwrap(), second.bucket("acme", "pages").unwrap());
    let old = first.lock_writes("instance/acme", "acme").unwrap();
    first_kv.set("page/1", b"first, under its lock").unwrap();
    first.bucket("other", "pages").unwrap().set("page/1", b"another tenant").unwrap();

    end_the_session_of_the_one_lock(&url);
    let new = second.lock_writes("instance/acme", "acme").unwrap();
    assert_ne!(old.fence(), new.fence(), "each holder writes under an epoch of its own");

    let refused = first_kv.set_many(&[("page/1".into(), b"late".to_vec()), ("page/2".into(), b"late".to_vec())]);
    assert!(matches!(refused, Err(StoreError::Fenced { ref name }) if name == "instance/acme"), "{refused:?}");
    assert!(refused.unwrap_err().to_string().contains("lost to another holder"));
    assert_eq!(second_kv.get("page/1").unwrap().as_deref(), Some(&b"first, under its lock"[..]));
    assert_eq!(second_kv.get("page/2").unwrap(), None, "nothing of the refused batch was written");
    let key = OperatorKey::generate();
    let refused = first.secrets("acme", key.clone()).unwrap().put("api-token", "late");
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "secrets are fenced too: {refused:?}");
    assert_eq!(second.secrets("acme", key).unwrap().get("api-token").unwrap(), None);
    second_kv.set("page/1", b"second").unwrap();
    first.bucket("other", "pages").unwrap().set("page/2", b"other tenants are not fenced").unwrap();

    // Once the first host gives its old lock up, its writes are unfenced again (as a host
    // without a lock writes), and a new lock fences them anew.
    drop(old);
    drop(new);
    let again = first.lock_writes("instance/acme", "acme").unwrap();
    first_kv.set("page/1", b"first again").unwrap();
    drop(again);
    assert_eq!(second_kv.get("page/1").unwrap().as_deref(), Some(&b"first again"[..]));
}
