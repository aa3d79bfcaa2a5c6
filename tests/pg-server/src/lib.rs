//! A real PostgreSQL server for tests. [`PgServer::start`] runs `initdb` in a temporary
//! directory and starts `postgres` on a free loopback port (as the unprivileged `nobody`
//! account when the tests run as root, since PostgreSQL refuses root), trusting local
//! connections; [`PgServer::database`] gives each test a fresh database. Dropping the server
//! stops it and removes its files.
//!
//! The binaries are found on `PATH` or in Debian's `/usr/lib/postgresql/<version>/bin`
//! (`apt-get install postgresql`). When they are missing or the server cannot start,
//! `start` fails with what to do: a test that needs PostgreSQL fails loudly, never skips.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The account PostgreSQL runs as when the tests run as root (Debian's `nobody:nogroup`).
const UNPRIVILEGED: (u32, u32) = (65534, 65534);

/// A running PostgreSQL server, stopped when dropped.
pub struct PgServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    databases: AtomicUsize,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer").field("port", &self.port).finish_non_exhaustive()
    }
}

/// Where PostgreSQL's programs are: the directory of `initdb` on `PATH`, else Debian's
/// newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): \
         apt-get install -y postgresql"
            .to_string()
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// A command of PostgreSQL's, as the unprivileged account when running as root.
fn command(bin: &Path, program: &str) -> Command {
    let mut command = Command::new(bin.join(program));
    if is_root() {
        command.uid(UNPRIVILEGED.0).gid(UNPRIVILEGED.1);
    }
    command
}

impl PgServer {
    /// Creates a cluster in a temporary directory and starts it on a free loopback port;
    /// returns once it accepts connections (within 60 s), or fails saying why.
    pub fn start() -> Result<PgServer, String> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("pg-server-").tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        if is_root() {
            chown(dir.path(), Some(UNPRIVILEGED.0), Some(UNPRIVILEGED.1))
                .map_err(|e| format!("cannot hand {} to nobody: {e}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let init = command(&bin, "initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--no-locale"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.join("initdb").display()))?;
        if !init.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)));
        }
        let port = free_port()?;
        let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create the server log: {e}"))?;
        if is_root() {
            let _ = chown(&log, Some(UNPRIVILEGED.0), Some(UNPRIVILEGED.1));
        }
        let child = command(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.join("postgres").display()))?;
        let mut server = PgServer { child, port, dir, databases: AtomicUsize::new(0) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("postgres exited ({status}) before accepting connections:\n{log}"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && on_own_thread(&server.url_of("postgres"), |_| Ok(())).is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = server.child.kill();
                return Err(format!("postgres did not accept connections within 60 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; its connection URL.
    pub fn database(&self) -> Result<String, String> {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("test_{n}");
        let create = format!("CREATE DATABASE {name}");
        on_own_thread(&self.url_of("postgres"), move |client| client.batch_execute(&create))
            .map_err(|e| format!("cannot create {name}: {e}"))?;
        Ok(self.url_of(&name))
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// Connects to `url` and runs `work` on a thread of its own: the blocking client runs a
/// runtime of its own, which cannot start on a thread that drives async tasks (a test or
/// benchmark may call from one).
fn on_own_thread(
    url: &str,
    work: impl FnOnce(&mut postgres::Client) -> Result<(), postgres::Error> + Send + 'static,
) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        work(&mut client).map_err(|e| e.to_string())
    })
    .join()
    .unwrap_or_else(|_| Err("the connecting thread panicked".to_string()))
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: its backends end with it.
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
