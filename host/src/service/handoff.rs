//! How CLI commands reach a running service on their data directory.
//!
//! The embedded store is one file that one process at a time may open. While `serve`
//! runs, it writes `<data-dir>/serve.json` (mode 0600: the same people who can read the
//! operator key can read it) with its address and a token made for this run; a CLI
//! command that finds the file and a live service behind it sends its request to the
//! service's API with that token instead of opening the store. The file is removed when
//! the service stops; one left behind by a killed service points nowhere and is ignored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Name of the file in the data directory.
pub const FILE_NAME: &str = "serve.json";

/// Header naming the instance an operator-token request acts on.
pub const INSTANCE_HEADER: &str = "x-connector-instance";

/// What a running service tells the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    /// Base URL of the service, e.g. `http://127.0.0.1:7878`.
    pub url: String,
    /// Process id of the service.
    pub pid: u32,
    /// Token with operator rights on every instance, valid while this process runs.
    pub token: String,
}

/// The file a running service wrote; removed by [`ServeFile::remove`].
pub struct ServeFile {
    path: PathBuf,
}

/// A fresh random token (256 bits).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for the operator token: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl ServeFile {
    /// Writes the hand-off file of a service listening at `url`.
    pub fn write(data_dir: &Path, url: &str, token: &str) -> Result<ServeFile> {
        let path = data_dir.join(FILE_NAME);
        let handoff = Handoff { url: url.to_string(), pid: std::process::id(), token: token.to_string() };
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        file.write_all(&serde_json::to_vec(&handoff)?)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(ServeFile { path })
    }

    /// Removes the file (the service is stopping).
    pub fn remove(self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove {}: {error}", self.path.display());
        }
    }
}

/// The running service of a data directory, if its hand-off file names a live process.
pub fn find(data_dir: &Path) -> Option<Handoff> {
    let bytes = std::fs::read(data_dir.join(FILE_NAME)).ok()?;
    let handoff: Handoff = serde_json::from_slice(&bytes).ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(handoff.pid as libc::pid_t, 0) } == 0;
    alive.then_some(handoff)
}
