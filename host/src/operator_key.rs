//! The operator key that encrypts secrets at rest: where it comes from, and its rotation.
//!
//! The key is `CONNECTOR_HOST_KEY` when set, otherwise `<data-dir>/operator.key`
//! (generated on first use). Rotation re-encrypts every stored secret in one store
//! transaction. With the key file, the new key is first written to `operator.key.next`,
//! then the secrets move, then the file replaces `operator.key`: a crash at any point
//! leaves a key that opens the secrets, and the next start finishes or discards the
//! interrupted rotation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use connector_store::{OperatorKey, Store};

/// Environment variable with an operator-supplied key for secrets at rest.
pub const OPERATOR_KEY_VAR: &str = "CONNECTOR_HOST_KEY";

fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("operator.key")
}

fn next_file(data_dir: &Path) -> PathBuf {
    data_dir.join("operator.key.next")
}

/// Whether the operator supplies the key in the environment.
fn key_in_environment() -> bool {
    std::env::var_os(OPERATOR_KEY_VAR).is_some_and(|value| !value.is_empty())
}

/// The key for `store`: from the environment, or from the key file (finishing a rotation
/// that a crash interrupted).
pub fn load(data_dir: &Path, store: &Store) -> Result<OperatorKey> {
    let next = next_file(data_dir);
    if !key_in_environment() && next.exists() {
        let pending = OperatorKey::load_or_create(&next).map_err(|e| anyhow!("{e}"))?;
        let current = OperatorKey::load_or_create(&key_file(data_dir)).map_err(|e| anyhow!("{e}"))?;
        let moved = store.opens_secrets(&pending)? && !store.opens_secrets(&current)?;
        if moved {
            std::fs::rename(&next, key_file(data_dir)).context("cannot finish the interrupted key rotation")?;
            tracing::warn!("finished an interrupted operator key rotation");
        } else {
            std::fs::remove_file(&next).context("cannot discard the interrupted key rotation")?;
            tracing::warn!("discarded an interrupted operator key rotation: the secrets never moved");
        }
    }
    OperatorKey::from_env_or_file(OPERATOR_KEY_VAR, &key_file(data_dir)).map_err(|e| anyhow!("{e}"))
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-encrypted.
    pub secrets: usize,
    /// Where the new key is: the key file, or the environment variable the operator named.
    pub new_key_at: String,
}

/// Re-encrypts every secret under a new key. With the key in `CONNECTOR_HOST_KEY`, the new
/// key comes from the environment variable `new_key_env` (the operator then puts it in
/// `CONNECTOR_HOST_KEY`); with the key file, a new key is generated into it.
pub fn rotate(data_dir: &Path, store: &Store, new_key_env: Option<&str>) -> Result<Rotation> {
    let current = load(data_dir, store)?;
    if !store.opens_secrets(&current)? {
        bail!("the current operator key does not open the stored secrets: nothing was changed");
    }
    if key_in_environment() || new_key_env.is_some() {
        let Some(variable) = new_key_env else {
            bail!("the key comes from {OPERATOR_KEY_VAR}: give the new one with --new-key-env VAR");
        };
        let text = std::env::var(variable).map_err(|_| anyhow!("the environment variable {variable} is not set"))?;
        let new = OperatorKey::parse(&text, &format!("environment variable {variable}")).map_err(|e| anyhow!("{e}"))?;
        if new == current {
            bail!("the new key is the current one");
        }
        let secrets = store.rotate_operator_key(&current, &new)?;
        return Ok(Rotation { secrets, new_key_at: format!("{variable} (set {OPERATOR_KEY_VAR} to it)") });
    }
    let new = OperatorKey::generate();
    let next = next_file(data_dir);
    new.save_new(&next).map_err(|e| anyhow!("{e}"))?;
    let secrets = match store.rotate_operator_key(&current, &new) {
        Ok(secrets) => secrets,
        Err(error) => {
            let _ = std::fs::remove_file(&next);
            return Err(anyhow!("{error}: nothing was changed"));
        }
    };
    std::fs::rename(&next, key_file(data_dir)).context("the secrets moved, but the key file could not be replaced")?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(Rotation { secrets, new_key_at: key_file(data_dir).display().to_string() })
}
