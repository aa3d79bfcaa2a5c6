//! The `secrets` interface: the guest stores API tokens here, never in key-value
//! storage. Values are encrypted at rest with the operator key
//! ([`connector_store::OperatorKey`]) and bound to the instance and the secret's name.
//! A 0.1.x component's `secrets` (string errors) is served by the same calls.

use connector_store::StoreError;

use crate::bindings::knowledge::connector::secrets::{self, SecretsError};
use crate::bindings::since_v0_1::knowledge::connector::secrets as secrets_v0_1;
use crate::state::HostState;

/// The contract's error for a store failure: a refused argument, a secret this host can no
/// longer read, or a failure that may pass.
fn secrets_error(error: StoreError) -> SecretsError {
    match error {
        StoreError::InvalidName { .. } | StoreError::KeyTooLarge { .. } | StoreError::ValueTooLarge { .. } => {
            SecretsError::InvalidInput(error.to_string())
        }
        StoreError::SecretUndecryptable { .. } | StoreError::SecretCorrupt { .. } => {
            SecretsError::Unreadable(error.to_string())
        }
        _ => SecretsError::Unavailable(error.to_string()),
    }
}

impl secrets::Host for HostState {
    async fn put(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), SecretsError>> {
        Ok(crate::blocking::blocking(|| self.grants.secrets.put(&name, &value)).map_err(secrets_error))
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, SecretsError>> {
        Ok(crate::blocking::blocking(|| self.grants.secrets.get(&name)).map_err(secrets_error))
    }

    async fn remove(&mut self, name: String) -> wasmtime::Result<Result<(), SecretsError>> {
        Ok(crate::blocking::blocking(|| self.grants.secrets.remove(&name)).map_err(secrets_error))
    }
}

/// 0.1.x reported every failure as its message.
fn message(error: SecretsError) -> String {
    match error {
        SecretsError::InvalidInput(message)
        | SecretsError::Unreadable(message)
        | SecretsError::Unavailable(message) => message,
    }
}

impl secrets_v0_1::Host for HostState {
    async fn put(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(secrets::Host::put(self, name, value).await?.map_err(message))
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, String>> {
        Ok(secrets::Host::get(self, name).await?.map_err(message))
    }

    async fn remove(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        Ok(secrets::Host::remove(self, name).await?.map_err(message))
    }
}
