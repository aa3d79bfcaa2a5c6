//! The shared backend: one PostgreSQL database that several hosts use at once. Rows live in
//! one table (`connector_rows`: table, key as bytes, value), created by versioned migrations
//! that run when the store is opened, under an advisory lock so that hosts starting
//! together apply them once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls, Transaction};

use super::{Backend, Claim, ClaimMode, LOCK_WAIT, Rewrite, Table, Write};
use crate::StoreError;
use crate::fence::{self, Fence};

/// The schema, one migration per version, applied in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE connector_rows (
             tbl smallint NOT NULL,
             key bytea NOT NULL,
             value bytea NOT NULL,
             PRIMARY KEY (tbl, key)
         )",
    ),
    (
        2,
        "CREATE TABLE connector_leases (
             name text PRIMARY KEY,
             holder text NOT NULL,
             expires_at timestamptz NOT NULL
         )",
    ),
    (
        3,
        "CREATE TABLE connector_fences (
             name text PRIMARY KEY,
             epoch bigint NOT NULL
         )",
    ),
];

/// Idle lock connections kept for the next [`Backend::lock`].
const IDLE_LOCK_CONNECTIONS: usize = 8;

/// Settings of a lock connection: a lock waits at most [`LOCK_WAIT`], and the server notices
/// within about half a minute when the host holding it is gone (its machine off the network,
/// no connection reset), so that its locks go with it.
const LOCK_SESSION: &str = "SET lock_timeout = '300s'; SET tcp_keepalives_idle = 10; \
     SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// The advisory lock migrations hold (any fixed number the database does not use
/// otherwise; this one spells "connmigr").
const MIGRATION_LOCK: i64 = 0x636f_6e6e_6d69_6772;

/// Connections per store: the host's instances call in parallel.
const CONNECTIONS: usize = 8;

fn code(table: Table) -> i16 {
    match table {
        Table::Kv => 1,
        Table::Meta => 2,
        Table::Secrets => 3,
    }
}

/// A PostgreSQL database, reached with a connection string
/// (`postgres://user:password@host:port/database`).
pub struct PostgresBackend {
    worker: PgWorker,
    /// Connections of their own for locks (a session lock lives on its connection), idle.
    lock_connections: Arc<Mutex<Vec<PgWorker>>>,
}

/// A held session lock on a connection of its own.
struct PgLock {
    connection: Option<PgWorker>,
    name: String,
    idle: Arc<Mutex<Vec<PgWorker>>>,
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let name = self.name.clone();
        let unlocked = connection.run(
            move |client| {
                client.query_one("SELECT pg_advisory_unlock(hashtextextended($1, 0))", &[&name]).map_err(|_| ())
            },
            |_| (),
        );
        // A connection that could not unlock is closed instead, which unlocks too.
        if unlocked.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_LOCK_CONNECTIONS {
                idle.push(connection);
            }
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        StoreError::Postgres(describe(&error))
    }
}

/// What went wrong, in the server's words when it answered (the client's own text for a
/// server error is only "db error").
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(answer) => format!("{}: {} ({})", answer.severity(), answer.message(), answer.code().code()),
        None => error.to_string(),
    }
}

/// `url` with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A job for a connection of a [`PgWorker`].
type Job = Box<dyn FnOnce(Result<&mut Connection, String>) + Send>;

/// A connection of a [`PgWorker`] (a [`Client`]), with the statements it has prepared:
/// a statement prepared once runs in one round trip instead of two.
pub struct Connection {
    client: Client,
    statements: std::collections::HashMap<&'static str, postgres::Statement>,
}

impl Connection {
    /// `sql` prepared on this connection (once; then from its cache).
    pub fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Threads that each own a connection to one database and run the jobs sent to them.
///
/// The `postgres` client blocks on a runtime of its own, which cannot run inside another
/// (a host's capability calls run on tokio's threads): its connections live on these
/// threads instead, and a caller blocks on the answer as it would on a disk. A connection
/// that breaks is made again for the next job.
pub struct PgWorker {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    url: String,
}

impl PgWorker {
    /// Starts `connections` threads for the database at `url`, connecting one now to fail
    /// early, naming the database (never its password), when it cannot be reached.
    pub fn start(url: &str, connections: usize) -> Result<PgWorker, String> {
        PgWorker::start_with(url, connections, "")
    }

