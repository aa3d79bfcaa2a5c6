//! Full-text search capability of the connector host.
//!
//! Two backends rank alike: [`TantivySearch`] on one machine, [`PgSearch`] in a PostgreSQL
//! database that several hosts share (`tests/conformance.rs` runs one suite on both).
//!
//! The host's `search` WIT interface (`replace-document`, `remove-documents`, `commit`,
//! `rollback`, `query`) is served by a [`SearchBackend`]. The reference backend, [`TantivySearch`],
//! keeps **one tantivy index per connector instance** — the host gives each instance its
//! own directory, so tenancy is enforced by separate directories, not by filters.
//! Inside an index, passages ("chunks") are grouped by memory id and document id, and
//! ranked with BM25 over an English stemming analyzer (see [`AnalyzerConfig`]).
//!
//! Writes become visible to [`SearchBackend::query`] (and durable) only after
//! [`SearchBackend::commit`]. All methods block (indexing, disk I/O): call them from a
//! blocking context (e.g. `tokio::task::spawn_blocking`) in async code.
//!
//! # Example
//!
//! ```
//! use connector_search::{Chunk, SearchBackend, TantivySearch};
//!
//! # fn main() -> Result<(), connector_search::SearchError> {
//! let search = TantivySearch::open_in_ram()?;
//! search.replace_document("handbook", "doc-1", &[Chunk {
//!     ordinal: 0,
//!     title: "Security handbook".into(),
//!     heading: "Secrets › Rotation".into(),
//!     text: "Rotate the API key every 90 days.".into(),
//! }])?;
//! search.commit()?;
//!
//! // Natural-language questions are safe: no query syntax is interpreted.
//! let hits = search.query("How often are keys rotated?", &[], 10)?;
//! assert_eq!(hits[0].document_id, "doc-1");
//! assert_eq!(hits[0].heading, "Secrets › Rotation");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod postgres;
pub mod semantic;
mod stem;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter, TextAnalyzer, TokenizerManager,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use postgres::PgSearch;
pub use tantivy::tokenizer::Language;

use crate::stem::CachedStemmer;

/// An analyzed query term and its weight in the question.
type WeightedTerm = (String, f32);

/// Separator between memory id and document id in the internal `doc_key` field.
pub(crate) const KEY_SEP: char = '\u{1f}';

/// One passage to index (the WIT `chunk` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the chunk within its document (0-based).
    pub ordinal: u32,
    /// Document title (weighted higher than the text).
    pub title: String,
    /// Section heading path inside the document, e.g. `Install › Linux`.
    pub heading: String,
    /// The passage text.
    pub text: String,
}

/// One search result (the WIT `hit` record).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The memory the chunk belongs to.
    pub memory_id: String,
    /// The document the chunk belongs to.
    pub document_id: String,
    /// Position of the chunk within its document.
    pub ordinal: u32,
    /// Document title.
    pub title: String,
    /// Section heading path.
    pub heading: String,
    /// The passage text.
    pub text: String,
    /// Relevance score (BM25, higher is better; only comparable within one query).
    pub score: f32,
}

/// Errors of the search capability.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// tantivy failed (I/O, corruption, schema mismatch, index locked by another writer...).
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),

    /// The index directory could not be created or opened.
    #[error("cannot open search index directory {path}: {reason}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A memory id contains U+001F, which is reserved as the internal key separator.
    #[error("invalid memory id {0:?}: must not contain U+001F")]
    InvalidMemoryId(String),

    /// The [`SearchConfig`] cannot be used.
    #[error("invalid search configuration: {0}")]
    Config(String),

    /// The PostgreSQL database failed or could not be reached.
    #[error("search database error: {0}")]
    Database(String),

    /// The semantic index (its store or its embedder) failed.
    #[error("semantic index error: {0}")]
    Semantic(String),
}

