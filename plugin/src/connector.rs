//! The Confluence connector as the SDK's [`Connector`]: each export builds an [`Engine`]
//! over the call's capabilities and turns its records into the contract's types.

use connector_sdk::types::{self as sdk, ConnectorError};
use connector_sdk::{Capabilities, Connector};

use crate::engine::{self, Engine};
use crate::records;

/// The Confluence Cloud connector.
pub struct Confluence;

fn engine(caps: Capabilities<'_>) -> Engine<'_> {
    Engine::new(caps.kv, caps.index, caps.secrets, caps.transport)
}

impl Connector for Confluence {
    fn describe() -> sdk::ConnectorInfo {
        sdk::ConnectorInfo {
            kind: "confluence".into(),
            name: "Confluence Cloud".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            source_label: "space key".into(),
            config_fields: engine::config_fields(),
        }
    }

    fn required_origins(
        caps: Capabilities<'_>,
        config: &[(String, String)],
    ) -> Result<Vec<sdk::Origin>, ConnectorError> {
        engine(caps).required_origins(config)
    }

    fn connect(caps: Capabilities<'_>, config: &[(String, String)]) -> Result<sdk::Connection, ConnectorError> {
        engine(caps).connect(config).map(connection)
    }

    fn disconnect(caps: Capabilities<'_>, connection_id: &str) -> Result<sdk::Connection, ConnectorError> {
        engine(caps).disconnect(connection_id).map(connection)
    }

    fn ingest(
        caps: Capabilities<'_>,
        connection_id: &str,
        sources: &[String],
    ) -> Result<Vec<sdk::IngestOutcome>, ConnectorError> {
        let outcomes = engine(caps).ingest(connection_id, sources)?;
        Ok(outcomes
            .into_iter()
            .map(|o| sdk::IngestOutcome { requested: o.requested, outcome: o.outcome.map(memory) })
            .collect())
    }

    fn sync(caps: Capabilities<'_>, memory_id: &str, options: sdk::SyncOptions) -> Result<sdk::Memory, ConnectorError> {
        engine(caps).sync(memory_id, options.allow_mass_delete).map(memory)
    }

    fn step(caps: Capabilities<'_>, memory_id: &str) -> Result<sdk::StepReport, ConnectorError> {
        let report = engine(caps).step(memory_id)?;
        Ok(sdk::StepReport { memory: memory(report.memory), finished: report.finished })
    }

    fn pending(caps: Capabilities<'_>) -> Result<Vec<String>, ConnectorError> {
        engine(caps).pending()
    }

    fn retrieve(
        caps: Capabilities<'_>,
        question: &str,
        options: &sdk::RetrieveOptions,
    ) -> Result<Vec<sdk::Passage>, ConnectorError> {
        engine(caps).retrieve(question, &options.memory_ids, options.limit, options.per_document, &options.labels)
    }

    fn status(caps: Capabilities<'_>) -> Result<sdk::InstanceStatus, ConnectorError> {
        let report = engine(caps).status()?;
        Ok(sdk::InstanceStatus {
            connections: report.connections.into_iter().map(connection).collect(),
            memories: report.memories.into_iter().map(memory).collect(),
        })
    }
}

fn connection(c: records::Connection) -> sdk::Connection {
    sdk::Connection {
        access: c.access_label().into(),
        origins: c.origins(),
        id: c.id,
        site: c.site,
        account: c.email,
        connected: c.connected,
    }
}

fn memory(m: records::Memory) -> sdk::Memory {
    let p = m.progress;
    sdk::Memory {
        id: m.id,
        connection_id: m.connection_id,
        source_key: m.space_key,
        source_name: m.space_name,
        status: match m.status {
            records::MemoryStatus::InProgress => sdk::MemoryStatus::InProgress,
            records::MemoryStatus::Ingested => sdk::MemoryStatus::Ingested,
            records::MemoryStatus::Error => sdk::MemoryStatus::Error,
        },
        error: m.error,
        documents: m.documents,
        chunks: m.chunks,
        progress: sdk::Progress {
            phase: p.phase,
            done: p.done,
            known: p.known,
            requests: p.requests,
            retries: p.retries,
            listed: p.listed,
            fetched: p.fetched,
            updated: p.updated,
            deleted: p.deleted,
            counts: [
                ("labels".to_string(), p.labels),
                ("comments".to_string(), p.comments),
                ("attachments".to_string(), p.attachments),
                ("included pages".to_string(), p.includes),
            ]
            .into_iter()
            .chain(p.skipped)
            .collect(),
        },
        synced_at: m.synced_at,
    }
}
