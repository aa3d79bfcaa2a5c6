//! API keys of the service: who may call it, for which instance, in which role.
//!
//! A key is shown once, when it is created: `ckh_<id>_<secret>`. The host keeps only the
//! id, the instance, the role, a label and the SHA-256 of the secret, in its private
//! metadata, so a copy of the data directory does not hold a usable key. The secret is
//! 32 random bytes, which is why a plain (unsalted, fast) hash is enough: there is no
//! dictionary to guess from.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runtime::{ConnectorHost, valid_instance_name};
use crate::schedule::now;

/// What a key may do, after the product page's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// ADMIN: connects accounts, adds memories, syncs, sets Auto Resync, asks.
    Admin,
    /// DOMAIN_OWNER: the same rights as an admin within the instance.
    DomainOwner,
    /// MEMBER: asks and reads status only.
    Member,
}

impl Role {
    /// Whether the role may change connections, memories and schedules.
    pub fn manages(self) -> bool {
        matches!(self, Role::Admin | Role::DomainOwner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::DomainOwner => "domain-owner",
            Role::Member => "member",
        })
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "admin" => Ok(Role::Admin),
            "domain-owner" => Ok(Role::DomainOwner),
            "member" => Ok(Role::Member),
            other => Err(format!("unknown role '{other}': use admin, domain-owner or member")),
        }
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Public id, part of the key; used to list and revoke it.
    pub id: String,
    /// The instance (tenant) the key acts on.
    pub instance: String,
    /// What the key may do.
    pub role: Role,
    /// Free text chosen at creation (who or what holds the key).
    pub label: Option<String>,
    /// Unix time of creation.
    pub created_at: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    key: ApiKey,
    /// Hex SHA-256 of the secret part.
    secret_sha256: String,
}

/// A key as created: the only time its full text exists.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// Public id.
    pub id: String,
    /// The whole key, to hand to its holder; it cannot be shown again.
    pub key: String,
    /// What the key may do.
    pub role: Role,
    /// The instance it acts on.
    pub instance: String,
    /// The label given at creation.
    pub label: Option<String>,
}

const PREFIX: &str = "ckh_";

fn meta_key(id: &str) -> String {
    format!("apikey/{id}")
}

fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Compares two secrets without an early exit, so the time taken does not tell how much
/// of a guess matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ConnectorHost {
    /// Creates a key for an instance; the returned text is the only copy of the key.
    pub fn create_key(&self, instance: &str, role: Role, label: Option<String>) -> Result<CreatedKey> {
        if !valid_instance_name(instance) {
            bail!("instance name '{instance}' must be 1 to 64 letters, digits, - or _");
        }
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 32];
        getrandom::fill(&mut id_bytes).map_err(|e| anyhow!("no randomness for a key: {e}"))?;
        getrandom::fill(&mut secret_bytes).map_err(|e| anyhow!("no randomness for a key: {e}"))?;
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
        let key =
            ApiKey { id: id.clone(), instance: instance.to_string(), role, label: label.clone(), created_at: now() };
        let stored = StoredKey { key, secret_sha256: sha256_hex(&secret) };
        self.store().meta().set(&meta_key(&id), &serde_json::to_vec(&stored)?).map_err(|e| anyhow!("{e}"))?;
        Ok(CreatedKey { key: format!("{PREFIX}{id}_{secret}"), id, role, instance: instance.to_string(), label })
    }

    /// Every key (without secrets), optionally of one instance only, oldest first.
    pub fn list_keys(&self, instance: Option<&str>) -> Result<Vec<ApiKey>> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store().meta().scan_prefix("apikey/", after.as_deref(), 500).map_err(|e| anyhow!("{e}"))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, value) in page {
                let stored: StoredKey = serde_json::from_slice(&value)?;
                if instance.is_none_or(|name| name == stored.key.instance) {
                    keys.push(stored.key);
                }
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Revokes a key; returns it, or `None` if no key has that id.
    pub fn revoke_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let Some(bytes) = self.store().meta().get(&meta_key(id)).map_err(|e| anyhow!("{e}"))? else {
            return Ok(None);
        };
        let stored: StoredKey = serde_json::from_slice(&bytes)?;
        self.store().meta().delete(&meta_key(id)).map_err(|e| anyhow!("{e}"))?;
        Ok(Some(stored.key))
    }

    /// The key a presented text opens, or `None` for a malformed, unknown or revoked key.
    pub fn verify_key(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some((id, secret)) = presented.trim().strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else {
            return Ok(None);
        };
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(bytes) = self.store().meta().get(&meta_key(id)).map_err(|e| anyhow!("{e}"))? else {
            return Ok(None);
        };
        let stored: StoredKey = serde_json::from_slice(&bytes)?;
        Ok(same_secret(&sha256_hex(secret), &stored.secret_sha256).then_some(stored.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::HostConfig;

    #[test]
    fn roles_parse_in_the_product_pages_spellings() {
        assert_eq!("ADMIN".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("DOMAIN_OWNER".parse::<Role>().unwrap(), Role::DomainOwner);
        assert_eq!("domain-owner".parse::<Role>().unwrap(), Role::DomainOwner);
        assert_eq!("member".parse::<Role>().unwrap(), Role::Member);
        assert!("owner".parse::<Role>().is_err());
        assert!(Role::Admin.manages() && Role::DomainOwner.manages() && !Role::Member.manages());
    }

    #[test]
    fn a_key_opens_only_while_it_exists_and_is_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let host = ConnectorHost::open(HostConfig::new(dir.path())).unwrap();
        let created = host.create_key("tenant-a", Role::Member, Some("chat bot".into())).unwrap();
        let opened = host.verify_key(&created.key).unwrap().expect("the new key opens");
        assert_eq!((opened.instance.as_str(), opened.role), ("tenant-a", Role::Member));

        let secret = created.key.rsplit('_').next().unwrap().to_string();
        let raw = host.store().meta().get(&format!("apikey/{}", created.id)).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&secret), "the secret is not stored");

        let mut wrong = created.key.clone();
        wrong.pop();
        wrong.push(if created.key.ends_with('A') { 'B' } else { 'A' });
        for bad in [wrong.as_str(), "", "ckh_", "ckh_zz_x", "Bearer nonsense"] {
            assert_eq!(host.verify_key(bad).unwrap(), None, "{bad}");
        }
        assert_eq!(host.list_keys(Some("tenant-a")).unwrap(), vec![opened.clone()]);
        assert!(host.list_keys(Some("tenant-b")).unwrap().is_empty());
        assert_eq!(host.revoke_key(&created.id).unwrap(), Some(opened));
        assert_eq!(host.verify_key(&created.key).unwrap(), None, "a revoked key no longer opens");
        assert_eq!(host.revoke_key(&created.id).unwrap(), None);
    }
}
