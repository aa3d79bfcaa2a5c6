//! The WebAssembly boundary: WIT bindings, the adapters of every import and the type
//! conversions. No connector logic lives here: every export forwards to a [`Connector`],
//! exported with [`crate::export_connector!`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
use wasip2::io::streams::StreamError;

use crate::caps::{HostError, IndexChunk, IndexHit, KeyValue, SearchIndex, SecretStore};
use crate::connector::{Capabilities, Connector};
use crate::http::{Request, Response, Transport, TransportError};
use crate::types::{self as sdk, ConnectorError};

wit_bindgen::generate!({
    world: "connector",
    path: "../wit",
    default_bindings_module: "connector_sdk::guest",
    pub_export_macro: true,
    export_macro_name: "export_guest",
    with: {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
        "wasi:cli/environment@0.2.12": wasip2::cli::environment,
        "wasi:cli/exit@0.2.12": wasip2::cli::exit,
        "wasi:cli/stdin@0.2.12": wasip2::cli::stdin,
        "wasi:cli/stdout@0.2.12": wasip2::cli::stdout,
        "wasi:cli/stderr@0.2.12": wasip2::cli::stderr,
        "wasi:cli/terminal-input@0.2.12": wasip2::cli::terminal_input,
        "wasi:cli/terminal-output@0.2.12": wasip2::cli::terminal_output,
        "wasi:cli/terminal-stdin@0.2.12": wasip2::cli::terminal_stdin,
        "wasi:cli/terminal-stdout@0.2.12": wasip2::cli::terminal_stdout,
        "wasi:cli/terminal-stderr@0.2.12": wasip2::cli::terminal_stderr,
        "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
        "wasi:random/random@0.2.12": wasip2::random::random,
        "wasi:random/insecure-seed@0.2.12": wasip2::random::insecure_seed,
        "wasi:keyvalue/store@0.2.0-draft": generate,
        "wasi:keyvalue/batch@0.2.0-draft": generate,
    },
});

use exports::knowledge::connector::knowledge_connector as wit;
use knowledge::connector::{search, secrets, types};
use wasi::keyvalue::{batch, store};

/// Largest response body accepted (a 250-page listing of large pages fits easily).
const MAX_BODY_BYTES: usize = 256 << 20;

// ----- capabilities ------------------------------------------------------------------

/// `wasi:keyvalue` buckets, opened once per call.
#[derive(Default)]
struct WasiKeyValue {
    buckets: RefCell<HashMap<String, std::rc::Rc<store::Bucket>>>,
}

impl WasiKeyValue {
    fn bucket(&self, name: &str) -> Result<std::rc::Rc<store::Bucket>, HostError> {
        if let Some(bucket) = self.buckets.borrow().get(name) {
            return Ok(bucket.clone());
        }
        let bucket = std::rc::Rc::new(store::open(name).map_err(kv_error)?);
        self.buckets.borrow_mut().insert(name.to_string(), bucket.clone());
        Ok(bucket)
    }
}

fn kv_error(error: store::Error) -> HostError {
    match error {
        store::Error::NoSuchStore => HostError::InvalidInput("no such key-value store".into()),
        store::Error::AccessDenied => HostError::InvalidInput("key-value access denied".into()),
        store::Error::Other(message) => HostError::Unavailable(message),
    }
}

fn search_error(error: search::SearchError) -> HostError {
    match error {
        search::SearchError::InvalidInput(message) => HostError::InvalidInput(message),
        search::SearchError::Unavailable(message) => HostError::Unavailable(message),
    }
}

fn secrets_error(error: secrets::SecretsError) -> HostError {
    match error {
        secrets::SecretsError::InvalidInput(message) => HostError::InvalidInput(message),
        secrets::SecretsError::Unreadable(message) => HostError::Unreadable(message),
        secrets::SecretsError::Unavailable(message) => HostError::Unavailable(message),
    }
}

impl KeyValue for WasiKeyValue {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.bucket(bucket)?.get(key).map_err(kv_error)
    }
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.bucket(bucket)?.set(key, value).map_err(kv_error)
    }
    fn get_many(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, HostError> {
        let found = batch::get_many(&*self.bucket(bucket)?, keys).map_err(kv_error)?;
        Ok(found.into_iter().map(|entry| entry.map(|(_, value)| value)).collect())
    }
    fn set_many(&self, bucket: &str, items: Vec<(String, Vec<u8>)>) -> Result<(), HostError> {
        batch::set_many(&*self.bucket(bucket)?, &items).map_err(kv_error)
    }
    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), HostError> {
        batch::delete_many(&*self.bucket(bucket)?, keys).map_err(kv_error)
    }
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), HostError> {
        let page = self.bucket(bucket)?.list_keys(cursor).map_err(kv_error)?;
        Ok((page.keys, page.cursor))
    }
}