/// Which stop words the analyzer drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWords {
    /// Keep every token.
    None,
    /// tantivy's built-in list for a language.
    Language(Language),
    /// An explicit list (compared after lowercasing and ASCII folding).
    Custom(Vec<String>),
}

/// The text analyzer used for the `title`, `heading` and `text` fields, and for queries.
///
/// The pipeline is `SimpleTokenizer → RemoveLongFilter → LowerCaser → [AsciiFoldingFilter]
/// → [StopWordFilter] → [Stemmer]`. The analyzer is registered under [`Self::name`], which
/// is recorded in the index schema: reopening an index with a different name fails, and
/// changing the pipeline under the same name needs a reindex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerConfig {
    /// Name under which the analyzer is registered (default `en_stem`).
    pub name: String,
    /// Tokens of this many UTF-8 bytes or more are dropped (default 40).
    pub max_token_bytes: usize,
    /// Fold accented characters to ASCII, e.g. `café` → `cafe` (default true).
    pub ascii_folding: bool,
    /// Stop words to drop (default none). BM25's IDF already makes common words cheap,
    /// and [`SearchConfig::common_term_weight`] keeps them from adding up, while dropping
    /// them loses negations and phrases ("not supported", "how to"); Lucene and
    /// Elasticsearch stopped removing them by default for the same reason. (BEIR nDCG@10
    /// with tantivy's English list: SciFact 0.702 → 0.699, ArguAna 0.508 → 0.513: not a
    /// gain on both.)
    pub stop_words: StopWords,
    /// Snowball stemmer language, or `None` for no stemming (default English).
    pub stemmer: Option<Language>,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            name: "en_stem".into(),
            max_token_bytes: 40,
            ascii_folding: true,
            stop_words: StopWords::None,
            stemmer: Some(Language::English),
        }
    }
}

impl AnalyzerConfig {
    /// Builds the tantivy analyzer this configuration describes.
    pub fn build(&self) -> Result<TextAnalyzer, SearchError> {
        let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(self.max_token_bytes))
            .filter(LowerCaser)
            .dynamic();
        if self.ascii_folding {
            builder = builder.filter_dynamic(AsciiFoldingFilter);
        }
        match &self.stop_words {
            StopWords::None => {}
            StopWords::Language(lang) => {
                let filter = StopWordFilter::new(*lang)
                    .ok_or_else(|| SearchError::Config(format!("no built-in stop words for {lang:?}")))?;
                builder = builder.filter_dynamic(filter);
            }
            StopWords::Custom(words) => {
                builder = builder.filter_dynamic(StopWordFilter::remove(words.iter().cloned()));
            }
        }
        if let Some(lang) = self.stemmer {
            builder = builder.filter_dynamic(CachedStemmer::new(lang));
        }
        Ok(builder.build())
    }
}

