//! Helpers for tests of `connector-host serve`: a running service on a free loopback port,
//! keys made through the CLI, and a small JSON client.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// A `connector-host serve` process on a data directory.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// Starts `serve` on a free port with loopback sites allowed, and waits until it answers.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Served {
        Served::spawn(data_dir, &[&["--allow-loopback"], extra].concat(), Stdio::null())
    }

    /// Starts `serve` on a free port with exactly these options; its logs go to `stderr`.
    pub fn spawn(data_dir: &Path, args: &[&str], stderr: Stdio) -> Served {
        Served::spawn_with(data_dir, args, &[], stderr)
    }

    /// [`Served::spawn`] with this environment on top (e.g. a database URL and its key).
    pub fn spawn_with(data_dir: &Path, args: &[&str], env: &[(String, String)], stderr: Stdio) -> Served {
        let _ = std::fs::remove_file(data_dir.join("serve.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
            .env_remove("CONNECTOR_HOST_KEY")
            .env_remove("CONNECTOR_HOST_DATABASE_URL")
            .env_remove("CONNECTOR_HOST_LOG")
            .envs(env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn connector-host serve");
        let mut served = Served { child, url: String::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(bytes) = std::fs::read(data_dir.join("serve.json")) {
                let handoff: Value = serde_json::from_slice(&bytes).expect("serve.json is JSON");
                served.url = handoff["url"].as_str().expect("url").to_string();
                break;
            }
            assert!(served.child.try_wait().unwrap().is_none(), "serve exited before it listened");
            assert!(Instant::now() < deadline, "serve did not start within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// Stops the service with SIGTERM and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the service with SIGKILL (a crash).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a key with the CLI (which goes through the running service when there is one).
pub fn create_key(world: &World, instance: &str, role: &str) -> String {
    let created = world.json(&["--instance", instance, "keys", "create", "--role", role, "--label", "test"]);
    assert_eq!(created["role"], role, "{created}");
    assert_eq!(created["instance"], instance, "{created}");
    created["key"].as_str().expect("key").to_string()
}

/// A JSON client of the service with one key.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub key: Option<String>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(url: &str, key: Option<&str>) -> Api {
        Api { url: url.to_string(), key: key.map(str::to_string), client: reqwest::Client::new() }
    }

    /// Sends a request; returns the status and the parsed body (`Null` when empty or not JSON).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Connects the fake's classic user.
    pub async fn connect(&self, world: &World) -> String {
        let (status, connection) = self
            .post(
                "/api/v1/connections",
                json!({"site": world.site.origin(), "email": EMAIL, "token": TOKEN, "allow_loopback": true}),
            )
            .await;
        assert_eq!(status, 201, "{connection}");
        connection["id"].as_str().unwrap().to_string()
    }

    /// Waits until a memory is no longer IN_PROGRESS; returns it.
    pub async fn settled(&self, memory: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, view) = self.get(&format!("/api/v1/memories/{memory}")).await;
            assert_eq!(status, 200, "{view}");
            if view["status"] != "IN_PROGRESS" {
                return view;
            }
            assert!(Instant::now() < deadline, "{memory} did not settle: {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
