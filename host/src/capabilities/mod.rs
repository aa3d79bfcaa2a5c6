//! The capabilities the host grants a connector, one module each (Spin-factor style):
//! configuration, the backend it delegates to, and the WIT host implementation.
//!
//! - [`http`]: outbound HTTP restricted to the instance's allow-list, sent by [`send`] to
//!   the addresses that were checked;
//! - [`kv`]: `wasi:keyvalue` on the embedded store, namespaced per instance;
//! - [`search`]: the `search` interface on a per-instance index;
//! - [`secrets`]: the `secrets` interface, encrypted at rest.

pub mod http;
pub mod kv;
pub mod search;
pub mod secrets;
pub mod send;