/// Configuration of [`TantivySearch`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// The analyzer for titles, headings, texts and queries.
    pub analyzer: AnalyzerConfig,
    /// Total indexing memory of the (single, long-lived) index writer, split among its
    /// threads (default 50 MB; tantivy needs at least 15 MB).
    pub writer_heap_bytes: usize,
    /// Score multiplier of matches in the separate title field (default 0: off). The
    /// title is always indexed with the text as well, so a chunk is scored as one
    /// title-plus-text field; boosting short titles on top over-weights them (BEIR
    /// nDCG@10 with a 0.25 boost: SciFact 0.702 → 0.696, ArguAna 0.508 → 0.516; with 2.0,
    /// SciFact fell to 0.622).
    pub title_boost: f32,
    /// Score multiplier of heading matches (default 1.5).
    pub heading_boost: f32,
    /// Score multiplier of text matches (default 1.0).
    pub text_boost: f32,
    /// `query` never returns more hits than this, whatever `limit` says (default 1000).
    pub max_limit: usize,
    /// Distinct query terms considered; the rest of a very long question is ignored
    /// (default 256).
    pub max_query_terms: usize,
    /// Query terms found in more than this fraction of all chunks find no chunks by
    /// themselves when a question also has rarer terms: they only add to the score of the
    /// chunks the rarer terms find (Lucene's common-terms query; default 0.2, 1.0 turns it
    /// off). Their BM25 weight is small and their postings the longest, so a chunk
    /// matching nothing else is noise that costs the most time to rank. A question made
    /// only of such words searches with all of them. (BEIR nDCG@10 against 0.5 with full
    /// weight: SciFact 0.699 → 0.702, ArguAna 0.505 → 0.508, together with
    /// [`Self::common_term_weight`] 0.5.)
    pub common_term_cutoff: f64,
    /// Weight a query term by how often the question repeats it, as BM25 sums over query
    /// tokens (Lucene, Anserini and bm25s do); off, every distinct term counts once
    /// (default on: BEIR nDCG@10 with counts against without, ArguAna 0.444 → 0.508, whose
    /// questions are whole arguments that repeat their topic; SciFact 0.702 → 0.702).
    pub query_term_counts: bool,
    /// Weight of a common term (see [`Self::common_term_cutoff`]) when the question also
    /// has rarer ones, however often the question repeats it, so that repeated function
    /// words do not add up to a topic (default 0.5; 0 drops common terms like stop words).
    /// `None`: common terms are weighted like the others.
    pub common_term_weight: Option<f32>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            analyzer: AnalyzerConfig::default(),
            writer_heap_bytes: 50_000_000,
            title_boost: 0.0,
            heading_boost: 1.5,
            text_boost: 1.0,
            max_limit: 1000,
            max_query_terms: 256,
            common_term_cutoff: 0.2,
            query_term_counts: true,
            common_term_weight: Some(0.5),
        }
    }
}

/// A search backend: what the host's `search` interface needs.
///
/// A backend instance serves exactly one connector instance: [`TantivySearch`] (a directory
/// of its own) or [`PgSearch`] (a namespace in a shared PostgreSQL database).
pub trait SearchBackend: Send + Sync {
    /// Replaces all chunks of one document by `chunks`; an empty slice removes the
    /// document. Idempotent. Visible after [`Self::commit`].
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: &[Chunk]) -> Result<(), SearchError>;

    /// Removes documents from a memory (unknown ids are ignored). Visible after
    /// [`Self::commit`].
    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), SearchError>;

    /// Removes every document of a memory. Visible after [`Self::commit`].
    fn remove_memory(&self, memory_id: &str) -> Result<(), SearchError>;

    /// Makes all writes so far durable and visible to [`Self::query`].
    fn commit(&self) -> Result<(), SearchError>;

    /// Discards the writes since the last [`Self::commit`].
    fn rollback(&self) -> Result<(), SearchError>;

    /// The best `limit` chunks for the natural-language `text` among `memory_ids` (all
    /// memories when empty), best first. Query syntax is never interpreted; a question
    /// without words (after analysis), or `limit == 0`, gives no hits.
    fn query(&self, text: &str, memory_ids: &[String], limit: usize) -> Result<Vec<Hit>, SearchError>;

    /// Number of committed chunks in a memory.
    fn count(&self, memory_id: &str) -> Result<u64, SearchError>;

    /// Every committed chunk of the instance, ordered by memory, document and ordinal
    /// (score 0). For audits and for comparing two indexes exactly.
    fn export(&self) -> Result<Vec<Hit>, SearchError>;

    /// The committed chunks of one document of a memory, in order (score 0); empty when
    /// the memory holds no such document.
    fn document(&self, memory_id: &str, document_id: &str) -> Result<Vec<Hit>, SearchError>;
}

#[derive(Clone, Copy)]
struct Fields {
    memory_id: Field,
    doc_key: Field,
    document_id: Field,
    ordinal: Field,
    title: Field,
    heading: Field,
    text: Field,
}

