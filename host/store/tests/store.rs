//! Tests of what only the embedded store has: its file, and the operator key's file and
//! parsing. What every backend does is in `conformance.rs`.

use connector_store::{OperatorKey, Store, StoreError};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("host.redb")).unwrap()
}

#[test]
fn persistence_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.bucket("ns", "b").unwrap().set("k", b"v").unwrap();
        store.meta().set("m", b"1").unwrap();
        // A second open of a file that is still open fails cleanly.
        assert!(Store::open(&dir.path().join("host.redb")).is_err());
    }
    let store = open(&dir);
    assert_eq!(store.bucket("ns", "b").unwrap().get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.meta().get("m").unwrap(), Some(b"1".to_vec()));
}

#[cfg(unix)]
#[test]
fn operator_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator.key");
    OperatorKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
}

#[test]
fn plaintext_never_reaches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = "PLAINTEXT-never-on-disk-4f2a9c";
    {
        let store = open(&dir);
        let s = store.secrets("ns", OperatorKey::generate()).unwrap();
        s.put("token", plaintext).unwrap();
        s.put("token2", plaintext).unwrap();
        assert_eq!(s.get("token").unwrap().as_deref(), Some(plaintext));
    }
    let bytes = std::fs::read(dir.path().join("host.redb")).unwrap();
    assert!(!bytes.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()), "plaintext found in database file");
    // Sanity check of the grep itself: secret *names* are stored in clear.
    assert!(bytes.windows(6).any(|w| w == b"token2"));
}

#[test]
fn operator_key_parsing_and_debug() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let k = OperatorKey::parse(hex, "test").unwrap();
    let mut expected = [0u8; 32];
    for i in 0..32 {
        expected[i] =
            [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff][i % 16];
    }
    assert_eq!(k, OperatorKey::from_bytes(expected));
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(expected);
    assert_eq!(OperatorKey::parse(&format!(" {b64}\n"), "test").unwrap(), k);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(expected);
    assert_eq!(OperatorKey::parse(&b64url, "test").unwrap(), k);
    assert!(OperatorKey::parse("abc", "test").is_err());
    assert!(OperatorKey::parse("", "test").is_err());
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    let err = OperatorKey::parse(&short, "MY_VAR").unwrap_err().to_string();
    assert!(err.contains("MY_VAR") && !err.contains(&short), "{err}");

    let dbg = format!("{k:?}");
    assert!(!dbg.contains("00112233") && !dbg.contains("ddeeff") && !dbg.contains("17"), "{dbg}");
    assert_eq!(dbg, "OperatorKey(<redacted>)");
}

#[test]
fn operator_key_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator.key");
    let var = "CONNECTOR_STORE_TEST_OPERATOR_KEY_4F2A";
    // SAFETY: this variable is unique to this test; no other thread reads or writes it.
    unsafe { std::env::remove_var(var) };
    let from_file = OperatorKey::from_env_or_file(var, &path).unwrap();
    assert!(path.exists());
    assert_eq!(OperatorKey::from_env_or_file(var, &path).unwrap(), from_file);

    let hex = "ab".repeat(32);
    // SAFETY: as above.
    unsafe { std::env::set_var(var, &hex) };
    assert_eq!(OperatorKey::from_env_or_file(var, &path).unwrap(), OperatorKey::from_bytes([0xab; 32]));
    // SAFETY: as above.
    unsafe { std::env::set_var(var, "not a key") };
    assert!(matches!(OperatorKey::from_env_or_file(var, &path), Err(StoreError::InvalidOperatorKey { .. })));
    // SAFETY: as above.
    unsafe { std::env::remove_var(var) };
}
