//! Per-store state: what one connector instance is granted.

use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capabilities::http::OutboundPolicy;
use crate::profile::CallProfile;

/// The capabilities of one connector instance (cheap to clone: handles only).
#[derive(Clone)]
pub struct Grants {
    /// The instance's namespace in storage (its id).
    pub namespace: String,
    /// Embedded key-value store.
    pub store: connector_store::Store,
    /// The instance's own search index.
    pub search: Arc<dyn connector_search::SearchBackend>,
    /// The instance's secrets.
    pub secrets: connector_store::Secrets,
    /// Where its HTTP may go.
    pub outbound: OutboundPolicy,
    /// Where its calls spend their time (shared by the host's instances).
    pub profile: CallProfile,
}

/// Which limit of a call the guest ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The CPU time its code may run.
    Cpu,
    /// The call's wall-clock time.
    WallClock,
}

/// The limits of the call in progress and what it has used of them.
#[derive(Debug, Clone)]
pub struct CallBudget {
    /// When the call started.
    pub started: std::time::Instant,
    /// Wall-clock limit of the call.
    pub wall_clock: std::time::Duration,
    /// Epoch ticks the guest's code may run.
    pub cpu_ticks: u64,
    /// Epoch ticks it has run so far.
    pub ticks_used: u64,
    /// The limit it ran into, if any.
    pub exceeded: Option<Limit>,
}

/// Data of one wasmtime store.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) grants: Grants,
    /// The limits of the call in progress (`None` between calls).
    pub(crate) budget: Option<CallBudget>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.grants.outbound }
    }
}

impl crate::bindings::knowledge::connector::types::Host for HostState {}
impl crate::bindings::since_v0_1::knowledge::connector::types::Host for HostState {}
