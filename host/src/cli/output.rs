//! What the commands print: the report views as JSON documents or as lines for people.
//! Local commands and commands sent to a running service print through the same code.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use connector_host::report::{AskView, IngestView, MemoryState, MemoryView, StatusView};
use connector_host::semantic::{SemanticStatusView, SemanticView};

/// Prints a value as one JSON document.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("views serialise"));
}

/// Prints settled memories (and rejected keys) of an ingest, sync or resume.
pub fn print_memories(view: &IngestView, json: bool) {
    if json {
        print_json(view);
        return;
    }
    for m in &view.memories {
        let p = &m.progress;
        match &m.error {
            Some(error) => println!("{} {} ERROR: {error}", m.id, m.space_key),
            None => println!(
                "{} {} ({}) {}: {} documents, {} chunks · {} requests, {} listed, {} fetched, {} updated, {} deleted{}",
                m.id,
                m.space_key,
                m.space_name,
                m.status.name(),
                m.pages,
                m.chunks,
                p.requests,
                p.listed,
                p.fetched,
                p.updated,
                p.deleted,
                p.counts.iter().map(|(name, n)| format!(", {n} {name}")).collect::<String>()
            ),
        }
    }
}

/// Prints connections and memories.
pub fn print_status(status: &StatusView, json: bool, served: bool) {
    if json {
        print_json(status);
        return;
    }
    if status.connections.is_empty() {
        println!("no connections: run `connector-host connect --site URL --email EMAIL --token-env VAR`");
    }
    for c in &status.connections {
        let state = if c.connected { "connected" } else { "disconnected" };
        println!("{}  {}  {}  {}  {}", c.id, c.site, c.email.as_deref().unwrap_or("-"), c.access, state);
    }
    for m in &status.memories {
        let p = &m.progress;
        let detail = match (m.status, &m.error) {
            (MemoryState::Error, Some(error)) => error.clone(),
            (MemoryState::InProgress, _) if served => {
                format!("{} ({}/{} pages) — the running service is working on it", p.phase, p.done, p.known)
            }
            (MemoryState::InProgress, _) => {
                format!("{} ({}/{} pages) — resumable: run `connector-host resume`", p.phase, p.done, p.known)
            }
            _ => format!("synced {}", m.synced_at.clone().unwrap_or_default()),
        };
        let auto = match &m.auto_resync {
            Some(s) if s.backing_off => format!(
                "  [auto-resync every {}s, backing off after {} failures: {}]",
                s.every_secs,
                s.failures,
                s.last_error.clone().unwrap_or_default()
            ),
            Some(s) => format!("  [auto-resync every {}s]", s.every_secs),
            None => String::new(),
        };
        let semantic = match &m.semantic {
            Some(SemanticView { error: Some(error), .. }) => format!("  [semantic: {error}]"),
            Some(s) if s.embedded < s.pages => format!("  [semantic: {}/{} pages embedded]", s.embedded, s.pages),
            Some(_) => "  [semantic]".to_string(),
            None => String::new(),
        };
        println!(
            "{}  {}  {:<11}  {} documents  {} chunks  {}{auto}{semantic}",
            m.id,
            m.space_key,
            m.status.name(),
            m.pages,
            m.chunks,
            detail
        );
    }
}

/// Prints the passages of an answer.
pub fn print_passages(answer: &AskView, json: bool) {
    if json {
        print_json(answer);
        return;
    }
    if answer.passages.is_empty() {
        println!("no passage matches that question");
    }
    for (rank, p) in answer.passages.iter().enumerate() {
        println!("{}. {}  (score {:.2})", rank + 1, p.breadcrumb, p.score);
        println!("   {}", p.url);
        for line in p.text.lines().filter(|l| !l.trim().is_empty()).take(8) {
            println!("   │ {line}");
        }
        println!();
    }
}

/// Progress bars for memories being worked on (hidden for `--json` and non-terminals).
pub struct Bars {
    bars: MultiProgress,
    by_id: std::collections::HashMap<String, ProgressBar>,
}

impl Bars {
    /// One bar per memory id.
    pub fn new(ids: &[String], json: bool) -> Bars {
        let bars = MultiProgress::new();
        if json || !std::io::stderr().is_terminal() {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        let by_id = ids
            .iter()
            .map(|id| (id.clone(), bars.add(ProgressBar::new(0).with_style(style.clone()).with_prefix(id.clone()))))
            .collect();
        Bars { bars, by_id }
    }

    /// Shows a memory's progress.
    pub fn update(&self, memory: &MemoryView) {
        if let Some(bar) = self.by_id.get(&memory.id) {
            let progress = &memory.progress;
            bar.set_length(u64::from(progress.known.max(progress.done)));
            bar.set_position(u64::from(progress.done));
            bar.set_message(format!("{} · {}", memory.space_key, progress.phase));
        }
    }

    /// Removes the bars.
    pub fn finish(self) {
        for bar in self.by_id.values() {
            bar.finish_and_clear();
        }
        drop(self.bars);
    }
}

/// Prints audit entries, oldest first.
pub fn print_audit(entries: &[connector_host::audit::AuditEntry], json: bool) {
    if json {
        print_json(&entries);
        return;
    }
    if entries.is_empty() {
        println!("no recorded actions");
    }
    for e in entries {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms);
        println!(
            "{}  {:<16}  {:<12}  {}  {}",
            humantime::format_rfc3339_seconds(at),
            e.actor,
            e.action,
            e.target,
            e.outcome
        );
    }
}

/// Prints whether semantic retrieval is on for an instance and each memory's coverage.
pub fn print_semantic(view: &SemanticStatusView, json: bool) {
    if json {
        print_json(view);
        return;
    }
    if !view.enabled {
        println!("semantic retrieval is off for {} (turn it on with `connector-host semantic on`)", view.instance);
        return;
    }
    match &view.error {
        Some(error) => println!("semantic retrieval is on for {}, but answers are lexical: {error}", view.instance),
        None => println!("semantic retrieval is on for {}", view.instance),
    }
    for m in &view.memories {
        println!("{}  {}/{} pages embedded", m.memory, m.embedded, m.pages);
    }
}