fn schema(analyzer: &str) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        memory_id: b.add_text_field("memory_id", STRING | STORED),
        doc_key: b.add_text_field("doc_key", STRING),
        document_id: b.add_text_field("document_id", STORED),
        ordinal: b.add_u64_field("ordinal", NumericOptions::default().set_stored()),
        title: b.add_text_field("title", text_options.clone()),
        heading: b.add_text_field("heading", text_options.clone()),
        text: b.add_text_field("text", text_options),
    };
    (b.build(), fields)
}

/// The reference [`SearchBackend`]: one tantivy index (one directory) per connector
/// instance, BM25 ranking, one long-lived index writer.
///
/// `Send + Sync`; share it behind an `Arc`. Only one `TantivySearch` can have a given
/// directory open at a time (tantivy's writer lock); a second [`TantivySearch::open`] of
/// the same directory fails until the first is dropped.
pub struct TantivySearch {
    index: Index,
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    analyzer: TextAnalyzer,
    config: SearchConfig,
}

impl std::fmt::Debug for TantivySearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivySearch")
            .field("index", &self.index)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TantivySearch {
    /// Opens the index in `dir` with the default [`SearchConfig`], creating the directory
    /// and the index if missing.
    pub fn open(dir: &Path) -> Result<TantivySearch, SearchError> {
        TantivySearch::open_with(dir, SearchConfig::default())
    }

    /// Opens (or creates) the index in `dir` with `config`.
    ///
    /// Fails if the directory holds an index with another schema (e.g. another analyzer
    /// name) or is already open.
    pub fn open_with(dir: &Path, config: SearchConfig) -> Result<TantivySearch, SearchError> {
        let dir_err = |reason: String| SearchError::Directory { path: dir.to_owned(), reason };
        std::fs::create_dir_all(dir).map_err(|e| dir_err(e.to_string()))?;
        let directory = tantivy::directory::MmapDirectory::open(dir).map_err(|e| dir_err(e.to_string()))?;
        TantivySearch::build(config, |schema, tokenizers| {
            Index::builder().schema(schema).tokenizers(tokenizers).open_or_create(directory)
        })
    }

    /// A fresh in-memory index with the default [`SearchConfig`] (for tests and demos).
    pub fn open_in_ram() -> Result<TantivySearch, SearchError> {
        TantivySearch::open_in_ram_with(SearchConfig::default())
    }

    /// A fresh in-memory index with `config`.
    pub fn open_in_ram_with(config: SearchConfig) -> Result<TantivySearch, SearchError> {
        TantivySearch::build(config, |schema, tokenizers| {
            Index::builder().schema(schema).tokenizers(tokenizers).create_in_ram()
        })
    }

    fn build(
        config: SearchConfig,
        make_index: impl FnOnce(Schema, TokenizerManager) -> tantivy::Result<Index>,
    ) -> Result<TantivySearch, SearchError> {
        let analyzer = config.analyzer.build()?;
        let (schema, fields) = schema(&config.analyzer.name);
        let tokenizers = TokenizerManager::default();
        tokenizers.register(&config.analyzer.name, analyzer.clone());
        let index = make_index(schema, tokenizers)?;
        let writer: IndexWriter = index.writer(config.writer_heap_bytes)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(TantivySearch { index, fields, writer: Mutex::new(writer), reader, analyzer, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        // A panic while holding the lock leaves the writer itself consistent.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn memory_term(&self, memory_id: &str) -> Term {
        Term::from_field_text(self.fields.memory_id, memory_id)
    }

    fn doc_key_term(&self, memory_id: &str, document_id: &str) -> Term {
        Term::from_field_text(self.fields.doc_key, &format!("{memory_id}{KEY_SEP}{document_id}"))
    }

    /// Chunks with any of `terms` in any scored field, by BM25.
    fn any_of(&self, terms: &[WeightedTerm]) -> Box<dyn Query> {
        let f = self.fields;
        let boosts = [
            (f.title, self.config.title_boost),
            (f.heading, self.config.heading_boost),
            (f.text, self.config.text_boost),
        ];
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 3);
        for (term, weight) in terms {
            for (field, boost) in boosts.into_iter().filter(|(_, boost)| *boost > 0.0) {
                let q = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost * weight))));
            }
        }
        Box::new(BooleanQuery::new(should))
    }
}

