//! Builds the connector component (`plugin/`, target wasm32-wasip2) and hands its path
//! to the host as `CONNECTOR_COMPONENT_PATH`, so `connector-host` carries the exact
//! component of this checkout. The sandbox tests' misbehaving component
//! (`tests/guests/hostile`) is built alongside: `HOSTILE_COMPONENT_PATH`; so is a connector
//! built from the frozen 0.1.2 contract (`tests/guests/since-v0-1`): `SINCE_V0_1_COMPONENT_PATH`;
//! and the second source on the SDK (`tests/guests/notes`): `NOTES_COMPONENT_PATH`.

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = wasm_build::workspace_of(&manifest_dir);
    for watched in ["sdk/src", "sdk/Cargo.toml", "plugin/src", "plugin/Cargo.toml", "tests/guests", "wit", "Cargo.lock"]
    {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let output = wasm_build::build(
        &workspace,
        "wasm",
        &["confluence-connector", "hostile-guest", "since-v0-1-guest", "notes-connector"],
    );
    wasm_build::export_path("CONNECTOR_COMPONENT_PATH", &output, "confluence_connector");
    wasm_build::export_path("HOSTILE_COMPONENT_PATH", &output, "hostile_guest");
    wasm_build::export_path("SINCE_V0_1_COMPONENT_PATH", &output, "since_v0_1_guest");
    wasm_build::export_path("NOTES_COMPONENT_PATH", &output, "notes_connector");
}
