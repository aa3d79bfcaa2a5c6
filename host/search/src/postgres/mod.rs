//! The shared search backend: one PostgreSQL database that several hosts use at once, each
//! connector instance in its own namespace.
//!
//! Ranked like [`TantivySearch`](crate::TantivySearch), not with `ts_rank`: the same
//! analyzer (so the same tokens, stems and folding), the same fields and boosts (`heading`
//! 1.5, `text` — the chunk's text and its title — 1), the same BM25 (k1 1.2, b 0.75,
//! tantivy's idf and its quantised field lengths) and the same common-words rule (a term in
//! more than a fifth of the chunks only ranks what the rarer terms find).
//!
//! Postings are packed ([`postings`]): a commit writes one `search_segments` row per memory,
//! field and term it adds, holding all its chunks' postings of that term. Rows are merged in
//! tiers, as Lucene merges segments: a row's level is how many times [`MERGE_FACTOR`] goes
//! into its size, and when a term has that many rows of one level in a memory they become
//! one row of the next level. A posting is rewritten once per level, not once per commit,
//! and a term has at most `MERGE_FACTOR - 1` rows per level. A query reads its
//! terms' rows in one statement and scores them in the host, with document frequencies and
//! field totals kept exactly beside them (`search_terms`, `search_totals`). A removed chunk's
//! postings stay in their rows until a merge drops them: its text is gone from
//! `search_chunks`, so no answer can name it.
//!
//! Writes are kept in the handle until [`SearchBackend::commit`], which applies them in one
//! transaction: a failed step's writes ([`SearchBackend::rollback`]) never reach the
//! database, and what a commit publishes is whole.

mod postings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use connector_store::backend::postgres::PgWorker;
use connector_store::backend::postgres::{Connection, describe, migrate};
use connector_store::{Fence, Fences};
use postgres::{Client, Transaction};
use tantivy::tokenizer::TextAnalyzer;

use postings::{Posting, encode};
use rustc_hash::FxHashMap;

use crate::{Chunk, Hit, SearchBackend, SearchConfig, SearchError, check_memory_id, question, split_common_terms};

/// The schema, one migration per version.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE search_chunks (
             id bigserial PRIMARY KEY,
             namespace text NOT NULL,
             memory_id text NOT NULL,
             document_id text NOT NULL,
             ordinal integer NOT NULL,
             title text NOT NULL,
             heading text NOT NULL,
             text text NOT NULL,
             heading_len integer NOT NULL,
             text_len integer NOT NULL
         );
         CREATE INDEX search_chunks_document ON search_chunks (namespace, memory_id, document_id);
         CREATE TABLE search_postings (
             namespace text NOT NULL,
             field smallint NOT NULL,
             term text NOT NULL,
             chunk_id bigint NOT NULL,
             memory_id text NOT NULL,
             tf real NOT NULL,
             len real NOT NULL
         );
         CREATE INDEX search_postings_term ON search_postings (namespace, field, term, chunk_id)
             INCLUDE (memory_id, tf, len);
         CREATE INDEX search_postings_chunk ON search_postings (chunk_id);
         CREATE TABLE search_terms (
             namespace text NOT NULL,
             field smallint NOT NULL,
             term text NOT NULL,
             df bigint NOT NULL,
             PRIMARY KEY (namespace, field, term)
         );
         CREATE TABLE search_totals (
             namespace text PRIMARY KEY,
             chunks bigint NOT NULL,
             heading_tokens bigint NOT NULL,
             text_tokens bigint NOT NULL
         );",
    ),
    (
        // Postings packed per commit, memory, field and term instead of one row each; the
        // rows of version 1 are packed by `pack_version_1_postings` right after.
        2,
        "CREATE TABLE search_segments (
             namespace text NOT NULL,
             field smallint NOT NULL,
             term text NOT NULL,
             memory_id text NOT NULL,
             id bigserial,
             level smallint NOT NULL,
             postings bytea NOT NULL,
             PRIMARY KEY (namespace, field, term, memory_id, id)
         );
         ALTER TABLE search_segments ALTER COLUMN postings SET STORAGE EXTERNAL;
         CREATE INDEX search_segments_memory ON search_segments (namespace, memory_id);",
    ),
];

/// Rows of one level a term may have in one memory before a commit merges them into one
/// of the next level (a level's rows hold `MERGE_FACTOR` times the postings of the level
/// below).
pub const MERGE_FACTOR: i64 = 8;

/// The level of a row of `postings` postings: how many times [`MERGE_FACTOR`] goes into it.
fn level(postings: usize) -> i16 {
    let (mut level, mut size) = (0, postings as i64);
    while size >= MERGE_FACTOR {
        size /= MERGE_FACTOR;
        level += 1;
    }
    level
}

/// The advisory lock the search migrations hold ("srchmigr").
const MIGRATION_LOCK: i64 = 0x7372_6368_6d69_6772;

/// BM25's term-frequency saturation, as tantivy's.
const K1: f32 = 1.2;
/// BM25's length normalisation, as tantivy's.
const B: f32 = 0.75;

const HEADING: i16 = 1;
const TEXT: i16 = 2;

/// A write waiting for the next commit (its chunks as given, then analysed at the commit).
enum Pending<C = Chunk> {
    Replace { memory_id: String, document_id: String, chunks: Vec<C> },
    Remove { memory_id: String, document_ids: Vec<String> },
    RemoveMemory { memory_id: String },
}

/// Connections the indexes of one database share in a process: an index per tenant must not
/// mean connections per tenant (a server allows a hundred or so).
const CONNECTIONS: usize = 8;

/// The connections of each database's indexes in this process, by URL, while any index of
/// it is open.
static SHARED: Mutex<BTreeMap<String, Weak<PgWorker>>> = Mutex::new(BTreeMap::new());

