//! Per-tenant quotas an operator sets: how many memories, documents and index bytes a
//! tenant may hold, and how many of its memories are worked on at once.
//!
//! Memories are checked when they are added (the API refuses the request). Documents and
//! index bytes are checked by the tenant's worker before each round of steps: a tenant over
//! quota has its unfinished work set aside, its memories show `ERROR` with the reason, and
//! the other tenants go on. A step adds at most two listing pages (500 documents), so a
//! tenant can end up to that much over its document quota.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// Limits of one tenant; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memories (spaces) the tenant may hold.
    pub memories: Option<u64>,
    /// Documents (pages and blog posts) across its memories.
    pub documents: Option<u64>,
    /// Size of its search index on disk, in MiB.
    pub index_mib: Option<u64>,
    /// Memories of the tenant worked on at once.
    pub ingest_concurrency: Option<u64>,
}

impl Limits {
    /// `self`, with the limits it leaves open taken from `fallback`.
    fn or(self, fallback: Limits) -> Limits {
        Limits {
            memories: self.memories.or(fallback.memories),
            documents: self.documents.or(fallback.documents),
            index_mib: self.index_mib.or(fallback.index_mib),
            ingest_concurrency: self.ingest_concurrency.or(fallback.ingest_concurrency),
        }
    }
}

/// The `[quotas]` table: limits for every tenant and overrides per instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Memories every tenant may hold.
    pub memories: Option<u64>,
    /// Documents every tenant may hold.
    pub documents: Option<u64>,
    /// Index size every tenant may take, in MiB.
    pub index_mib: Option<u64>,
    /// Memories of a tenant worked on at once.
    pub ingest_concurrency: Option<u64>,
    /// Overrides by instance name (`[quotas.instances.acme]`).
    #[serde(default)]
    pub instances: HashMap<String, Limits>,
}

impl Quotas {
    /// The limits of one tenant.
    pub fn of(&self, instance: &str) -> Limits {
        let every = Limits {
            memories: self.memories,
            documents: self.documents,
            index_mib: self.index_mib,
            ingest_concurrency: self.ingest_concurrency,
        };
        self.instances.get(instance).copied().unwrap_or_default().or(every)
    }
}

/// Why a tenant may not hold more memories, if it may not.
pub fn memories_refusal(limits: &Limits, instance: &str, held: usize, adding: usize) -> Option<String> {
    let quota = limits.memories?;
    ((held + adding) as u64 > quota).then(|| {
        format!(
            "instance {instance} may hold {quota} memories and holds {held}: adding {adding} more is over its quota \
             (ask the operator to raise quotas.memories)"
        )
    })
}

/// Why a tenant's work must stop, if it is over its document or index quota.
pub fn usage_refusal(limits: &Limits, instance: &str, documents: u64, index_dir: &Path) -> Option<String> {
    if let Some(quota) = limits.documents
        && documents > quota
    {
        return Some(format!(
            "quota exceeded: instance {instance} holds {documents} documents, over its quota of {quota} \
             (ask the operator to raise quotas.documents, then sync)"
        ));
    }
    if let Some(quota) = limits.index_mib {
        let bytes = directory_bytes(index_dir);
        if bytes > quota << 20 {
            return Some(format!(
                "quota exceeded: the search index of instance {instance} takes {} MiB, over its quota of {quota} MiB \
                 (ask the operator to raise quotas.index_mib, then sync)",
                bytes >> 20
            ));
        }
    }
    None
}

/// Total size of the files in a directory tree (0 where it cannot be read).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_overrides_fall_back_to_the_common_limits() {
        let quotas: Quotas = toml::from_str(
            "memories = 10\ndocuments = 1000\n[instances.acme]\ndocuments = 5000\n[instances.tiny]\nmemories = 1\n",
        )
        .unwrap();
        assert_eq!(quotas.of("acme"), Limits { memories: Some(10), documents: Some(5000), ..Limits::default() });
        assert_eq!(quotas.of("tiny").memories, Some(1));
        assert_eq!(quotas.of("other"), Limits { memories: Some(10), documents: Some(1000), ..Limits::default() });
        assert!(memories_refusal(&quotas.of("tiny"), "tiny", 1, 1).unwrap().contains("may hold 1 memories"));
        assert_eq!(memories_refusal(&quotas.of("other"), "other", 8, 2), None);
        let dir = tempfile::tempdir().unwrap();
        assert!(usage_refusal(&quotas.of("other"), "other", 1001, dir.path()).unwrap().contains("quota exceeded"));
        assert_eq!(usage_refusal(&quotas.of("other"), "other", 1000, dir.path()), None);
    }
}