/// What a question asks every backend for: the limit it may answer (at most
/// [`SearchConfig::max_limit`]) and the question's analyzed terms; `None` when it can answer
/// nothing (a limit of 0, no words).
fn question(
    analyzer: &TextAnalyzer,
    config: &SearchConfig,
    text: &str,
    limit: usize,
) -> Option<(usize, Vec<WeightedTerm>)> {
    let limit = limit.min(config.max_limit);
    let terms = query_terms(analyzer, config, text);
    (limit > 0 && !terms.is_empty()).then_some((limit, terms))
}

/// The distinct analyzed terms of a question, in order, at most `max_query_terms`, each
/// with its weight (1, or how often the question repeats it): what every backend ranks by.
fn query_terms(analyzer: &TextAnalyzer, config: &SearchConfig, text: &str) -> Vec<WeightedTerm> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut terms: Vec<WeightedTerm> = Vec::new();
    while let Some(token) = stream.next() {
        match position.get(&token.text) {
            Some(&at) if config.query_term_counts => terms[at].1 += 1.0,
            Some(_) => {}
            None if terms.len() < config.max_query_terms => {
                position.insert(token.text.clone(), terms.len());
                terms.push((token.text.clone(), 1.0));
            }
            None => {}
        }
    }
    terms
}

/// The common-words rule, the same for every backend: of the question's `terms` found in
/// the index (`doc_freq` in the text field, of `chunks` chunks), those in at most
/// [`SearchConfig::common_term_cutoff`] of the chunks find chunks; the more common rest only
/// add to the score of what they find, weighted [`SearchConfig::common_term_weight`] (none
/// left when that is 0). A question made only of common words searches with all of them.
fn split_common_terms<E>(
    config: &SearchConfig,
    terms: Vec<WeightedTerm>,
    chunks: u64,
    mut doc_freq: impl FnMut(&str) -> Result<u64, E>,
) -> Result<(Vec<WeightedTerm>, Vec<WeightedTerm>), E> {
    let most = (chunks as f64 * config.common_term_cutoff) as u64;
    let (mut rarer, mut common) = (Vec::new(), Vec::new());
    for term in terms {
        match doc_freq(&term.0)? {
            0 => {} // finds nothing wherever it goes
            found if found > most => common.push(term),
            _ => rarer.push(term),
        }
    }
    if rarer.is_empty() {
        return Ok((common, Vec::new()));
    }
    if let Some(weight) = config.common_term_weight {
        common = common.into_iter().map(|(term, _)| (term, weight)).collect();
    }
    common.retain(|(_, weight)| *weight > 0.0);
    Ok((rarer, common))
}

fn check_memory_id(memory_id: &str) -> Result<(), SearchError> {
    if memory_id.contains(KEY_SEP) {
        return Err(SearchError::InvalidMemoryId(memory_id.to_owned()));
    }
    Ok(())
}

impl TantivySearch {
    /// A stored document as a [`Hit`].
    fn hit(&self, doc: &TantivyDocument, score: f32) -> Hit {
        let f = self.fields;
        let text_of = |field| doc.get_first(field).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let ordinal = doc.get_first(f.ordinal).and_then(|v| v.as_u64()).unwrap_or_default();
        Hit {
            memory_id: text_of(f.memory_id),
            document_id: text_of(f.document_id),
            ordinal: u32::try_from(ordinal).unwrap_or(u32::MAX),
            title: text_of(f.title),
            heading: text_of(f.heading),
            text: text_of(f.text),
            score,
        }
    }
}

