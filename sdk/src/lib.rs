//! The guest SDK for knowledge connectors: everything a connector component needs that is
//! not about its source.
//!
//! A connector is plain Rust: it implements [`Connector`] over the host's capabilities as
//! traits ([`caps`], [`http`]) and returns the contract's types ([`types`]). The SDK turns
//! that into a `wasm32-wasip2` component of the `knowledge:connector` world
//! ([`export_connector!`], feature `guest`), and lets the same code run natively on
//! in-memory capabilities ([`fakes`]) for tests. A new source is one new crate on top of
//! it; the SDK, the WIT and the host stay as they are.
//!
//! - [`types`]: the contract's records and errors, in plain Rust;
//! - [`connector`]: the [`Connector`] trait and the [`Capabilities`] a call runs with;
//! - [`caps`], [`http`]: key-value storage, search, secrets and HTTP as traits;
//! - [`step`], [`checkpoint`], [`sweep`]: the step engine's parts every source shares —
//!   the end of a step (state, rollback on failure), the write order that makes a step
//!   safe to repeat, and the end of a run (what a complete listing did not see is removed,
//!   with the mass-delete guard);
//! - [`kv`], [`time`]: listing a bucket, numbering records, RFC 3339 times;
//! - [`fakes`]: every capability in memory, and a host that crashes on cue;
//! - [`rank`]: the index's best chunks → an answer of distinct, document-ranked sources;
//! - `guest` (wasm only): the WIT bindings and the adapters of every import.

pub mod caps;
pub mod checkpoint;
pub mod connector;
pub mod fakes;
pub mod http;
pub mod kv;
pub mod rank;
pub mod step;
pub mod sweep;
pub mod time;
pub mod types;

#[cfg(all(target_arch = "wasm32", feature = "guest"))]
#[doc(hidden)]
pub mod guest;

pub use connector::{Capabilities, Connector};
pub use types::ConnectorError;

/// Exports a [`Connector`] as the component's `knowledge-connector` interface:
/// `connector_sdk::export_connector!(MyConnector);` at the root of a `cdylib` built for
/// `wasm32-wasip2` with the SDK's `guest` feature.
#[cfg(all(target_arch = "wasm32", feature = "guest"))]
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        type __KnowledgeConnectorExport = $crate::guest::Component<$connector>;
        $crate::guest::export_guest!(__KnowledgeConnectorExport with_types_in $crate::guest);
    };
}
