//! The store's conformance suite: every check runs against every backend — the embedded
//! redb file and a real PostgreSQL server (started by the test; the test fails, saying
//! what to install, when it cannot start) — and must behave the same on both.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use connector_store::{OperatorKey, Store, StoreConfig, StoreError};
use pg_server::PgServer;

/// Opens a fresh, empty store with the given limits.
type Opener<'a> = dyn Fn(StoreConfig) -> Store + 'a;

/// A check of the suite.
type Check = fn(&Opener);

/// Every check of the suite, by name.
const SUITE: &[(&str, Check)] = &[
    ("get_set_delete_exists", get_set_delete_exists),
    ("isolation_between_namespaces_and_buckets", isolation_between_namespaces_and_buckets),
    ("invalid_names_are_rejected", invalid_names_are_rejected),
    ("set_many_is_atomic_on_quota_error", set_many_is_atomic_on_quota_error),
    ("list_keys_pages_over_10k_keys_exactly_once", list_keys_pages_over_10k_keys_exactly_once),
    ("list_keys_continues_after_concurrent_changes", list_keys_continues_after_concurrent_changes),
    ("scan_prefix_range", scan_prefix_range),
    ("store_handles_are_send_sync_and_usable_across_threads", store_handles_are_send_sync_and_usable_across_threads),
    ("secrets_round_trip_and_isolation", secrets_round_trip_and_isolation),
    ("wrong_key_gives_clear_error", wrong_key_gives_clear_error),
    ("rotating_the_operator_key_moves_every_secret_at_once", rotating_the_operator_key_moves_every_secret_at_once),
];

/// Opens two handles on one fresh database, as two hosts would (an embedded file can be
/// open once: its two handles are one handle twice).
type PairOpener<'a> = dyn Fn() -> (Store, Store) + 'a;

/// A check of what hosts sharing a store coordinate with.
type SharedCheck = fn(&PairOpener);

/// Every check of leases and locks, by name.
const SHARED_SUITE: &[(&str, SharedCheck)] = &[
    ("a_lease_has_one_holder_until_released_or_expired", a_lease_has_one_holder_until_released_or_expired),
    ("a_lock_excludes_every_other_holder_until_dropped", a_lock_excludes_every_other_holder_until_dropped),
    ("leases_serve_as_the_slots_of_a_shared_semaphore", leases_serve_as_the_slots_of_a_shared_semaphore),
    ("holders_of_a_write_lock_write_in_turn", holders_of_a_write_lock_write_in_turn),
];

fn run_suite(backend: &str, open: &Opener, pair: &PairOpener) {
    for (name, check) in SUITE {
        eprintln!("{backend}: {name}");
        check(open);
    }
    for (name, check) in SHARED_SUITE {
        eprintln!("{backend}: {name}");
        check(pair);
    }
}

#[test]
fn redb_passes_the_conformance_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    let open = |config| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("host.redb"), config).unwrap();
        dirs.lock().unwrap().push(dir);
        store
    };
    run_suite("redb", &open, &|| {
        let store = open(StoreConfig::default());
        (store.clone(), store)
    });
}

#[test]
fn postgres_passes_the_conformance_suite() {
    let server = PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
    let connect =
        |url: &str, config| Store::connect_with(url, config).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    run_suite("postgres", &|config| connect(&server.database().unwrap(), config), &|| {
        let url = server.database().unwrap();
        (connect(&url, StoreConfig::default()), connect(&url, StoreConfig::default()))
    });
}

fn get_set_delete_exists(open: &Opener) {
    let b = open(StoreConfig::default()).bucket("ns", "b").unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    assert!(!b.exists("k").unwrap());
    b.set("k", b"v1").unwrap();
    b.set("k", b"v2").unwrap();
    assert_eq!(b.get("k").unwrap(), Some(b"v2".to_vec()));
    assert!(b.exists("k").unwrap());
    b.delete("k").unwrap();
    b.delete("k").unwrap();
    assert!(!b.exists("k").unwrap());
    // Empty keys and keys containing NUL are ordinary keys.
    b.set("", b"empty").unwrap();
    b.set("a\0b", b"nul").unwrap();
    assert_eq!(b.get("").unwrap(), Some(b"empty".to_vec()));
    assert_eq!(b.get("a\0b").unwrap(), Some(b"nul".to_vec()));
}