/// The host's `search` interface.
struct HostSearch;

impl SearchIndex for HostSearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: Vec<IndexChunk>) -> Result<(), HostError> {
        let chunks: Vec<search::Chunk> = chunks
            .into_iter()
            .map(|c| search::Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
            .collect();
        search::replace_document(memory_id, document_id, &chunks).map_err(search_error)
    }
    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), HostError> {
        search::remove_documents(memory_id, document_ids).map_err(search_error)
    }
    fn commit(&self) -> Result<(), HostError> {
        search::commit().map_err(search_error)
    }
    fn rollback(&self) -> Result<(), HostError> {
        search::rollback().map_err(search_error)
    }
    fn query(&self, text: &str, memory_ids: &[String], limit: u32) -> Result<Vec<IndexHit>, HostError> {
        let hits = search::query(text, memory_ids, limit).map_err(search_error)?;
        Ok(hits
            .into_iter()
            .map(|h| IndexHit {
                memory_id: h.memory_id,
                document_id: h.document_id,
                ordinal: h.ordinal,
                title: h.title,
                heading: h.heading,
                text: h.text,
                score: h.score,
            })
            .collect())
    }
}

/// The host's `secrets` interface.
struct HostSecrets;

impl SecretStore for HostSecrets {
    fn put(&self, name: &str, value: &str) -> Result<(), HostError> {
        secrets::put(name, value).map_err(secrets_error)
    }
    fn get(&self, name: &str) -> Result<Option<String>, HostError> {
        secrets::get(name).map_err(secrets_error)
    }
    fn remove(&self, name: &str) -> Result<(), HostError> {
        secrets::remove(name).map_err(secrets_error)
    }
}

/// Prefetched requests kept at most: one per memory being stepped in turn is plenty.
const MAX_PREFETCHED: usize = 8;

thread_local! {
    /// Requests started ahead of need, oldest first. They outlive the export call that
    /// started them: the next `step` asks for them.
    static PREFETCHED: RefCell<Vec<(Request, outgoing_handler::FutureIncomingResponse)>> =
        const { RefCell::new(Vec::new()) };
}

/// `wasi:http/outgoing-handler`: every request of a batch is started before any
/// response is awaited, so they are in flight concurrently.
struct WasiTransport;

impl WasiTransport {
    fn take_prefetched(request: &Request) -> Option<outgoing_handler::FutureIncomingResponse> {
        PREFETCHED.with_borrow_mut(|prefetched| {
            let position = prefetched.iter().position(|(started, _)| started == request)?;
            Some(prefetched.remove(position).1)
        })
    }

    fn start(request: &Request) -> Result<outgoing_handler::FutureIncomingResponse, TransportError> {
        let invalid = |detail: &str| TransportError::Connection { url: request.url.clone(), detail: detail.into() };
        let url = url::Url::parse(&request.url).map_err(|_| invalid("invalid URL"))?;
        let headers: Vec<(String, Vec<u8>)> =
            request.headers.iter().map(|(name, value)| (name.clone(), value.as_bytes().to_vec())).collect();
        let fields = Fields::from_list(&headers).map_err(|_| invalid("invalid header"))?;
        let outgoing = OutgoingRequest::new(fields);
        let scheme = if url.scheme() == "http" { Scheme::Http } else { Scheme::Https };
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        outgoing.set_method(&Method::Get).map_err(|_| invalid("method"))?;
        outgoing.set_scheme(Some(&scheme)).map_err(|_| invalid("scheme"))?;
        outgoing.set_authority(Some(&authority)).map_err(|_| invalid("authority"))?;
        outgoing.set_path_with_query(Some(&path)).map_err(|_| invalid("path"))?;
        // A GET has no body: finish it before sending so nothing waits on a write.
        let body = outgoing.body().map_err(|_| invalid("body"))?;
        OutgoingBody::finish(body, None).map_err(|e| map_error(&request.url, e))?;
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(Duration::from_secs(15).as_nanos() as u64));
        let _ = options.set_first_byte_timeout(Some(Duration::from_secs(60).as_nanos() as u64));
        let _ = options.set_between_bytes_timeout(Some(Duration::from_secs(60).as_nanos() as u64));
        outgoing_handler::handle(outgoing, Some(options)).map_err(|e| map_error(&request.url, e))
    }

    fn finish(url: &str, pending: outgoing_handler::FutureIncomingResponse) -> Result<Response, TransportError> {
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(map_error(url, code)),
            _ => return Err(TransportError::Connection { url: url.into(), detail: "no response".into() }),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let broken = |detail: String| TransportError::Connection { url: url.into(), detail };
        let incoming = response.consume().map_err(|_| broken("body already consumed".into()))?;
        let stream = incoming.stream().map_err(|_| broken("body stream unavailable".into()))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(256 * 1024) {
                Ok(bytes) => {
                    body.extend_from_slice(&bytes);
                    if body.len() > MAX_BODY_BYTES {
                        return Err(TransportError::TooLarge(url.into()));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    return Err(broken(format!("body broke off: {}", error.to_debug_string())));
                }
            }
        }
        drop(stream);
        drop(incoming);
        Ok(Response { status, headers, body })
    }
}

