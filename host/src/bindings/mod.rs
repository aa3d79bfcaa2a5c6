//! Host bindings generated from the WIT: the current contract (`wit/`, the types every
//! caller of the host sees) and, in [`since_v0_1`], the frozen 0.1.x contract
//! (`wit/since_v0.1.2/`) whose components the host still runs.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "knowledge:connector/connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:keyvalue/store.bucket": crate::capabilities::kv::BucketHandle,
    },
});

pub mod since_v0_1;

pub use exports::knowledge::connector::knowledge_connector as api;
pub use knowledge::connector::types;
