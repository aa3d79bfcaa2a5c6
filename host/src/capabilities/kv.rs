//! `wasi:keyvalue/store` and `batch` (`0.2.0-draft`) over [`connector_store`].
//!
//! Every bucket a guest opens lives inside its instance's namespace; the guest names
//! buckets but never namespaces, so it cannot reach another instance's keys.

use wasmtime::component::Resource;

use crate::bindings::wasi::keyvalue::{batch, store};
use crate::profile::Part;
use crate::state::HostState;

/// An open bucket, as held in the resource table.
pub struct BucketHandle(connector_store::Bucket);

/// Keys returned per `list-keys` page.
const LIST_PAGE: usize = 1000;

fn other(error: impl std::fmt::Display) -> store::Error {
    store::Error::Other(error.to_string())
}

fn bucket_name(identifier: &str) -> Result<&str, store::Error> {
    let name = if identifier.is_empty() { "default" } else { identifier };
    let valid = name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(name) } else { Err(store::Error::Other(format!("invalid bucket name '{identifier}'"))) }
}

impl HostState {
    /// Runs `work` on an open bucket, charging its time to storage.
    fn on_bucket<T, E: std::fmt::Display>(
        &self,
        handle: &Resource<BucketHandle>,
        work: impl FnOnce(&connector_store::Bucket) -> Result<T, E>,
    ) -> wasmtime::Result<Result<T, store::Error>> {
        let bucket = &self.table.get(handle)?.0;
        Ok(crate::blocking::blocking(|| self.grants.profile.time(Part::Storage, || work(bucket))).map_err(other))
    }
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<BucketHandle>, store::Error>> {
        let name = match bucket_name(&identifier) {
            Ok(name) => name,
            Err(error) => return Ok(Err(error)),
        };
        match self.grants.store.bucket(&self.grants.namespace, name) {
            Ok(bucket) => Ok(Ok(self.table.push(BucketHandle(bucket))?)),
            Err(error) => Ok(Err(other(error))),
        }
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        self.on_bucket(&bucket, |b| b.get(&key))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.on_bucket(&bucket, |b| b.set(&key, &value))
    }

    async fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.on_bucket(&bucket, |b| b.delete(&key))
    }

    async fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        self.on_bucket(&bucket, |b| b.exists(&key))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        Ok(self
            .on_bucket(&bucket, |b| b.list_keys(cursor, LIST_PAGE))?
            .map(|(keys, cursor)| store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let values = self.on_bucket(&bucket, |b| b.get_many(&keys))?;
        Ok(values.map(|values| keys.into_iter().zip(values).map(|(key, value)| value.map(|v| (key, v))).collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.on_bucket(&bucket, |b| b.set_many(&key_values))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.on_bucket(&bucket, |b| b.delete_many(&keys))
    }
}
