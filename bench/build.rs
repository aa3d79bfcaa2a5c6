//! Builds the benchmark-only conversion component (`bench/convert-guest`, wasm32-wasip2)
//! into its own target directory (`<target>/wasm-bench`: sharing the host's would let a
//! differently-featured build of the connector overwrite the component the host embeds)
//! and hands its path over as `CONVERT_COMPONENT_PATH`.

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = wasm_build::workspace_of(&manifest_dir);
    for watched in ["bench/convert-guest", "plugin/src", "plugin/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let output = wasm_build::build(&workspace, "wasm-bench", &["convert-guest"]);
    wasm_build::export_path("CONVERT_COMPONENT_PATH", &output, "convert_guest");
}
