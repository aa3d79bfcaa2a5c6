//! Host bindings generated from `wit/connector.wit`: the same WIT the guest uses.

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

pub use exports::knowledge::connector::knowledge_connector as api;
pub use knowledge::connector::types;
