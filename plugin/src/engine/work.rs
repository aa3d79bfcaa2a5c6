//! The work loop: one bounded step of listing, fetching, counting or deleting, ending
//! in a checkpoint.

use connector_sdk::checkpoint::StepWrites;
use connector_sdk::step::{Advance, Lifecycle, settle};
use connector_sdk::sweep::{remove_stale, tally};

use super::*;

/// Listing pages a step takes at most (500 documents): each step ends in one index commit
/// and one checkpoint, so bigger steps mean fewer commits.
const LISTING_PAGES_PER_STEP: usize = 2;

/// A failure inside a run, before it is turned into the memory's error message.
enum RunFailure {
    Api(ApiError),
    Stop(String),
    Host(HostError),
}

impl From<ApiError> for RunFailure {
    fn from(error: ApiError) -> Self {
        RunFailure::Api(error)
    }
}

impl From<HostError> for RunFailure {
    fn from(error: HostError) -> Self {
        RunFailure::Host(error)
    }
}

impl Engine<'_> {
    /// One bounded piece of work on a memory, ending in a checkpoint.
    pub fn step(&self, memory_id: &str) -> Result<StepReport, ConnectorError> {
        let mut memory = self.memory(memory_id)?;
        let Some(mut run) = memory.run.take() else {
            return Ok(StepReport { memory, finished: true });
        };
        let connection = self.connection(&memory.connection_id)?;
        let client = match self.client_for(&connection) {
            Ok(client) => client,
            Err(error) => {
                memory.status = MemoryStatus::Error;
                memory.error = Some(error.to_string());
                self.save_memory(&memory)?;
                return Ok(StepReport { memory, finished: true });
            }
        };
        let result = self.advance(&client, &connection, &mut memory, &mut run);
        let traffic = client.traffic();
        memory.progress.requests += traffic.requests;
        memory.progress.retries += traffic.retries;
        let outcome = result.map_err(|failure| self.explain(failure, &connection, &memory));
        let finished = settle(&mut memory, outcome, self.index, self.transport.unix_time());
        if !finished {
            memory.progress.phase = run.phase.label().into();
            memory.run = Some(run);
        }
        self.save_memory(&memory)?;
        Ok(StepReport { memory, finished })
    }

    fn explain(&self, failure: RunFailure, connection: &Connection, memory: &Memory) -> String {
        let kept = if memory.documents > 0 { " (the last good content stays searchable)" } else { "" };
        match failure {
            RunFailure::Api(ApiError::Unauthorized { .. }) => format!("{}{kept}", token_rejected(connection)),
            RunFailure::Api(ApiError::ScopeMismatch { url }) => format!(
                "the API token lacks a scope needed for {url}: add read:page:confluence and read:space:confluence to the token, then reconnect{kept}"
            ),
            RunFailure::Api(ApiError::NotFound { .. }) => {
                format!("{}{kept}", space_not_found(&memory.space_key, connection))
            }
            RunFailure::Api(error) => format!("{error}{kept}"),
            RunFailure::Stop(message) => format!("{message}{kept}"),
            RunFailure::Host(error) => format!("host storage failed: {error}{kept}"),
        }
    }

    fn advance(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        match run.phase {
            Phase::Pages | Phase::BlogPosts => self.list(client, connection, memory, run),
            Phase::Fetch => self.fetch(client, memory, run),
            Phase::Count => self.count(memory, run),
            Phase::Delete => self.delete(memory, run),
        }
    }

    /// Takes the next pages of the current listing, [`LISTING_PAGES_PER_STEP`] at most, with
    /// one index commit and one checkpoint for all of them.
    fn list(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let space_id = memory.space_id.clone().unwrap_or_default();
        let (collection, kind) = match run.phase {
            Phase::Pages => ("pages", 'p'),
            _ => ("blogposts", 'b'),
        };
        let with_bodies = run.kind == RunKind::Ingest;
        let phase = run.phase;
        let mut uncommitted = StepWrites::default();
        for _ in 0..LISTING_PAGES_PER_STEP {
            if run.phase != phase {
                break;
            }
            let link = run.cursor.clone().unwrap_or_else(|| listing_start(&space_id, collection, with_bodies));
            let listing: Listing<Content> = fetch_listing(client, &link, |next| run.visited.contains(&hash_of(next)))?;
            if let Some(base) = listing.links.base.as_deref().filter(|b| !b.is_empty()) {
                memory.wiki_base = base.trim_end_matches('/').to_string();
            } else if memory.wiki_base.is_empty() {
                memory.wiki_base = format!("{}/wiki", connection.site);
            }
            memory.progress.listed += listing.results.len() as u32;
            memory.progress.known += listing.results.len() as u32;
            // The next listing request travels while this batch is converted and indexed.
            match (&listing.links.next, run.phase) {
                (Some(next), _) if *next != link && !run.visited.contains(&hash_of(next)) => client.prefetch(next),
                (None, Phase::Pages) => client.prefetch(&listing_start(&space_id, "blogposts", with_bodies)),
                _ => {}
            }
            self.absorb(client, memory, run, kind, listing.results, with_bodies, &mut uncommitted)?;
            match listing.links.next {
                Some(next) => {
                    let fingerprint = hash_of(&next);
                    if run.visited.contains(&fingerprint) || next == link {
                        return Err(RunFailure::Api(ApiError::Looping(next)));
                    }
                    run.visited.push(fingerprint);
                    run.cursor = Some(next);
                }
                None => {
                    run.cursor = None;
                    run.visited.clear();
                    run.phase = match run.phase {
                        Phase::Pages => Phase::BlogPosts,
                        _ if run.pending.is_empty() => Phase::Count,
                        _ => Phase::Fetch,
                    };
                }
            }
        }
        self.record(memory, uncommitted)?;
        Ok(Advance::More)
    }

    /// Takes listed documents into the memory: indexes new and changed ones (when the
    /// bodies are at hand) or queues them for fetching, and marks everything seen.
    /// Nothing is recorded until [`Self::record`]: the records follow the commit.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &self,
        client: &Client<'_>,
        memory: &mut Memory,
        run: &mut Run,
        kind: char,
        contents: Vec<Content>,
        with_bodies: bool,
        uncommitted: &mut StepWrites,
    ) -> Result<(), RunFailure> {
        if contents.is_empty() {
            return Ok(());
        }
        let bucket = docs_bucket(&memory.id);
        let ids: Vec<String> = contents.iter().map(|c| c.id.clone()).collect();
        let existing: Vec<Option<DocRecord>> = self
            .kv
            .get_many(&bucket, &ids)?
            .into_iter()
            .map(|stored| stored.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
            .collect();
        let changed: Vec<bool> = contents
            .iter()
            .zip(&existing)
            .map(|(content, stored)| {
                stored.as_ref().is_none_or(|r| r.version != content.version.number || r.title != content.title)
            })
            .collect();
        // The bodies to index, converted; the people they mention are named in one go.
        let mut converted: Vec<Option<storage::Converted>> = contents
            .iter()
            .zip(&changed)
            .map(|(content, &changed)| (with_bodies && changed).then(|| storage::convert(content.storage())))
            .collect();
        let mentioned: Vec<String> = {
            let mut ids: Vec<String> = converted.iter().flatten().flat_map(storage::Converted::mentions).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        if !mentioned.is_empty() {
            let names = self.display_names(client, &memory.connection_id, &mentioned)?;
            converted.iter_mut().flatten().for_each(|doc| doc.name_mentions(&names));
        }
        for (((content, stored), doc), changed) in contents.into_iter().zip(existing).zip(converted).zip(changed) {
            let webui = content.links.webui.clone().unwrap_or_default();
            if let Some(doc) = doc {
                let chunks = converted_chunks(&doc, &content.title, &self.chunking);
                let count = chunks.len() as u32;
                self.index.replace_document(&memory.id, &content.id, chunks)?;
                uncommitted.indexed();
                memory.progress.updated += 1;
                let record = DocRecord {
                    kind,
                    title: content.title,
                    parent: content.parent_id,
                    version: content.version.number,
                    modified: content.version.created_at,
                    webui,
                    chunks: count,
                    seen: memory.generation,
                };
                uncommitted.record(content.id, encode(&record));
            } else if changed {
                run.pending.push(format!("{kind}:{}", content.id));
            } else if let Some(mut record) = stored {
                // Unchanged body; a move or a new link still updates the citation.
                record.parent = content.parent_id;
                record.webui = webui;
                record.seen = memory.generation;
                uncommitted.record(content.id, encode(&record));
            }
            memory.progress.done += u32::from(!changed || with_bodies);
        }
        Ok(())
    }

    /// Commits what [`Self::absorb`] indexed, then writes its records: a record never
    /// claims a document the index does not durably hold.
    fn record(&self, memory: &Memory, uncommitted: StepWrites) -> Result<(), RunFailure> {
        Ok(uncommitted.apply(self.index, self.kv, &docs_bucket(&memory.id))?)
    }

    fn fetch(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let kind = run.pending.first().and_then(|p| p.chars().next()).unwrap_or('p');
        let batch: Vec<String> = run
            .pending
            .iter()
            .filter(|p| p.starts_with(kind))
            .take(PAGE_LIMIT as usize)
            .map(|p| p[2..].to_string())
            .collect();
        let collection = if kind == 'b' { "blogposts" } else { "pages" };
        let mut link =
            Some(format!("/wiki/api/v2/{collection}?id={}&body-format=storage&limit={PAGE_LIMIT}", batch.join(",")));
        let mut visited = HashSet::new();
        let mut uncommitted = StepWrites::default();
        while let Some(current) = link.take() {
            if !visited.insert(current.clone()) {
                return Err(RunFailure::Api(ApiError::Looping(current)));
            }
            let listing: Listing<Content> = fetch_listing(client, &current, |next| visited.contains(next))?;
            memory.progress.fetched += listing.results.len() as u32;
            let wanted: Vec<Content> = listing.results.into_iter().filter(|c| batch.contains(&c.id)).collect();
            self.absorb(client, memory, run, kind, wanted, true, &mut uncommitted)?;
            link = listing.links.next;
        }
        self.record(memory, uncommitted)?;
        let done: HashSet<String> = batch.into_iter().map(|id| format!("{kind}:{id}")).collect();
        run.pending.retain(|p| !done.contains(p));
        if run.pending.is_empty() {
            run.phase = Phase::Count;
        }
        Ok(Advance::More)
    }

    fn count(&self, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let tally = tally(self.kv, &docs_bucket(&memory.id), memory.generation)?;
        if run.kind == RunKind::Sync && !run.allow_mass_delete && tally.is_mass_delete() {
            return Err(RunFailure::Stop(format!(
                "this sync would remove {} of the {} pages of space {}: nothing was removed; if that is right, sync again allowing mass deletion",
                tally.stale.len(),
                tally.documents as usize + tally.stale.len(),
                memory.space_key
            )));
        }
        memory.documents = tally.documents;
        memory.chunks = tally.chunks;
        run.stale = tally.stale;
        run.phase = Phase::Delete;
        Ok(Advance::More)
    }

    fn delete(&self, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let bucket = docs_bucket(&memory.id);
        memory.progress.deleted +=
            remove_stale(self.index, self.kv, &memory.id, &bucket, &mut run.stale, DELETE_BATCH)?;
        Ok(if run.stale.is_empty() { Advance::Finished } else { Advance::More })
    }
}

impl Lifecycle for Memory {
    fn finished(&mut self, synced_at: String) {
        self.status = MemoryStatus::Ingested;
        self.error = None;
        self.progress.phase = "done".into();
        self.synced_at = Some(synced_at);
    }

    fn failed(&mut self, error: String) {
        self.status = MemoryStatus::Error;
        self.error = Some(error);
        self.progress.phase = "failed".into();
    }
}

/// The first page of a space's `pages` or `blogposts` listing, with bodies for an ingest.
fn listing_start(space_id: &str, collection: &str, with_bodies: bool) -> String {
    let body = if with_bodies { "&body-format=storage" } else { "" };
    format!("/wiki/api/v2/spaces/{space_id}/{collection}?limit={PAGE_LIMIT}{body}")
}
