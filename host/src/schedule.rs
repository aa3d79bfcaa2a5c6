//! Auto Resync: per-memory sync schedules kept in the host's private metadata, so they
//! survive restarts, and the backoff of memories whose syncs keep failing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::bindings::types::InstanceStatus;
use crate::runtime::ConnectorHost;

/// Longest wait between attempts of a failing memory.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// The Auto Resync state of one memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Memory id.
    pub memory: String,
    /// Interval between syncs, in seconds.
    pub every_secs: u64,
    /// Unix time of the next attempt.
    pub next_run: u64,
    /// Failed attempts in a row (drives the backoff).
    pub failures: u32,
    /// Why the last attempt failed or was refused.
    pub last_error: Option<String>,
    /// Unix time of the last successful sync.
    pub last_success: Option<u64>,
    /// Whether a sync Auto Resync started has not finished yet (whichever host finishes it
    /// records its outcome here).
    #[serde(default)]
    pub running: bool,
}

impl Schedule {
    /// Whether the memory is being backed off after failures.
    pub fn backing_off(&self) -> bool {
        self.failures > 0
    }

    /// Records that a sync starts now: the next one is due an interval later.
    pub fn started(&mut self, now: u64) {
        self.running = true;
        self.next_run = now + self.every_secs;
    }

    /// Records a successful sync.
    pub fn succeeded(&mut self, now: u64) {
        self.running = false;
        self.failures = 0;
        self.last_error = None;
        self.last_success = Some(now);
        self.next_run = now + self.every_secs;
    }

    /// Records a failed sync: the next attempt waits twice as long per failure in a row.
    pub fn failed(&mut self, now: u64, error: String) {
        self.running = false;
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        let factor = 1u64 << self.failures.min(16);
        self.next_run = now + self.every_secs.saturating_mul(factor).min(MAX_BACKOFF.as_secs()).max(self.every_secs);
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Parses an interval like `90s`, `15m`, `1h`, `2d` or plain seconds.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let value: u64 = number.parse().map_err(|_| anyhow!("'{text}' is not an interval: use e.g. 90s, 15m, 1h or 1d"))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "d" => value * 86_400,
        _ => bail!("'{text}' is not an interval: use e.g. 90s, 15m, 1h or 1d"),
    };
    if seconds == 0 {
        bail!("the Auto Resync interval must be at least 1s");
    }
    Ok(Duration::from_secs(seconds))
}

/// Why Auto Resync of a memory cannot be changed as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoResyncRefusal {
    /// No memory has that id.
    NoMemory(String),
    /// The memory's connection is disconnected: syncs would be refused.
    Disconnected(String),
    /// The interval is not one.
    BadInterval(String),
}

impl std::fmt::Display for AutoResyncRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AutoResyncRefusal::NoMemory(message)
            | AutoResyncRefusal::Disconnected(message)
            | AutoResyncRefusal::BadInterval(message) => f.write_str(message),
        }
    }
}

/// Host metadata key prefix of the schedules.
const PREFIX: &str = "schedule/";

fn key(namespace: &str, memory: &str) -> String {
    format!("{PREFIX}{namespace}/{memory}")
}

/// When each instance's earliest Auto Resync falls due as far as this process knows, so
/// that a tenant's worker reads its schedules from the store only when one may be due (on
/// a shared database a read per tenant every half second is a query per tenant per host).
///
/// Never later than the truth for the schedules this process saves; another host's
/// changes arrive with [`ConnectorHost::refresh_due_times`]. A time that is too early costs
/// one read of the instance's schedules, which puts it right.
#[derive(Clone, Default)]
pub struct DueTimes(Arc<Mutex<HashMap<String, DueTime>>>);

#[derive(Clone, Copy)]
struct DueTime {
    /// Unix time of the earliest `next_run`; `u64::MAX` when the instance has no schedule.
    earliest: u64,
    /// Changes with every [`DueTimes::lower`], so that a read which began before a save
    /// cannot undo it.
    version: u64,
}

impl DueTimes {
    /// Whether a schedule of `namespace` may be due at `now` (also when nothing is known).
    pub fn may_be_due(&self, namespace: &str, now: u64) -> bool {
        self.0.lock().expect("due times lock").get(namespace).is_none_or(|due| due.earliest <= now)
    }