/// The connections the indexes of the database at `url` share, started (and the schema
/// brought up to date) by the first index of it to open.
fn shared_connections(url: &str) -> Result<Arc<PgWorker>, SearchError> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(worker) = shared.get(url).and_then(Weak::upgrade) {
        return Ok(worker);
    }
    // No statement may hold a host's call longer than a minute.
    let worker =
        PgWorker::start_with(url, CONNECTIONS, "SET statement_timeout = '60s'").map_err(SearchError::Database)?;
    worker.run(
        |connection| {
            migrate(connection, "search_schema", MIGRATION_LOCK, MIGRATIONS).map_err(SearchError::Database)?;
            pack_version_1_postings(connection)
        },
        SearchError::Database,
    )?;
    let worker = Arc::new(worker);
    shared.retain(|_, worker| worker.strong_count() > 0);
    shared.insert(url.to_string(), Arc::downgrade(&worker));
    Ok(worker)
}

/// A chunk ready to be written: its text and its analysed fields.
struct Prepared {
    chunk: Chunk,
    /// Its heading and its text fields ([`analyse_chunk`]).
    fields: [(i16, Analysed); 2],
}

/// One connector instance's search index in a PostgreSQL database.
pub struct PgSearch {
    namespace: String,
    worker: Arc<PgWorker>,
    pending: Mutex<Vec<Pending>>,
    analyzer: TextAnalyzer,
    config: SearchConfig,
    /// The fences of the store's locks ([`PgSearch::fenced_by`]).
    fences: Option<Fences>,
}

impl std::fmt::Debug for PgSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSearch").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

fn database(error: postgres::Error) -> SearchError {
    SearchError::Database(describe(&error))
}

/// A field's analysed terms with their frequencies, and its length in tokens.
struct Analysed {
    terms: BTreeMap<String, u32>,
    tokens: u32,
}

impl PgSearch {
    /// The search index of connector instance `namespace` in the database at `url`, with
    /// the default [`SearchConfig`]; brings the schema up to date.
    pub fn connect(url: &str, namespace: &str) -> Result<PgSearch, SearchError> {
        PgSearch::connect_with(url, namespace, SearchConfig::default())
    }

    /// Likewise, with `config`.
    pub fn connect_with(url: &str, namespace: &str, config: SearchConfig) -> Result<PgSearch, SearchError> {
        let worker = shared_connections(url)?;
        let analyzer = config.analyzer.build()?;
        let pending = Mutex::new(Vec::new());
        Ok(PgSearch { namespace: namespace.to_string(), worker, pending, analyzer, config, fences: None })
    }

    /// Fences this index's commits like the store's key-value writes
    /// ([`connector_store::Store::lock_writes`]): while a lock of the store guards the
    /// instance, a commit fails once that lock has passed to another holder, and writes
    /// nothing.
    pub fn fenced_by(self, fences: Fences) -> PgSearch {
        PgSearch { fences: Some(fences), ..self }
    }

    /// Runs `work` on a connection of this index (see [`PgWorker`]).
    fn with_client<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        self.worker.run(work, SearchError::Database)
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Analyses a field's values as the index does: its terms with their frequencies, and its
/// length.
fn analyse(analyzer: &TextAnalyzer, values: &[&str]) -> Analysed {
    let mut analyzer = analyzer.clone();
    let mut terms = BTreeMap::new();
    let mut tokens = 0u32;
    for value in values {
        let mut stream = analyzer.token_stream(value);
        while let Some(token) = stream.next() {
            *terms.entry(token.text.clone()).or_insert(0) += 1;
            tokens += 1;
        }
    }
    Analysed { terms, tokens }
}

/// The analysed fields of a chunk, as a commit indexes them and a removal takes them out
/// again: the heading, and the text with the title (as tantivy's backend indexes them).
fn analyse_chunk(analyzer: &TextAnalyzer, title: &str, heading: &str, text: &str) -> [(i16, Analysed); 2] {
    [(HEADING, analyse(analyzer, &[heading])), (TEXT, analyse(analyzer, &[text, title]))]
}

/// Packs the postings rows of schema version 1 (one row per posting) into segments and drops
/// their table: once, in one transaction under the migration lock, streamed (a large index
/// does not have to fit in memory).
fn pack_version_1_postings(client: &mut Client) -> Result<(), SearchError> {
    let mut tx = client.transaction().map_err(database)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(database)?;
    let present: bool =
        tx.query_one("SELECT to_regclass('search_postings') IS NOT NULL", &[]).map_err(database)?.get(0);
    if !present {
        return Ok(());
    }
    let portal = tx
        .bind(
            "SELECT namespace, memory_id, field, term, chunk_id, tf, len FROM search_postings
             ORDER BY namespace, memory_id, field, term, chunk_id",
            &[],
        )
        .map_err(database)?;
    let mut batch = SegmentRows::default();
    let mut current: Option<(String, String, i16, String)> = None;
    let mut postings: Vec<Posting> = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 10_000).map_err(database)?;
        let done = rows.is_empty();
        for row in &rows {
            let key: (String, String, i16, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if current.as_ref() != Some(&key) {
                if let Some((ns, memory, field, term)) = current.replace(key) {
                    batch.push(ns, memory, field, term, postings.len(), encode(&postings));
                    postings.clear();
                }
            }
            let (tf, len): (f32, f32) = (row.get(5), row.get(6));
            postings.push(Posting::new(row.get(4), tf as u32, len as u32));
        }
        if done || batch.len() >= 5_000 {
            if done && let Some((ns, memory, field, term)) = current.take() {
                batch.push(ns, memory, field, term, postings.len(), encode(&postings));
            }
            batch.insert(&mut tx)?;
        }
        if done {
            break;
        }
    }
    drop(portal); // closes it: a table an open portal reads cannot be dropped
    tx.batch_execute("DROP TABLE search_postings").map_err(database)?;
    tx.commit().map_err(database)
}

