//! The shared search backend: one PostgreSQL database that several hosts use at once, each
//! connector instance in its own namespace.
//!
//! Ranked like [`TantivySearch`](crate::TantivySearch), not with `ts_rank`: the same
//! analyzer (so the same tokens, stems and folding), the same fields and boosts (`heading`
//! 1.5, `text` — the chunk's text and its title — 1), the same BM25 (k1 1.2, b 0.75,
//! tantivy's idf and its quantised field lengths) and the same common-words rule (a term in
//! more than a fifth of the chunks only ranks what the rarer terms find). Postings are
//! rows (`search_postings`: namespace, field, term, chunk, term frequency, field length)
//! with document frequencies and field totals kept beside them, so a query reads the
//! postings of its terms through one index and scores them in one statement.
//!
//! Writes are kept in the handle until [`SearchBackend::commit`], which applies them in one
//! transaction: a failed step's writes ([`SearchBackend::rollback`]) never reach the
//! database, and what a commit publishes is whole.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use connector_store::backend::postgres::PgWorker;
use connector_store::backend::postgres::{Connection, migrate};
use postgres::{Client, Transaction};
use tantivy::fieldnorm::FieldNormReader;
use tantivy::tokenizer::TextAnalyzer;

use crate::{
    Chunk, Hit, SearchBackend, SearchConfig, SearchError, WeightedTerm, check_memory_id, question, split_common_terms,
};

/// The schema, one migration per version.
const MIGRATIONS: &[(i32, &str)] = &[(
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
)];

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

/// Connections per instance's index.
const CONNECTIONS: usize = 2;

/// A chunk ready to be written: its text and its analysed fields.
struct Prepared {
    chunk: Chunk,
    heading: Analysed,
    text: Analysed,
}

/// One connector instance's search index in a PostgreSQL database.
pub struct PgSearch {
    namespace: String,
    worker: PgWorker,
    pending: Mutex<Vec<Pending>>,
    analyzer: TextAnalyzer,
    config: SearchConfig,
}

impl std::fmt::Debug for PgSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSearch").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

fn database(error: postgres::Error) -> SearchError {
    SearchError::Database(error.to_string())
}

/// A field's analysed terms with their frequencies, and its length as tantivy stores it
/// (quantised to one byte).
struct Analysed {
    terms: BTreeMap<String, u32>,
    tokens: u32,
    len: f32,
}

impl PgSearch {
    /// The search index of connector instance `namespace` in the database at `url`, with
    /// the default [`SearchConfig`]; brings the schema up to date.
    pub fn connect(url: &str, namespace: &str) -> Result<PgSearch, SearchError> {
        PgSearch::connect_with(url, namespace, SearchConfig::default())
    }