    /// Notes that a schedule of `namespace` is due at `at`.
    fn lower(&self, namespace: &str, at: u64) {
        let mut times = self.0.lock().expect("due times lock");
        let due = times.entry(namespace.to_string()).or_insert(DueTime { earliest: u64::MAX, version: 0 });
        due.earliest = due.earliest.min(at);
        due.version += 1;
    }

    /// The version to hand [`DueTimes::settle`] after reading the schedules of `namespace`.
    fn version(&self, namespace: &str) -> Option<u64> {
        self.0.lock().expect("due times lock").get(namespace).map(|due| due.version)
    }

    /// Records the earliest due time read from the store, unless a save since `version`
    /// (read before the store was) may have made it stale.
    fn settle(&self, namespace: &str, earliest: u64, version: Option<u64>) {
        let mut times = self.0.lock().expect("due times lock");
        match times.get_mut(namespace) {
            Some(due) if Some(due.version) == version => due.earliest = earliest,
            Some(due) => due.earliest = due.earliest.min(earliest),
            None => {
                times.insert(namespace.to_string(), DueTime { earliest, version: 0 });
            }
        }
    }
}

impl ConnectorHost {
    /// The schedule of a memory, if Auto Resync is on.
    pub fn schedule(&self, namespace: &str, memory: &str) -> Result<Option<Schedule>> {
        match self.store().meta().get(&key(namespace, memory)).map_err(|e| anyhow!("{e}"))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Saves (turns on or updates) a schedule.
    pub fn save_schedule(&self, namespace: &str, schedule: &Schedule) -> Result<()> {
        self.store()
            .meta()
            .set(&key(namespace, &schedule.memory), &serde_json::to_vec(schedule)?)
            .map_err(|e| anyhow!("{e}"))?;
        self.due_times().lower(namespace, schedule.next_run);
        Ok(())
    }

    /// Turns Auto Resync off for a memory.
    pub fn remove_schedule(&self, namespace: &str, memory: &str) -> Result<()> {
        self.store().meta().delete(&key(namespace, memory)).map_err(|e| anyhow!("{e}"))
    }

    /// Turns Auto Resync of a memory on (`every` is an interval such as `1h`) or off
    /// (`None`), given the instance's current status. Returns the schedule now in force.
    pub fn set_auto_resync(
        &self,
        namespace: &str,
        status: &InstanceStatus,
        memory_id: &str,
        every: Option<&str>,
    ) -> Result<Result<Option<Schedule>, AutoResyncRefusal>> {
        let Some(memory) = status.memories.iter().find(|m| m.id == memory_id) else {
            return Ok(Err(AutoResyncRefusal::NoMemory(format!("no memory '{memory_id}' (see status)"))));
        };
        let Some(every) = every else {
            self.remove_schedule(namespace, memory_id)?;
            return Ok(Ok(None));
        };
        if !status.connections.iter().any(|c| c.id == memory.connection_id && c.connected) {
            return Ok(Err(AutoResyncRefusal::Disconnected(format!(
                "connection {} is disconnected: connect the account again before turning on Auto Resync of {memory_id}",
                memory.connection_id
            ))));
        }
        let every = match parse_interval(every) {
            Ok(every) => every.as_secs(),
            Err(error) => return Ok(Err(AutoResyncRefusal::BadInterval(error.to_string()))),
        };
        let schedule = Schedule {
            memory: memory_id.to_string(),
            every_secs: every,
            next_run: now() + every,
            failures: 0,
            last_error: None,
            last_success: None,
            running: false,
        };
        self.save_schedule(namespace, &schedule)?;
        Ok(Ok(Some(schedule)))
    }

    /// Changes the schedule of a memory as `change` says, in one read and write under the
    /// instance's schedule lock (so across every host): `change` returns what to report, or
    /// `None` to leave the schedule as it was; nothing happens to a memory without one.
    pub async fn change_schedule<T: Send + 'static>(
        &self,
        namespace: &str,
        memory: &str,
        change: impl FnOnce(&mut Schedule) -> Option<T> + Send + 'static,
    ) -> Result<Option<T>> {
        let host = self.clone();
        let (namespace, memory) = (namespace.to_string(), memory.to_string());
        crate::blocking::off_runtime(move || {
            let _locked = host.store().lock(&format!("schedules/{namespace}"))?;
            let Some(mut schedule) = host.schedule(&namespace, &memory)? else { return Ok(None) };
            let Some(outcome) = change(&mut schedule) else { return Ok(None) };
            host.save_schedule(&namespace, &schedule)?;
            Ok(Some(outcome))
        })
        .await
    }

