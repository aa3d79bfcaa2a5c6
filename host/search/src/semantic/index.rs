//! [`SemanticSearch`]: a lexical backend with page embeddings beside it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::Embedder;
use super::fusion::{Candidate, Fusion, fuse};
use super::page::page_text_of_chunks;
use super::store::{Change, SemanticStore};
use super::vectors::Vectors;
use crate::{Chunk, Hit, KEY_SEP, SearchBackend, SearchError};

/// How pages are embedded and rankings fused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticConfig {
    /// Characters of a page (title, then its passages) that are embedded (default 2,000:
    /// more than the 256 tokens all-MiniLM-L6-v2 reads).
    pub page_chars: usize,
    /// How the lexical and dense rankings combine.
    pub fusion: Fusion,
    /// Pages the dense ranking contributes to a query at most (it can add pages the
    /// lexical search did not find; default 100, and never more than the query's limit).
    pub dense_candidates: usize,
    /// Pending pages embedded per round of [`SemanticSearch::embed_pending`] (default 16).
    pub batch: usize,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            page_chars: 2_000,
            fusion: Fusion::Convex { lexical_weight: 0.5 },
            dense_candidates: 100,
            batch: 16,
        }
    }
}

/// How far embedding has come for one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Pages whose current text has a vector.
    pub embedded: u64,
    /// Pages in the memory (embedded or waiting).
    pub pages: u64,
}

/// What one round of [`SemanticSearch::embed_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedRound {
    /// Pages embedded in this round.
    pub embedded: usize,
    /// Pages still waiting after it.
    pub remaining: usize,
}

/// Vectors and the pending set in memory, mirrors of the store.
#[derive(Debug)]
struct Mirror {
    vectors: Vectors,
    pending: HashSet<String>,
}

/// A lexical [`SearchBackend`] with page embeddings beside it (see the [module
/// docs](super)). Queries fuse both rankings page by page; every other call goes to the
/// lexical backend, which stays the source of the passages.
pub struct SemanticSearch {
    lexical: Arc<dyn SearchBackend>,
    embedder: Arc<dyn Embedder>,
    store: SemanticStore,
    mirror: RwLock<Mirror>,
    staged: Mutex<Vec<Change>>,
    embedding: Mutex<()>,
    config: SemanticConfig,
}

impl std::fmt::Debug for SemanticSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticSearch").field("config", &self.config).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(memory_id: &str, document_id: &str) -> String {
    format!("{memory_id}{KEY_SEP}{document_id}")
}

impl SemanticSearch {
    /// Puts a semantic index stored in `path` beside `lexical`. A new store, or one made
    /// with another model, starts with every committed document of `lexical` pending.
    pub fn open(
        lexical: Arc<dyn SearchBackend>,
        path: &Path,
        embedder: Arc<dyn Embedder>,
        config: SemanticConfig,
    ) -> Result<SemanticSearch, SearchError> {
        SemanticSearch::with_store(lexical, SemanticStore::open(path)?, embedder, config)
    }

    /// [`Self::open`] with the semantic state in memory (tests, benchmarks).
    pub fn open_in_ram(
        lexical: Arc<dyn SearchBackend>,
        embedder: Arc<dyn Embedder>,
        config: SemanticConfig,
    ) -> Result<SemanticSearch, SearchError> {
        SemanticSearch::with_store(lexical, SemanticStore::open_in_ram()?, embedder, config)
    }