    /// [`PgWorker::start`], running `setup` (SQL, e.g. session settings) on every new
    /// connection.
    pub fn start_with(url: &str, connections: usize, setup: &'static str) -> Result<PgWorker, String> {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut threads = Vec::new();
        for n in 0..connections.max(1) {
            let receiver = receiver.clone();
            let url = url.to_string();
            let thread = std::thread::Builder::new()
                .name(format!("postgres-{n}"))
                .spawn(move || {
                    let mut client: Option<Connection> = None;
                    loop {
                        let job = match receiver.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        if client.as_ref().is_none_or(|c| c.is_closed()) {
                            client = None;
                            let connected = Client::connect(&url, NoTls).and_then(|mut connected| {
                                if !setup.is_empty() {
                                    connected.batch_execute(setup)?;
                                }
                                Ok(connected)
                            });
                            match connected {
                                Ok(connected) => {
                                    client = Some(Connection { client: connected, statements: Default::default() })
                                }
                                Err(error) => {
                                    job(Err(format!("cannot connect to {}: {error}", redact(&url))));
                                    continue;
                                }
                            }
                        }
                        if let Some(client) = client.as_mut() {
                            job(Ok(client));
                        }
                    }
                })
                .map_err(|error| format!("cannot start a database thread: {error}"))?;
            threads.push(thread);
        }
        let worker = PgWorker { jobs: Mutex::new(Some(sender)), threads: Mutex::new(threads), url: url.to_string() };
        worker.run(|client| client.batch_execute("SELECT 1").map_err(|e| e.to_string()), |message| message)?;
        Ok(worker)
    }

    /// Runs `work` on one of the connections and waits for its answer; `lost` says what
    /// went wrong when no connection could run it.
    pub fn run<T: Send + 'static, E: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        lost: fn(String) -> E,
    ) -> Result<T, E> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            let outcome = match client {
                Ok(client) => work(client),
                Err(message) => Err(lost(message)),
            };
            let _ = reply.send(outcome);
        });
        let sent = match self.jobs.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(lost(format!("the connections to {} are closed", redact(&self.url))));
        }
        answer.recv().unwrap_or_else(|_| Err(lost(format!("a connection to {} stopped", redact(&self.url)))))
    }
}

impl Drop for PgWorker {
    fn drop(&mut self) {
        // Closing the queue ends the threads once their jobs are done.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        for thread in self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = thread.join();
        }
    }
}

impl PostgresBackend {
    /// Connects to the database at `url` and brings its schema up to date. Fails, naming the
    /// database (never its password), when it cannot be reached or its schema is newer than
    /// this host knows.
    pub fn connect(url: &str) -> Result<PostgresBackend, StoreError> {
        // No statement may hold a host's call longer than a minute.
        let worker =
            PgWorker::start_with(url, CONNECTIONS, "SET statement_timeout = '60s'").map_err(StoreError::Postgres)?;
        worker.run(
            |connection| {
                migrate(connection, "connector_schema", MIGRATION_LOCK, MIGRATIONS).map_err(StoreError::Postgres)
            },
            StoreError::Postgres,
        )?;
        Ok(PostgresBackend { worker, lock_connections: Arc::new(Mutex::new(Vec::new())) })
    }

    /// Runs `work` on a connection, its errors as the store's.
    fn with_client<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker.run(work, StoreError::Postgres)
    }
}