/// Segment rows to insert, one vector per column.
#[derive(Default)]
struct SegmentRows {
    namespace: Vec<String>,
    memory: Vec<String>,
    field: Vec<i16>,
    term: Vec<String>,
    level: Vec<i16>,
    postings: Vec<Vec<u8>>,
}

impl SegmentRows {
    /// A row of `postings` (packed from `count` postings).
    fn push(&mut self, namespace: String, memory: String, field: i16, term: String, count: usize, postings: Vec<u8>) {
        self.namespace.push(namespace);
        self.memory.push(memory);
        self.field.push(field);
        self.term.push(term);
        self.level.push(level(count));
        self.postings.push(postings);
    }

    fn len(&self) -> usize {
        self.term.len()
    }

    /// Inserts the rows (and forgets them).
    fn insert(&mut self, tx: &mut Transaction<'_>) -> Result<(), SearchError> {
        if self.term.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO search_segments (namespace, memory_id, field, term, level, postings)
             SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::smallint[], $6::bytea[])",
            &[&self.namespace, &self.memory, &self.field, &self.term, &self.level, &self.postings],
        )
        .map_err(database)?;
        *self = SegmentRows::default();
        Ok(())
    }
}

/// The columns of the chunks a commit inserts, one vector per column.
#[derive(Default)]
struct ChunkColumns<'a> {
    memory: Vec<&'a str>,
    document: Vec<&'a str>,
    ordinal: Vec<i32>,
    title: Vec<&'a str>,
    heading: Vec<&'a str>,
    text: Vec<&'a str>,
    heading_len: Vec<i32>,
    text_len: Vec<i32>,
}

/// What a commit leaves of one document: new chunks, or none.
enum Outcome<'a> {
    Replace(&'a [Prepared]),
    Remove,
}

