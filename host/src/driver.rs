//! Drives registered work to the end: calls `step` on each unfinished memory in turn
//! until every one reports finished. The connector checkpoints after every step, so
//! the loop can stop at any point and another host process can pick it up.

use anyhow::{Result, anyhow};

use crate::bindings::types::{ConnectorError, Memory};
use crate::runtime::Instance;

/// Steps in a row a memory may fail on a trap before the driver gives up on it.
const MAX_CONSECUTIVE_TRAPS: u32 = 3;

/// Steps the given memories until all are finished, reporting each step's memory.
/// Returns the final state of each memory, in the order given.
pub async fn drive(
    instance: &mut Instance,
    memory_ids: &[String],
    mut on_step: impl FnMut(&Memory),
) -> Result<Vec<Memory>> {
    let mut active: Vec<(String, u32)> = memory_ids.iter().map(|id| (id.clone(), 0)).collect();
    let mut finished: Vec<Memory> = Vec::new();
    while !active.is_empty() {
        let mut index = 0;
        while index < active.len() {
            let id = active[index].0.clone();
            match instance.step(&id).await {
                Ok(Ok(report)) => {
                    active[index].1 = 0;
                    on_step(&report.memory);
                    if report.finished {
                        finished.push(report.memory);
                        active.remove(index);
                        continue;
                    }
                }
                Ok(Err(error)) => return Err(anyhow!("{}", describe_error(&error))),
                Err(trap) => {
                    active[index].1 += 1;
                    tracing::warn!("step of {id} failed: {trap:#}");
                    if active[index].1 >= MAX_CONSECUTIVE_TRAPS {
                        return Err(trap.context(format!("memory {id} failed {MAX_CONSECUTIVE_TRAPS} steps in a row")));
                    }
                }
            }
            index += 1;
        }
    }
    let mut ordered = Vec::with_capacity(memory_ids.len());
    for id in memory_ids {
        if let Some(position) = finished.iter().position(|m| &m.id == id) {
            ordered.push(finished.swap_remove(position));
        }
    }
    Ok(ordered)
}

/// A one-line, human description of a connector error.
pub fn describe_error(error: &ConnectorError) -> String {
    match error {
        ConnectorError::InvalidInput(m) => format!("invalid input: {m}"),
        ConnectorError::Unauthorized(m) => format!("not authorised: {m}"),
        ConnectorError::MissingScopes(scopes) => format!(
            "the API token is missing scopes: add {} to the token (or create a new scoped token with them), then connect again",
            scopes.join(", ")
        ),
        ConnectorError::NotFound(m) => format!("not found: {m}"),
        ConnectorError::Duplicate(m) => format!("duplicate: {m}"),
        ConnectorError::Unavailable(m) => format!("unavailable: {m}"),
        ConnectorError::Network(m) => format!("the source is unreachable: {m}"),
        ConnectorError::Denied(m) => format!("denied by the host: {m}"),
        ConnectorError::Host(m) => format!("host failure: {m}"),
    }
}

/// The machine-readable kind of a connector error.
pub fn error_kind(error: &ConnectorError) -> &'static str {
    match error {
        ConnectorError::InvalidInput(_) => "invalid-input",
        ConnectorError::Unauthorized(_) => "unauthorized",
        ConnectorError::MissingScopes(_) => "missing-scopes",
        ConnectorError::NotFound(_) => "not-found",
        ConnectorError::Duplicate(_) => "duplicate",
        ConnectorError::Unavailable(_) => "unavailable",
        ConnectorError::Network(_) => "network",
        ConnectorError::Denied(_) => "denied",
        ConnectorError::Host(_) => "host",
    }
}
