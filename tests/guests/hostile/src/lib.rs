//! A connector component that misbehaves on purpose, one export per behaviour, so the
//! host's limits and isolation can be tested deterministically:
//!
//! - `describe` spins forever (CPU limit);
//! - `status` allocates until memory runs out (memory cap);
//! - `required-origins` grants whatever the test passes as `origin`;
//! - `connect` GETs the configured `url` and reports what the host answered;
//! - `retrieve` reads or writes key-value storage and search (`kv-set:K=V`, `kv-get:K`,
//!   `index:TEXT`, `query:TEXT`), to probe isolation between instances;
//! - everything else answers trivially.

#[cfg(target_arch = "wasm32")]
mod guest {
    wit_bindgen::generate!({
        world: "connector",
        path: "../../../wit",
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

    use exports::knowledge::connector::knowledge_connector::Guest;
    use knowledge::connector::search;
    use knowledge::connector::types::*;
    use wasi::keyvalue::store;
    use wasip2::http::types::{Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    /// Reads a response body to its end: `read N bytes`, or the error that ended it.
    fn read_body(response: IncomingResponse) -> String {
        let Ok(body) = response.consume() else { return "no body".into() };
        let Ok(stream) = body.stream() else { return "no body stream".into() };
        let mut read = 0usize;
        loop {
            match stream.blocking_read(65_536) {
                Ok(bytes) => read += bytes.len(),
                Err(StreamError::Closed) => return format!("read {read} bytes"),
                Err(StreamError::LastOperationFailed(error)) => {
                    let code = wasip2::http::types::http_error_code(&error);
                    return format!("body error after {read} bytes: {code:?} {}", error.to_debug_string());
                }
            }
        }
    }

    struct Hostile;

    fn value<'a>(config: &'a [(String, String)], key: &str) -> &'a str {
        config.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    fn passage(text: String) -> Passage {
        Passage {
            title: String::new(),
            url: String::new(),
            breadcrumb: String::new(),
            text,
            score: 0.0,
            document_id: String::new(),
            document_version: 0,
            modified_at: String::new(),
            source_key: String::new(),
            memory_id: String::new(),
            labels: Vec::new(),
        }
    }

    impl Guest for Hostile {
        fn describe() -> ConnectorInfo {
            let mut counter: u64 = 0;
            loop {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }

        fn required_origins(config: Vec<(String, String)>) -> Result<Vec<Origin>, ConnectorError> {
            let url = value(&config, "origin").to_string();
            Ok(vec![Origin {
                insecure: url.starts_with("http://"),
                url,
                purpose: "the test".into(),
                conditional: false,
            }])
        }

        fn connect(config: Vec<(String, String)>) -> Result<Connection, ConnectorError> {
            if value(&config, "spin") == "true" {
                let mut counter: u64 = 0;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            let url = value(&config, "url");
            let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
            let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
            let request = OutgoingRequest::new(Fields::new());
            let _ = request.set_method(&Method::Get);
            let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
            let _ = request.set_authority(Some(authority));
            let _ = request.set_path_with_query(Some(&path));
            let body = request.body().expect("body");
            OutgoingBody::finish(body, None).expect("finish");
            let outcome = match wasip2::http::outgoing_handler::handle(request, None) {
                Err(code) => format!("{code:?}"),
                Ok(future) => {
                    future.subscribe().block();
                    match future.get() {
                        Some(Ok(Ok(response))) if value(&config, "read-body") == "true" => read_body(response),
                        Some(Ok(Ok(response))) => format!("status {}", response.status()),
                        Some(Ok(Err(code))) => format!("{code:?}"),
                        _ => "no response".to_string(),
                    }
                }
            };
            Err(ConnectorError::Network(outcome))
        }

        fn disconnect(_: String) -> Result<Connection, ConnectorError> {
            Err(ConnectorError::NotFound("hostile".into()))
        }

        fn ingest(_: String, _: Vec<String>) -> Result<Vec<IngestOutcome>, ConnectorError> {
            Ok(Vec::new())
        }

        fn sync(_: String, _: SyncOptions) -> Result<Memory, ConnectorError> {
            Err(ConnectorError::NotFound("hostile".into()))
        }

        fn step(_: String) -> Result<StepReport, ConnectorError> {
            Err(ConnectorError::NotFound("hostile".into()))
        }

        fn pending() -> Result<Vec<String>, ConnectorError> {
            Ok(Vec::new())
        }

        fn retrieve_with(question: String, options: RetrieveOptions) -> Result<Vec<Passage>, ConnectorError> {
            Self::retrieve(question, options.memory_ids, options.limit)
        }

        fn retrieve(question: String, _: Vec<String>, _: u32) -> Result<Vec<Passage>, ConnectorError> {
            let bucket = store::open("default").map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
            let answer = if let Some(pair) = question.strip_prefix("kv-set:") {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                bucket.set(key, value.as_bytes()).map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
                "ok".to_string()
            } else if let Some(key) = question.strip_prefix("kv-get:") {
                match bucket.get(key).map_err(|e| ConnectorError::Host(format!("{e:?}")))? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    None => "none".to_string(),
                }
            } else if let Some(text) = question.strip_prefix("index:") {
                let chunk = search::Chunk { ordinal: 0, title: "t".into(), heading: String::new(), text: text.into() };
                search::replace_document("m", "d", &[chunk]).map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
                search::commit().map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
                "ok".to_string()
            } else if let Some(text) = question.strip_prefix("index-then-spin:") {
                let chunk = search::Chunk { ordinal: 0, title: "t".into(), heading: String::new(), text: text.into() };
                search::replace_document("m", "spun", &[chunk]).map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
                let mut counter: u64 = 0;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            } else if let Some(text) = question.strip_prefix("query:") {
                let hits = search::query(text, &[], 10).map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
                hits.into_iter().map(|h| h.text).collect::<Vec<_>>().join("|")
            } else {
                String::new()
            };
            Ok(vec![passage(answer)])
        }

        fn status() -> Result<InstanceStatus, ConnectorError> {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
    }

    export!(Hostile);
}
