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

/// Runs a blocking backend call (a read or write of the store or the index: disk, or a round
/// trip to a shared database) where blocking is allowed: on a multi-threaded runtime its
/// worker thread first hands its other tasks to another thread, so that they do not wait
/// for the call (elsewhere the call just runs).
pub(crate) fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}
