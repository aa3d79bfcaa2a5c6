//! A second kind of connector, built on the SDK alone (`tests/guests/notes`: folders of
//! notes from a JSON index over HTTP), run end to end by the unchanged host through its
//! CLI: connected with the fields it describes, ingested, asked, synced after an edit and
//! a removal. The host knows nothing of it but the contract.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::cache_dir;

/// Serves whatever the index currently holds, at any path, over loopback HTTP.
struct IndexServer {
    origin: String,
    index: Arc<Mutex<String>>,
}

impl IndexServer {
    fn start(index: Value) -> IndexServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the index server");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let index = Arc::new(Mutex::new(index.to_string()));
        let served = index.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let body = served.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        IndexServer { origin, index }
    }

    fn replace(&self, index: Value) {
        *self.index.lock().unwrap() = index.to_string();
    }
}

fn notes(folder_notes: Value) -> Value {
    json!({"folders": [{"key": "ops", "name": "Operations", "notes": folder_notes}]})
}

fn host(data: &std::path::Path, args: &[&str]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .arg("--data-dir")
        .arg(data)
        .args(["--component", env!("NOTES_COMPONENT_PATH")])
        .args(args)
        .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
        .env_remove("CONNECTOR_HOST_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run connector-host");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stdout}"))
}

#[test]
fn a_second_source_on_the_sdk_runs_end_to_end_in_the_unchanged_host() {
    let server = IndexServer::start(notes(json!([
        {"id": "backups", "title": "Backups", "version": 1, "modified": "2026-11-01T09:00:00Z",
         "text": "Backups run every night at two.\n\nRestores are rehearsed on the first Monday."},
        {"id": "keys", "title": "Key rotation", "version": 1, "text": "Signing keys rotate every spring."},
    ])));
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();

    let described = host(dir, &["describe", "--json"]);
    assert_eq!(described["kind"], "notes");
    let index = format!("index={}/notes.json", server.origin);
    let connection = host(dir, &["connect", "--field", &index, "--allow-loopback", "--json"]);
    assert_eq!(connection["origins"], json!([server.origin]), "{connection}");
    let connection_id = connection["id"].as_str().unwrap();

    let ingested = host(dir, &["ingest", "--connection", connection_id, "--sources", "ops", "--json"]);
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    let memory_id = ingested["memories"][0]["id"].as_str().unwrap().to_string();
    let asked = host(dir, &["ask", "when are restores rehearsed", "--json"]);
    let first = &asked["passages"][0];
    assert_eq!(first["title"], "Backups", "{asked}");
    assert!(first["text"].as_str().unwrap().contains("first Monday"), "{asked}");
    assert_eq!(first["url"], format!("{}/notes.json#backups", server.origin));

    // An edit and a removal at the source; a sync follows both.
    server.replace(notes(json!([
        {"id": "backups", "title": "Backups", "version": 2, "text": "Backups run every hour since November."},
    ])));
    let synced = host(dir, &["sync", &memory_id, "--json"]);
    assert_eq!(synced["memories"][0]["status"], "INGESTED", "{synced}");
    let asked = host(dir, &["ask", "how often do backups run", "--json"]);
    assert!(asked["passages"][0]["text"].as_str().unwrap().contains("every hour"), "{asked}");
    let gone = host(dir, &["ask", "signing keys rotate", "--json"]);
    assert!(gone["passages"].as_array().unwrap().iter().all(|p| p["title"] != "Key rotation"), "{gone}");
}