    /// Likewise, with `config`.
    pub fn connect_with(url: &str, namespace: &str, config: SearchConfig) -> Result<PgSearch, SearchError> {
        // Each ranking is planned for its own terms: a plan made for none of them (a generic
        // plan of the prepared statement) reads the postings badly. No statement may hold a
        // host's call longer than a minute.
        let worker = PgWorker::start_with(
            url,
            CONNECTIONS,
            "SET plan_cache_mode = force_custom_plan; SET statement_timeout = '60s'",
        )
        .map_err(SearchError::Database)?;
        worker.run(
            |connection| {
                migrate(connection, "search_schema", MIGRATION_LOCK, MIGRATIONS).map_err(SearchError::Database)
            },
            SearchError::Database,
        )?;
        let analyzer = config.analyzer.build()?;
        Ok(PgSearch { namespace: namespace.to_string(), worker, pending: Mutex::new(Vec::new()), analyzer, config })
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

    fn analyse(&self, values: &[&str]) -> Analysed {
        let mut analyzer = self.analyzer.clone();
        let mut terms = BTreeMap::new();
        let mut tokens = 0u32;
        for value in values {
            let mut stream = analyzer.token_stream(value);
            while let Some(token) = stream.next() {
                *terms.entry(token.text.clone()).or_insert(0) += 1;
                tokens += 1;
            }
        }
        let len = FieldNormReader::id_to_fieldnorm(FieldNormReader::fieldnorm_to_id(tokens)) as f32;
        Analysed { terms, tokens, len }
    }
}

/// Removes the chunks `ids` with their postings, and takes them out of the totals.
fn remove_chunks(tx: &mut Transaction<'_>, ns: &str, ids: &[i64]) -> Result<(), SearchError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "WITH gone AS (DELETE FROM search_postings WHERE chunk_id = ANY($2) RETURNING field, term),
                  counted AS (SELECT field, term, count(*) AS n FROM gone GROUP BY field, term ORDER BY field, term)
             UPDATE search_terms t SET df = t.df - counted.n FROM counted
             WHERE t.namespace = $1 AND t.field = counted.field AND t.term = counted.term",
        &[&ns, &ids],
    )
    .map_err(database)?;
    tx.execute(
        "WITH gone AS (DELETE FROM search_chunks WHERE id = ANY($2) RETURNING heading_len, text_len)
             UPDATE search_totals SET chunks = chunks - (SELECT count(*) FROM gone),
                 heading_tokens = heading_tokens - (SELECT coalesce(sum(heading_len), 0) FROM gone),
                 text_tokens = text_tokens - (SELECT coalesce(sum(text_len), 0) FROM gone)
             WHERE namespace = $1",
        &[&ns, &ids],
    )
    .map_err(database)?;
    Ok(())
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
/// removed memories) go in one delete, the new ones come in one insert of chunks and one
/// of postings; document frequencies and totals follow.
fn write_changes(client: &mut Client, ns: &str, changes: &[Pending<Prepared>]) -> Result<(), SearchError> {
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
    // The chunks that go: those of removed memories and of every touched document.
    let (memories, documents): (Vec<&str>, Vec<&str>) = order.iter().map(|(m, d)| (m.as_str(), d.as_str())).unzip();
    let gone: Vec<i64> = tx
        .query(
            "SELECT id FROM search_chunks WHERE namespace = $1 AND (memory_id = ANY($2)
                 OR (memory_id, document_id) IN (SELECT * FROM unnest($3::text[], $4::text[])))",
            &[&ns, &removed_memories, &memories, &documents],
        )
        .map_err(database)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    remove_chunks(&mut tx, ns, &gone)?;
    // The chunks that come, with ids drawn from the sequence in one go.
    let new: Vec<(&str, &str, &Prepared)> = order
        .iter()
        .filter_map(|key| match outcomes.get(key) {
            Some(Outcome::Replace(chunks)) => Some((key, *chunks)),
            _ => None,
        })
        .flat_map(|((memory, document), chunks)| chunks.iter().map(move |c| (memory.as_str(), document.as_str(), c)))
        .collect();
    let mut df: BTreeMap<(i16, String), i64> = BTreeMap::new();
    let mut totals = [0i64; 3];
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
        let (mut fields, mut terms, mut chunk_ids, mut memory_ids, mut tfs, mut lens) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (&id, (memory, document, Prepared { chunk, heading, text })) in ids.iter().zip(&new) {
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
            for (field, analysed) in [(HEADING, heading), (TEXT, text)] {
                for (term, tf) in &analysed.terms {
                    fields.push(field);
                    terms.push(term.as_str());
                    chunk_ids.push(id);
                    memory_ids.push(*memory);
                    tfs.push(*tf as f32);
                    lens.push(analysed.len);
                    *df.entry((field, term.clone())).or_insert(0) += 1;
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
        tx.execute(
            "INSERT INTO search_postings (namespace, field, term, chunk_id, memory_id, tf, len)
             SELECT $1, f, t, c, m, tf, l
             FROM unnest($2::smallint[], $3::text[], $4::bigint[], $5::text[], $6::real[], $7::real[])
                 AS p(f, t, c, m, tf, l)",
            &[&ns, &fields, &terms, &chunk_ids, &memory_ids, &tfs, &lens],
        )
        .map_err(database)?;
    }
    // In key order, so that hosts committing at once take the rows' locks in one order.
    let (mut fields, mut terms, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for ((field, term), n) in df {
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

/// The chunks a question's rarer terms find, with their BM25 score from those terms
/// (weights, idf and averages computed by the caller), that can still make the top `$10`
/// once the common terms add at most `$11`.
const CANDIDATES: &str = "WITH q AS (
         SELECT * FROM unnest($2::smallint[], $3::text[], $4::real[]) AS q(field, term, weight)
     ),
     found AS (
         SELECT p.chunk_id, sum(q.weight * p.tf / (p.tf + $5::real * (1 - $6::real + $6::real * p.len /
             CASE WHEN p.field = 1 THEN $7::real ELSE $8::real END))) AS score
         FROM q JOIN search_postings p ON p.namespace = $1 AND p.field = q.field AND p.term = q.term
         WHERE $9::text[] IS NULL OR p.memory_id = ANY($9)
         GROUP BY p.chunk_id
     ),
     cut AS (
         SELECT coalesce((SELECT score FROM found ORDER BY score DESC OFFSET $10::bigint - 1 LIMIT 1), 0)
             - $11::real AS at_least
     )
     SELECT f.chunk_id, f.score::real FROM found f, cut WHERE f.score >= cut.at_least";

/// One term's postings in one field, among the chunks `$4` (read through the term index).
const POSTINGS_OF: &str = "SELECT chunk_id, tf, len FROM search_postings
     WHERE namespace = $1 AND field = $2 AND term = $3 AND chunk_id = ANY($4)";

/// The texts of chunks, by id.
const TEXTS: &str = "SELECT id, memory_id, document_id, ordinal, title, heading, text FROM search_chunks
     WHERE id = ANY($1)";

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
                            heading: self.analyse(&[&chunk.heading]),
                            // The title is indexed with the text, as tantivy's backend does.
                            text: self.analyse(&[&chunk.text, &chunk.title]),
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
        let ns = self.namespace.clone();
        self.with_client(move |client| write_changes(client, &ns, &changes))?;
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
        // The index's statistics: its totals, and the document frequencies of the terms.
        let statistics = self.with_client(move |client| {
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
            Ok((totals, df))
        })?;
        let (Some((chunks, heading_tokens, text_tokens)), df) = statistics else {
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
        // Each term's weight in each field it is found in: BM25's idf, its boost and its
        // weight in the question.
        let weighted = |terms: &[WeightedTerm]| -> (Vec<i16>, Vec<String>, Vec<f32>) {
            let mut out = (Vec::new(), Vec::new(), Vec::new());
            for (term, weight) in terms {
                for (field, boost) in [(HEADING, self.config.heading_boost), (TEXT, self.config.text_boost)] {
                    let Some(&n) = df.get(&(field, term.clone())) else { continue };
                    if boost > 0.0 {
                        out.0.push(field);
                        out.1.push(term.clone());
                        out.2.push(boost * weight * idf(n) * (1.0 + K1));
                    }
                }
            }
            out
        };
        let (rare_fields, rare_terms, rare_weights) = weighted(&rarer);
        let (common_fields, common_terms, common_weights) = weighted(&common);
        let memories: Option<Vec<String>> = (!memory_ids.is_empty()).then(|| memory_ids.to_vec());
        let ns = self.namespace.clone();
        // A chunk's common terms add less than the sum of their weights: a chunk whose rarer
        // terms score lower than the limit-th best by more than that cannot make the answer,
        // so the common terms' long postings are read for the others only.
        let common_at_most: f32 = common_weights.iter().sum();
        let rows = self.with_client(move |client| {
            let found = client.prepared(CANDIDATES).map_err(database)?;
            let candidates: Vec<(i64, f32)> = client
                .query(
                    &found,
                    &[
                        &ns,
                        &rare_fields,
                        &rare_terms,
                        &rare_weights,
                        &K1,
                        &B,
                        &averages[0],
                        &averages[1],
                        &memories,
                        &(limit as i64),
                        &common_at_most,
                    ],
                )
                .map_err(database)?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let mut scores: HashMap<i64, f32> = candidates.iter().copied().collect();
            let ids: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
            let postings = client.prepared(POSTINGS_OF).map_err(database)?;
            for ((field, term), weight) in common_fields.iter().zip(&common_terms).zip(&common_weights) {
                let average = if *field == HEADING { averages[0] } else { averages[1] };
                for row in client.query(&postings, &[&ns, field, term, &ids]).map_err(database)? {
                    let (id, tf, len): (i64, f32, f32) = (row.get(0), row.get(1), row.get(2));
                    *scores.entry(id).or_insert(0.0) += weight * tf / (tf + K1 * (1.0 - B + B * len / average));
                }
            }
            let mut ranked: Vec<(i64, f32)> = scores.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(limit);
            let top: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
            let texts = client.prepared(TEXTS).map_err(database)?;
            let mut chunks: HashMap<i64, postgres::Row> = client
                .query(&texts, &[&top])
                .map_err(database)?
                .into_iter()
                .map(|row| (row.get::<_, i64>(0), row))
                .collect();
            Ok(ranked
                .into_iter()
                .filter_map(|(id, score)| {
                    let row = chunks.remove(&id)?;
                    Some(Hit {
                        memory_id: row.get(1),
                        document_id: row.get(2),
                        ordinal: u32::try_from(row.get::<_, i32>(3)).unwrap_or_default(),
                        title: row.get(4),
                        heading: row.get(5),
                        text: row.get(6),
                        score,
                    })
                })
                .collect::<Vec<Hit>>())
        })?;
        Ok(rows)
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