fn map_error(url: &str, code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => TransportError::Denied(url.into()),
        ErrorCode::DestinationNotFound | ErrorCode::DnsError(_) => TransportError::Unresolvable(url.into()),
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            TransportError::Timeout(url.into())
        }
        other => TransportError::Connection { url: url.into(), detail: format!("{other:?}") },
    }
}

impl Transport for WasiTransport {
    fn send_all(&self, requests: Vec<Request>) -> Vec<Result<Response, TransportError>> {
        let started: Vec<_> = requests
            .iter()
            .map(|request| Self::take_prefetched(request).map_or_else(|| Self::start(request), Ok))
            .collect();
        started
            .into_iter()
            .zip(&requests)
            .map(|(pending, request)| pending.and_then(|p| Self::finish(&request.url, p)))
            .collect()
    }
    fn prefetch(&self, request: Request) {
        if PREFETCHED.with_borrow(|prefetched| prefetched.iter().any(|(started, _)| *started == request)) {
            return;
        }
        // A request that cannot even start is simply sent (and reported) when it is needed.
        if let Ok(pending) = Self::start(&request) {
            PREFETCHED.with_borrow_mut(|prefetched| {
                if prefetched.len() == MAX_PREFETCHED {
                    prefetched.remove(0);
                }
                prefetched.push((request, pending));
            });
        }
    }
    fn sleep(&self, duration: Duration) {
        wasip2::clocks::monotonic_clock::subscribe_duration(duration.as_nanos() as u64).block();
    }
    fn jitter_seed(&self) -> u64 {
        wasip2::random::random::get_random_u64()
    }
    fn unix_time(&self) -> u64 {
        wasip2::clocks::wall_clock::now().seconds
    }
}