/// Applies a commit's writes in one transaction, in a few statements whatever its size:
/// the last write to each document wins, the old chunks of every touched document (and of
/// removed memories) go in one delete, the new ones come in one insert of chunks and one of
/// packed postings (a row per memory, field and term); document frequencies and totals
/// follow, and the terms that now have too many rows in a memory are merged.
fn write_changes(
    client: &mut Client,
    ns: &str,
    changes: &[Pending<Prepared>],
    analyzer: &TextAnalyzer,
    fence: Option<&Fence>,
) -> Result<(), SearchError> {
    let mut removed_memories: Vec<String> = Vec::new();
    let mut order: Vec<(String, String)> = Vec::new();
    let mut outcomes: HashMap<(String, String), Outcome<'_>> = HashMap::new();
    for write in changes {
        match write {
            Pending::RemoveMemory { memory_id } => {
                removed_memories.push(memory_id.clone());
                outcomes.retain(|(memory, _), _| memory != memory_id);
                order.retain(|(memory, _)| memory != memory_id);
            }
            Pending::Remove { memory_id, document_ids } => {
                for document_id in document_ids {
                    let key = (memory_id.clone(), document_id.clone());
                    if outcomes.insert(key.clone(), Outcome::Remove).is_none() {
                        order.push(key);
                    }
                }
            }
            Pending::Replace { memory_id, document_id, chunks } => {
                let key = (memory_id.clone(), document_id.clone());
                if outcomes.insert(key.clone(), Outcome::Replace(chunks)).is_none() {
                    order.push(key);
                }
            }
        }
    }
    let mut tx = client.transaction().map_err(database)?;
    if let Some(fence) = fence {
        connector_store::fence::check(&mut tx, fence).map_err(|e| SearchError::Database(e.to_string()))?;
    }
    let mut df: BTreeMap<(i16, String), i64> = BTreeMap::new();
    let mut totals = [0i64; 3];
    // The chunks that go: those of removed memories and of every touched document. Their
    // terms leave the document frequencies (analysed again from their text); their postings
    // stay in segments until a merge, naming chunks that no longer exist.
    let (memories, documents): (Vec<&str>, Vec<&str>) = order.iter().map(|(m, d)| (m.as_str(), d.as_str())).unzip();
    // Two statements, each through the chunks' index (one with an OR between them would
    // read the whole table).
    let mut gone = tx
        .query(
            "DELETE FROM search_chunks c USING unnest($2::text[], $3::text[]) AS d(memory, document)
             WHERE c.namespace = $1 AND c.memory_id = d.memory AND c.document_id = d.document
             RETURNING c.title, c.heading, c.text, c.heading_len, c.text_len",
            &[&ns, &memories, &documents],
        )
        .map_err(database)?;
    if !removed_memories.is_empty() {
        gone.extend(
            tx.query(
                "DELETE FROM search_chunks WHERE namespace = $1 AND memory_id = ANY($2)
                 RETURNING title, heading, text, heading_len, text_len",
                &[&ns, &removed_memories],
            )
            .map_err(database)?,
        );
    }
    for row in &gone {
        totals[0] -= 1;
        totals[1] -= i64::from(row.get::<_, i32>(3));
        totals[2] -= i64::from(row.get::<_, i32>(4));
        for (field, analysed) in analyse_chunk(analyzer, row.get(0), row.get(1), row.get(2)) {
            for term in analysed.terms.into_keys() {
                *df.entry((field, term)).or_insert(0) -= 1;
            }
        }
    }
    if !removed_memories.is_empty() {
        tx.execute(
            "DELETE FROM search_segments WHERE namespace = $1 AND memory_id = ANY($2)",
            &[&ns, &removed_memories],
        )
        .map_err(database)?;
    }
    // The chunks that come, with ids drawn from the sequence in one go.
    let new: Vec<(&str, &str, &Prepared)> = order
        .iter()
        .filter_map(|key| match outcomes.get(key) {
            Some(Outcome::Replace(chunks)) => Some((key, *chunks)),
            _ => None,
        })
        .flat_map(|((memory, document), chunks)| chunks.iter().map(move |c| (memory.as_str(), document.as_str(), c)))
        .collect();
    // Each new chunk's postings by memory, field and term (a chunk holds a term once per
    // field, so a list's length is what the term adds to the document frequency).
    let mut segments: FxHashMap<(&str, i16, &str), Vec<Posting>> = FxHashMap::default();
    if !new.is_empty() {
        let ids: Vec<i64> = tx
            .query(
                "SELECT nextval('search_chunks_id_seq') FROM generate_series(1::bigint, $1::bigint)",
                &[&(new.len() as i64)],
            )
            .map_err(database)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut rows = ChunkColumns::default();
        for (&id, (memory, document, Prepared { chunk, fields })) in ids.iter().zip(&new) {
            let [(_, heading), (_, text)] = fields;
            rows.memory.push(memory);
            rows.document.push(document);
            rows.ordinal.push(i32::try_from(chunk.ordinal).unwrap_or(i32::MAX));
            rows.title.push(&chunk.title);
            rows.heading.push(&chunk.heading);
            rows.text.push(&chunk.text);
            rows.heading_len.push(heading.tokens as i32);
            rows.text_len.push(text.tokens as i32);
            totals[0] += 1;
            totals[1] += i64::from(heading.tokens);
            totals[2] += i64::from(text.tokens);
            for (field, analysed) in fields {
                for (term, tf) in &analysed.terms {
                    segments.entry((memory, *field, term.as_str())).or_default().push(Posting::new(
                        id,
                        *tf,
                        analysed.tokens,
                    ));
                }
            }
        }
        tx.execute(
            "INSERT INTO search_chunks
                 (id, namespace, memory_id, document_id, ordinal, title, heading, text, heading_len, text_len)
             SELECT id, $1, m, d, o, ti, h, te, hl, tl
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::text[],
                         $9::integer[], $10::integer[]) AS c(id, m, d, o, ti, h, te, hl, tl)",
            &[
                &ns,
                &ids,
                &rows.memory,
                &rows.document,
                &rows.ordinal,
                &rows.title,
                &rows.heading,
                &rows.text,
                &rows.heading_len,
                &rows.text_len,
            ],
        )
        .map_err(database)?;
        let mut rows = SegmentRows::default();
        for ((memory, field, term), mut postings) in std::mem::take(&mut segments) {
            *df.entry((field, term.to_string())).or_insert(0) += postings.len() as i64;
            postings.sort_by_key(|posting| posting.chunk);
            rows.push(ns.to_string(), memory.to_string(), field, term.to_string(), postings.len(), encode(&postings));
        }
        let touched = (rows.memory.clone(), rows.field.clone(), rows.term.clone());
        rows.insert(&mut tx)?;
        merge_segments(&mut tx, ns, touched)?;
    }
    // In key order, so that hosts committing at once take the rows' locks in one order.
    let (mut fields, mut terms, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for ((field, term), n) in df.into_iter().filter(|(_, n)| *n != 0) {
        fields.push(field);
        terms.push(term);
        counts.push(n);
    }
    tx.execute(
        "INSERT INTO search_terms (namespace, field, term, df)
         SELECT $1, f, t, n FROM unnest($2::smallint[], $3::text[], $4::bigint[]) AS d(f, t, n)
         ON CONFLICT (namespace, field, term) DO UPDATE SET df = search_terms.df + EXCLUDED.df",
        &[&ns, &fields, &terms, &counts],
    )
    .map_err(database)?;
    tx.execute(
        "INSERT INTO search_totals (namespace, chunks, heading_tokens, text_tokens) VALUES ($1, $2, $3, $4)
         ON CONFLICT (namespace) DO UPDATE SET chunks = search_totals.chunks + EXCLUDED.chunks,
             heading_tokens = search_totals.heading_tokens + EXCLUDED.heading_tokens,
             text_tokens = search_totals.text_tokens + EXCLUDED.text_tokens",
        &[&ns, &totals[0], &totals[1], &totals[2]],
    )
    .map_err(database)?;
    tx.commit().map_err(database)
}

/// Merges, for each of the `touched` (memory, field, term), every level that has
/// [`MERGE_FACTOR`] rows into one row of the next level (which may fill that level in turn),
/// dropping the postings of chunks that are gone.
fn merge_segments(
    tx: &mut Transaction<'_>,
    ns: &str,
    (mut memories, mut fields, mut terms): (Vec<String>, Vec<i16>, Vec<String>),
) -> Result<(), SearchError> {
    while !terms.is_empty() {
        let crowded = tx
            .query(
                "SELECT s.memory_id, s.field, s.term, s.level FROM search_segments s
                 JOIN unnest($2::text[], $3::smallint[], $4::text[]) AS t(m, f, te)
                     ON s.memory_id = t.m AND s.field = t.f AND s.term = t.te
                 WHERE s.namespace = $1 GROUP BY 1, 2, 3, 4 HAVING count(*) >= $5",
                &[&ns, &memories, &fields, &terms, &MERGE_FACTOR],
            )
            .map_err(database)?;
        if crowded.is_empty() {
            return Ok(());
        }
        let levels: Vec<i16> = crowded.iter().map(|row| row.get(3)).collect();
        (memories, fields, terms) = (Vec::new(), Vec::new(), Vec::new());
        for row in &crowded {
            memories.push(row.get(0));
            fields.push(row.get(1));
            terms.push(row.get(2));
        }
        let parts = tx
            .query(
                "DELETE FROM search_segments s
                 USING unnest($2::text[], $3::smallint[], $4::text[], $5::smallint[]) AS t(m, f, te, l)
                 WHERE s.namespace = $1 AND s.memory_id = t.m AND s.field = t.f AND s.term = t.te AND s.level = t.l
                 RETURNING s.memory_id, s.field, s.term, s.postings",
                &[&ns, &memories, &fields, &terms, &levels],
            )
            .map_err(database)?;
        let mut grouped: BTreeMap<(String, i16, String), Vec<Vec<u8>>> = BTreeMap::new();
        let mut chunks: Vec<i64> = Vec::new();
        for row in parts {
            let postings: Vec<u8> = row.get(3);
            postings::decode(&postings, |posting| chunks.push(posting.chunk))?;
            grouped.entry((row.get(0), row.get(1), row.get(2))).or_default().push(postings);
        }
        chunks.sort_unstable();
        chunks.dedup();
        let live: HashSet<i64> = tx
            .query("SELECT id FROM search_chunks WHERE id = ANY($1)", &[&chunks])
            .map_err(database)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut rows = SegmentRows::default();
        for ((memory, field, term), parts) in grouped {
            let merged = postings::merge(&parts, |chunk| live.contains(&chunk))?;
            if !merged.is_empty() {
                rows.push(ns.to_string(), memory, field, term, merged.len(), encode(&merged));
            }
        }
        // The merged rows may fill their level: look again at their terms.
        (memories, fields, terms) = (rows.memory.clone(), rows.field.clone(), rows.term.clone());
        rows.insert(tx)?;
    }
    Ok(())
}

