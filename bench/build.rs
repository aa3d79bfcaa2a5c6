//! Builds the benchmark-only conversion component (`bench/convert-guest`, wasm32-wasip2)
//! into its own target directory (`<target>/wasm-bench`: sharing the host's would let a
//! differently-featured build of the connector overwrite the component the host embeds)
//! and hands its path over as `CONVERT_COMPONENT_PATH`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["bench/convert-guest", "plugin/src", "plugin/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { workspace.join(dir) })
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-bench");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--package", "convert-guest"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // The same release settings the host uses for the real component.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .status()
        .expect("run cargo to build the conversion component");
    assert!(status.success(), "building bench/convert-guest for wasm32-wasip2 failed");
    let component = target_dir.join("wasm32-wasip2/release/convert_guest.wasm");
    assert!(component.exists(), "missing {}", component.display());
    println!("cargo:rustc-env=CONVERT_COMPONENT_PATH={}", component.display());
}
