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
    fn bucket(&self, handle: &Resource<BucketHandle>) -> wasmtime::Result<connector_store::Bucket> {
        Ok(self.table.get(handle)?.0.clone())
    }

    fn timed<T>(&self, work: impl FnOnce() -> T) -> T {
        self.grants.profile.time(Part::Storage, work)
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
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.get(&key)).map_err(other))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.set(&key, &value)).map_err(other))
    }

    async fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.delete(&key)).map_err(other))
    }

    async fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.exists(&key)).map_err(other))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self
            .timed(|| bucket.list_keys(cursor, LIST_PAGE))
            .map(|(keys, cursor)| store::KeyResponse { keys, cursor })
            .map_err(other))
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
        let bucket = self.bucket(&bucket)?;
        let values = match self.timed(|| bucket.get_many(&keys)) {
            Ok(values) => values,
            Err(error) => return Ok(Err(other(error))),
        };
        Ok(Ok(keys.into_iter().zip(values).map(|(key, value)| value.map(|v| (key, v))).collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.set_many(&key_values)).map_err(other))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let bucket = self.bucket(&bucket)?;
        Ok(self.timed(|| bucket.delete_many(&keys)).map_err(other))
    }
}
