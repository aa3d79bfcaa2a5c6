//! The benchmark-only conversion component (`bench/convert-guest`): the connector's
//! storage-format converter compiled to wasm, called directly through wasmtime.

use anyhow::{Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "convert-guest/wit", world: "converter" });

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// An instance of the conversion component.
pub struct WasmConverter {
    store: Store<State>,
    converter: Converter,
}

impl WasmConverter {
    /// Compiles and instantiates the component built by `build.rs`, in the host's engine
    /// configuration (with its CPU-limit checks) or in wasmtime's default one.
    pub fn load(host_engine: bool) -> Result<WasmConverter> {
        let e = |e: wasmtime::Error| anyhow!("{e}");
        let engine = if host_engine { connector_host::runtime::new_engine()? } else { Engine::default() };
        let component = Component::from_file(&engine, env!("CONVERT_COMPONENT_PATH")).map_err(e)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(e)?;
        let mut store = Store::new(&engine, State { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
        store.set_epoch_deadline(u64::MAX / 2);
        let converter = Converter::instantiate(&mut store, &component, &linker).map_err(e)?;
        Ok(WasmConverter { store, converter })
    }

    /// Converts every body `rounds` times inside the component.
    pub fn convert(&mut self, bodies: &[String], rounds: u32) -> Result<u64> {
        self.converter.call_convert(&mut self.store, bodies, rounds).map_err(|e| anyhow!("{e}"))
    }
}
