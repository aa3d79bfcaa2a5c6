//! Semantic retrieval in the host: the embedding model (loaded once per process, from a
//! directory the operator gives), the per-instance switch (off by default, kept in the
//! host's metadata), and each instance's search backend, which is lexical alone while the
//! switch is off — nothing is staged, stored or embedded then — and lexical with page
//! embeddings beside it while it is on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Result, anyhow};
use connector_embed::EmbeddingModel;
use connector_search::semantic::{Coverage, EmbedRound, Embedder, SemanticConfig, SemanticSearch};
use connector_search::{Chunk, Hit, SearchBackend, SearchError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The embedding model of this process, or why there is none.
#[derive(Clone)]
pub enum EmbeddingModelState {
    /// No `--embedding-model` was given.
    NotConfigured,
    /// Loaded and ready.
    Loaded(Arc<dyn Embedder>),
    /// Given but unusable (missing or corrupt files): lexical search keeps working.
    Failed(String),
}

impl std::fmt::Debug for EmbeddingModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbeddingModelState::NotConfigured => f.write_str("NotConfigured"),
            EmbeddingModelState::Loaded(model) => f.debug_tuple("Loaded").field(&model.model_id()).finish(),
            EmbeddingModelState::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
        }
    }
}

impl EmbeddingModelState {
    /// Loads the model in `dir`, if one is configured. A failure is logged and kept, not
    /// returned: the host runs lexically and says why semantic retrieval is unavailable.
    pub fn load(dir: Option<&Path>) -> EmbeddingModelState {
        let Some(dir) = dir else { return EmbeddingModelState::NotConfigured };
        match EmbeddingModel::load(dir) {
            Ok(model) => {
                tracing::info!(model = %dir.display(), "embedding model loaded");
                EmbeddingModelState::Loaded(Arc::new(model))
            }
            Err(error) => {
                tracing::error!("semantic retrieval is unavailable: {error}");
                EmbeddingModelState::Failed(error.to_string())
            }
        }
    }

    /// The model, or an error saying what to do.
    pub fn model(&self) -> Result<Arc<dyn Embedder>> {
        match self {
            EmbeddingModelState::Loaded(model) => Ok(model.clone()),
            EmbeddingModelState::NotConfigured => Err(anyhow!(
                "semantic retrieval needs an embedding model: start the host with --embedding-model DIR \
                 (install one with `python3 tools/embedding-model/install.py DIR`)"
            )),
            EmbeddingModelState::Failed(error) => Err(anyhow!("semantic retrieval is unavailable: {error}")),
        }
    }
}

/// Semantic retrieval of one memory, as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SemanticView {
    /// Pages whose current text has been embedded.
    pub embedded: u64,
    /// Pages in the memory.
    pub pages: u64,
    /// Why the instance's semantic retrieval is not running (the model is unavailable).
    pub error: Option<String>,
}

/// Semantic retrieval of an instance (`semantic --json`, `GET /api/v1/semantic`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SemanticStatusView {
    /// The instance.
    pub instance: String,
    /// Whether semantic retrieval is on for it.
    pub enabled: bool,
    /// Why it is on but not running (the embedding model is unavailable).
    pub error: Option<String>,
    /// Coverage per memory, while it is on.
    pub memories: Vec<MemoryCoverage>,
}

/// How many of a memory's pages are embedded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct MemoryCoverage {
    /// Memory id.
    pub memory: String,
    /// Pages whose current text has been embedded.
    pub embedded: u64,
    /// Pages in the memory.
    pub pages: u64,
}

/// One instance's search backend: the lexical index, with a semantic index beside it
/// while semantic retrieval is on. The switch can flip while the instance is in use.
pub struct InstanceSearch {
    lexical: Arc<dyn SearchBackend>,
    semantic: RwLock<Option<Arc<SemanticSearch>>>,
    store_path: PathBuf,
    /// Lexical writes not yet committed (they bypassed the semantic index if it was off).
    uncommitted: AtomicBool,
    /// Reconcile the semantic index with the lexical one after the next commit.
    reconcile: AtomicBool,
    /// Semantic retrieval is on for the instance but cannot run (no model): commits mark
    /// the semantic index stale, so that it catches up when the model is back.
    wanted: AtomicBool,
    /// Lexical commits so far (to see whether one happened while the semantic index opened).
    commits: AtomicU64,
    /// One [`Self::enable`] at a time.
    enabling: Mutex<()>,
}

impl std::fmt::Debug for InstanceSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceSearch").field("store_path", &self.store_path).finish_non_exhaustive()
    }
}

impl InstanceSearch {
    /// The lexical index of an instance; its semantic state would live in `store_path`.
    pub fn new(lexical: Arc<dyn SearchBackend>, store_path: PathBuf) -> InstanceSearch {
        InstanceSearch {
            lexical,
            semantic: RwLock::new(None),
            store_path,
            uncommitted: AtomicBool::new(false),
            reconcile: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            enabling: Mutex::new(()),
        }
    }

