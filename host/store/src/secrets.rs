//! Secrets encrypted at rest with an operator key.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::backend::{Table, Write as Change};
use crate::{Store, StoreError, check_name};

/// Format version byte at the start of every stored secret.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
/// Domain separation for the associated data.
const AAD_TAG: &[u8] = b"connector-secret-v1\0";

/// The operator's 256-bit key that encrypts secrets at rest.
///
/// Its [`Debug`] output never shows the key bytes, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorKey([u8; 32]);

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKey(<redacted>)")
    }
}

impl Drop for OperatorKey {
    fn drop(&mut self) {
        // Best effort; not a guaranteed wipe (copies may exist elsewhere).
        self.0 = [0; 32];
    }
}

impl OperatorKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> OperatorKey {
        OperatorKey(bytes)
    }

    /// A fresh random key from the operating system's CSPRNG (via `rand`'s thread RNG,
    /// seeded from the OS).
    pub fn generate() -> OperatorKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        OperatorKey(bytes)
    }

    /// Parses a key written as 64 hexadecimal digits or as base64 (standard or URL-safe
    /// alphabet, padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    ///
    /// `source_name` only labels the error message; the key text never appears in it.
    pub fn parse(text: &str, source_name: &str) -> Result<OperatorKey, StoreError> {
        let text = text.trim();
        let invalid = |reason| StoreError::InvalidOperatorKey { source_name: source_name.to_owned(), reason };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut bytes = [0u8; 32];
            for (i, pair) in text.as_bytes().chunks(2).enumerate() {
                let hi = (pair[0] as char).to_digit(16).unwrap_or(0) as u8;
                let lo = (pair[1] as char).to_digit(16).unwrap_or(0) as u8;
                bytes[i] = (hi << 4) | lo;
            }
            return Ok(OperatorKey(bytes));
        }
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            if let Ok(decoded) = engine.decode(text) {
                return match <[u8; 32]>::try_from(decoded.as_slice()) {
                    Ok(bytes) => Ok(OperatorKey(bytes)),
                    Err(_) => Err(invalid("base64 decodes to a length other than 32 bytes")),
                };
            }
        }
        Err(invalid("expected 64 hex digits or base64 of 32 bytes (e.g. `openssl rand -hex 32`)"))
    }

    /// Loads the key file at `path`, or — if it does not exist — creates it (and its parent
    /// directory) with a fresh random key, readable only by the owner (mode 0600 on Unix).
    ///
    /// The file holds the key as 64 hex digits and a newline; a file holding base64 or
    /// the 32 raw bytes is accepted too. Losing the file makes existing secrets
    /// undecryptable.
    pub fn load_or_create(path: &Path) -> Result<OperatorKey, StoreError> {
        let io = |source| StoreError::Io { path: path.to_owned(), source };
        match std::fs::read(path) {
            Ok(bytes) => return Self::from_file_bytes(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let key = OperatorKey::generate();
        match key.save_new(path) {
            Ok(()) => Ok(key),
            // Another process created it first: use theirs.
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(path).map_err(io)?;
                Self::from_file_bytes(&bytes, path)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the key as 64 hex digits to a new file (mode 0600 on Unix), synced to disk.
    /// Fails if the file exists.
    pub fn save_new(&self, path: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: path.to_owned(), source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        let mut text = String::with_capacity(65);
        for b in self.0 {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<OperatorKey, StoreError> {
        let name = path.display().to_string();
        match std::str::from_utf8(bytes) {
            Ok(text) => OperatorKey::parse(text, &name),
            Err(_) => match <[u8; 32]>::try_from(bytes) {
                Ok(raw) => Ok(OperatorKey(raw)),
                Err(_) => Err(StoreError::InvalidOperatorKey {
                    source_name: name,
                    reason: "the file holds neither 64 hex digits, base64 nor 32 raw bytes",
                }),
            },
        }
    }

    /// The operator-supplied key in environment variable `var` (64 hex digits or base64)
    /// if it is set and non-empty, otherwise [`OperatorKey::load_or_create`]`(path)`.
    ///
    /// A set but malformed variable is an error, never a silent fallback to the file.
    pub fn from_env_or_file(var: &str, path: &Path) -> Result<OperatorKey, StoreError> {
        match std::env::var(var) {
            Ok(text) if !text.trim().is_empty() => OperatorKey::parse(&text, &format!("environment variable {var}")),
            Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::InvalidOperatorKey {
                source_name: format!("environment variable {var}"),
                reason: "it is not valid UTF-8",
            }),
            _ => OperatorKey::load_or_create(path),
        }
    }
}

/// The secrets of one connector instance, encrypted with ChaCha20-Poly1305.
///
/// Each value is stored as `version (1 byte) ‖ nonce (12 random bytes) ‖ ciphertext+tag`
/// with associated data binding it to its namespace and name, so a ciphertext copied to
/// another name or instance fails to decrypt. Secrets live in their own table, never in
/// the key-value buckets.
///
/// Cheap to clone, `Send + Sync`. Made by [`Store::secrets`].
#[derive(Clone)]
pub struct Secrets {
    store: Store,
    namespace: String,
    cipher: Arc<ChaCha20Poly1305>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl Secrets {
    pub(crate) fn new(store: Store, namespace: String, key: OperatorKey) -> Secrets {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
        Secrets { store, namespace, cipher: Arc::new(cipher) }
    }

    fn row_key(&self, name: &str) -> Result<String, StoreError> {
        check_name("secret name", name, self.store.inner.config.max_key_bytes)?;
        Ok(format!("{}\0{name}", self.namespace))
    }

    /// Stores `value` under `name`, replacing any previous value.
    pub fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let row = self.row_key(name)?;
        let limit = self.store.inner.config.max_value_bytes;
        if value.len() > limit {
            return Err(StoreError::ValueTooLarge { key: crate::error::abbreviate(name), size: value.len(), limit });
        }
        let stored = seal(&self.cipher, &self.namespace, name, value)?;
        self.store.write_in(&self.namespace, Table::Secrets, &[Change::Put(row, stored)])
    }

    /// The secret `name`, or `None` if it is not set.
    ///
    /// Fails with [`StoreError::SecretUndecryptable`] if it was written under another
    /// operator key (or tampered with).
    pub fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = self.row_key(name)?;
        let Some(stored) = self.store.inner.backend.get_many(Table::Secrets, &[row])?.pop().flatten() else {
            return Ok(None);
        };
        unseal(&self.cipher, &self.namespace, name, &stored).map(Some)
    }

    /// Forgets the secret `name` (a missing secret is not an error).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let row = self.row_key(name)?;
        self.store.write_in(&self.namespace, Table::Secrets, &[Change::Delete(row)])
    }
}

/// Additional data binding a ciphertext to its instance and name.
fn aad(namespace: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_TAG.len() + namespace.len() + 1 + name.len());
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(namespace.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Encrypts a secret: version byte, random nonce, ciphertext with tag.
fn seal(cipher: &ChaCha20Poly1305, namespace: &str, name: &str, value: &str) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad(namespace, name) })
        // Encryption only fails for absurd lengths (> 256 GiB).
        .map_err(|_| StoreError::SecretCorrupt { name: name.to_owned(), reason: "encryption failed" })?;
    let mut stored = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    stored.push(VERSION);
    stored.extend_from_slice(&nonce);
    stored.extend_from_slice(&ciphertext);
    Ok(stored)
}

