//! The audit log: who changed what in an instance, when, and how it ended.
//!
//! Every admin action — connect, disconnect, add memories, sync, Auto Resync, key creation
//! and revocation — is recorded in the host's private metadata under
//! `audit/<instance>/<time>`, whether it came through the API (the actor is the key's id),
//! through the CLI beside a running service (`operator`) or from the CLI alone (`cli`).
//! Entries name targets (connection and memory ids, sites, space keys), never secrets.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::bindings::types::ConnectorError;
use crate::driver::describe_error;
use crate::runtime::ConnectorHost;

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The instance acted on.
    pub instance: String,
    /// Who acted: an API key's id, `operator` (CLI through the service) or `cli`.
    pub actor: String,
    /// What: `connect`, `disconnect`, `add-memories`, `sync`, `auto-resync`, `key-create`,
    /// `key-revoke`.
    pub action: String,
    /// On what: a site, connection, memory or key id, space keys.
    pub target: String,
    /// `ok`, or `error: <why>`.
    pub outcome: String,
}

/// Distinguishes entries written in the same millisecond by one process.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn prefix(instance: &str) -> String {
    format!("audit/{instance}/")
}

impl ConnectorHost {
    /// Records an action. Failing to record is logged and does not undo the action.
    pub fn audit(&self, instance: &str, actor: &str, action: &str, target: &str, outcome: Result<(), String>) {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        let entry = AuditEntry {
            at_ms,
            instance: instance.to_string(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: match outcome {
                Ok(()) => "ok".to_string(),
                Err(error) => format!("error: {error}"),
            },
        };
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}{at_ms:016}-{}-{sequence:010}", prefix(instance), std::process::id());
        let written = serde_json::to_vec(&entry)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| self.store().meta().set(&key, &bytes).map_err(|e| anyhow!("{e}")));
        match written {
            Ok(()) => {
                tracing::info!(target: "connector_host::audit", instance, actor, action, target, outcome = %entry.outcome)
            }
            Err(error) => tracing::error!(instance, action, "cannot record an audit entry: {error:#}"),
        }
    }

    /// Records a connector call (an `anyhow` failure is the host's, the inner error the
    /// connector's).
    pub fn audit_call<T>(
        &self,
        instance: &str,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &Result<Result<T, ConnectorError>>,
    ) {
        let outcome = match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(describe_error(error)),
            Err(failure) => Err(format!("{failure:#}")),
        };
        self.audit(instance, actor, action, target, outcome);
    }

    /// The newest `limit` entries of an instance, oldest first.
    pub fn audit_log(&self, instance: &str, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store()
                .meta()
                .scan_prefix(&prefix(instance), after.as_deref(), 500)
                .map_err(|e| anyhow!("{e}"))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, value) in page {
                entries.push(serde_json::from_slice::<AuditEntry>(&value)?);
            }
        }
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::HostConfig;

    #[test]
    fn entries_are_kept_per_instance_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let host = ConnectorHost::open(HostConfig::new(dir.path())).unwrap();
        host.audit("a", "k1", "connect", "https://acme.atlassian.net", Ok(()));
        host.audit("a", "k1", "sync", "mem-1", Err("connection conn-1 is disconnected".into()));
        host.audit("b", "k2", "connect", "https://other.atlassian.net", Ok(()));
        let log = host.audit_log("a", 100).unwrap();
        assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["connect", "sync"]);
        assert_eq!(log[1].outcome, "error: connection conn-1 is disconnected");
        assert_eq!(host.audit_log("a", 1).unwrap()[0].action, "sync", "the newest entries");
        assert_eq!(host.audit_log("b", 100).unwrap().len(), 1);
    }
}