    /// Where a commit that bypassed a wanted semantic index leaves its mark.
    fn stale_marker(&self) -> PathBuf {
        self.store_path.with_extension("stale")
    }

    /// Semantic retrieval is on for the instance but its model is unavailable: answers are
    /// lexical, and writes are noted so that [`Self::enable`] catches up with them later.
    pub fn want_semantic(&self) {
        self.wanted.store(true, Ordering::SeqCst);
    }

    /// The semantic index, while semantic retrieval is on.
    pub fn semantic(&self) -> Option<Arc<SemanticSearch>> {
        self.semantic.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn current(&self) -> Arc<dyn SearchBackend> {
        match self.semantic() {
            Some(semantic) => semantic,
            None => self.lexical.clone(),
        }
    }

    /// Turns semantic retrieval on with `model`: opens (or creates) the semantic index,
    /// whose new pages are every committed document. Idempotent. Queries and writes go on
    /// lexically while it opens (reading a large index takes a while); what they commit
    /// meanwhile is caught up with before this returns.
    pub fn enable(&self, model: Arc<dyn Embedder>) -> Result<()> {
        let _one_at_a_time = self.enabling.lock().unwrap_or_else(|e| e.into_inner());
        if self.semantic().is_some() {
            return Ok(());
        }
        let commits_before = self.commits.load(Ordering::SeqCst);
        let opened = SemanticSearch::open(self.lexical.clone(), &self.store_path, model, SemanticConfig::default())
            .map_err(|e| anyhow!("cannot open the semantic index {}: {e}", self.store_path.display()))?;
        let stale = self.stale_marker();
        let opened = Arc::new(opened);
        *self.semantic.write().unwrap_or_else(|e| e.into_inner()) = Some(opened.clone());
        self.wanted.store(false, Ordering::SeqCst);
        if stale.exists() || self.commits.load(Ordering::SeqCst) != commits_before {
            // Pages changed while the model was unavailable, or while the index opened.
            opened.reconcile().map_err(|e| anyhow!("cannot bring the semantic index up to date: {e}"))?;
            let _ = std::fs::remove_file(&stale);
        }
        if self.uncommitted.load(Ordering::SeqCst) {
            // A step is writing past the semantic index: catch up once it commits.
            self.reconcile.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Turns semantic retrieval off and deletes the semantic index (turning it on again
    /// embeds every page anew, as pages change while it is off).
    pub fn disable(&self) -> Result<()> {
        let _one_at_a_time = self.enabling.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = self.semantic.write().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        self.reconcile.store(false, Ordering::SeqCst);
        self.wanted.store(false, Ordering::SeqCst);
        for path in [self.store_path.clone(), self.stale_marker()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(anyhow!("cannot delete {}: {error}", path.display())),
            }
        }
        Ok(())
    }

    /// How far embedding has come for every memory with pages, while semantic retrieval
    /// is on.
    pub fn coverages(&self) -> Option<HashMap<String, Coverage>> {
        self.semantic().map(|semantic| semantic.coverages())
    }

    /// One round of background embedding (`None` while semantic retrieval is off).
    pub fn embed_pending(&self) -> Option<Result<EmbedRound, SearchError>> {
        self.semantic().map(|semantic| semantic.embed_pending())
    }

    fn wrote(&self) {
        self.uncommitted.store(true, Ordering::SeqCst);
    }
}

impl SearchBackend for InstanceSearch {
    fn replace_document(&self, memory_id: &str, document_id: &str, chunks: &[Chunk]) -> Result<(), SearchError> {
        self.wrote();
        self.current().replace_document(memory_id, document_id, chunks)
    }

    fn remove_documents(&self, memory_id: &str, document_ids: &[String]) -> Result<(), SearchError> {
        self.wrote();
        self.current().remove_documents(memory_id, document_ids)
    }

    fn remove_memory(&self, memory_id: &str) -> Result<(), SearchError> {
        self.wrote();
        self.current().remove_memory(memory_id)
    }

    fn commit(&self) -> Result<(), SearchError> {
        let semantic = self.semantic();
        if semantic.is_none() && self.wanted.load(Ordering::SeqCst) && self.uncommitted.load(Ordering::SeqCst) {
            std::fs::write(self.stale_marker(), b"")
                .map_err(|e| SearchError::Semantic(format!("cannot mark the semantic index stale: {e}")))?;
        }
        match semantic {
            Some(semantic) => semantic.commit()?,
            None => self.lexical.commit()?,
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.uncommitted.store(false, Ordering::SeqCst);
        if self.reconcile.swap(false, Ordering::SeqCst)
            && let Some(semantic) = self.semantic()
        {
            semantic.reconcile()?;
        }
        Ok(())
    }

    fn rollback(&self) -> Result<(), SearchError> {
        self.current().rollback()?;
        self.uncommitted.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn query(&self, text: &str, memory_ids: &[String], limit: usize) -> Result<Vec<Hit>, SearchError> {
        self.current().query(text, memory_ids, limit)
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