fn isolation_between_namespaces_and_buckets(open: &Opener) {
    let store = open(StoreConfig::default());
    let a1 = store.bucket("inst-a", "one").unwrap();
    let a2 = store.bucket("inst-a", "two").unwrap();
    let b1 = store.bucket("inst-b", "one").unwrap();
    // Names that would collide under naive concatenation.
    let tricky = store.bucket("inst-a", "on").unwrap();
    a1.set("key", b"a1").unwrap();
    a1.set("e\0key", b"a1-nul").unwrap();
    a2.set("key", b"a2").unwrap();
    b1.set("key", b"b1").unwrap();

    assert_eq!(a1.get("key").unwrap(), Some(b"a1".to_vec()));
    assert_eq!(a2.get("key").unwrap(), Some(b"a2".to_vec()));
    assert_eq!(b1.get("key").unwrap(), Some(b"b1".to_vec()));
    assert_eq!(tricky.get("e\0key").unwrap(), None);
    assert_eq!(tricky.list_keys(None, 100).unwrap(), (vec![], None));
    assert!(tricky.scan_prefix("", None, 100).unwrap().is_empty());

    assert_eq!(a1.list_keys(None, 100).unwrap().0, vec!["e\0key".to_string(), "key".to_string()]);
    assert_eq!(a2.list_keys(None, 100).unwrap().0, vec!["key".to_string()]);
    assert_eq!(b1.scan_prefix("", None, 100).unwrap().len(), 1);

    b1.delete_many(&["key".into()]).unwrap();
    assert_eq!(a1.get("key").unwrap(), Some(b"a1".to_vec()));
    assert_eq!(store.bucket("inst-b", "one").unwrap().get("key").unwrap(), None);

    // Meta is a separate table no bucket can reach.
    store.meta().set("key", b"meta").unwrap();
    assert_eq!(a1.get("key").unwrap(), Some(b"a1".to_vec()));
    assert_eq!(store.meta().get("key").unwrap(), Some(b"meta".to_vec()));
    let empty_ns_bucket = store.bucket("x", "").unwrap();
    assert!(empty_ns_bucket.list_keys(None, 10).unwrap().0.is_empty());
}

fn invalid_names_are_rejected(open: &Opener) {
    let store = open(StoreConfig::default());
    assert!(matches!(store.bucket("a\0b", "x"), Err(StoreError::InvalidName { .. })));
    assert!(matches!(store.bucket("a", "x\0"), Err(StoreError::InvalidName { .. })));
    assert!(matches!(store.bucket("", "x"), Err(StoreError::InvalidName { .. })));
    assert!(store.secrets("a\0", OperatorKey::generate()).is_err());
}

fn set_many_is_atomic_on_quota_error(open: &Opener) {
    let store = open(StoreConfig { max_value_bytes: 8, max_key_bytes: 4 });
    let b = store.bucket("ns", "b").unwrap();
    let err = b.set_many(&[("a".into(), b"ok".to_vec()), ("b".into(), b"way too long".to_vec())]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::ValueTooLarge { size: 12, limit: 8, .. }));
    assert!(msg.contains("\"b\"") && msg.contains('8'), "{msg}");
    assert_eq!(b.get("a").unwrap(), None);

    let err = b.set_many(&[("a".into(), vec![]), ("toolong".into(), vec![])]).unwrap_err();
    assert!(err.to_string().contains("toolong"), "{err}");
    assert_eq!(b.get("a").unwrap(), None);
    assert!(matches!(b.set("abcde", b""), Err(StoreError::KeyTooLarge { .. })));

    b.set_many(&[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).unwrap();
    assert_eq!(
        b.get_many(&["a".into(), "zz".into(), "b".into()]).unwrap(),
        vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]
    );
    b.delete_many(&["a".into(), "b".into(), "nope".into()]).unwrap();
    assert_eq!(b.get_many(&["a".into(), "b".into()]).unwrap(), vec![None, None]);
}

