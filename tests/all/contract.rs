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
    let raw = instance.retrieve_with("tenant", &["alpha".to_string()], 2, 0, &[]).await.unwrap().unwrap();
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

/// A host assembled from stock parts and the WIT alone: wasmtime's WASI and HTTP, wasmtime's
/// own `wasi:keyvalue` store, and the contract's `search` and `secrets` answered trivially.
mod stock {
    use connector_host::bindings::knowledge::connector::{search, secrets, types};
    use wasmtime::component::ResourceTable;
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
    use wasmtime_wasi_keyvalue::{WasiKeyValue, WasiKeyValueCtx};

    pub struct Stock {
        pub wasi: WasiCtx,
        pub http: WasiHttpCtx,
        pub kv: WasiKeyValueCtx,
        pub table: ResourceTable,
    }

    impl WasiView for Stock {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
        }
    }

    impl WasiHttpView for Stock {
        fn http(&mut self) -> WasiHttpCtxView<'_> {
            WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
        }
    }

    pub fn key_value(stock: &mut Stock) -> WasiKeyValue<'_> {
        WasiKeyValue::new(&stock.kv, &mut stock.table)
    }

    impl types::Host for Stock {}

    impl search::Host for Stock {
        async fn replace_document(
            &mut self,
            _: String,
            _: String,
            _: Vec<search::Chunk>,
        ) -> wasmtime::Result<Result<(), search::SearchError>> {
            Ok(Ok(()))
        }
        async fn remove_documents(
            &mut self,
            _: String,
            _: Vec<String>,
        ) -> wasmtime::Result<Result<(), search::SearchError>> {
            Ok(Ok(()))
        }
        async fn commit(&mut self) -> wasmtime::Result<Result<(), search::SearchError>> {
            Ok(Ok(()))
        }
        async fn rollback(&mut self) -> wasmtime::Result<Result<(), search::SearchError>> {
            Ok(Ok(()))
        }
        async fn query(
            &mut self,
            _: String,
            _: Vec<String>,
            _: u32,
        ) -> wasmtime::Result<Result<Vec<search::Hit>, search::SearchError>> {
            Ok(Ok(Vec::new()))
        }
    }

    impl secrets::Host for Stock {
        async fn put(&mut self, _: String, _: String) -> wasmtime::Result<Result<(), secrets::SecretsError>> {
            Ok(Ok(()))
        }
        async fn get(&mut self, _: String) -> wasmtime::Result<Result<Option<String>, secrets::SecretsError>> {
            Ok(Ok(None))
        }
        async fn remove(&mut self, _: String) -> wasmtime::Result<Result<(), secrets::SecretsError>> {
            Ok(Ok(()))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wasmtimes_stock_key_value_cannot_keep_a_connectors_state_as_the_wit_says() {
    use connector_host::bindings::{self, Connector};
    use wasmtime::component::{HasSelf, Linker, ResourceTable};

    let site = FakeConfluence::start().unwrap();
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, connector_host::runtime::BUNDLED_COMPONENT).unwrap();
    let mut linker = Linker::<stock::Stock>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_keyvalue::add_to_linker(&mut linker, stock::key_value).unwrap();
    bindings::knowledge::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    bindings::knowledge::connector::search::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    bindings::knowledge::connector::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let state = stock::Stock {
        wasi: wasmtime_wasi::WasiCtx::builder().build(),
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        kv: wasmtime_wasi_keyvalue::WasiKeyValueCtx::builder().build(),
        table: ResourceTable::new(),
    };
    let mut store = wasmtime::Store::new(&engine, state);
    // The stock parts link: the world asks for nothing a host cannot give.
    let connector = Connector::instantiate_async(&mut store, &component, &linker).await.expect("the component links");
    let api = connector.knowledge_connector_knowledge_connector();
    assert_eq!(api.call_describe(&mut store).await.unwrap().kind, "confluence");

    // But the store opens only the empty bucket name (and would keep a write only as long
    // as the handle that made it): connecting, which must persist the connection, fails
    // with the store's own answer.
    let config = vec![("site".into(), site.origin()), ("email".into(), EMAIL.into()), ("token".into(), TOKEN.into())];
    let outcome = api.call_connect(&mut store, &config).await.unwrap();
    assert!(
        matches!(&outcome, Err(bindings::types::ConnectorError::Host(m)) if m.contains("no such key-value store")),
        "{outcome:?}"
    );
}
