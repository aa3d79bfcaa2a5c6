//! The WIT world is the contract other hosts are written from (jco, wasmtime-py): it must
//! declare every interface the built component imports, and nothing it does not. The host
//! keeps running components of the previous contract (0.1.x), and grants a connector only
//! the origins its connections use.

use std::collections::BTreeSet;
use std::path::PathBuf;

use connector_host::bindings::types::{ConnectorError, MemoryStatus};
use connector_host::driver::drive;
use connector_host::runtime::{ConnectPolicy, ConnectorHost, HostConfig};
use fake_confluence::{FakeConfluence, TokenKind};
use wit_parser::{Resolve, WorldItem};

use crate::support::{EMAIL, TOKEN, cache_dir};

const LOOPBACK: ConnectPolicy = ConnectPolicy { allow_loopback: true };

fn host_running(data: &std::path::Path, component: Option<&str>) -> ConnectorHost {
    let mut config = HostConfig::new(data);
    config.component = component.map(PathBuf::from);
    config.cache_dir = Some(cache_dir());
    ConnectorHost::open(config).expect("open the host")
}

/// `wasi:cli/environment@0.2.6` → `wasi:cli/environment@0.2`: hosts link any 0.2.x.
fn compatible(name: &str) -> String {
    match name.rsplit_once('@') {
        Some((interface, version)) => {
            let major_minor: Vec<&str> = version.split('.').take(2).collect();
            format!("{interface}@{}", major_minor.join("."))
        }
        None => name.to_string(),
    }
}

#[test]
fn the_world_declares_exactly_what_the_component_imports() {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_binary(&engine, connector_host::runtime::BUNDLED_COMPONENT)
        .expect("the bundled component compiles");
    let imported: BTreeSet<String> =
        component.component_type().imports(&engine).map(|(name, _)| compatible(name)).collect();

    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit")).expect("the WIT parses");
    let world = resolve.select_world(&[package], Some("connector")).expect("the connector world");
    let declared: BTreeSet<String> = resolve.worlds[world]
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => resolve.id_of(*id),
            _ => None,
        })
        .map(|name| compatible(&name))
        .collect();

    let undeclared: Vec<&String> = imported.difference(&declared).collect();
    let unused: Vec<&String> = declared.difference(&imported).collect();
    assert!(
        undeclared.is_empty() && unused.is_empty(),
        "the component imports {undeclared:?}, which the world does not declare; \
         the world declares {unused:?}, which the component does not import"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_from_the_0_1_2_contract_runs_in_this_host() {
    let site = FakeConfluence::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = host_running(data.path(), Some(env!("SINCE_V0_1_COMPONENT_PATH")));
    let mut instance = host.instance("legacy").await.unwrap();
    assert_eq!(instance.describe().await.unwrap().name, "Notes (0.1.2)");

    let config = vec![("site".to_string(), site.origin()), ("token".to_string(), "a-token".to_string())];
    // The loopback policy is the host's for 0.1.x components too: a configuration that
    // asks for loopback does not get it past the host.
    let mut asking = config.clone();
    asking.push(("allow-loopback".to_string(), "true".to_string()));
    let refused = instance.connect(asking, ConnectPolicy::default()).await.unwrap();
    assert!(matches!(&refused, Err(ConnectorError::Denied(m)) if m.contains("--allow-loopback")), "{refused:?}");
    assert!(site.requests().is_empty());
    // Allowed, the host tells it the 0.1.x way (its own `allow-loopback` field), and it connects.
    let connection = instance.connect(config, LOOPBACK).await.unwrap().expect("the 0.1.2 connector connects");
    assert!(connection.connected && connection.origins.is_empty(), "{connection:?}");
    assert_eq!(host.granted_origins("legacy").unwrap(), [site.origin()], "a 0.1.x connection keeps what it asked for");

    // Every export answers in the current types: outcomes, typed errors, memories, passages.
    let sources = ["alpha".to_string(), "alpha".to_string()];
    let outcomes = instance.ingest(&connection.id, &sources).await.unwrap().unwrap();
    assert!(outcomes[0].outcome.is_ok(), "{outcomes:?}");
    assert!(matches!(&outcomes[1].outcome, Err(ConnectorError::Duplicate(_))), "{outcomes:?}");
    assert_eq!(instance.pending().await.unwrap(), ["alpha"]);
    let memories = drive(&mut instance, &["alpha".to_string()], |_| {}).await.unwrap();
    assert_eq!(memories[0].status, MemoryStatus::Ingested);
    // Its search and secrets calls went through the 0.1.x imports to the same index and store.
    let passages = instance.retrieve("alpha notes", &[], 3).await.unwrap().unwrap();
    assert_eq!(passages.len(), 1, "{passages:?}");
    assert!(passages[0].text.contains("cloudId") && passages[0].memory_id == "alpha", "{passages:?}");
    let raw = instance.retrieve_with("tenant", &["alpha".to_string()], 2, 0).await.unwrap().unwrap();
    assert_eq!(raw.len(), 1, "{raw:?}");
    let again = instance.sync("alpha", false).await.unwrap().unwrap();
    assert_eq!(again.status, MemoryStatus::InProgress);
    let missing = instance.step("no-such-memory").await.unwrap();
    assert!(matches!(&missing, Err(ConnectorError::NotFound(_))), "{missing:?}");
    let disconnected = instance.disconnect(&connection.id).await.unwrap().unwrap();
    assert!(!disconnected.connected);
    let status = instance.status().await.unwrap();
    assert_eq!((status.connections.len(), status.memories.len()), (1, 1), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_keeps_only_the_origins_it_uses() {
    let site = FakeConfluence::start().unwrap();
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    let data = tempfile::tempdir().unwrap();
    let host = host_running(data.path(), None);
    let mut instance = host.instance("grants").await.unwrap();
    let config = vec![("site".into(), site.origin()), ("email".into(), EMAIL.into()), ("token".into(), TOKEN.into())];
    let connection = instance.connect(config, LOOPBACK).await.unwrap().expect("connects");
    // Asked for the site and, in case the token was scoped, the public API gateway; the
    // token was classic, so only the site stays granted.
    assert_eq!(connection.origins, [site.origin()]);
    assert_eq!(host.granted_origins("grants").unwrap(), [site.origin()]);
    // With no connected account left, the instance may reach nothing.
    instance.disconnect(&connection.id).await.unwrap().unwrap();
    assert!(host.granted_origins("grants").unwrap().is_empty());
}
