//! The step engine, natively: the connector's own logic over the in-memory capabilities
//! of `confluence_connector::fakes`, talking to the fake Confluence in process. Crashes
//! the host at every durable write of an ingest and of a sync and checks that resuming
//! ends where an uninterrupted run ends; checks that nothing is deleted before a listing
//! is complete, and the mass-delete guard.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use confluence_connector::engine::Engine;
use confluence_connector::records::{MAIN_BUCKET, Memory, MemoryStatus, docs_bucket, memory_key};
use connector_sdk::caps::KeyValue;
use connector_sdk::fakes::{CrashPoint, Crashing, Documents, MemoryKeyValue, MemorySearch, MemorySecrets};
use connector_sdk::http::{Request, Response, Transport, TransportError};
use fake_confluence::{FakeConfluence, TokenKind};

const EMAIL: &str = "ada@example.com";
const TOKEN: &str = "engine-test-token";
const SPACE: &str = "ENG";
/// Pages in the test space besides its homepage: three listing pages of 250, so that a
/// listing step and a fetch step each cross page boundaries.
const PAGES: usize = 620;

/// The host's HTTP, answered by the fake in process. Requests whose URL contains
/// `failing` fail as a dead connection would.
struct InProcess<'s> {
    site: &'s FakeConfluence,
    failing: RefCell<Option<String>>,
    seed: Cell<u64>,
}

impl<'s> InProcess<'s> {
    fn new(site: &'s FakeConfluence) -> InProcess<'s> {
        InProcess { site, failing: RefCell::new(None), seed: Cell::new(1) }
    }

    fn fail_requests_containing(&self, pattern: Option<&str>) {
        *self.failing.borrow_mut() = pattern.map(str::to_string);
    }
}

impl Transport for InProcess<'_> {
    fn send_all(&self, requests: Vec<Request>) -> Vec<Result<Response, TransportError>> {
        requests
            .into_iter()
            .map(|request| {
                if self.failing.borrow().as_deref().is_some_and(|p| request.url.contains(p)) {
                    return Err(TransportError::Connection { url: request.url, detail: "connection reset".into() });
                }
                let authorization = request.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("authorization"));
                let answer = self.site.answer("GET", &request.url, authorization.map(|(_, v)| v.as_str()));
                Ok(Response { status: answer.status, headers: answer.headers, body: answer.body })
            })
            .collect()
    }

    fn sleep(&self, _: Duration) {}

    fn jitter_seed(&self) -> u64 {
        self.seed.set(self.seed.get() + 1);
        self.seed.get()
    }

    fn unix_time(&self) -> u64 {
        1_795_000_000
    }
}

/// A site with one space of [`PAGES`] pages (under the homepage) and a few blog posts.
fn site() -> (FakeConfluence, Vec<String>) {
    let site = FakeConfluence::start().expect("the fake Confluence starts");
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    site.add_space_with_homepage(SPACE, "Engineering", "<p>Welcome to engineering.</p>");
    let home = site.homepage_id(SPACE);
    let pages = (0..PAGES)
        .map(|i| {
            let body = format!(
                "<h2>Overview</h2><p>Page {i} explains topic{} for team{}.</p><h2>Details</h2><p>Rotate the key of service{i} monthly.</p>",
                i % 17,
                i % 5
            );
            site.add_page(SPACE, home.as_deref(), &format!("Runbook {i}"), &body)
        })
        .collect();
    for i in 0..3 {
        site.add_blogpost(SPACE, &format!("Release notes {i}"), "<p>What shipped this week.</p>");
    }
    (site, pages)
}

/// [`site`] with included content (a sync that edits Runbook 0 indexes its includer again)
/// and a folder, so that a crashed run also resumes through those phases.
fn site_with_included_content() -> (FakeConfluence, Vec<String>) {
    let (site, pages) = site();
    let folder = site.add_titled(SPACE, "folder", None, "Team handbooks");
    site.add_page(
        SPACE,
        Some(&folder),
        "Shared runbook steps",
        "<p>Start here.</p><ac:structured-macro ac:name=\"include\"><ac:parameter ac:name=\"\"><ac:link>\
         <ri:page ri:content-title=\"Runbook 0\"/></ac:link></ac:parameter></ac:structured-macro>",
    );
    (site, pages)
}