fn list_keys_pages_over_10k_keys_exactly_once(open: &Opener) {
    let store = open(StoreConfig::default());
    let b = store.bucket("ns", "big").unwrap();
    let items: Vec<(String, Vec<u8>)> = (0..10_000).map(|i| (format!("key-{i}"), i.to_string().into_bytes())).collect();
    b.set_many(&items).unwrap();
    // Neighbours that must not leak into the listing.
    store.bucket("ns", "bi").unwrap().set("g", b"x").unwrap();
    store.bucket("ns", "big2").unwrap().set("a", b"x").unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (keys, next) = b.list_keys(cursor, 97).unwrap();
        assert!(keys.len() <= 97);
        seen.extend(keys);
        pages += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 10_000usize.div_ceil(97));
    assert_eq!(seen.len(), 10_000);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 10_000);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "keys come in key order");

    // A page size dividing the count exactly ends without an empty extra page.
    let (keys, next) = b.list_keys(None, 10_000).unwrap();
    assert_eq!((keys.len(), next), (10_000, None));

    // A cursor is bucket-bound.
    let (_, c) = b.list_keys(None, 10).unwrap();
    let other = store.bucket("ns", "big2").unwrap();
    assert!(matches!(other.list_keys(c, 10), Err(StoreError::InvalidCursor(_))));
    // Unknown cursors are refused.
    let unknown = c.unwrap().wrapping_add(1_000_000);
    assert!(matches!(
        b.list_keys(Some(unknown), 10),
        Err(StoreError::InvalidCursor(x)) if x == unknown
    ));
}

fn list_keys_continues_after_concurrent_changes(open: &Opener) {
    let b = open(StoreConfig::default()).bucket("ns", "b").unwrap();
    for k in ["a", "b", "c", "d"] {
        b.set(k, b"").unwrap();
    }
    let (keys, cursor) = b.list_keys(None, 2).unwrap();
    assert_eq!(keys, ["a", "b"]);
    b.delete("b").unwrap(); // the cursor's own key disappears
    b.set("bb", b"").unwrap();
    let (keys, cursor) = b.list_keys(cursor, 2).unwrap();
    assert_eq!(keys, ["bb", "c"]);
    let (keys, cursor) = b.list_keys(cursor, 2).unwrap();
    assert_eq!((keys, cursor), (vec!["d".to_string()], None));
}

fn scan_prefix_range(open: &Opener) {
    let store = open(StoreConfig::default());
    let b = store.bucket("ns", "b").unwrap();
    for k in ["doc/1", "doc/2", "doc/3", "doc0", "do", "page/1", "doc/10"] {
        b.set(k, k.as_bytes()).unwrap();
    }
    let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(b.scan_prefix("doc/", None, 100).unwrap()), ["doc/1", "doc/10", "doc/2", "doc/3"]);
    assert_eq!(keys(b.scan_prefix("doc/", Some("doc/10"), 100).unwrap()), ["doc/2", "doc/3"]);
    assert_eq!(keys(b.scan_prefix("doc/", Some("a"), 2).unwrap()), ["doc/1", "doc/10"]);
    assert!(b.scan_prefix("doc/", Some("doc/9"), 100).unwrap().is_empty());
    assert!(b.scan_prefix("zzz", None, 100).unwrap().is_empty());
    let all = b.scan_prefix("", None, 100).unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], ("do".to_string(), b"do".to_vec()));

    let meta = store.meta();
    meta.set("sync/a", b"1").unwrap();
    meta.set("sync/b", b"2").unwrap();
    meta.set("other", b"3").unwrap();
    assert_eq!(keys(meta.scan_prefix("sync/", None, 10).unwrap()), ["sync/a", "sync/b"]);
    meta.delete("sync/a").unwrap();
    assert_eq!(keys(meta.scan_prefix("sync/", None, 10).unwrap()), ["sync/b"]);
}

fn store_handles_are_send_sync_and_usable_across_threads(open: &Opener) {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<connector_store::Bucket>();
    assert_send_sync::<connector_store::Secrets>();
    assert_send_sync::<connector_store::Meta>();

    let store = open(StoreConfig::default());
    std::thread::scope(|s| {
        for t in 0..4 {
            let b = store.bucket("ns", "b").unwrap();
            s.spawn(move || {
                for i in 0..25 {
                    b.set(&format!("{t}-{i}"), b"x").unwrap();
                }
            });
        }
    });
    assert_eq!(store.bucket("ns", "b").unwrap().list_keys(None, 1000).unwrap().0.len(), 100);
}