    fn with_store(
        lexical: Arc<dyn SearchBackend>,
        store: SemanticStore,
        embedder: Arc<dyn Embedder>,
        config: SemanticConfig,
    ) -> Result<SemanticSearch, SearchError> {
        let model = embedder.model_id();
        if store.model()?.as_deref() != Some(model.as_str()) {
            store.reset(&model, &pages_of(lexical.as_ref(), config.page_chars)?)?;
        }
        let mut vectors = Vectors::new(embedder.dimensions());
        for stored in store.vectors(embedder.dimensions())? {
            vectors.upsert(&stored.key, &stored.vector);
        }
        let pending = store.pending_keys()?.into_iter().collect();
        Ok(SemanticSearch {
            lexical,
            embedder,
            store,
            mirror: RwLock::new(Mirror { vectors, pending }),
            staged: Mutex::new(Vec::new()),
            embedding: Mutex::new(()),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    /// The lexical backend underneath.
    pub fn lexical(&self) -> &Arc<dyn SearchBackend> {
        &self.lexical
    }

    /// Pages waiting to be embedded, over all memories.
    pub fn remaining(&self) -> usize {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).pending.len()
    }

    /// How far embedding has come for `memory_id`.
    pub fn coverage(&self, memory_id: &str) -> Coverage {
        self.coverages().remove(memory_id).unwrap_or_default()
    }

    /// How far embedding has come for every memory with pages, in one pass.
    pub fn coverages(&self) -> HashMap<String, Coverage> {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        let mut coverages: HashMap<String, Coverage> = HashMap::new();
        let memory_of = |key: &str| key.split(KEY_SEP).next().unwrap_or_default().to_string();
        for key in &mirror.pending {
            coverages.entry(memory_of(key)).or_default().pages += 1;
        }
        for key in mirror.vectors.keys().filter(|k| !mirror.pending.contains(*k)) {
            let coverage = coverages.entry(memory_of(key)).or_default();
            coverage.embedded += 1;
            coverage.pages += 1;
        }
        coverages
    }

    /// Embeds up to one batch of pending pages and stores their vectors. Rounds never run
    /// concurrently; a crash between rounds loses nothing (pending pages are durable).
    pub fn embed_pending(&self) -> Result<EmbedRound, SearchError> {
        let _one_at_a_time = lock(&self.embedding);
        let batch = self.store.pending(self.config.batch.max(1))?;
        if batch.is_empty() {
            return Ok(EmbedRound { embedded: 0, remaining: self.remaining() });
        }
        let texts: Vec<&str> = batch.iter().map(|(_, text)| text.as_str()).collect();
        let vectors = self.embedder.embed(&texts).map_err(SearchError::Semantic)?;
        if vectors.len() != batch.len() || vectors.iter().any(|v| v.len() != self.embedder.dimensions()) {
            return Err(SearchError::Semantic("the embedder returned vectors of the wrong number or length".into()));
        }
        let embedded = batch.into_iter().zip(vectors).map(|((key, text), vector)| (key, text, vector)).collect();
        let stored = self.store.store_vectors(embedded)?;
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for vector in &stored {
            mirror.vectors.upsert(&vector.key, &vector.vector);
            mirror.pending.remove(&vector.key);
        }
        Ok(EmbedRound { embedded: stored.len(), remaining: mirror.pending.len() })
    }

    /// Brings the pending set in line with the committed lexical index: every document's
    /// page text is staged (unchanged ones stay embedded) and pages the lexical index no
    /// longer has are removed. For writes that reached the lexical index without passing
    /// through this index (semantic retrieval turned on while a step was writing).
    pub fn reconcile(&self) -> Result<(), SearchError> {
        let pages = pages_of(self.lexical.as_ref(), self.config.page_chars)?;
        let present: HashSet<&str> = pages.iter().map(|(key, _)| key.as_str()).collect();
        let known: Vec<String> = {
            let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
            mirror.vectors.keys().map(str::to_string).chain(mirror.pending.iter().cloned()).collect()
        };
        let mut changes: Vec<Change> =
            known.into_iter().filter(|key| !present.contains(key.as_str())).map(|key| Change::Remove { key }).collect();
        changes.extend(pages.iter().map(|(key, text)| Change::Page { key: key.clone(), text: text.clone() }));
        self.apply(&changes)
    }

    /// Applies changes to the store, then to the in-memory mirror.
    fn apply(&self, changes: &[Change]) -> Result<(), SearchError> {
        let applied = self.store.apply(changes)?;
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for key in &applied.removed {
            mirror.vectors.remove(key);
        }
        for prefix in &applied.removed_prefixes {
            mirror.vectors.remove_prefix(prefix);
            mirror.pending.retain(|k| !k.starts_with(prefix.as_str()));
        }
        for key in applied.not_pending {
            mirror.pending.remove(&key);
        }
        mirror.pending.extend(applied.pending);
        Ok(())
    }

    /// The question's vector, or `None` when it cannot be embedded (the query then runs
    /// lexically: an embedding failure never fails a search).
    fn question_vector(&self, text: &str) -> Option<Vec<f32>> {
        if text.trim().is_empty() {
            return None;
        }
        match self.embedder.embed(&[text]) {
            Ok(mut vectors) if vectors.len() == 1 && vectors[0].len() == self.embedder.dimensions() => vectors.pop(),
            _ => None,
        }
    }
}

/// The page text of every committed document of `lexical`.
fn pages_of(lexical: &dyn SearchBackend, page_chars: usize) -> Result<Vec<(String, String)>, SearchError> {
    let mut documents: HashMap<String, Vec<Chunk>> = HashMap::new();
    for hit in lexical.export()? {
        documents.entry(key(&hit.memory_id, &hit.document_id)).or_default().push(Chunk {
            ordinal: hit.ordinal,
            title: hit.title,
            heading: hit.heading,
            text: hit.text,
        });
    }
    let mut pages: Vec<(String, String)> =
        documents.into_iter().map(|(key, chunks)| (key, page_text_of_chunks(&chunks, page_chars))).collect();
    pages.sort();
    Ok(pages)
}

impl SearchBackend for SemanticSearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: &[Chunk]) -> Result<(), SearchError> {
        self.lexical.replace_document(memory_id, document_id, chunks)?;
        let key = key(memory_id, document_id);
        let change = if chunks.is_empty() {
            Change::Remove { key }
        } else {
            Change::Page { key, text: page_text_of_chunks(chunks, self.config.page_chars) }
        };
        lock(&self.staged).push(change);
        Ok(())
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), SearchError> {
        self.lexical.remove_documents(memory_id, document_ids)?;
        lock(&self.staged).extend(document_ids.iter().map(|id| Change::Remove { key: key(memory_id, id) }));
        Ok(())
    }

