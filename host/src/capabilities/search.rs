//! The `search` interface over a [`connector_search::SearchBackend`]. The host opens
//! one index per connector instance, so tenancy needs no cooperation from the guest.

use crate::bindings::knowledge::connector::search;
use crate::profile::Part;
use crate::state::HostState;

impl search::Host for HostState {
    async fn replace_document(
        &mut self,
        memory_id: String,
        document_id: String,
        chunks: Vec<search::Chunk>,
    ) -> wasmtime::Result<Result<(), String>> {
        let chunks: Vec<connector_search::Chunk> = chunks
            .into_iter()
            .map(|c| connector_search::Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
            .collect();
        let search = &self.grants.search;
        let replaced =
            self.grants.profile.time(Part::IndexWrite, || search.replace_document(&memory_id, &document_id, &chunks));
        Ok(replaced.map_err(|e| e.to_string()))
    }

    async fn remove_documents(
        &mut self,
        memory_id: String,
        document_ids: Vec<String>,
    ) -> wasmtime::Result<Result<(), String>> {
        let search = &self.grants.search;
        let removed = self.grants.profile.time(Part::IndexWrite, || search.remove_documents(&memory_id, &document_ids));
        Ok(removed.map_err(|e| e.to_string()))
    }

    async fn rollback(&mut self) -> wasmtime::Result<Result<(), String>> {
        let search = &self.grants.search;
        Ok(self.grants.profile.time(Part::IndexWrite, || search.rollback()).map_err(|e| e.to_string()))
    }

    async fn commit(&mut self) -> wasmtime::Result<Result<(), String>> {
        let search = &self.grants.search;
        Ok(self.grants.profile.time(Part::IndexWrite, || search.commit()).map_err(|e| e.to_string()))
    }

    async fn query(
        &mut self,
        text: String,
        memory_ids: Vec<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<search::Hit>, String>> {
        let search = &self.grants.search;
        let hits = self.grants.profile.time(Part::IndexQuery, || search.query(&text, &memory_ids, limit as usize));
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
            .map_err(|e| e.to_string()))
    }
}