/// Decrypts what [`seal`] wrote.
fn unseal(cipher: &ChaCha20Poly1305, namespace: &str, name: &str, stored: &[u8]) -> Result<String, StoreError> {
    let corrupt = |reason| StoreError::SecretCorrupt { name: name.to_owned(), reason };
    if stored.len() < 1 + NONCE_LEN + 16 {
        return Err(corrupt("truncated record"));
    }
    if stored[0] != VERSION {
        return Err(corrupt("unknown format version"));
    }
    let (nonce, ciphertext) = stored[1..].split_at(NONCE_LEN);
    let plaintext = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad(namespace, name) })
        .map_err(|_| StoreError::SecretUndecryptable { name: name.to_owned() })?;
    String::from_utf8(plaintext).map_err(|_| corrupt("plaintext is not UTF-8"))
}

fn cipher(key: &OperatorKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(&key.0))
}

impl Store {
    /// Re-encrypts every secret of every instance from `old` to `new` in one write
    /// transaction: either all of them move to the new key or none does. Fails, changing
    /// nothing, if `old` does not open one of them. Returns how many were re-encrypted.
    pub fn rotate_operator_key(&self, old: &OperatorKey, new: &OperatorKey) -> Result<usize, StoreError> {
        let (old, new) = (cipher(old), cipher(new));
        self.inner.backend.rewrite_all(Table::Secrets, &mut |row, stored| {
            let (namespace, name) = row.split_once('\0').unwrap_or(("", row));
            let plaintext = unseal(&old, namespace, name, stored)?;
            seal(&new, namespace, name, &plaintext)
        })
    }

    /// Whether `key` opens the stored secrets (checked on the first one; true when none
    /// are stored).
    pub fn opens_secrets(&self, key: &OperatorKey) -> Result<bool, StoreError> {
        let Some((row, stored)) = self.inner.backend.scan(Table::Secrets, "", None, 1)?.pop() else {
            return Ok(true);
        };
        let (namespace, name) = row.split_once('\0').unwrap_or(("", row.as_str()));
        Ok(unseal(&cipher(key), namespace, name, &stored).is_ok())
    }
}
