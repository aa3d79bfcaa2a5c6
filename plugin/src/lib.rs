//! Confluence Cloud knowledge connector.
//!
//! Compiled for `wasm32-wasip2`, this crate is a WebAssembly component exporting the
//! `knowledge-connector` interface of `wit/connector.wit`. Everything except
//! [`guest`](crate) (the WIT boundary, wasm only) is plain Rust and tested natively:
//!
//! - [`site`]: what people paste as a site URL → the REST base;
//! - [`client`], [`http`], [`model`]: the Confluence REST v2 client behind a small transport seam;
//! - [`storage`], [`chunk`]: storage format → clean text → section chunks with headings;
//! - [`engine`], [`records`], [`caps`]: connect / ingest / sync / step / retrieve over
//!   key-value storage, search and secrets;
//! - [`rank`]: the index's best chunks → an answer of distinct, document-ranked sources;
//! - [`fakes`]: every capability in memory (and a host that crashes on cue), for native
//!   tests of the engine (`tests/engine.rs`).

pub mod caps;
pub mod chunk;
pub mod client;
pub mod engine;
pub mod fakes;
pub mod http;
pub mod model;
pub mod rank;
pub mod records;
pub mod site;
pub mod storage;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod guest;
