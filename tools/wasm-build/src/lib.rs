//! Builds workspace packages for `wasm32-wasip2` from a build script, the way the host and
//! the benchmark need their components: release, stripped, LTO, in a target directory of
//! their own (a nested cargo on the outer build's directory would wait forever on its lock).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, from a member's `CARGO_MANIFEST_DIR`.
pub fn workspace_of(manifest_dir: &Path) -> PathBuf {
    manifest_dir.ancestors().find(|dir| dir.join("rust-toolchain.toml").exists()).unwrap_or(manifest_dir).to_path_buf()
}

/// The compilation target of the components.
pub const TARGET: &str = "wasm32-wasip2";

/// The toolchain that builds the components when rustup is there: the workspace's pinned
/// one (`rust-toolchain.toml`), whichever toolchain builds the host. cargo-fuzz builds the
/// host with nightly, whose `wasm32-wasip2` standard library may not be installable; and a
/// component should be the same bytes whoever builds it.
fn component_toolchain(workspace: &Path) -> Option<String> {
    std::env::var_os("RUSTUP_TOOLCHAIN")?;
    let text = std::fs::read_to_string(workspace.join("rust-toolchain.toml")).ok()?;
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("channel")?.trim_start().strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

/// `program` of `toolchain` (through `rustup run`), or the one cargo gave this build.
fn tool(toolchain: Option<&str>, program: &str, variable: &str) -> Command {
    match toolchain {
        Some(toolchain) => {
            let mut command = Command::new("rustup");
            command.args(["run", toolchain, program]).env_remove("RUSTUP_TOOLCHAIN");
            command
        }
        None => Command::new(std::env::var(variable).unwrap_or_else(|_| program.into())),
    }
}

/// Makes sure the toolchain that builds the components can compile for [`TARGET`].
///
/// rustup installs the targets listed in `rust-toolchain.toml` only when it installs the
/// toolchain itself; a toolchain that was already there lacks them, and the nested build
/// would fail after many minutes with "can't find crate for `core`". So: look in the
/// sysroot, add the target with rustup when it is missing, and otherwise stop at once
/// with the command to run.
pub fn ensure_target(workspace: &Path) {
    // Build scripts run in parallel: one adds the target while the others wait.
    let lock_dir = workspace.join("target");
    let _ = std::fs::create_dir_all(&lock_dir);
    let lock = std::fs::File::create(lock_dir.join(".wasm-target.lock"));
    let _guard = lock.as_ref().ok().filter(|file| file.lock().is_ok());
    let pinned = component_toolchain(workspace);
    let sysroot = tool(pinned.as_deref(), "rustc", "RUSTC")
        .args(["--print", "sysroot"])
        .current_dir(workspace)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        return;
    }
    let toolchain = pinned.or_else(|| std::env::var("RUSTUP_TOOLCHAIN").ok());
    let mut rustup = Command::new("rustup");
    rustup.current_dir(workspace).args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        rustup.args(["--toolchain", toolchain]);
    }
    println!("cargo:warning=the {TARGET} target is missing from this toolchain: running `rustup target add {TARGET}`");
    match rustup.status() {
        Ok(status) if status.success() => {}
        outcome => panic!(
            "the {TARGET} target is not installed for this toolchain ({}) and `rustup target add {TARGET}` {}: \
             run `rustup target add {TARGET}{}` and build again",
            sysroot.map_or_else(|| "rustc not found".to_string(), |s| s.display().to_string()),
            match outcome {
                Ok(status) => format!("failed ({status})"),
                Err(error) => format!("could not run ({error})"),
            },
            toolchain.map(|t| format!(" --toolchain {t}")).unwrap_or_default(),
        ),
    }
}

/// Builds `packages` into `<target>/<subdir>` and returns the directory holding the
/// `.wasm` files (`.../wasm32-wasip2/release`). Panics with a clear message on failure,
/// as a build script should.
pub fn build(workspace: &Path, subdir: &str, packages: &[&str]) -> PathBuf {
    ensure_target(workspace);
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { workspace.join(dir) })
        .unwrap_or_else(|| workspace.join("target"))
        .join(subdir);
    let mut command = tool(component_toolchain(workspace).as_deref(), "cargo", "CARGO");
    command.current_dir(workspace).args(["build", "--quiet", "--release", "--target", TARGET]);
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