    /// Claims the due Auto Resync of a memory for the caller: when it is due, the due time
    /// and the schedule marked started (its next run an interval away); `None` when it is not
    /// due, or no longer (another host claimed it first): a due time is claimed once across
    /// every host.
    pub async fn claim_due_schedule(&self, namespace: &str, memory: &str) -> Result<Option<(u64, Schedule)>> {
        self.change_schedule(namespace, memory, |schedule| {
            let due = schedule.next_run;
            (due <= now()).then(|| {
                schedule.started(now());
                (due, schedule.clone())
            })
        })
        .await
    }

    /// Every schedule of an instance.
    pub fn schedules(&self, namespace: &str) -> Result<Vec<Schedule>> {
        let mut schedules = Vec::new();
        self.scan_schedules(&format!("{PREFIX}{namespace}/"), |_, schedule| schedules.push(schedule))?;
        Ok(schedules)
    }

    /// The schedules of an instance that are due now, read from the store only when
    /// [`DueTimes`] says one may be.
    pub fn due_schedules(&self, namespace: &str) -> Result<Vec<Schedule>> {
        let due_times = self.due_times();
        if !due_times.may_be_due(namespace, now()) {
            return Ok(Vec::new());
        }
        let version = due_times.version(namespace);
        let schedules = self.schedules(namespace)?;
        due_times.settle(namespace, schedules.iter().map(|s| s.next_run).min().unwrap_or(u64::MAX), version);
        Ok(schedules.into_iter().filter(|s| s.next_run <= now()).collect())
    }

    /// Takes up the due times other hosts gave the schedules of a shared database: one
    /// scan of every instance's schedules.
    pub fn refresh_due_times(&self) -> Result<()> {
        let due_times = self.due_times();
        self.scan_schedules(PREFIX, |key, schedule| {
            if let Some((namespace, _)) = key[PREFIX.len()..].split_once('/') {
                due_times.lower(namespace, schedule.next_run);
            }
        })
    }

    /// Calls `each` with the key and schedule of every schedule under `prefix`, a page at a time.
    fn scan_schedules(&self, prefix: &str, mut each: impl FnMut(&str, Schedule)) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store().meta().scan_prefix(prefix, after.as_deref(), 500).map_err(|e| anyhow!("{e}"))?;
            let Some((last, _)) = page.last() else { return Ok(()) };
            after = Some(last.clone());
            for (key, value) in &page {
                each(key, serde_json::from_slice(value)?);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_interval("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_interval("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_interval("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_interval("42").unwrap(), Duration::from_secs(42));
        for bad in ["", "0s", "1w", "m", "-5s", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn due_times_never_hide_a_schedule_saved_during_a_read() {
        let due = DueTimes::default();
        assert!(due.may_be_due("acme", 100), "nothing known: read the schedules");
        due.settle("acme", u64::MAX, due.version("acme"));
        assert!(!due.may_be_due("acme", 100), "no schedules: nothing to read");

        // A read begins, a schedule due at 150 is saved, the read (which missed it) ends.
        let version = due.version("acme");
        due.lower("acme", 150);
        due.settle("acme", 500, version);
        assert!(!due.may_be_due("acme", 149) && due.may_be_due("acme", 150));

        // A read that began after the save settles the time, later or earlier.
        due.settle("acme", 500, due.version("acme"));
        assert!(!due.may_be_due("acme", 499) && due.may_be_due("acme", 500));
        assert!(due.may_be_due("other", 0), "each instance apart");
    }

    #[test]
    fn failures_back_off_exponentially_and_success_resets() {
        let mut schedule = Schedule {
            memory: "mem-1".into(),
            every_secs: 60,
            next_run: 0,
            failures: 0,
            last_error: None,
            last_success: None,
            running: false,
        };
        schedule.failed(1000, "token expired".into());
        assert_eq!((schedule.failures, schedule.next_run), (1, 1120));
        schedule.failed(1120, "token expired".into());
        assert_eq!(schedule.next_run, 1120 + 240);
        for _ in 0..30 {
            schedule.failed(5000, "x".into());
        }
        assert_eq!(schedule.next_run, 5000 + MAX_BACKOFF.as_secs());
        schedule.succeeded(9000);
        assert_eq!((schedule.failures, schedule.next_run, schedule.last_error.clone()), (0, 9060, None));
    }
}
