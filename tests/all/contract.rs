//! The WIT world is the contract other hosts are written from (jco, wasmtime-py): it must
//! declare every interface the built component imports, and nothing it does not.

use std::collections::BTreeSet;

use wit_parser::{Resolve, WorldItem};

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