/// Runs one export with the imports as [`Capabilities`] (buckets opened once per call).
fn with_capabilities<R>(work: impl FnOnce(Capabilities<'_>) -> R) -> R {
    let kv = WasiKeyValue::default();
    work(Capabilities { kv: &kv, index: &HostSearch, secrets: &HostSecrets, transport: &WasiTransport })
}

// ----- exports -----------------------------------------------------------------------

/// The component's `knowledge-connector` export, forwarding to `C`.
pub struct Component<C>(PhantomData<C>);

impl<C: Connector> wit::Guest for Component<C> {
    fn describe() -> types::ConnectorInfo {
        let info = C::describe();
        types::ConnectorInfo {
            kind: info.kind,
            name: info.name,
            version: info.version,
            source_label: info.source_label,
            config_fields: info
                .config_fields
                .into_iter()
                .map(|f| types::ConfigField {
                    name: f.name,
                    label: f.label,
                    help: f.help,
                    secret: f.secret,
                    required: f.required,
                    operator_only: f.operator_only,
                })
                .collect(),
        }
    }

    fn required_origins(config: Vec<(String, String)>) -> Result<Vec<types::Origin>, types::ConnectorError> {
        let origins = with_capabilities(|caps| C::required_origins(caps, &config)).map_err(error)?;
        Ok(origins
            .into_iter()
            .map(|o| types::Origin { url: o.url, purpose: o.purpose, conditional: o.conditional, insecure: o.insecure })
            .collect())
    }

    fn connect(config: Vec<(String, String)>) -> Result<types::Connection, types::ConnectorError> {
        with_capabilities(|caps| C::connect(caps, &config)).map(connection).map_err(error)
    }

    fn disconnect(connection_id: String) -> Result<types::Connection, types::ConnectorError> {
        with_capabilities(|caps| C::disconnect(caps, &connection_id)).map(connection).map_err(error)
    }

    fn ingest(connection_id: String, sources: Vec<String>) -> Result<Vec<types::IngestOutcome>, types::ConnectorError> {
        let outcomes = with_capabilities(|caps| C::ingest(caps, &connection_id, &sources)).map_err(error)?;
        Ok(outcomes
            .into_iter()
            .map(|o| types::IngestOutcome { requested: o.requested, outcome: o.outcome.map(memory).map_err(error) })
            .collect())
    }

    fn sync(memory_id: String, options: types::SyncOptions) -> Result<types::Memory, types::ConnectorError> {
        let options = sdk::SyncOptions { allow_mass_delete: options.allow_mass_delete };
        with_capabilities(|caps| C::sync(caps, &memory_id, options)).map(memory).map_err(error)
    }

    fn step(memory_id: String) -> Result<types::StepReport, types::ConnectorError> {
        let report = with_capabilities(|caps| C::step(caps, &memory_id)).map_err(error)?;
        Ok(types::StepReport { memory: memory(report.memory), finished: report.finished })
    }

    fn pending() -> Result<Vec<String>, types::ConnectorError> {
        with_capabilities(|caps| C::pending(caps)).map_err(error)
    }

    fn retrieve(
        question: String,
        memory_ids: Vec<String>,
        limit: u32,
    ) -> Result<Vec<types::Passage>, types::ConnectorError> {
        let options = sdk::RetrieveOptions {
            memory_ids,
            limit,
            per_document: crate::rank::DEFAULT_PER_DOCUMENT,
            labels: Vec::new(),
        };
        answer::<C>(&question, &options)
    }

    fn retrieve_with(
        question: String,
        options: types::RetrieveOptions,
    ) -> Result<Vec<types::Passage>, types::ConnectorError> {
        let options = sdk::RetrieveOptions {
            memory_ids: options.memory_ids,
            limit: options.limit,
            per_document: options.per_document,
            labels: options.labels,
        };
        answer::<C>(&question, &options)
    }

    fn status() -> Result<types::InstanceStatus, types::ConnectorError> {
        let status = with_capabilities(|caps| C::status(caps)).map_err(error)?;
        Ok(types::InstanceStatus {
            connections: status.connections.into_iter().map(connection).collect(),
            memories: status.memories.into_iter().map(memory).collect(),
        })
    }
}

fn answer<C: Connector>(
    question: &str,
    options: &sdk::RetrieveOptions,
) -> Result<Vec<types::Passage>, types::ConnectorError> {
    let passages = with_capabilities(|caps| C::retrieve(caps, question, options)).map_err(error)?;
    Ok(passages
        .into_iter()
        .map(|p| types::Passage {
            title: p.title,
            url: p.url,
            breadcrumb: p.breadcrumb,
            text: p.text,
            score: p.score,
            document_id: p.document_id,
            document_version: p.document_version,
            modified_at: p.modified_at,
            source_key: p.source_key,
            memory_id: p.memory_id,
            labels: p.labels,
        })
        .collect())
}

fn error(error: ConnectorError) -> types::ConnectorError {
    match error {
        ConnectorError::InvalidInput(m) => types::ConnectorError::InvalidInput(m),
        ConnectorError::Unauthorized(m) => types::ConnectorError::Unauthorized(m),
        ConnectorError::MissingScopes(scopes) => types::ConnectorError::MissingScopes(scopes),
        ConnectorError::NotFound(m) => types::ConnectorError::NotFound(m),
        ConnectorError::Duplicate(m) => types::ConnectorError::Duplicate(m),
        ConnectorError::Unavailable(m) => types::ConnectorError::Unavailable(m),
        ConnectorError::Network(m) => types::ConnectorError::Network(m),
        ConnectorError::Denied(m) => types::ConnectorError::Denied(m),
        ConnectorError::Host(m) => types::ConnectorError::Host(m),
    }
}

fn connection(c: sdk::Connection) -> types::Connection {
    types::Connection {
        id: c.id,
        site: c.site,
        account: c.account,
        access: c.access,
        connected: c.connected,
        origins: c.origins,
    }
}

fn memory(m: sdk::Memory) -> types::Memory {
    let p = m.progress;
    types::Memory {
        id: m.id,
        connection_id: m.connection_id,
        source_key: m.source_key,
        source_name: m.source_name,
        status: match m.status {
            sdk::MemoryStatus::InProgress => types::MemoryStatus::InProgress,
            sdk::MemoryStatus::Ingested => types::MemoryStatus::Ingested,
            sdk::MemoryStatus::Error => types::MemoryStatus::Error,
        },
        error: m.error,
        documents: m.documents,
        chunks: m.chunks,
        progress: types::Progress {
            phase: p.phase,
            done: p.done,
            known: p.known,
            requests: p.requests,
            retries: p.retries,
            listed: p.listed,
            fetched: p.fetched,
            updated: p.updated,
            deleted: p.deleted,
            counts: p.counts,
        },
        synced_at: m.synced_at,
    }
}