fn secrets_round_trip_and_isolation(open: &Opener) {
    let store = open(StoreConfig::default());
    let key = OperatorKey::generate();
    let s = store.secrets("inst-a", key.clone()).unwrap();
    assert_eq!(s.get("token").unwrap(), None);
    s.put("token", "t0k3n").unwrap();
    s.put("token", "t0k3n-2").unwrap();
    assert_eq!(s.get("token").unwrap().as_deref(), Some("t0k3n-2"));
    s.put("empty", "").unwrap();
    assert_eq!(s.get("empty").unwrap().as_deref(), Some(""));
    // Another instance has its own secrets; buckets never see them.
    let other = store.secrets("inst-b", key.clone()).unwrap();
    assert_eq!(other.get("token").unwrap(), None);
    assert!(store.bucket("inst-a", "default").unwrap().list_keys(None, 10).unwrap().0.is_empty());
    s.remove("token").unwrap();
    s.remove("token").unwrap();
    assert_eq!(s.get("token").unwrap(), None);
}

fn wrong_key_gives_clear_error(open: &Opener) {
    let store = open(StoreConfig::default());
    store.secrets("ns", OperatorKey::from_bytes([1; 32])).unwrap().put("jira-token", "value").unwrap();
    let err = store.secrets("ns", OperatorKey::from_bytes([2; 32])).unwrap().get("jira-token").unwrap_err();
    assert_eq!(err.to_string(), "secret jira-token cannot be decrypted with this operator key (was the key changed?)");
}

fn rotating_the_operator_key_moves_every_secret_at_once(open: &Opener) {
    let store = open(StoreConfig::default());
    let (old, new) = (OperatorKey::from_bytes([1; 32]), OperatorKey::from_bytes([2; 32]));
    store.secrets("tenant-a", old.clone()).unwrap().put("token/conn-1", "alpha").unwrap();
    store.secrets("tenant-b", old.clone()).unwrap().put("token/conn-1", "beta").unwrap();
    assert!(store.opens_secrets(&old).unwrap() && !store.opens_secrets(&new).unwrap());

    // The wrong old key changes nothing.
    let wrong = OperatorKey::from_bytes([3; 32]);
    assert!(matches!(store.rotate_operator_key(&wrong, &new), Err(StoreError::SecretUndecryptable { .. })));
    assert_eq!(store.secrets("tenant-a", old.clone()).unwrap().get("token/conn-1").unwrap().as_deref(), Some("alpha"));

    assert_eq!(store.rotate_operator_key(&old, &new).unwrap(), 2);
    assert_eq!(store.secrets("tenant-a", new.clone()).unwrap().get("token/conn-1").unwrap().as_deref(), Some("alpha"));
    assert_eq!(store.secrets("tenant-b", new.clone()).unwrap().get("token/conn-1").unwrap().as_deref(), Some("beta"));
    for namespace in ["tenant-a", "tenant-b"] {
        let stale = store.secrets(namespace, old.clone()).unwrap().get("token/conn-1");
        assert!(matches!(stale, Err(StoreError::SecretUndecryptable { .. })), "the old key opens nothing");
    }
    assert!(store.opens_secrets(&new).unwrap() && !store.opens_secrets(&old).unwrap());
}

fn a_lease_has_one_holder_until_released_or_expired(pair: &PairOpener) {
    let (first, second) = pair();
    let (a, b) = (first.leases("host-a"), second.leases("host-b"));
    let long = Duration::from_secs(30);
    assert!(a.acquire("work/acme", long).unwrap());
    assert!(!b.acquire("work/acme", long).unwrap(), "held by another host");
    assert!(a.acquire("work/acme", long).unwrap(), "its holder extends it");
    assert_eq!(b.holder_of("work/acme").unwrap().as_deref(), Some("host-a"));
    let left = b.time_left("work/acme").unwrap().expect("held");
    assert!(left > Duration::from_secs(25) && left <= long, "{left:?}");
    assert_eq!(b.time_left("work/nobody").unwrap(), None);
    assert!(b.acquire("work/globex", long).unwrap());
    assert_eq!(a.renew(long).unwrap(), ["work/acme"]);
    b.release("work/acme").unwrap();
    assert_eq!(a.holder_of("work/acme").unwrap().as_deref(), Some("host-a"), "only its holder releases it");
    a.release("work/acme").unwrap();
    assert_eq!(a.holder_of("work/acme").unwrap(), None);
    assert!(b.acquire("work/acme", long).unwrap(), "free once released");

    // A holder that stops renewing loses the lease when it expires.
    assert!(a.acquire("work/initech", Duration::from_millis(300)).unwrap());
    assert!(!b.acquire("work/initech", long).unwrap());
    assert!(b.lapsed("work/").unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.holder_of("work/initech").unwrap(), None, "expired");
    assert_eq!(b.lapsed("work/").unwrap(), ["work/initech"], "expired without being released");
    assert!(b.lapsed("other/").unwrap().is_empty());
    assert!(b.acquire("work/initech", long).unwrap());
    assert!(b.lapsed("work/").unwrap().is_empty(), "taken again");
    assert!(a.renew(long).unwrap().is_empty(), "an expired lease taken by another is not renewed");
    assert_eq!(b.renew(long).unwrap(), ["work/acme", "work/globex", "work/initech"]);
}