/// The index's totals and the document frequencies of some terms, with the packed
/// postings of those terms (in the memories asked for).
struct Found {
    totals: Option<(i64, i64, i64)>,
    df: HashMap<(i16, String), i64>,
    segments: Vec<(i16, String, Vec<u8>)>,
}

/// The texts of chunks, by id.
const TEXTS: &str = "SELECT id, memory_id, document_id, ordinal, title, heading, text FROM search_chunks
     WHERE id = ANY($1)";

/// Ranks chunks by their scores, best first (ties by id); the first `at_least` are in order,
/// the rest after them unordered (the answer seldom needs them: removed chunks that still
/// have postings are skipped).
fn rank(mut ranked: Vec<(i64, f32)>, at_least: usize) -> Vec<(i64, f32)> {
    if ranked.len() > at_least && at_least > 0 {
        ranked.select_nth_unstable_by(at_least - 1, by_score);
        ranked[..at_least].sort_by(by_score);
    } else {
        ranked.sort_by(by_score);
    }
    ranked
}

/// The scores of `found` (chunk, part of its score) added up per chunk, in chunk order:
/// in an array over the chunks' id range when that is dense (a namespace's ids mostly
/// are), by sorting otherwise.
fn sum_by_chunk(mut found: Vec<(i64, f32)>) -> Vec<(i64, f32)> {
    let (Some(low), Some(high)) = (found.iter().map(|f| f.0).min(), found.iter().map(|f| f.0).max()) else {
        return Vec::new();
    };
    let span = (high - low) as usize + 1;
    if span <= found.len() * 8 + 4096 {
        let mut dense = vec![0f32; span];
        for (chunk, score) in found {
            dense[(chunk - low) as usize] += score;
        }
        // Every part of a score is positive: a chunk no term found stays at zero.
        return dense.into_iter().enumerate().filter(|(_, s)| *s > 0.0).map(|(i, s)| (low + i as i64, s)).collect();
    }
    found.sort_unstable_by_key(|f| f.0);
    let mut summed: Vec<(i64, f32)> = Vec::with_capacity(found.len());
    for (chunk, score) in found {
        match summed.last_mut() {
            Some(last) if last.0 == chunk => last.1 += score,
            _ => summed.push((chunk, score)),
        }
    }
    summed
}

