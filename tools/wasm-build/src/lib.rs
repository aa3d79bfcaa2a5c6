//! Builds workspace packages for `wasm32-wasip2` from a build script, the way the host and
//! the benchmark need their components: release, stripped, LTO, in a target directory of
//! their own (a nested cargo on the outer build's directory would wait forever on its lock).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, from a member's `CARGO_MANIFEST_DIR`.
pub fn workspace_of(manifest_dir: &Path) -> PathBuf {
    manifest_dir.ancestors().find(|dir| dir.join("rust-toolchain.toml").exists()).unwrap_or(manifest_dir).to_path_buf()
}

/// Builds `packages` into `<target>/<subdir>` and returns the directory holding the
/// `.wasm` files (`.../wasm32-wasip2/release`). Panics with a clear message on failure,
/// as a build script should.
pub fn build(workspace: &Path, subdir: &str, packages: &[&str]) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { workspace.join(dir) })
        .unwrap_or_else(|| workspace.join("target"))
        .join(subdir);
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace).args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]);
    for package in packages {
        command.args(["--package", package]);
    }
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .arg("--target-dir")
        .arg(&target_dir)
        // Fixed-width SIMD (a wasm 2.0 standard feature every current runtime supports):
        // byte scans in the converter and the JSON parser make conversion about 8% faster.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .status()
        .expect("run cargo to build wasm components");
    assert!(status.success(), "building {packages:?} for wasm32-wasip2 failed");
    target_dir.join("wasm32-wasip2/release")
}

/// Tells cargo the path of a built component as an environment variable of the crate.
pub fn export_path(variable: &str, output: &Path, file: &str) {
    let component = output.join(format!("{file}.wasm"));
    assert!(component.exists(), "missing {}", component.display());
    println!("cargo:rustc-env={variable}={}", component.display());
}