fn a_lock_excludes_every_other_holder_until_dropped(pair: &PairOpener) {
    let (first, second) = pair();
    // Different names do not exclude each other; a dropped guard frees its lock at once.
    let x = first.lock("tenant/x").unwrap();
    let y = second.lock("tenant/y").unwrap();
    drop(x);
    let x_again = second.lock("tenant/x").unwrap();
    drop((x_again, y));

    let inside = AtomicBool::new(false);
    let entries = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for store in [&first, &second, &first, &second] {
            let (inside, entries) = (&inside, &entries);
            s.spawn(move || {
                for _ in 0..15 {
                    let _held = store.lock("tenant/acme").unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders of one lock at once");
                    std::thread::sleep(Duration::from_millis(2));
                    inside.store(false, Ordering::SeqCst);
                    entries.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(entries.load(Ordering::SeqCst), 60);
}

fn holders_of_a_write_lock_write_in_turn(pair: &PairOpener) {
    // Each holder in turn writes under the lock (fenced where the backend fences), and
    // writes without it once it is given up.
    let (first, second) = pair();
    for (n, store) in [&first, &second, &first].into_iter().enumerate() {
        let held = store.lock_writes("instance/acme", "acme").unwrap();
        let bucket = store.bucket("acme", "pages").unwrap();
        bucket.set_many(&[("page/1".into(), format!("holder {n}").into_bytes())]).unwrap();
        bucket.delete("page/0").unwrap();
        drop(held);
        bucket.set("page/2", b"unlocked").unwrap();
    }
    assert_eq!(second.bucket("acme", "pages").unwrap().get("page/1").unwrap().as_deref(), Some(&b"holder 2"[..]));
    // (Each guard is dropped at the end of its statement.)
    let one = first.lock_writes("instance/acme", "acme").unwrap().fence().cloned();
    let other = second.lock_writes("instance/acme", "acme").unwrap().fence().cloned();
    if let (Some(one), Some(other)) = (one, other) {
        assert_ne!(one, other, "every taking of a lock has an epoch of its own");
    }
}

fn leases_serve_as_the_slots_of_a_shared_semaphore(pair: &PairOpener) {
    let (first, second) = pair();
    let slots: Vec<String> = (0..3).map(|n| format!("site/acme/{n}")).collect();
    let long = Duration::from_secs(30);
    let holders: Vec<_> = (0..4).map(|n| [&first, &second][n % 2].leases(&format!("request-{n}"))).collect();
    let taken: Vec<Option<String>> = holders.iter().map(|h| h.acquire_any(&slots, long).unwrap()).collect();
    assert_eq!(taken[..3], [Some(slots[0].clone()), Some(slots[1].clone()), Some(slots[2].clone())]);
    assert_eq!(taken[3], None, "three slots, three holders");
    holders[1].release(&slots[1]).unwrap();
    assert_eq!(holders[3].acquire_any(&slots, long).unwrap().as_deref(), Some(slots[1].as_str()), "a freed slot");

    // Many holders racing on two handles never share a slot.
    let inside: Vec<AtomicBool> = (0..3).map(|_| AtomicBool::new(false)).collect();
    for (holder, slot) in holders.iter().zip(&slots).take(3) {
        holder.release(slot).unwrap();
    }
    holders[3].release(&slots[1]).unwrap();
    std::thread::scope(|s| {
        for n in 0..6 {
            let store = [&first, &second][n % 2];
            let (slots, inside) = (&slots, &inside);
            s.spawn(move || {
                let leases = store.leases(&format!("racer-{n}"));
                let mut entered = 0;
                while entered < 10 {
                    let Some(slot) = leases.acquire_any(slots, long).unwrap() else {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let index = slots.iter().position(|s| *s == slot).unwrap();
                    assert!(!inside[index].swap(true, Ordering::SeqCst), "two holders of {slot}");
                    std::thread::sleep(Duration::from_millis(1));
                    inside[index].store(false, Ordering::SeqCst);
                    leases.release(&slot).unwrap();
                    entered += 1;
                }
            });
        }
    });
}
