//! The 0.1.x contract (`wit/since_v0.1.2/`), kept so that a platform can upgrade its host
//! before its connectors. Its imports are served by the same capabilities as the current
//! ones (`wasi:keyvalue` is shared outright); its answers are upgraded to the current
//! types here, so nothing past [`crate::runtime`] knows which version a component speaks.

use super::types as current;

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.2",
    world: "knowledge:connector/connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:keyvalue": super::wasi::keyvalue,
    },
});

pub use knowledge::connector::types;

/// A 0.1.x answer in the current contract's terms.
pub trait Upgrade {
    /// The current type.
    type Current;
    /// Converts; what 0.1.x did not say is filled in conservatively.
    fn upgrade(self) -> Self::Current;
}

impl<T: Upgrade> Upgrade for Vec<T> {
    type Current = Vec<T::Current>;
    fn upgrade(self) -> Self::Current {
        self.into_iter().map(Upgrade::upgrade).collect()
    }
}

impl<T: Upgrade, E: Upgrade> Upgrade for Result<T, E> {
    type Current = Result<T::Current, E::Current>;
    fn upgrade(self) -> Self::Current {
        self.map(Upgrade::upgrade).map_err(Upgrade::upgrade)
    }
}

impl Upgrade for String {
    type Current = String;
    fn upgrade(self) -> String {
        self
    }
}

/// The origins a 0.1.x `required-origins` answered: bare URLs, each taken as always
/// needed.
pub fn origins(urls: Vec<String>) -> Vec<current::Origin> {
    urls.into_iter()
        .map(|url| current::Origin {
            insecure: url.starts_with("http://"),
            url,
            purpose: "not described (a 0.1 connector)".into(),
            conditional: false,
        })
        .collect()
}

impl Upgrade for types::ConnectorInfo {
    type Current = current::ConnectorInfo;
    fn upgrade(self) -> current::ConnectorInfo {
        current::ConnectorInfo {
            kind: self.kind,
            name: self.name,
            version: self.version,
            source_label: self.source_label,
            config_fields: self
                .config_fields
                .into_iter()
                .map(|f| current::ConfigField {
                    name: f.name,
                    label: f.label,
                    help: f.help,
                    secret: f.secret,
                    required: f.required,
                    // 0.1.x did not say; its fields are offered to whoever connects.
                    operator_only: false,
                })
                .collect(),
        }
    }
}

impl Upgrade for types::ConnectorError {
    type Current = current::ConnectorError;
    fn upgrade(self) -> current::ConnectorError {
        use current::ConnectorError as Now;
        match self {
            Self::InvalidInput(m) => Now::InvalidInput(m),
            Self::Unauthorized(m) => Now::Unauthorized(m),
            Self::MissingScopes(scopes) => Now::MissingScopes(scopes),
            Self::NotFound(m) => Now::NotFound(m),
            Self::Duplicate(m) => Now::Duplicate(m),
            Self::Unavailable(m) => Now::Unavailable(m),
            Self::Network(m) => Now::Network(m),
            Self::Denied(m) => Now::Denied(m),
            Self::Host(m) => Now::Host(m),
        }
    }
}

/// A 0.1.x connection does not name the origins it uses: none are listed, and the host
/// keeps every origin it granted at connect (see `Instance::connect`).
impl Upgrade for types::Connection {
    type Current = current::Connection;
    fn upgrade(self) -> current::Connection {
        current::Connection {
            id: self.id,
            site: self.site,
            account: self.account,
            access: self.access,
            connected: self.connected,
            origins: Vec::new(),
        }
    }
}

impl Upgrade for types::Memory {
    type Current = current::Memory;
    fn upgrade(self) -> current::Memory {
        let p = self.progress;
        current::Memory {
            id: self.id,
            connection_id: self.connection_id,
            source_key: self.source_key,
            source_name: self.source_name,
            status: match self.status {
                types::MemoryStatus::InProgress => current::MemoryStatus::InProgress,
                types::MemoryStatus::Ingested => current::MemoryStatus::Ingested,
                types::MemoryStatus::Error => current::MemoryStatus::Error,
            },
            error: self.error,
            documents: self.documents,
            chunks: self.chunks,
            progress: current::Progress {
                phase: p.phase,
                done: p.done,
                known: p.known,
                requests: p.requests,
                retries: p.retries,
                listed: p.listed,
                fetched: p.fetched,
                updated: p.updated,
                deleted: p.deleted,
                counts: Vec::new(),
            },
            synced_at: self.synced_at,
        }
    }
}

impl Upgrade for types::IngestOutcome {
    type Current = current::IngestOutcome;
    fn upgrade(self) -> current::IngestOutcome {
        current::IngestOutcome { requested: self.requested, outcome: self.outcome.upgrade() }
    }
}

impl Upgrade for types::StepReport {
    type Current = current::StepReport;
    fn upgrade(self) -> current::StepReport {
        current::StepReport { memory: self.memory.upgrade(), finished: self.finished }
    }
}

impl Upgrade for types::Passage {
    type Current = current::Passage;
    fn upgrade(self) -> current::Passage {
        current::Passage {
            title: self.title,
            url: self.url,
            breadcrumb: self.breadcrumb,
            text: self.text,
            score: self.score,
            document_id: self.document_id,
            document_version: self.document_version,
            modified_at: self.modified_at,
            source_key: self.source_key,
            memory_id: self.memory_id,
            labels: Vec::new(),
        }
    }
}

impl Upgrade for types::InstanceStatus {
    type Current = current::InstanceStatus;
    fn upgrade(self) -> current::InstanceStatus {
        current::InstanceStatus { connections: self.connections.upgrade(), memories: self.memories.upgrade() }
    }
}

/// `sync`'s options in 0.1.x terms.
pub fn sync_options(options: current::SyncOptions) -> types::SyncOptions {
    types::SyncOptions { allow_mass_delete: options.allow_mass_delete }
}

/// `retrieve-with`'s options in 0.1.x terms: 0.1.x has no labels, so a label filter
/// cannot be passed on (the host refuses it before calling, see `Instance::retrieve_with`).
pub fn retrieve_options(options: &current::RetrieveOptions) -> types::RetrieveOptions {
    types::RetrieveOptions {
        memory_ids: options.memory_ids.clone(),
        limit: options.limit,
        per_document: options.per_document,
    }
}
