//! Confluence Cloud knowledge connector.
//!
//! A source on top of the connector SDK (`connector-sdk`): compiled for `wasm32-wasip2`,
//! this crate is a WebAssembly component exporting the `knowledge-connector` interface of
//! `wit/connector.wit` (the SDK's `export_connector!`). Everything here is plain Rust,
//! tested natively on the SDK's in-memory capabilities:
//!
//! - [`connector`]: the SDK's `Connector`, implemented by [`connector::Confluence`];
//! - [`site`]: what people paste as a site URL → the REST base;
//! - [`client`], [`model`]: the Confluence REST v2 client over the SDK's transport;
//! - [`storage`], [`chunk`]: storage format → clean text → section chunks with headings;
//! - [`extract`]: an attached file's text (text formats, PDF, Office) → storage format;
//! - [`engine`], [`records`]: connect / ingest / sync / step / retrieve over key-value
//!   storage, search and secrets, checkpointed after every step.

pub mod chunk;
pub mod client;
pub mod connector;
pub mod engine;
pub mod extract;
pub mod model;
pub mod records;
pub mod site;
pub mod storage;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
connector_sdk::export_connector!(connector::Confluence);
