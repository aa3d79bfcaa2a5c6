//! The `search` interface over a [`connector_search::SearchBackend`]. The host opens
//! one index per connector instance, so tenancy needs no cooperation from the guest.
//! A 0.1.x component's `search` (string errors) is served by the same calls.

use connector_search::SearchError;

use crate::bindings::knowledge::connector::search;
use crate::bindings::since_v0_1::knowledge::connector::search as search_v0_1;
use crate::profile::Part;
use crate::state::HostState;

/// The contract's error for a backend failure: what repeating cannot fix, or what it may.
fn search_error(error: SearchError) -> search::SearchError {
    match error {
        SearchError::InvalidMemoryId(_) | SearchError::Config(_) => {
            search::SearchError::InvalidInput(error.to_string())
        }
        _ => search::SearchError::Unavailable(error.to_string()),
    }
}

impl search::Host for HostState {
    async fn replace_document(
        &mut self,
        memory_id: String,
        document_id: String,
        chunks: Vec<search::Chunk>,
    ) -> wasmtime::Result<Result<(), search::SearchError>> {
        let chunks: Vec<connector_search::Chunk> = chunks
            .into_iter()
            .map(|c| connector_search::Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
            .collect();
        let search = &self.grants.search;
        let replaced = crate::blocking::blocking(|| {
            self.grants.profile.time(Part::IndexWrite, || search.replace_document(&memory_id, &document_id, &chunks))
        });
        Ok(replaced.map_err(search_error))
    }

    async fn remove_documents(
        &mut self,
        memory_id: String,
        document_ids: Vec<String>,
    ) -> wasmtime::Result<Result<(), search::SearchError>> {
        let search = &self.grants.search;
        let removed = crate::blocking::blocking(|| {
            self.grants.profile.time(Part::IndexWrite, || search.remove_documents(&memory_id, &document_ids))
        });
        Ok(removed.map_err(search_error))
    }

    async fn rollback(&mut self) -> wasmtime::Result<Result<(), search::SearchError>> {
        let search = &self.grants.search;
        Ok(crate::blocking::blocking(|| self.grants.profile.time(Part::IndexWrite, || search.rollback()))
            .map_err(search_error))
    }

    async fn commit(&mut self) -> wasmtime::Result<Result<(), search::SearchError>> {
        let search = &self.grants.search;
        Ok(crate::blocking::blocking(|| self.grants.profile.time(Part::IndexWrite, || search.commit()))
            .map_err(search_error))
    }

    async fn query(
        &mut self,
        text: String,
        memory_ids: Vec<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<search::Hit>, search::SearchError>> {
        let search = &self.grants.search;
        let hits = crate::blocking::blocking(|| {
            self.grants.profile.time(Part::IndexQuery, || search.query(&text, &memory_ids, limit as usize))
        });
        Ok(hits
            .map(|hits| {
                hits.into_iter()
                    .map(|h| search::Hit {
                        memory_id: h.memory_id,
                        document_id: h.document_id,
                        ordinal: h.ordinal,
                        title: h.title,
                        heading: h.heading,
                        text: h.text,
                        score: h.score,
                    })
                    .collect()
            })
            .map_err(search_error))
    }
}

/// 0.1.x reported every failure as its message.
fn message(error: search::SearchError) -> String {
    match error {
        search::SearchError::InvalidInput(message) | search::SearchError::Unavailable(message) => message,
    }
}

impl search_v0_1::Host for HostState {
    async fn replace_document(
        &mut self,
        memory_id: String,
        document_id: String,
        chunks: Vec<search_v0_1::Chunk>,
    ) -> wasmtime::Result<Result<(), String>> {
        let chunks = chunks
            .into_iter()
            .map(|c| search::Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
            .collect();
        Ok(search::Host::replace_document(self, memory_id, document_id, chunks).await?.map_err(message))
    }

    async fn remove_documents(
        &mut self,
        memory_id: String,
        document_ids: Vec<String>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(search::Host::remove_documents(self, memory_id, document_ids).await?.map_err(message))
    }

    async fn rollback(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(search::Host::rollback(self).await?.map_err(message))
    }

    async fn commit(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(search::Host::commit(self).await?.map_err(message))
    }

    async fn query(
        &mut self,
        text: String,
        memory_ids: Vec<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<search_v0_1::Hit>, String>> {
        let hits = search::Host::query(self, text, memory_ids, limit).await?.map_err(message);
        Ok(hits.map(|hits| {
            hits.into_iter()
                .map(|h| search_v0_1::Hit {
                    memory_id: h.memory_id,
                    document_id: h.document_id,
                    ordinal: h.ordinal,
                    title: h.title,
                    heading: h.heading,
                    text: h.text,
                    score: h.score,
                })
                .collect()
        }))
    }
}