/// Best score first, ties by chunk id.
fn by_score(a: &(i64, f32), b: &(i64, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl SearchBackend for PgSearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: &[Chunk]) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        self.pending().push(Pending::Replace {
            memory_id: memory_id.to_string(),
            document_id: document_id.to_string(),
            chunks: chunks.to_vec(),
        });
        Ok(())
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        self.pending().push(Pending::Remove { memory_id: memory_id.to_string(), document_ids: document_ids.to_vec() });
        Ok(())
    }

    fn remove_memory(&self, memory_id: &str) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        self.pending().push(Pending::RemoveMemory { memory_id: memory_id.to_string() });
        Ok(())
    }

    fn commit(&self) -> Result<(), SearchError> {
        let mut pending = self.pending();
        if pending.is_empty() {
            return Ok(());
        }
        // Analysed here; written by the connection's thread in one transaction.
        let changes: Vec<Pending<Prepared>> = pending
            .iter()
            .map(|write| match write {
                Pending::Replace { memory_id, document_id, chunks } => Pending::Replace {
                    memory_id: memory_id.clone(),
                    document_id: document_id.clone(),
                    chunks: chunks
                        .iter()
                        .map(|chunk| Prepared {
                            fields: analyse_chunk(&self.analyzer, &chunk.title, &chunk.heading, &chunk.text),
                            chunk: chunk.clone(),
                        })
                        .collect(),
                },
                Pending::Remove { memory_id, document_ids } => {
                    Pending::Remove { memory_id: memory_id.clone(), document_ids: document_ids.clone() }
                }
                Pending::RemoveMemory { memory_id } => Pending::RemoveMemory { memory_id: memory_id.clone() },
            })
            .collect();
        let (ns, analyzer) = (self.namespace.clone(), self.analyzer.clone());
        let fence = self.fences.as_ref().and_then(|fences| fences.get(&ns));
        self.with_client(move |client| write_changes(client, &ns, &changes, &analyzer, fence.as_ref()))?;
        pending.clear();
        Ok(())
    }

    fn rollback(&self) -> Result<(), SearchError> {
        self.pending().clear();
        Ok(())
    }

    fn query(&self, text: &str, memory_ids: &[String], limit: usize) -> Result<Vec<Hit>, SearchError> {
        let Some((limit, terms)) = question(&self.analyzer, &self.config, text, limit) else {
            return Ok(Vec::new());
        };
        let ns = self.namespace.clone();
        let names: Vec<String> = terms.iter().map(|(t, _)| t.clone()).collect();
        let memories: Option<Vec<String>> = (!memory_ids.is_empty()).then(|| memory_ids.to_vec());
        // The index's statistics and the terms' packed postings.
        let found = self.with_client(move |client| {
            let statement = client
                .prepared("SELECT chunks, heading_tokens, text_tokens FROM search_totals WHERE namespace = $1")
                .map_err(database)?;
            let totals = client
                .query_opt(&statement, &[&ns])
                .map_err(database)?
                .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)));
            let statement = client
                .prepared("SELECT field, term, df FROM search_terms WHERE namespace = $1 AND term = ANY($2) AND df > 0")
                .map_err(database)?;
            let df: HashMap<(i16, String), i64> = client
                .query(&statement, &[&ns, &names])
                .map_err(database)?
                .into_iter()
                .map(|row| ((row.get(0), row.get(1)), row.get(2)))
                .collect();
            let statement = client
                .prepared(
                    "SELECT field, term, postings FROM search_segments
                     WHERE namespace = $1 AND term = ANY($2) AND ($3::text[] IS NULL OR memory_id = ANY($3))",
                )
                .map_err(database)?;
            let segments = client
                .query(&statement, &[&ns, &names, &memories])
                .map_err(database)?
                .into_iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect();
            Ok(Found { totals, df, segments })
        })?;
        let Found { totals: Some((chunks, heading_tokens, text_tokens)), df, segments } = found else {
            return Ok(Vec::new());
        };
        if chunks <= 0 {
            return Ok(Vec::new());
        }
        let (rarer, common) = split_common_terms(&self.config, terms, chunks as u64, |term| {
            Ok::<u64, SearchError>(df.get(&(TEXT, term.to_string())).map_or(0, |&n| n.max(0) as u64))
        })?;
        let idf = |df: i64| (1.0 + (chunks as f32 - df as f32 + 0.5) / (df as f32 + 0.5)).ln();
        let averages = [heading_tokens as f32 / chunks as f32, text_tokens as f32 / chunks as f32];
        // Each term's weight in each field it is found in (BM25's idf, its boost and its
        // weight in the question), and whether it is one of the rarer terms.
        let mut weights: HashMap<(i16, &str), (f32, bool)> = HashMap::new();
        for (terms, rare) in [(&rarer, true), (&common, false)] {
            for (term, weight) in terms.iter() {
                for (field, boost) in [(HEADING, self.config.heading_boost), (TEXT, self.config.text_boost)] {
                    if let Some(&n) = df.get(&(field, term.clone()))
                        && boost > 0.0
                    {
                        weights.insert((field, term.as_str()), (boost * weight * idf(n) * (1.0 + K1), rare));
                    }
                }
            }
        }
        // The rarer terms find the chunks; the common ones only add to what those found.
        let term_of = |(field, term, _): &(i16, String, Vec<u8>)| {
            let (weight, rare) = *weights.get(&(*field, term.as_str()))?;
            Some((weight, rare, if *field == HEADING { averages[0] } else { averages[1] }))
        };
        let bm25 = |weight: f32, average: f32, posting: Posting| {
            let tf = posting.tf as f32;
            weight * tf / (tf + K1 * (1.0 - B + B * posting.len() / average))
        };
        let mut found: Vec<(i64, f32)> = Vec::new();
        for segment in &segments {
            let Some((weight, true, average)) = term_of(segment) else { continue };
            postings::decode(&segment.2, |posting| found.push((posting.chunk, bm25(weight, average, posting))))?;
        }
        let mut scores = sum_by_chunk(found);
        for segment in &segments {
            let Some((weight, false, average)) = term_of(segment) else { continue };
            // Both in chunk order: one walk adds each posting to its chunk, if found.
            let mut at = 0;
            postings::decode(&segment.2, |posting| {
                while at < scores.len() && scores[at].0 < posting.chunk {
                    at += 1;
                }
                if let Some((chunk, score)) = scores.get_mut(at)
                    && *chunk == posting.chunk
                {
                    *score += bm25(weight, average, posting);
                }
            })?;
        }
        let head = limit + limit / 2 + 8;
        let mut ranked = rank(scores, head);
        let mut hits = Vec::with_capacity(limit);
        let mut next = 0;
        while hits.len() < limit && next < ranked.len() {
            if next == head {
                ranked[head..].sort_by(by_score);
            }
            let end = ranked.len().min(next + limit - hits.len() + 8);
            let end = if next < head { end.min(head) } else { end };
            hits.extend(self.texts(&ranked[next..end])?);
            next = end;
        }
        hits.truncate(limit);
        Ok(hits)
    }
    fn count(&self, memory_id: &str) -> Result<u64, SearchError> {
        let (ns, memory_id) = (self.namespace.clone(), memory_id.to_string());
        let row = self.with_client(move |client| {
            client
                .query_one(
                    "SELECT count(*) FROM search_chunks WHERE namespace = $1 AND memory_id = $2",
                    &[&ns, &memory_id],
                )
                .map_err(database)
        })?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn export(&self) -> Result<Vec<Hit>, SearchError> {
        let ns = self.namespace.clone();
        let rows = self.with_client(move |client| {
            client
                .query(
                    "SELECT memory_id, document_id, ordinal, title, heading, text FROM search_chunks
                     WHERE namespace = $1 ORDER BY memory_id COLLATE \"C\", document_id COLLATE \"C\", ordinal",
                    &[&ns],
                )
                .map_err(database)
        })?;
        Ok(rows.into_iter().map(hit).collect())
    }

    fn document(&self, memory_id: &str, document_id: &str) -> Result<Vec<Hit>, SearchError> {
        let (ns, memory_id, document_id) = (self.namespace.clone(), memory_id.to_string(), document_id.to_string());
        let rows = self.with_client(move |client| {
            client
                .query(
                    "SELECT memory_id, document_id, ordinal, title, heading, text FROM search_chunks
                     WHERE namespace = $1 AND memory_id = $2 AND document_id = $3 ORDER BY ordinal",
                    &[&ns, &memory_id, &document_id],
                )
                .map_err(database)
        })?;
        Ok(rows.into_iter().map(hit).collect())
    }
}

