//! A connector written against the frozen `knowledge:connector@0.1.2` contract
//! (`wit/since_v0.1.2/`), as a connector compiled before 0.2.0 would be: string errors
//! from `search` and `secrets`, bare origins, and the loopback policy learnt from its own
//! `allow-loopback` field. It uses every capability the way the Confluence connector
//! does, small: a connection checks its site over HTTP and keeps its token in secrets;
//! each source becomes a memory whose one `step` fetches the site's tenant info and
//! indexes one passage about the source; `retrieve` answers from the index.

#[cfg(target_arch = "wasm32")]
mod guest {
    wit_bindgen::generate!({
        world: "connector",
        path: "../../../wit/since_v0.1.2",
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
    use knowledge::connector::types::*;
    use knowledge::connector::{search, secrets};
    use wasi::keyvalue::store;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    const CONNECTION: &str = "conn-1";

    fn value<'a>(config: &'a [(String, String)], key: &str) -> &'a str {
        config.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.trim())
    }

    fn bucket() -> Result<store::Bucket, ConnectorError> {
        store::open("default").map_err(|e| ConnectorError::Host(format!("{e:?}")))
    }

    fn get(key: &str) -> Result<Option<String>, ConnectorError> {
        let found = bucket()?.get(key).map_err(|e| ConnectorError::Host(format!("{e:?}")))?;
        Ok(found.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn set(key: &str, value: &str) -> Result<(), ConnectorError> {
        bucket()?.set(key, value.as_bytes()).map_err(|e| ConnectorError::Host(format!("{e:?}")))
    }

    /// The site's origin, as 0.1.x connectors checked it: http only when allowed.
    fn origin(config: &[(String, String)]) -> Result<String, ConnectorError> {
        let site = value(config, "site").trim_end_matches('/');
        let (scheme, authority) = site.split_once("://").ok_or_else(|| {
            ConnectorError::InvalidInput(format!("'{site}' is not a site URL (scheme://host[:port])"))
        })?;
        let authority = authority.split('/').next().unwrap_or_default();
        match scheme {
            "https" => Ok(format!("https://{authority}")),
            "http" if value(config, "allow-loopback") == "true" => Ok(format!("http://{authority}")),
            _ => Err(ConnectorError::InvalidInput(format!("{site} is not https (allow-loopback is not set)"))),
        }
    }

    /// GETs `url` and returns its body, or why it failed.
    fn fetch(url: &str) -> Result<String, ConnectorError> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Get);
        let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(&path));
        let body = request.body().map_err(|_| ConnectorError::Network("no request body".into()))?;
        OutgoingBody::finish(body, None).map_err(|e| ConnectorError::Network(format!("{e:?}")))?;
        let future = wasip2::http::outgoing_handler::handle(request, None)
            .map_err(|code| ConnectorError::Denied(format!("{url}: {code:?}")))?;
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(ConnectorError::Network(format!("{url}: {code:?}"))),
            _ => return Err(ConnectorError::Network(format!("{url}: no response"))),
        };
        if response.status() != 200 {
            return Err(ConnectorError::Network(format!("{url} answered {}", response.status())));
        }
        let incoming = response.consume().map_err(|_| ConnectorError::Network("no body".into()))?;
        let stream = incoming.stream().map_err(|_| ConnectorError::Network("no body stream".into()))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(65_536) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ConnectorError::Network(e.to_debug_string()));
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn connection() -> Result<Connection, ConnectorError> {
        let site = get("connection/site")?.ok_or_else(|| ConnectorError::NotFound(CONNECTION.into()))?;
        let connected = secrets::get("token").map_err(ConnectorError::Host)?.is_some();
        Ok(Connection { id: CONNECTION.into(), site, account: "someone".into(), access: "token".into(), connected })
    }

    fn memory(source: &str) -> Result<Memory, ConnectorError> {
        let status = get(&format!("memory/{source}/status"))?
            .ok_or_else(|| ConnectorError::NotFound(format!("memory {source}")))?;
        let ingested = status == "ingested";
        Ok(Memory {
            id: source.into(),
            connection_id: CONNECTION.into(),
            source_key: source.into(),
            source_name: format!("Notes on {source}"),
            status: if ingested { MemoryStatus::Ingested } else { MemoryStatus::InProgress },
            error: None,
            documents: u32::from(ingested),
            chunks: u32::from(ingested),
            progress: Progress {
                phase: status,
                done: u32::from(ingested),
                known: 1,
                requests: u32::from(ingested),
                retries: 0,
                listed: 1,
                fetched: u32::from(ingested),
                updated: u32::from(ingested),
                deleted: 0,
            },
            synced_at: ingested.then(|| "2026-01-01T00:00:00Z".into()),
        })
    }

    fn sources() -> Result<Vec<String>, ConnectorError> {
        Ok(get("memories")?.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(String::from).collect())
    }

    struct Legacy;

    impl Guest for Legacy {
        fn describe() -> ConnectorInfo {
            let field = |name: &str, secret: bool, required: bool| ConfigField {
                name: name.into(),
                label: name.into(),
                help: format!("the {name}"),
                secret,
                required,
            };
            ConnectorInfo {
                kind: "notes".into(),
                name: "Notes (0.1.2)".into(),
                version: "0.1.2".into(),
                source_label: "topic".into(),
                config_fields: vec![
                    field("site", false, true),
                    field("token", true, true),
                    field("allow-loopback", false, false),
                ],
            }
        }

        fn required_origins(config: Vec<(String, String)>) -> Result<Vec<String>, ConnectorError> {
            Ok(vec![origin(&config)?])
        }

        fn connect(config: Vec<(String, String)>) -> Result<Connection, ConnectorError> {
            let site = origin(&config)?;
            fetch(&format!("{site}/_edge/tenant_info"))?;
            secrets::put("token", value(&config, "token")).map_err(ConnectorError::Host)?;
            set("connection/site", &site)?;
            connection()
        }

        fn disconnect(connection_id: String) -> Result<Connection, ConnectorError> {
            if connection_id != CONNECTION {
                return Err(ConnectorError::NotFound(connection_id));
            }
            secrets::remove("token").map_err(ConnectorError::Host)?;
            connection()
        }

        fn ingest(connection_id: String, requested: Vec<String>) -> Result<Vec<IngestOutcome>, ConnectorError> {
            if connection()?.id != connection_id {
                return Err(ConnectorError::NotFound(connection_id));
            }
            let mut known = sources()?;
            let mut outcomes = Vec::new();
            for source in requested {
                let outcome = if known.contains(&source) {
                    Err(ConnectorError::Duplicate(format!("{source} is already a memory")))
                } else {
                    set(&format!("memory/{source}/status"), "registered")?;
                    known.push(source.clone());
                    memory(&source)
                };
                outcomes.push(IngestOutcome { requested: source, outcome });
            }
            set("memories", &known.join(","))?;
            Ok(outcomes)
        }

        fn sync(memory_id: String, _: SyncOptions) -> Result<Memory, ConnectorError> {
            memory(&memory_id)?;
            set(&format!("memory/{memory_id}/status"), "registered")?;
            memory(&memory_id)
        }

        fn step(memory_id: String) -> Result<StepReport, ConnectorError> {
            memory(&memory_id)?;
            let site = connection()?.site;
            let tenant = fetch(&format!("{site}/_edge/tenant_info"))?;
            let chunk = search::Chunk {
                ordinal: 0,
                title: format!("Notes on {memory_id}"),
                heading: String::new(),
                text: format!("The {memory_id} notes come from a site whose tenant info is {tenant}"),
            };
            search::replace_document(&memory_id, "note", &[chunk]).map_err(ConnectorError::Host)?;
            search::commit().map_err(ConnectorError::Host)?;
            set(&format!("memory/{memory_id}/status"), "ingested")?;
            Ok(StepReport { memory: memory(&memory_id)?, finished: true })
        }

        fn pending() -> Result<Vec<String>, ConnectorError> {
            let mut pending = Vec::new();
            for source in sources()? {
                if memory(&source)?.status == MemoryStatus::InProgress {
                    pending.push(source);
                }
            }
            Ok(pending)
        }

        fn retrieve(question: String, memory_ids: Vec<String>, limit: u32) -> Result<Vec<Passage>, ConnectorError> {
            Self::retrieve_with(question, RetrieveOptions { memory_ids, limit, per_document: 1 })
        }

        fn retrieve_with(question: String, options: RetrieveOptions) -> Result<Vec<Passage>, ConnectorError> {
            let limit = if options.limit == 0 { 5 } else { options.limit };
            let hits = search::query(&question, &options.memory_ids, limit).map_err(ConnectorError::Host)?;
            Ok(hits
                .into_iter()
                .map(|hit| Passage {
                    url: format!("{}/notes/{}", connection().map(|c| c.site).unwrap_or_default(), hit.memory_id),
                    breadcrumb: hit.title.clone(),
                    title: hit.title,
                    text: hit.text,
                    score: hit.score,
                    document_id: hit.document_id,
                    document_version: 1,
                    modified_at: "2026-01-01T00:00:00Z".into(),
                    source_key: hit.memory_id.clone(),
                    memory_id: hit.memory_id,
                })
                .collect())
        }

        fn status() -> Result<InstanceStatus, ConnectorError> {
            let connections = connection().map(|c| vec![c]).unwrap_or_default();
            let memories = sources()?.iter().map(|s| memory(s)).collect::<Result<_, _>>()?;
            Ok(InstanceStatus { connections, memories })
        }
    }

    export!(Legacy);
}