/// One instance's storage: what survives a host crash.
#[derive(Default)]
struct Stores {
    kv: MemoryKeyValue,
    index: MemorySearch,
    secrets: MemorySecrets,
}

impl Stores {
    fn engine<'a>(&'a self, transport: &'a InProcess<'a>) -> Engine<'a> {
        Engine::new(&self.kv, &self.index, &self.secrets, transport)
    }

    /// Connects and registers the space; returns the memory id.
    fn connect_and_ingest(&self, transport: &InProcess<'_>) -> String {
        let engine = self.engine(transport);
        let config: Vec<(String, String)> =
            [("site", transport.site.origin()), ("email", EMAIL.to_string()), ("token", TOKEN.to_string())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let connection = engine.connect(&config).expect("connect");
        let outcome = engine.ingest(&connection.id, &[SPACE.to_string()]).expect("ingest");
        outcome.into_iter().next().expect("one outcome").outcome.expect("the space is accepted").id
    }

    /// [`Self::connect_and_ingest`], then the steps until the memory settles.
    fn ingested(&self, transport: &InProcess<'_>) -> String {
        let memory_id = self.connect_and_ingest(transport);
        resume(&self.engine(transport));
        memory_id
    }

    /// What an uninterrupted run leaves: the memory's outcome, its document records and
    /// the committed index.
    fn state(&self, memory_id: &str) -> Outcome {
        let memory = self.memory(memory_id);
        Outcome {
            status: memory.status,
            error: memory.error.clone(),
            documents: memory.documents,
            chunks: memory.chunks,
            running: memory.run.is_some(),
            records: self.kv.bucket(&docs_bucket(memory_id)),
            index: self.index.committed(),
        }
    }

    fn memory(&self, memory_id: &str) -> Memory {
        let bytes = self.kv.get(MAIN_BUCKET, &memory_key(memory_id)).unwrap().expect("the memory is stored");
        serde_json::from_slice(&bytes).expect("the memory record reads")
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    status: MemoryStatus,
    error: Option<String>,
    documents: u32,
    chunks: u32,
    running: bool,
    records: BTreeMap<String, Vec<u8>>,
    index: Documents,
}

/// Steps every unfinished memory until none is left, as a host does after it starts.
fn resume(engine: &Engine<'_>) {
    for _ in 0..1_000 {
        let pending = engine.pending().expect("pending memories");
        if pending.is_empty() {
            return;
        }
        for memory_id in pending {
            engine.step(&memory_id).expect("a step on a live host");
        }
    }
    panic!("the work never finished");
}

/// Steps through a crashing host until it dies or the work is done.
fn step_until_crash(engine: &Engine<'_>, crashing: &Crashing<'_>, memory_id: &str) {
    for _ in 0..1_000 {
        match engine.step(memory_id) {
            Ok(report) if report.finished => return,
            Ok(_) => {}
            Err(error) => {
                assert!(crashing.crashed(), "a step failed without a crash: {error}");
                return;
            }
        }
        if crashing.crashed() {
            return;
        }
    }
    panic!("the work never finished");
}

/// Runs `work` (starting on stores prepared by `prepare`) once without a crash to learn
/// its durable writes and its outcome, then again crashing before and after each write,
/// restarting and resuming; every run must end in the same state.
fn crash_at_every_write(
    prepare: impl Fn(&Stores, &InProcess<'_>) -> String,
    change_site: impl Fn(&FakeConfluence, &[String]),
) {
    let run = |crash: Option<CrashPoint>| -> (Outcome, u64) {
        let (site, pages) = site_with_included_content();
        let transport = InProcess::new(&site);
        let stores = Stores::default();
        let memory_id = prepare(&stores, &transport);
        change_site(&site, &pages);
        let crashing = Crashing::new(&stores.kv, &stores.index, crash);
        let engine = Engine::new(&crashing, &crashing, &stores.secrets, &transport);
        step_until_crash(&engine, &crashing, &memory_id);
        let writes = crashing.writes();
        if crashing.crashed() {
            crashing.restart();
        }
        resume(&engine);
        (stores.state(&memory_id), writes)
    };
    let (expected, writes) = run(None);
    assert_eq!(expected.status, MemoryStatus::Ingested, "the uninterrupted run succeeds: {:?}", expected.error);
    assert!(!expected.running);
    assert!(writes >= 4, "the run makes several durable writes ({writes})");
    for n in 1..=writes {
        for crash in [CrashPoint::Before(n), CrashPoint::After(n)] {
            let (outcome, _) = run(Some(crash));
            assert!(outcome == expected, "crashing at {crash:?} of {writes} writes ended elsewhere");
        }
    }
}

#[test]
fn an_ingest_crashed_at_any_durable_write_resumes_to_the_same_memory() {
    crash_at_every_write(|stores, transport| stores.connect_and_ingest(transport), |_, _| {});
}

#[test]
fn a_sync_crashed_at_any_durable_write_resumes_to_the_same_memory() {
    crash_at_every_write(
        |stores, transport| {
            let memory_id = stores.ingested(transport);
            stores.engine(transport).sync(&memory_id, false).expect("sync starts");
            memory_id
        },
        |site, pages| {
            // Before the sync runs: edits (fetched by id, in batches) and removals.
            for id in pages.iter().step_by(3) {
                site.edit_page(id, None, Some("<p>Rotate the credential every week.</p>"));
            }
            for id in pages.iter().skip(1).step_by(40) {
                site.trash_page(id);
            }
        },
    );
}

#[test]
fn a_sync_whose_listing_breaks_off_removes_nothing() {
    let (site, pages) = site();
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    let engine = stores.engine(&transport);
    let before = stores.state(&memory_id);
    assert_eq!(before.documents as usize, PAGES + 1 + 3);

    for id in pages.iter().take(20) {
        site.trash_page(id);
    }
    // The second page of the listing never arrives.
    transport.fail_requests_containing(Some("cursor="));
    engine.sync(&memory_id, false).expect("sync starts");
    resume(&engine);
    let failed = stores.state(&memory_id);
    assert_eq!(failed.status, MemoryStatus::Error);
    assert!(failed.error.as_deref().unwrap_or_default().contains("connection reset"), "{:?}", failed.error);
    assert!(failed.index == before.index, "nothing left the index before the listing was complete");
    assert!(failed.records.keys().eq(before.records.keys()), "no record was removed");
    assert_eq!(failed.documents, before.documents);

    transport.fail_requests_containing(None);
    engine.sync(&memory_id, false).expect("sync starts again");
    resume(&engine);
    let synced = stores.state(&memory_id);
    assert_eq!(synced.status, MemoryStatus::Ingested, "{:?}", synced.error);
    assert_eq!(synced.documents, before.documents - 20);
    assert_eq!(synced.index.len(), before.index.len() - 20);
    for id in pages.iter().take(20) {
        assert!(!synced.index.contains_key(&(memory_id.clone(), id.clone())), "trashed page {id} is gone");
    }
}

#[test]
fn a_sync_that_would_remove_most_pages_stops_until_allowed() {
    let (site, pages) = site();
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    let engine = stores.engine(&transport);
    let before = stores.state(&memory_id);

    // Most pages vanish at once (a permission change looks like this).
    for id in pages.iter().take(PAGES * 2 / 3) {
        site.restrict_page(id, true);
    }
    engine.sync(&memory_id, false).expect("sync starts");
    resume(&engine);
    let stopped = stores.state(&memory_id);
    assert_eq!(stopped.status, MemoryStatus::Error);
    let error = stopped.error.clone().unwrap_or_default();
    assert!(error.contains(&format!("would remove {} of the", PAGES * 2 / 3)), "{error}");
    assert!(error.contains("allowing mass deletion"), "{error}");
    assert!(stopped.index == before.index, "the guard removed nothing from the index");
    assert!(stopped.records.keys().eq(before.records.keys()), "nor any record");

    engine.sync(&memory_id, true).expect("sync allowing mass deletion");
    resume(&engine);
    let synced = stores.state(&memory_id);
    assert_eq!(synced.status, MemoryStatus::Ingested, "{:?}", synced.error);
    assert_eq!(synced.documents as usize, PAGES - PAGES * 2 / 3 + 1 + 3);
}

#[test]
fn retrieve_answers_from_the_ingested_pages_with_citations() {
    let (site, _) = site();
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    let engine = stores.engine(&transport);

    let passages =
        engine.retrieve("rotate the key of service42", std::slice::from_ref(&memory_id), 5, 1, &[]).expect("retrieve");
    let first = passages.first().expect("an answer");
    assert_eq!(first.title, "Runbook 42");
    assert!(first.url.starts_with(&site.origin()), "{}", first.url);
    assert!(first.text.contains("service42"), "{}", first.text);
    let titles: Vec<&str> = passages.iter().map(|p| p.title.as_str()).collect();
    let distinct: std::collections::HashSet<&&str> = titles.iter().collect();
    assert_eq!(distinct.len(), titles.len(), "one passage per page: {titles:?}");
    assert_eq!(stores.secrets.names().len(), 1, "the token is kept as a secret");
    for bucket in stores.kv.bucket_names() {
        assert!(stores.kv.bucket(&bucket).values().all(|v| !contains(v, TOKEN)), "the token is not in {bucket}");
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn mentions_are_indexed_as_names_looked_up_in_bulk_once_per_connection() {
    let site = FakeConfluence::start().expect("the fake Confluence starts");
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    site.add_user("grace.hopper@example.com", "other-token", TokenKind::Classic);
    let ada = site.account_id(EMAIL).expect("Ada's account");
    let grace = site.account_id("grace.hopper@example.com").expect("Grace's account");
    let mention = |id: &str| format!("<ac:link><ri:user ri:account-id=\"{id}\" /></ac:link>");
    site.add_space_with_homepage(SPACE, "Engineering", "<p>Welcome.</p>");
    for i in 0..40 {
        let body = format!(
            "<p>Owner {} with {}; reviewed by {}.</p>",
            mention(&ada),
            mention(&grace),
            mention("557058:deleted-account")
        );
        site.add_page(SPACE, None, &format!("Design {i}"), &body);
    }
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);

    let index = stores.index.committed();
    let design = index.iter().find(|((_, _), chunks)| chunks[0].title == "Design 7").expect("a design page").1;
    assert_eq!(design[0].text, "Owner @Ada with @Grace Hopper; reviewed by @user.");
    let lookups = |site: &FakeConfluence| site.requests().iter().filter(|r| r.path.ends_with("/user/bulk")).count();
    assert_eq!(lookups(&site), 1, "one request named everyone the 41 pages mention");

    // Another memory of the same connection: the names are remembered.
    site.add_space_with_homepage("OPS", "Operations", &format!("<p>On call: {}.</p>", mention(&grace)));
    let engine = stores.engine(&transport);
    let connection = stores.memory(&memory_id).connection_id;
    engine.ingest(&connection, &["OPS".to_string()]).expect("ingest OPS");
    resume(&engine);
    assert_eq!(lookups(&site), 1, "no lookup for a name already known");
    let ops = stores.index.committed().into_iter().find(|(_, chunks)| chunks[0].title == "Operations").unwrap();
    assert_eq!(ops.1[0].text, "On call: @Grace Hopper.");
}

#[test]
fn a_failed_name_lookup_leaves_mentions_unnamed_and_the_ingest_whole() {
    let site = FakeConfluence::start().expect("the fake Confluence starts");
    site.add_user(EMAIL, TOKEN, TokenKind::Classic);
    let ada = site.account_id(EMAIL).expect("Ada's account");
    site.add_space_with_homepage(
        SPACE,
        "Engineering",
        &format!("<p>Ask <ac:link><ri:user ri:account-id=\"{ada}\" /></ac:link>.</p>"),
    );
    let transport = InProcess::new(&site);
    transport.fail_requests_containing(Some("/user/bulk"));
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    let outcome = stores.state(&memory_id);
    assert_eq!(outcome.status, MemoryStatus::Ingested, "{:?}", outcome.error);
    let home = outcome.index.values().next().expect("the homepage");
    assert_eq!(home[0].text, "Ask @user.");
}

#[test]
fn the_origins_are_described_and_a_classic_connection_uses_the_site_alone() {
    let (site, _) = site();
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let engine = stores.engine(&transport);
    let config = vec![("site".to_string(), site.origin())];
    let origins = engine.required_origins(&config).expect("a loopback site is described, not refused");
    let described: Vec<(&str, bool, bool)> =
        origins.iter().map(|o| (o.url.as_str(), o.conditional, o.insecure)).collect();
    assert_eq!(
        described,
        [
            (site.origin().as_str(), false, true),
            ("https://api.atlassian.com", true, false),
            ("https://api.media.atlassian.com", true, false)
        ]
    );
    assert!(origins[1].purpose.contains("scoped"), "{origins:?}");

    stores.connect_and_ingest(&transport);
    let status = engine.status().expect("status");
    assert_eq!(status.connections[0].origins(), [site.origin()]);
}

#[test]
fn a_token_the_host_can_no_longer_read_asks_for_a_reconnect() {
    let (site, _) = site();
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    stores.secrets.change_operator_key();
    let engine = stores.engine(&transport);
    let outcome = engine.sync(&memory_id, false).and_then(|_| engine.step(&memory_id));
    let message = match outcome {
        Err(error) => error.to_string(),
        Ok(report) => report.memory.error.unwrap_or_default(),
    };
    assert!(message.contains("connect the account again"), "{message}");
}

/// A file whose extraction stopped the component (a parser that traps) is tried once more,
/// then skipped as unreadable; it never stops the memory.
#[test]
fn a_file_that_stops_extraction_twice_is_skipped_not_retried_forever() {
    let (site, pages) = site();
    let file = site.add_attachment(&pages[0], "notes.txt", "text/plain", b"The heron sensor reads humidity.");
    let transport = InProcess::new(&site);
    let stores = Stores::default();
    let memory_id = stores.ingested(&transport);
    let engine = stores.engine(&transport);
    assert_eq!(engine.retrieve("heron sensor", &[], 5, 1, &[]).unwrap()[0].document_id, file);

    // The file changes, and a step dies while extracting it: its mark stays behind.
    site.replace_attachment(&file, b"The egret sensor reads pressure.");
    let bucket = docs_bucket(&memory_id);
    let mark = |reason: &str| {
        let record = serde_json::json!({
            "kind": "a", "title": "notes.txt", "parent": pages[0], "version": 2, "modified": "",
            "webui": "", "chunks": 0, "seen": 0, "skipped": reason,
        });
        stores.kv.set(&bucket, &file, record.to_string().as_bytes()).unwrap();
    };
    mark("attachments skipped: extraction interrupted");
    engine.sync(&memory_id, false).unwrap();
    resume(&engine);
    assert!(
        engine.retrieve("egret sensor", &[], 5, 1, &[]).unwrap().iter().any(|p| p.document_id == file),
        "tried once more after one interruption, and indexed"
    );

    // Interrupted on the second try too: the file is queued, and the mark a second death
    // leaves is found by the repeated step, which gives the file up.
    site.replace_attachment(&file, b"The ibis sensor reads wind.");
    engine.sync(&memory_id, false).unwrap();
    let stored = |stores: &Stores| -> Memory {
        serde_json::from_slice(&stores.kv.get(MAIN_BUCKET, &memory_key(&memory_id)).unwrap().unwrap()).unwrap()
    };
    while !stored(&stores).run.is_some_and(|run| run.pending.iter().any(|p| p == &format!("a:{file}"))) {
        engine.step(&memory_id).unwrap();
    }
    let given_up = serde_json::json!({
        "kind": "a", "title": "notes.txt", "parent": pages[0], "version": 3, "modified": "",
        "webui": "", "chunks": 0, "seen": 0, "skipped": "attachments skipped: unreadable",
    });
    stores.kv.set(&bucket, &file, given_up.to_string().as_bytes()).unwrap();
    resume(&engine);
    let memory = stored(&stores);
    assert_eq!(memory.status, MemoryStatus::Ingested);
    assert_eq!(memory.progress.skipped.get("attachments skipped: unreadable"), Some(&1), "{:?}", memory.progress);
    let answers = engine.retrieve("sensor reads", &[], 5, 1, &[]).unwrap();
    assert!(answers.iter().all(|p| p.document_id != file), "its earlier text goes with it: {answers:?}");
}