impl PgSearch {
    /// The hits of the ranked chunks `ranked` that still exist, in its order.
    fn texts(&self, ranked: &[(i64, f32)]) -> Result<Vec<Hit>, SearchError> {
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let mut chunks: HashMap<i64, postgres::Row> = self.with_client(move |client| {
            let texts = client.prepared(TEXTS).map_err(database)?;
            Ok(client
                .query(&texts, &[&ids])
                .map_err(database)?
                .into_iter()
                .map(|row| (row.get::<_, i64>(0), row))
                .collect())
        })?;
        Ok(ranked
            .iter()
            .filter_map(|(id, score)| {
                let row = chunks.remove(id)?;
                Some(Hit {
                    memory_id: row.get(1),
                    document_id: row.get(2),
                    ordinal: u32::try_from(row.get::<_, i32>(3)).unwrap_or_default(),
                    title: row.get(4),
                    heading: row.get(5),
                    text: row.get(6),
                    score: *score,
                })
            })
            .collect())
    }
}

fn hit(row: postgres::Row) -> Hit {
    Hit {
        memory_id: row.get(0),
        document_id: row.get(1),
        ordinal: u32::try_from(row.get::<_, i32>(2)).unwrap_or_default(),
        title: row.get(3),
        heading: row.get(4),
        text: row.get(5),
        score: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(title: &str, heading: &str, text: &str) -> Chunk {
        Chunk { ordinal: 0, title: title.into(), heading: heading.into(), text: text.into() }
    }

    #[test]
    fn an_index_of_schema_version_1_is_packed_and_answers_the_same() {
        let server =
            pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
        let pages = [
            ("Failover", "Steps", "promote the replica and repoint the pgbouncer pool"),
            ("Backups", "Nightly", "the walrus archive keeps thirty days of the replica"),
            ("Lunch", "Today", "soup and bread"),
        ];
        // An index as version 1 wrote it: one row per posting.
        let old = server.database().unwrap();
        let analyzer = SearchConfig::default().analyzer.build().unwrap();
        let url = old.clone();
        std::thread::spawn(move || {
            let mut client = Client::connect(&url, postgres::NoTls).unwrap();
            migrate(&mut client, "search_schema", MIGRATION_LOCK, &MIGRATIONS[..1]).unwrap();
            let mut totals = [0i64; 3];
            for (n, (title, heading, text)) in pages.iter().enumerate() {
                let fields = analyse_chunk(&analyzer, title, heading, text);
                let id: i64 = client
                    .query_one(
                        "INSERT INTO search_chunks (namespace, memory_id, document_id, ordinal, title, heading, text,
                             heading_len, text_len) VALUES ('ns', 'mem-1', $1, 0, $2, $3, $4, $5, $6) RETURNING id",
                        &[
                            &n.to_string(),
                            title,
                            heading,
                            text,
                            &(fields[0].1.tokens as i32),
                            &(fields[1].1.tokens as i32),
                        ],
                    )
                    .unwrap()
                    .get(0);
                totals[0] += 1;
                totals[1] += i64::from(fields[0].1.tokens);
                totals[2] += i64::from(fields[1].1.tokens);
                for (field, analysed) in &fields {
                    let len = Posting::new(id, 1, analysed.tokens).len();
                    for (term, tf) in &analysed.terms {
                        client
                            .execute(
                                "INSERT INTO search_postings VALUES ('ns', $1, $2, $3, 'mem-1', $4, $5)",
                                &[field, term, &id, &(*tf as f32), &len],
                            )
                            .unwrap();
                        client
                            .execute(
                                "INSERT INTO search_terms VALUES ('ns', $1, $2, 1)
                                 ON CONFLICT (namespace, field, term) DO UPDATE SET df = search_terms.df + 1",
                                &[field, term],
                            )
                            .unwrap();
                    }
                }
            }
            client
                .execute("INSERT INTO search_totals VALUES ('ns', $1, $2, $3)", &[&totals[0], &totals[1], &totals[2]])
                .unwrap();
        })
        .join()
        .unwrap();

        let packed = PgSearch::connect(&old, "ns").unwrap();
        let fresh = PgSearch::connect(&server.database().unwrap(), "ns").unwrap();
        for (n, (title, heading, text)) in pages.iter().enumerate() {
            fresh.replace_document("mem-1", &n.to_string(), &[chunk(title, heading, text)]).unwrap();
        }
        fresh.commit().unwrap();
        for question in ["replica pool", "walrus", "soup of the day", "thirty days"] {
            let answer = |index: &PgSearch| -> Vec<(String, String)> {
                index
                    .query(question, &[], 10)
                    .unwrap()
                    .into_iter()
                    .map(|hit| (hit.document_id, format!("{:.4}", hit.score)))
                    .collect()
            };
            assert!(!answer(&packed).is_empty(), "{question}");
            assert_eq!(answer(&packed), answer(&fresh), "{question}");
        }
        let url = old.clone();
        let left = std::thread::spawn(move || {
            let mut client = Client::connect(&url, postgres::NoTls).unwrap();
            client.query_one("SELECT to_regclass('search_postings') IS NULL", &[]).unwrap().get::<_, bool>(0)
        });
        assert!(left.join().unwrap(), "the version 1 table is gone");
    }

    #[test]
    fn many_commits_stay_few_rows_and_merges_drop_removed_chunks() {
        let server =
            pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
        let url = server.database().unwrap();
        let index = PgSearch::connect(&url, "ns").unwrap();
        // Ten documents, each replaced four times, one commit per write.
        for round in 0..4 {
            for document in 0..10 {
                let text = format!("kettle descaling version {round} of note {document}");
                index.replace_document("mem-1", &document.to_string(), &[chunk("Notes", "Kitchen", &text)]).unwrap();
                index.commit().unwrap();
            }
        }
        let hits = index.query("kettle", &[], 50).unwrap();
        assert_eq!(hits.len(), 10, "one chunk per document: the replaced ones are gone");
        assert!(hits.iter().all(|hit| hit.text.contains("version 3")), "the last version of each");
        assert_eq!(index.query("kettle", &[], 3).unwrap().len(), 3);
        index.remove_documents("mem-1", &["0".into(), "1".into()]).unwrap();
        index.commit().unwrap();
        assert_eq!(index.query("kettle", &[], 50).unwrap().len(), 8);

        // One document replaced MERGE_FACTOR times: the merge of its rows keeps only the
        // chunk that still exists.
        let other = PgSearch::connect(&url, "ns2").unwrap();
        for version in 0..MERGE_FACTOR {
            let text = format!("samovar version {version}");
            other.replace_document("mem-1", "x", &[chunk("Tea", "Kitchen", &text)]).unwrap();
            other.commit().unwrap();
        }
        assert_eq!(other.query("samovar", &[], 10).unwrap().len(), 1);
        let rows = |url: String, ns: &'static str, term: &'static str| {
            std::thread::spawn(move || {
                let mut client = Client::connect(&url, postgres::NoTls).unwrap();
                client
                    .query(
                        "SELECT postings FROM search_segments WHERE namespace = $1 AND field = $2 AND term = $3",
                        &[&ns, &TEXT, &term],
                    )
                    .unwrap()
                    .iter()
                    .map(|row| row.get::<_, Vec<u8>>(0))
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap()
        };
        let merged = rows(url.clone(), "ns2", "samovar");
        assert_eq!(merged.len(), 1, "merged into one row");
        let mut postings = 0;
        postings::decode(&merged[0], |_| postings += 1).unwrap();
        assert_eq!(postings, 1, "the replaced versions' postings were dropped");
        // 41 commits of one term: at most MERGE_FACTOR - 1 rows per level, two levels.
        let kettle = rows(url, "ns", "kettl");
        assert!(kettle.len() as i64 <= 2 * (MERGE_FACTOR - 1), "{} rows", kettle.len());
    }

    #[test]
    fn scores_add_up_per_chunk_in_chunk_order_dense_or_sparse() {
        let dense = sum_by_chunk(vec![(105, 1.0), (103, 2.0), (105, 0.5)]);
        assert_eq!(dense, [(103, 2.0), (105, 1.5)]);
        let sparse = sum_by_chunk(vec![(1 << 40, 1.0), (7, 2.0), (1 << 40, 0.25)]);
        assert_eq!(sparse, [(7, 2.0), ((1 << 40), 1.25)]);
        assert!(sum_by_chunk(Vec::new()).is_empty());
    }

    #[test]
    fn the_indexes_of_many_tenants_share_a_few_connections() {
        let server =
            pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
        let url = server.database().unwrap();
        let indexes: Vec<PgSearch> =
            (0..40).map(|n| PgSearch::connect(&url, &format!("tenant-{n}")).unwrap()).collect();
        for (n, index) in indexes.iter().enumerate() {
            index.replace_document("mem-1", "1", &[chunk("Page", "", &format!("tenant {n} teapot"))]).unwrap();
            index.commit().unwrap();
        }
        assert!(indexes.iter().all(|index| index.query("teapot", &[], 5).unwrap().len() == 1), "each its own");
        let url_ = url.clone();
        let connections: i64 = std::thread::spawn(move || {
            let mut client = Client::connect(&url_, postgres::NoTls).unwrap();
            client
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()", &[])
                .unwrap()
                .get(0)
        })
        .join()
        .unwrap();
        assert!(connections <= CONNECTIONS as i64 + 1, "40 tenants' indexes, {connections} connections");
    }

    #[test]
    fn a_commit_under_a_lock_that_passed_to_another_host_writes_nothing() {
        let server =
            pg_server::PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
        let url = server.database().unwrap();
        let (first, second) =
            (connector_store::Store::connect(&url).unwrap(), connector_store::Store::connect(&url).unwrap());
        let index = PgSearch::connect(&url, "acme").unwrap().fenced_by(first.fences());
        let old = first.lock_writes("instance/acme", "acme").unwrap();
        index.replace_document("m", "p1", &[chunk("Failover", "Steps", "promote the replica")]).unwrap();
        index.commit().unwrap();

        // The first host's lock connection breaks; another host takes the lock.
        let url_for_admin = url.clone();
        std::thread::spawn(move || {
            let mut admin = Client::connect(&url_for_admin, postgres::NoTls).unwrap();
            let pid: i32 = admin
                .query_one("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted", &[])
                .unwrap()
                .get(0);
            admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
        })
        .join()
        .unwrap();
        let _new = second.lock_writes("instance/acme", "acme").unwrap();

        index.replace_document("m", "p1", &[]).unwrap();
        index.replace_document("m", "p2", &[chunk("Backups", "Nightly", "the replica archive")]).unwrap();
        let refused = index.commit().unwrap_err().to_string();
        assert!(refused.contains("lost to another holder"), "{refused}");
        index.rollback().unwrap();
        let hits: Vec<String> =
            index.query("replica", &["m".into()], 10).unwrap().into_iter().map(|hit| hit.document_id).collect();
        assert_eq!(hits, ["p1"], "the refused commit changed nothing");
        drop(old);
    }
}