impl SearchBackend for TantivySearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: &[Chunk]) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        let f = self.fields;
        let key = format!("{memory_id}{KEY_SEP}{document_id}");
        // Holding the lock keeps the delete and the adds together: a concurrent commit
        // can never publish the document half-replaced.
        let writer = self.writer();
        writer.delete_term(Term::from_field_text(f.doc_key, &key));
        for chunk in chunks {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.memory_id, memory_id);
            doc.add_text(f.doc_key, &key);
            doc.add_text(f.document_id, document_id);
            doc.add_u64(f.ordinal, u64::from(chunk.ordinal));
            doc.add_text(f.title, &chunk.title);
            doc.add_text(f.heading, &chunk.heading);
            // The text first: it is the stored value hits return.
            doc.add_text(f.text, &chunk.text);
            doc.add_text(f.text, &chunk.title);
            writer.add_document(doc)?;
        }
        Ok(())
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        let writer = self.writer();
        for id in document_ids {
            writer.delete_term(self.doc_key_term(memory_id, id));
        }
        Ok(())
    }

    fn remove_memory(&self, memory_id: &str) -> Result<(), SearchError> {
        check_memory_id(memory_id)?;
        self.writer().delete_term(self.memory_term(memory_id));
        Ok(())
    }

    fn commit(&self) -> Result<(), SearchError> {
        let mut writer = self.writer();
        writer.commit()?;
        // Reload while still holding the writer lock so readers see commits in order.
        self.reader.reload()?;
        Ok(())
    }

    fn rollback(&self) -> Result<(), SearchError> {
        self.writer().rollback()?;
        Ok(())
    }

    fn query(&self, text: &str, memory_ids: &[String], limit: usize) -> Result<Vec<Hit>, SearchError> {
        let Some((limit, terms)) = question(&self.analyzer, &self.config, text, limit) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let (finding, adding) = split_common_terms(&self.config, terms, searcher.num_docs(), |term| {
            searcher.doc_freq(&Term::from_field_text(self.fields.text, term))
        })?;
        let text_query = if adding.is_empty() {
            self.any_of(&finding)
        } else {
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, self.any_of(&finding)),
                (Occur::Should, self.any_of(&adding)),
            ]))
        };
        let query: Box<dyn Query> = if memory_ids.is_empty() {
            text_query
        } else {
            let filter = TermSetQuery::new(memory_ids.iter().map(|m| self.memory_term(m)));
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, text_query),
                // Filter only: contributes nothing to the score.
                (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(filter), 0.0))),
            ]))
        };

        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        top.into_iter().map(|(score, address)| Ok(self.hit(&searcher.doc(address)?, score))).collect()
    }

    fn count(&self, memory_id: &str) -> Result<u64, SearchError> {
        let query = TermQuery::new(self.memory_term(memory_id), IndexRecordOption::Basic);
        Ok(self.reader.searcher().search(&query, &Count)? as u64)
    }

    fn export(&self) -> Result<Vec<Hit>, SearchError> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&tantivy::query::AllQuery, &tantivy::collector::DocSetCollector)?;
        let mut hits = addresses
            .into_iter()
            .map(|address| Ok(self.hit(&searcher.doc(address)?, 0.0)))
            .collect::<Result<Vec<Hit>, SearchError>>()?;
        hits.sort_by(|a, b| (&a.memory_id, &a.document_id, a.ordinal).cmp(&(&b.memory_id, &b.document_id, b.ordinal)));
        Ok(hits)
    }

    fn document(&self, memory_id: &str, document_id: &str) -> Result<Vec<Hit>, SearchError> {
        let searcher = self.reader.searcher();
        let query = tantivy::query::TermQuery::new(self.doc_key_term(memory_id, document_id), IndexRecordOption::Basic);
        let addresses = searcher.search(&query, &tantivy::collector::DocSetCollector)?;
        let mut hits = addresses
            .into_iter()
            .map(|address| Ok(self.hit(&searcher.doc(address)?, 0.0)))
            .collect::<Result<Vec<Hit>, SearchError>>()?;
        hits.sort_by_key(|hit| hit.ordinal);
        Ok(hits)
    }
}
