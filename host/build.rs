//! Builds the connector component (`plugin/`, target wasm32-wasip2) and hands its path
//! to the host as `CONNECTOR_COMPONENT_PATH`, so `connector-host` carries the exact
//! component of this checkout. The sandbox tests' misbehaving component
//! (`tests/guests/hostile`) is built alongside: `HOSTILE_COMPONENT_PATH`.
//!
//! The nested cargo uses its own target directory (`<target>/wasm`), otherwise it would
//! wait forever on the lock the outer build holds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["plugin/src", "plugin/Cargo.toml", "tests/guests", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { workspace.join(dir) })
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .args(["--package", "confluence-connector", "--package", "hostile-guest"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .status()
        .expect("run cargo to build the connector component");
    assert!(status.success(), "building the components (plugin/, tests/guests/) for wasm32-wasip2 failed");
    for (variable, file) in
        [("CONNECTOR_COMPONENT_PATH", "confluence_connector"), ("HOSTILE_COMPONENT_PATH", "hostile_guest")]
    {
        let component = target_dir.join(format!("wasm32-wasip2/release/{file}.wasm"));
        assert!(component.exists(), "missing {}", component.display());
        println!("cargo:rustc-env={variable}={}", component.display());
    }
}
