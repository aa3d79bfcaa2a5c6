//! Semantic retrieval beside BM25: page embeddings, kept in step with the lexical index
//! and fused with its ranking at query time.
//!
//! [`SemanticSearch`] wraps any lexical [`crate::SearchBackend`] and is one itself, so the
//! guest keeps sending chunks and asking questions as before:
//!
//! - **Writes** stage one *page text* per replaced document (its title and first passages,
//!   [`page::page_text`]); [`crate::SearchBackend::commit`] records them as *pending* in
//!   the semantic store ([`store`]) before the lexical commit, and the lexical index is
//!   answerable at once.
//! - **Embedding** happens later, off the write path: [`SemanticSearch::embed_pending`]
//!   embeds a batch of pending pages with an [`Embedder`] and stores their vectors. A
//!   page whose text did not change since its vector was made is not pending again, so a
//!   sync re-embeds only what changed; pending pages survive a crash.
//! - **Queries** embed the question once, score the pages' vectors exactly ([`vectors`])
//!   and fuse the two rankings page by page ([`fusion`]).

mod embedder;
pub mod fusion;
mod index;
pub mod page;
pub mod store;
pub mod vectors;

pub use embedder::Embedder;
pub use fusion::Fusion;
pub use index::{Coverage, EmbedRound, SemanticConfig, SemanticSearch};