/// Brings a schema up to date: applies the `migrations` (version, SQL) newer than what
/// `schema_table` records, in one transaction under the advisory lock `lock`, so that
/// hosts starting together apply each once; refuses a schema newer than it knows.
pub fn migrate(client: &mut Client, schema_table: &str, lock: i64, migrations: &[(i32, &str)]) -> Result<(), String> {
    let run = |client: &mut Client| -> Result<Result<(), String>, postgres::Error> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema_table} (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )"
        ))?;
        let applied: i32 = tx.query_one(&format!("SELECT coalesce(max(version), 0) FROM {schema_table}"), &[])?.get(0);
        let known = migrations.last().map_or(0, |(version, _)| *version);
        if applied > known {
            return Ok(Err(format!(
                "the database's schema ({schema_table}) is version {applied}, newer than this host's {known}: \
                 upgrade the host"
            )));
        }
        for (version, sql) in migrations.iter().filter(|(version, _)| *version > applied) {
            tx.batch_execute(sql)?;
            tx.execute(&format!("INSERT INTO {schema_table} (version) VALUES ($1)"), &[version])?;
        }
        tx.commit()?;
        Ok(Ok(()))
    };
    run(client).map_err(|error| error.to_string())?
}

/// The rows of `writes` of one kind in a row, applied with one statement each.
fn apply_in(tx: &mut Transaction<'_>, table: i16, writes: &[Write]) -> Result<(), StoreError> {
    let mut rest = writes;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|w| std::mem::discriminant(*w) == std::mem::discriminant(first)).count();
        let (group, after) = rest.split_at(run);
        rest = after;
        match first {
            Write::Put(..) => {
                // One statement cannot set a key twice: the last value of each key wins.
                let mut last: std::collections::BTreeMap<&[u8], &[u8]> = std::collections::BTreeMap::new();
                for write in group {
                    if let Write::Put(key, value) = write {
                        last.insert(key.as_bytes(), value.as_slice());
                    }
                }
                let keys: Vec<&[u8]> = last.keys().copied().collect();
                let values: Vec<&[u8]> = last.values().copied().collect();
                tx.execute(
                    "INSERT INTO connector_rows (tbl, key, value)
                     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v)
                     ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&table, &keys, &values],
                )?;
            }
            Write::Delete(..) => {
                let keys: Vec<&[u8]> = group
                    .iter()
                    .filter_map(|w| match w {
                        Write::Delete(key) => Some(key.as_bytes()),
                        Write::Put(..) => None,
                    })
                    .collect();
                tx.execute("DELETE FROM connector_rows WHERE tbl = $1 AND key = ANY($2)", &[&table, &keys])?;
            }
        }
    }
    Ok(())
}

/// The smallest key after every key that starts with `prefix` (`None`: there is none, the
/// prefix is empty). UTF-8 never has a 0xFF byte, so the last byte can always be raised.
fn past_prefix(prefix: &str) -> Option<Vec<u8>> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xFF {
            bytes.push(last + 1);
            return Some(bytes);
        }
    }
    None
}

fn text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Postgres("a stored key is not UTF-8".into()))
}

/// `duration` in whole milliseconds, for SQL intervals.
fn millis(duration: Duration) -> f64 {
    duration.as_millis() as f64
}

/// The session lock of the hosts that use a database ("connhost").
const HOST_LOCK: i64 = 0x636f_6e6e_686f_7374;

impl Backend for PostgresBackend {
    fn claim(&self, mode: ClaimMode) -> Result<Option<Claim>, StoreError> {
        // A session lock on a connection of its own: it goes when the connection does,
        // and the connection goes with the process.
        let holder = PgWorker::start_with(&self.worker.url, 1, LOCK_SESSION).map_err(StoreError::Postgres)?;
        let sql = match mode {
            ClaimMode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
            ClaimMode::Exclusive => "SELECT pg_try_advisory_lock($1)",
        };
        let held = holder
            .run(move |client| Ok(client.query_one(sql, &[&HOST_LOCK])?.get::<_, bool>(0)), StoreError::Postgres)?;
        Ok(held.then(|| Claim::new(holder)))
    }

    fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (name, holder, ttl) = (name.to_string(), holder.to_string(), millis(ttl));
        self.with_client(move |client| {
            let statement = client.prepared(
                "INSERT INTO connector_leases (name, holder, expires_at)
                 VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE connector_leases.holder = EXCLUDED.holder OR connector_leases.expires_at <= clock_timestamp()
                 RETURNING holder",
            )?;
            Ok(!client.query(&statement, &[&name, &holder, &ttl])?.is_empty())
        })
    }

    fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let (holder, ttl) = (holder.to_string(), millis(ttl));
        self.with_client(move |client| {
            let statement = client.prepared(
                "UPDATE connector_leases SET expires_at = clock_timestamp() + $2 * interval '1 millisecond'
                 WHERE holder = $1 RETURNING name",
            )?;
            let mut names: Vec<String> =
                client.query(&statement, &[&holder, &ttl])?.into_iter().map(|row| row.get(0)).collect();
            names.sort();
            Ok(names)
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with_client(move |client| {
            let statement = client.prepared("DELETE FROM connector_leases WHERE name = $1 AND holder = $2")?;
            client.execute(&statement, &[&name, &holder])?;
            Ok(())
        })
    }

    fn acquire_any_lease(&self, names: &[String], holder: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let (names, holder, ttl) = (names.to_vec(), holder.to_string(), millis(ttl));
        self.with_client(move |client| {
            // Two hosts may pick the same free name at once: the insert of one wins and the
            // other's conflict clause finds it taken, so it gets no row (and tries again).
            let statement = client.prepared(
                "INSERT INTO connector_leases (name, holder, expires_at)
                 SELECT candidate, $2, clock_timestamp() + $3 * interval '1 millisecond'
                 FROM unnest($1::text[]) WITH ORDINALITY AS candidates (candidate, position)
                 WHERE NOT EXISTS (SELECT 1 FROM connector_leases
                                   WHERE name = candidate AND expires_at > clock_timestamp())
                 ORDER BY position LIMIT 1
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE connector_leases.expires_at <= clock_timestamp()
                 RETURNING name",
            )?;
            Ok(client.query_opt(&statement, &[&names, &holder, &ttl])?.map(|row| row.get(0)))
        })
    }

    fn lease(&self, name: &str) -> Result<Option<(String, Duration)>, StoreError> {
        let name = name.to_string();
        self.with_client(move |client| {
            let statement = client.prepared(
                "SELECT holder, EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 FROM connector_leases
                 WHERE name = $1 AND expires_at > clock_timestamp()",
            )?;
            Ok(client
                .query_opt(&statement, &[&name])?
                .map(|row| (row.get::<_, String>(0), Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0)))))
        })
    }

    fn lapsed_leases(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_string();
        self.with_client(move |client| {
            let statement = client.prepared(
                "SELECT name FROM connector_leases WHERE starts_with(name, $1) AND expires_at <= clock_timestamp()
                 ORDER BY name",
            )?;
            Ok(client.query(&statement, &[&prefix])?.into_iter().map(|row| row.get(0)).collect())
        })
    }

    fn lock(&self, name: &str) -> Result<Claim, StoreError> {
        let idle = self.lock_connections.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => PgWorker::start_with(&self.worker.url, 1, LOCK_SESSION).map_err(StoreError::Postgres)?,
        };
        let key = name.to_string();
        let locked = connection.run(
            move |client| {
                let timed_out = |error: postgres::Error, key: &str| match error.code() {
                    Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                        StoreError::LockTimeout { name: key.to_string(), waited: LOCK_WAIT }
                    }
                    _ => error.into(),
                };
                client
                    .query_one("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
                    .map_err(|e| timed_out(e, &key))?;
                // The new epoch waits for the writes the previous holder still has in flight.
                let advanced = client.query_one(
                    "INSERT INTO connector_fences (name, epoch) VALUES ($1, 1)
                     ON CONFLICT (name) DO UPDATE SET epoch = connector_fences.epoch + 1 RETURNING epoch",
                    &[&key],
                );
                match advanced {
                    Ok(row) => Ok(row.get::<_, i64>(0)),
                    Err(error) => {
                        let _ = client.query_one("SELECT pg_advisory_unlock(hashtextextended($1, 0))", &[&key]);
                        Err(timed_out(error, &key))
                    }
                }
            },
            StoreError::Postgres,
        );
        let epoch = locked?;
        let lock = PgLock { connection: Some(connection), name: name.to_string(), idle: self.lock_connections.clone() };
        Ok(Claim::fenced(lock, Fence { name: name.to_string(), epoch }))
    }

    fn get_many(&self, table: Table, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let rows = self.with_client(move |client| {
            let statement =
                client.prepared("SELECT key, value FROM connector_rows WHERE tbl = $1 AND key = ANY($2)")?;
            Ok(client.query(&statement, &[&code(table), &wanted])?)
        })?;
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            rows.into_iter().map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))).collect();
        Ok(keys.iter().map(|k| found.get(k.as_bytes()).cloned()).collect())
    }

    fn apply(&self, table: Table, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = writes.to_vec();
        self.with_client(move |client| {
            let mut tx = client.transaction()?;
            apply_in(&mut tx, code(table), &writes)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn apply_fenced(&self, table: Table, writes: &[Write], fence: &Fence) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (writes, fence) = (writes.to_vec(), fence.clone());
        self.with_client(move |client| {
            let mut tx = client.transaction()?;
            fence::check(&mut tx, &fence)?;
            apply_in(&mut tx, code(table), &writes)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn scan(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (start, strict): (Vec<u8>, bool) = match after {
            Some(after) if after >= prefix => (after.as_bytes().to_vec(), true),
            _ => (prefix.as_bytes().to_vec(), false),
        };
        let end = past_prefix(prefix);
        let rows = self.with_client(move |client| {
            let sql = match strict {
                true => {
                    "SELECT key, value FROM connector_rows WHERE tbl = $1 AND key > $2
                     AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4"
                }
                false => {
                    "SELECT key, value FROM connector_rows WHERE tbl = $1 AND key >= $2
                     AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4"
                }
            };
            let statement = client.prepared(sql)?;
            Ok(client.query(&statement, &[&code(table), &start, &end, &limit])?)
        })?;
        rows.into_iter().map(|row| Ok((text(row.get(0))?, row.get(1)))).collect()
    }

    fn rewrite_all(&self, table: Table, change: &mut Rewrite<'_>) -> Result<usize, StoreError> {
        // `change` runs here, between a read and a transaction that writes only if no row
        // changed in between (the connection's thread cannot borrow it).
        let read = self.with_client(move |client| {
            let rows = client.query("SELECT key, value FROM connector_rows WHERE tbl = $1", &[&code(table)])?;
            Ok(rows.into_iter().map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))).collect::<Vec<_>>())
        })?;
        let mut writes = Vec::with_capacity(read.len());
        for (key, value) in &read {
            let key = text(key.clone())?;
            let changed = change(&key, value)?;
            writes.push(Write::Put(key, changed));
        }
        let count = writes.len();
        self.with_client(move |client| {
            let mut tx = client.transaction()?;
            let now: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = tx
                .query("SELECT key, value FROM connector_rows WHERE tbl = $1 FOR UPDATE", &[&code(table)])?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            if now != read.into_iter().collect() {
                return Err(StoreError::Postgres(
                    "the rows changed while they were rewritten: nothing was changed, try again".into(),
                ));
            }
            apply_in(&mut tx, code(table), &writes)?;
            tx.commit()?;
            Ok(count)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_prefixes_bounded() {
        assert_eq!(redact("postgres://app:hunter2@db:5432/kb"), "postgres://app:***@db:5432/kb");
        assert_eq!(redact("postgres://app@db/kb"), "postgres://app@db/kb");
        assert_eq!(past_prefix("ns\0b\0"), Some(b"ns\0b\x01".to_vec()));
        assert_eq!(past_prefix(""), None);
    }
}