    fn remove_memory(&self, memory_id: &str) -> Result<(), SearchError> {
        self.lexical.remove_memory(memory_id)?;
        lock(&self.staged).push(Change::RemovePrefix(key(memory_id, "")));
        Ok(())
    }

    /// Records the staged page texts as pending, then commits the lexical index. Should the
    /// lexical commit fail after the first, the step that wrote them fails and is redone,
    /// and redoing it stages the same texts again.
    fn commit(&self) -> Result<(), SearchError> {
        let changes = std::mem::take(&mut *lock(&self.staged));
        self.apply(&changes)?;
        self.lexical.commit()
    }

    fn rollback(&self) -> Result<(), SearchError> {
        lock(&self.staged).clear();
        self.lexical.rollback()
    }

    /// The question is embedded on a second thread while the lexical search runs, so a
    /// fused query costs the slower of the two, not their sum.
    fn query(&self, text: &str, memory_ids: &[String], limit: usize) -> Result<Vec<Hit>, SearchError> {
        let has_vectors = self.mirror.read().unwrap_or_else(|e| e.into_inner()).vectors.any_in(memory_ids);
        if limit == 0 || !has_vectors {
            return self.lexical.query(text, memory_ids, limit);
        }
        let (lexical, question) = std::thread::scope(|scope| {
            match std::thread::Builder::new()
                .name("embed-question".into())
                .spawn_scoped(scope, || self.question_vector(text))
            {
                Ok(question) => {
                    let lexical = self.lexical.query(text, memory_ids, limit);
                    // A panic in the embedder is an embedding failure: the query runs lexically.
                    (lexical, question.join().ok().flatten())
                }
                // No thread to be had: one after the other.
                Err(_) => (self.lexical.query(text, memory_ids, limit), self.question_vector(text)),
            }
        });
        let lexical = lexical?;
        let Some(question) = question else { return Ok(lexical) };

        // Pages: those the lexical search found (with their best chunk score), then the
        // nearest pages by meaning.
        let mut pages: Vec<(String, Candidate)> = Vec::new();
        let mut page_of: HashMap<String, usize> = HashMap::new();
        for hit in &lexical {
            let key = key(&hit.memory_id, &hit.document_id);
            let slot = *page_of.entry(key.clone()).or_insert_with(|| {
                pages.push((key, Candidate::default()));
                pages.len() - 1
            });
            let best = &mut pages[slot].1.lexical;
            *best = Some(best.map_or(hit.score, |b: f32| b.max(hit.score)));
        }
        let dense_only: Vec<(usize, String, String)> = {
            let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
            for (key, candidate) in &mut pages {
                candidate.dense = mirror.vectors.similarity(&question, key);
            }
            let nearest = mirror.vectors.nearest(&question, memory_ids, self.config.dense_candidates.min(limit));
            let mut added = Vec::new();
            for similar in nearest {
                let key = key(&similar.memory_id, &similar.document_id);
                if !page_of.contains_key(&key) {
                    page_of.insert(key.clone(), pages.len());
                    added.push((pages.len(), similar.memory_id, similar.document_id));
                    pages.push((key, Candidate { lexical: None, dense: Some(similar.similarity) }));
                }
            }
            added
        };
        let candidates: Vec<Candidate> = pages.iter().map(|(_, c)| *c).collect();
        let fused = fuse(self.config.fusion, &candidates);

        // Each lexical chunk keeps its standing within its page; the page's best chunk
        // carries the page's fused score. A page found by meaning alone answers with its
        // first passage (the start of the text that was embedded), read only when the
        // page makes the cut.
        enum Answer {
            Chunk(Hit),
            Page { memory_id: String, document_id: String, score: f32 },
        }
        let score_of = |answer: &Answer| match answer {
            Answer::Chunk(hit) => hit.score,
            Answer::Page { score, .. } => *score,
        };
        let mut answers: Vec<Answer> = lexical
            .into_iter()
            .map(|mut hit| {
                let slot = page_of[&key(&hit.memory_id, &hit.document_id)];
                let best = pages[slot].1.lexical.unwrap_or(hit.score);
                let share = if best > 0.0 { hit.score / best } else { 1.0 };
                hit.score = fused[slot] * share;
                Answer::Chunk(hit)
            })
            .chain(dense_only.into_iter().map(|(slot, memory_id, document_id)| Answer::Page {
                memory_id,
                document_id,
                score: fused[slot],
            }))
            .collect();
        answers.sort_by(|a, b| score_of(b).total_cmp(&score_of(a)));
        let mut hits = Vec::with_capacity(limit);
        for answer in answers {
            if hits.len() == limit {
                break;
            }
            match answer {
                Answer::Chunk(hit) => hits.push(hit),
                Answer::Page { memory_id, document_id, score } => {
                    if let Some(mut first) = self.lexical.document(&memory_id, &document_id)?.into_iter().next() {
                        first.score = score;
                        hits.push(first);
                    }
                }
            }
        }
        Ok(hits)
    }

    fn count(&self, memory_id: &str) -> Result<u64, SearchError> {
        self.lexical.count(memory_id)
    }

    fn export(&self) -> Result<Vec<Hit>, SearchError> {
        self.lexical.export()
    }

    fn document(&self, memory_id: &str, document_id: &str) -> Result<Vec<Hit>, SearchError> {
        self.lexical.document(memory_id, document_id)
    }
}
