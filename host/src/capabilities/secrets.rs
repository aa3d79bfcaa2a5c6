//! The `secrets` interface: the guest stores API tokens here, never in key-value
//! storage. Values are encrypted at rest with the operator key
//! ([`connector_store::OperatorKey`]) and bound to the instance and the secret's name.

use crate::bindings::knowledge::connector::secrets;
use crate::state::HostState;

impl secrets::Host for HostState {
    async fn put(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.grants.secrets.put(&name, &value).map_err(|e| e.to_string()))
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, String>> {
        Ok(self.grants.secrets.get(&name).map_err(|e| e.to_string()))
    }

    async fn remove(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.grants.secrets.remove(&name).map_err(|e| e.to_string()))
    }
}
