//! The work loop: one bounded step of listing, fetching, counting or deleting, ending
//! in a checkpoint.

use crate::extract::{self, Skip};
use crate::model::Found;

use super::includes::{CYCLE, UNRESOLVED};
use connector_sdk::caps::IndexChunk;
use connector_sdk::checkpoint::StepWrites;
use connector_sdk::step::{Advance, Lifecycle, settle};
use connector_sdk::sweep::{remove_stale, tally};

use super::*;

/// Listing pages a step takes at most (500 documents): each step ends in one index commit
/// and one checkpoint, so bigger steps mean fewer commits.
const LISTING_PAGES_PER_STEP: usize = 2;

/// A failure inside a run, before it is turned into the memory's error message.
pub(super) enum RunFailure {
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
        loop {
            let phase = run.phase;
            let advance = match phase {
                Phase::Labels => self.labels(client, memory, run)?,
                Phase::Pages | Phase::BlogPosts => self.list(client, connection, memory, run)?,
                Phase::Comments => self.comments(client, memory, run)?,
                Phase::Attachments => self.attachments(client, connection, memory, run)?,
                Phase::Titles => self.titles(client, memory, run)?,
                Phase::Includes => self.check_includes(client, memory, run)?,
                Phase::Fetch => self.fetch(client, connection, memory, run)?,
                Phase::Count => self.count(memory, run)?,
                Phase::Delete => self.delete(memory, run)?,
            };
            // The label and counting phases are small (a few requests, no index writes; a
            // read of the records): the step goes on with the next phase rather than spend
            // a step, and a checkpoint, on them alone.
            if advance == Advance::More && run.phase != phase && matches!(phase, Phase::Labels | Phase::Count) {
                continue;
            }
            return Ok(advance);
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
                (None, _) => client.prefetch(&comments_start(&memory.space_key, with_bodies)),
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
                        _ => Phase::Comments,
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
        let ids: Vec<String> = contents.iter().map(|c| c.id.clone()).collect();
        let existing = self.doc_records(&memory.id, &ids)?;
        let labels: Vec<Vec<String>> = contents
            .iter()
            .zip(&existing)
            .map(|(content, stored)| self.labels_of(run, &content.id, stored.as_ref()))
            .collect();
        let changed: Vec<bool> = contents
            .iter()
            .zip(&existing)
            .zip(&labels)
            .map(|((content, stored), labels)| {
                run.refresh.contains(&content.id)
                    || stored.as_ref().is_none_or(|r| {
                        r.version != content.version.number || r.title != content.title || r.labels != *labels
                    })
            })
            .collect();
        // The bodies to index, converted; the people they mention are named in one go.
        let mut converted: Vec<Option<storage::Converted>> = contents
            .iter()
            .zip(&changed)
            .map(|(content, &changed)| (with_bodies && changed).then(|| storage::convert(content.storage())))
            .collect();
        // What they include comes in before the people are named: included text mentions
        // people too.
        let includes = if converted.iter().flatten().any(|doc| !doc.inclusions.is_empty()) {
            let resolution = self.resolve_inclusions(client, &memory.space_key, &ids, &mut converted)?;
            memory.progress.includes += resolution.shown;
            for (reason, count) in [(UNRESOLVED, resolution.unresolved), (CYCLE, resolution.cycles)] {
                if count > 0 {
                    *memory.progress.skipped.entry(reason.to_string()).or_default() += count;
                }
            }
            resolution.includes
        } else {
            vec![Vec::new(); ids.len()]
        };
        self.name_mentions(client, &memory.connection_id, &mut converted)?;
        let documents = contents.into_iter().zip(existing).zip(converted).zip(changed).zip(labels).zip(includes);
        for (((((content, stored), doc), changed), labels), includes) in documents {
            let webui = content.links.webui.clone().unwrap_or_default();
            if let Some(doc) = doc {
                let chunks = converted_chunks(&doc, &labelled_title(&content.title, &labels), &self.chunking);
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
                    skipped: None,
                    labels,
                    includes,
                };
                uncommitted.record(content.id, encode(&record));
            } else if changed {
                run.pending.push(format!("{kind}:{}", content.id));
            } else if let Some(mut record) = stored {
                // Unchanged body; a move or a new link still updates the citation. What it
                // includes may have changed: checked once the listing is complete.
                if !record.includes.is_empty() {
                    run.include_checks.push(content.id.clone());
                }
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

    /// The labels of the space's content, before its pages are listed (so that a page is
    /// indexed with its labels, and a sync sees a label change on an unchanged page): the
    /// space's label names (v2, 250 per request), then the labelled content, found by CQL
    /// (`label in (...)`, 50 names per search, 100 results per request) — requests grow with
    /// the labels and the labelled content, never one per page. A site that answers neither
    /// keeps the labels indexed before.
    fn labels(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let Some(searches) = run.label_searches.clone() else {
            let space_id = memory.space_id.clone().unwrap_or_default();
            let mut names = Vec::new();
            let first = format!("/wiki/api/v2/spaces/{space_id}/content/labels?limit={PAGE_LIMIT}");
            let listed = follow_listing(client, first, v2_link, |labels: Vec<Label>| {
                names.extend(labels.into_iter().map(|label| label.name));
                Ok::<(), ApiError>(())
            });
            match listed {
                Ok(()) => {}
                Err(error) if search_unavailable(&error) => {
                    run.labels_unavailable = true;
                    run.label_searches = Some(Vec::new());
                    start_phase(run, Phase::Pages);
                    return Ok(Advance::More);
                }
                Err(error) => return Err(error.into()),
            }
            names.sort();
            names.dedup();
            memory.progress.labels = names.len() as u32;
            run.label_searches =
                Some(names.chunks(LABELS_PER_SEARCH).map(|chunk| labelled_start(&memory.space_key, chunk)).collect());
            if names.is_empty() {
                start_phase(run, Phase::Pages);
            }
            return Ok(Advance::More);
        };
        let Some(start) = searches.first().cloned() else {
            start_phase(run, Phase::Pages);
            return Ok(Advance::More);
        };
        let end = self.search_pages(client, memory, run, &start, |_, run, labelled: Vec<Labelled>| {
            for content in labelled {
                let names = content.names();
                if !names.is_empty() {
                    run.labels.insert(content.id, names);
                }
            }
            Ok(())
        })?;
        if end == SearchEnd::Unavailable {
            run.labels_unavailable = true;
        }
        if end != SearchEnd::More {
            if let Some(searches) = run.label_searches.as_mut() {
                searches.remove(0);
            }
            run.cursor = None;
            run.visited.clear();
            if run.label_searches.as_ref().is_none_or(Vec::is_empty) {
                start_phase(run, Phase::Pages);
            }
        }
        Ok(Advance::More)
    }

    /// The labels a listed document has in this run: what the label phase found, or what
    /// its record says when the site answered no label search.
    fn labels_of(&self, run: &Run, id: &str, stored: Option<&DocRecord>) -> Vec<String> {
        if run.labels_unavailable {
            return stored.map(|r| r.labels.clone()).unwrap_or_default();
        }
        run.labels.get(id).cloned().unwrap_or_default()
    }

    /// Takes the next pages of the space's comment listing. A site that answers no comment
    /// search (the endpoint gone or refused) ends the phase without failing the run: the
    /// comments indexed before are kept.
    fn comments(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let with_bodies = run.kind == RunKind::Ingest;
        let mut uncommitted = StepWrites::default();
        let start = comments_start(&memory.space_key, with_bodies);
        let end = self.search_pages(client, memory, run, &start, |memory, run, comments: Vec<Comment>| {
            memory.progress.listed += comments.len() as u32;
            memory.progress.known += comments.len() as u32;
            self.absorb_comments(client, memory, run, comments, with_bodies, &mut uncommitted)
        })?;
        match end {
            SearchEnd::More => {}
            SearchEnd::Complete => start_phase(run, Phase::Attachments),
            SearchEnd::Unavailable => {
                run.comments_unavailable = true;
                start_phase(run, Phase::Attachments);
            }
        }
        self.record(memory, uncommitted)?;
        Ok(Advance::More)
    }

    /// Takes the next pages of the space's attachment listing (metadata only: files are
    /// downloaded in the fetch phase, one request per new or replaced file). A site that
    /// answers no attachment search keeps the attachments indexed before.
    fn attachments(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let mut uncommitted = StepWrites::default();
        let start = attachments_start(&memory.space_key);
        let end = self.search_pages(client, memory, run, &start, |memory, run, attachments: Vec<Attachment>| {
            memory.progress.listed += attachments.len() as u32;
            memory.progress.known += attachments.len() as u32;
            self.absorb_attachments(connection, memory, run, attachments, &mut uncommitted)
        })?;
        if end != SearchEnd::More {
            run.attachments_unavailable = end == SearchEnd::Unavailable;
            start_phase(run, Phase::Titles);
        }
        self.record(memory, uncommitted)?;
        Ok(Advance::More)
    }

    /// Takes the next pages of the space's listing of folders, whiteboards, databases and
    /// embeds (one paged CQL search): they are indexed by their titles, which is all the
    /// text they have for the connector; what else they hold (a drawing, a database's rows,
    /// an embedded site) is counted as left out. A site that answers no such search keeps
    /// the ones indexed before.
    fn titles(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let mut uncommitted = StepWrites::default();
        let start = titles_start(&memory.space_key);
        let end = self.search_pages(client, memory, run, &start, |memory, run, found: Vec<Found>| {
            memory.progress.listed += found.len() as u32;
            memory.progress.known += found.len() as u32;
            self.absorb_titles(memory, run, found, &mut uncommitted)
        })?;
        if end != SearchEnd::More {
            run.titles_unavailable = end == SearchEnd::Unavailable;
            let next = if run.include_checks.is_empty() { fetch_or_count(run) } else { Phase::Includes };
            start_phase(run, next);
        }
        self.record(memory, uncommitted)?;
        Ok(Advance::More)
    }

    /// Indexes listed folders, whiteboards, databases and embeds that are new, renamed or
    /// relabelled by title (and kind), and marks the rest seen.
    fn absorb_titles(
        &self,
        memory: &mut Memory,
        run: &mut Run,
        found: Vec<Found>,
        uncommitted: &mut StepWrites,
    ) -> Result<(), RunFailure> {
        let found: Vec<(Found, TitleKind)> =
            found.into_iter().filter_map(|f| TitleKind::of(&f.kind).map(|kind| (f, kind))).collect();
        let ids: Vec<String> = found.iter().map(|(f, _)| f.id.clone()).collect();
        let existing = self.doc_records(&memory.id, &ids)?;
        for ((item, kind), stored) in found.into_iter().zip(existing) {
            let labels = self.labels_of(run, &item.id, stored.as_ref());
            *memory.progress.skipped.entry(kind.left_out().to_string()).or_default() += 1;
            let parent = item.ancestors.last().map(|a| a.id.clone());
            match stored {
                Some(mut record)
                    if record.version == item.version.number
                        && record.title == item.title
                        && record.labels == labels =>
                {
                    record.parent = parent;
                    record.seen = memory.generation;
                    uncommitted.record(item.id, encode(&record));
                }
                _ => {
                    let chunks: Vec<IndexChunk> = converted_chunks(
                        &storage::Converted::default(),
                        &labelled_title(&item.title, &labels),
                        &self.chunking,
                    )
                    .into_iter()
                    .map(|chunk| IndexChunk { heading: kind.name().to_string(), ..chunk })
                    .collect();
                    let count = chunks.len() as u32;
                    self.index.replace_document(&memory.id, &item.id, chunks)?;
                    uncommitted.indexed();
                    memory.progress.updated += 1;
                    let record = DocRecord {
                        kind: kind.code(),
                        title: item.title,
                        parent,
                        version: item.version.number,
                        modified: item.version.when,
                        webui: item.links.webui.unwrap_or_default(),
                        chunks: count,
                        seen: memory.generation,
                        skipped: None,
                        labels,
                        includes: Vec::new(),
                    };
                    uncommitted.record(item.id, encode(&record));
                }
            }
            memory.progress.done += 1;
        }
        Ok(())
    }

    /// Takes the next pages of a paged CQL search, [`LISTING_PAGES_PER_STEP`] at most, from
    /// the run's cursor (or `start`), handing each page's results to `absorb`; the next page
    /// travels while the current one is absorbed.
    fn search_pages<T: serde::de::DeserializeOwned>(
        &self,
        client: &Client<'_>,
        memory: &mut Memory,
        run: &mut Run,
        start: &str,
        mut absorb: impl FnMut(&mut Memory, &mut Run, Vec<T>) -> Result<(), RunFailure>,
    ) -> Result<SearchEnd, RunFailure> {
        for _ in 0..LISTING_PAGES_PER_STEP {
            let link = run.cursor.clone().unwrap_or_else(|| start.to_string());
            let listing: Listing<T> =
                match fetch_listing(client, &link, |next| run.visited.contains(&hash_of(&v1_link(next)))) {
                    Ok(listing) => listing,
                    Err(error) if search_unavailable(&error) => return Ok(SearchEnd::Unavailable),
                    Err(error) => return Err(error.into()),
                };
            let next = listing.links.next.as_deref().map(v1_link);
            if let Some(next) = next.as_deref().filter(|n| *n != link && !run.visited.contains(&hash_of(n))) {
                client.prefetch(next);
            }
            absorb(memory, run, listing.results)?;
            let Some(next) = next else { return Ok(SearchEnd::Complete) };
            let fingerprint = hash_of(&next);
            if run.visited.contains(&fingerprint) || next == link {
                return Err(RunFailure::Api(ApiError::Looping(next)));
            }
            run.visited.push(fingerprint);
            run.cursor = Some(next);
        }
        Ok(SearchEnd::More)
    }

    /// Of `containers` (pages and blog posts that comments or files belong to), those this
    /// run indexes — seen by it, or queued by it for fetching — with their records (`None`
    /// for one queued before it ever had a record). Content of a trashed, restricted or
    /// foreign page is not part of the memory.
    fn containers_in_run(
        &self,
        memory: &Memory,
        run: &Run,
        containers: &[String],
    ) -> Result<HashMap<String, Option<DocRecord>>, RunFailure> {
        let records = self.doc_records(&memory.id, containers)?;
        Ok(containers
            .iter()
            .cloned()
            .zip(records)
            .filter(|(id, record)| {
                record.as_ref().is_some_and(|r| r.seen == memory.generation)
                    || run.pending.iter().any(|p| p.get(2..) == Some(id.as_str()))
            })
            .collect())
    }

    /// Takes listed attachments into the memory: an unchanged one is marked seen, a new or
    /// replaced one of a type with text and within the size limit is queued for download;
    /// the rest are counted by reason and left out (an indexed one that became too large
    /// goes).
    fn absorb_attachments(
        &self,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
        attachments: Vec<Attachment>,
        uncommitted: &mut StepWrites,
    ) -> Result<(), RunFailure> {
        let attachments: Vec<Attachment> = attachments
            .into_iter()
            .filter(|a| a.container.as_ref().is_some_and(|k| k.kind == "page" || k.kind == "blogpost"))
            .collect();
        let containers: Vec<String> =
            attachments.iter().filter_map(|a| a.container.as_ref()).map(|k| k.id.clone()).collect();
        let in_run = self.containers_in_run(memory, run, &containers)?;
        let attachments: Vec<Attachment> = attachments
            .into_iter()
            .filter(|a| a.container.as_ref().is_some_and(|k| in_run.contains_key(&k.id)))
            .collect();
        let ids: Vec<String> = attachments.iter().map(|a| a.id.clone()).collect();
        let existing = self.doc_records(&memory.id, &ids)?;
        for (attachment, stored) in attachments.into_iter().zip(existing) {
            if let Err(skip) = admissible(connection, &attachment) {
                *memory.progress.skipped.entry(skip.label().to_string()).or_default() += 1;
                continue;
            }
            let labels = self.labels_of(run, &attachment.id, stored.as_ref());
            match stored {
                Some(mut record)
                    if record.version == attachment.version.number
                        && record.labels == labels
                        && record.skipped.as_deref() != Some(EXTRACTION_INTERRUPTED) =>
                {
                    if let Some(reason) = &record.skipped {
                        *memory.progress.skipped.entry(reason.clone()).or_default() += 1;
                    }
                    record.parent = attachment.container.map(|k| k.id);
                    record.seen = memory.generation;
                    uncommitted.record(attachment.id, encode(&record));
                    memory.progress.done += 1;
                }
                _ => run.pending.push(format!("a:{}", attachment.id)),
            }
        }
        Ok(())
    }

    /// Downloads and indexes a batch of queued attachments: their current metadata in one
    /// request (`id in (...)`), then each file.
    fn fetch_attachments(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let batch: Vec<String> = run
            .pending
            .iter()
            .filter(|p| p.starts_with('a'))
            .take(DOWNLOADS_PER_STEP)
            .map(|p| p[2..].to_string())
            .collect();
        let cql = format!("id in ({})", batch.join(","));
        let link = format!(
            "/wiki/rest/api/content/search?cql={}&expand={ATTACHMENT_EXPANSIONS}&limit={}",
            url_encode(&cql),
            DOWNLOADS_PER_STEP
        );
        let listing: Listing<Attachment> = fetch_listing(client, &link, |_| false)?;
        let mut uncommitted = StepWrites::default();
        // Gone since it was listed: not in the answer, out of the queue below.
        let (wanted, left_out): (Vec<_>, Vec<_>) = listing
            .results
            .into_iter()
            .filter(|a| batch.contains(&a.id))
            .map(|attachment| {
                let format = admissible(connection, &attachment).and_then(|format| {
                    attachment.links.download.as_deref().map(|d| (format, v1_link(d))).ok_or(Skip::Unreadable)
                });
                (attachment, format)
            })
            .partition(|(_, format)| format.is_ok());
        for (_, format) in left_out {
            if let Err(skip) = format {
                *memory.progress.skipped.entry(skip.label().to_string()).or_default() += 1;
            }
        }
        // A step holds its files in memory together: at most DOWNLOAD_BYTES_PER_STEP of them
        // (and always one); the others wait for the next step.
        let mut budget = 0u64;
        let (wanted, later): (Vec<_>, Vec<_>) = wanted.into_iter().enumerate().partition(|(n, (attachment, _))| {
            budget += attachment.extensions.file_size;
            *n == 0 || budget <= DOWNLOAD_BYTES_PER_STEP
        });
        let later: HashSet<String> = later.into_iter().map(|(_, (attachment, _))| attachment.id).collect();
        // The marks a step that died while extracting left (see below): a file whose
        // extraction stopped the component twice is not downloaded again until it changes.
        let bucket = docs_bucket(&memory.id);
        let ids: Vec<String> = wanted.iter().map(|(_, (attachment, _))| attachment.id.clone()).collect();
        let marks: HashMap<String, String> = ids
            .iter()
            .zip(self.doc_records(&memory.id, &ids)?)
            .zip(&wanted)
            .filter_map(|((id, record), (_, (attachment, _)))| {
                let record = record?;
                let mark = record.skipped.filter(|_| record.version == attachment.version.number)?;
                Some((id.clone(), mark))
            })
            .collect();
        let given_up = |id: &str| marks.get(id).is_some_and(|mark| mark.as_str() == Skip::Unreadable.label());
        let abandoned: Vec<String> = ids.iter().filter(|id| given_up(id)).cloned().collect();
        if !abandoned.is_empty() {
            // What an earlier version of the file put in the index goes with it.
            self.index.remove_documents(&memory.id, &abandoned)?;
            uncommitted.indexed();
            *memory.progress.skipped.entry(Skip::Unreadable.label().to_string()).or_default() += abandoned.len() as u32;
        }
        let wanted: Vec<_> = wanted.into_iter().map(|(_, item)| item).filter(|(a, _)| !given_up(&a.id)).collect();
        let links: Vec<String> =
            wanted.iter().filter_map(|(_, f)| f.as_ref().ok().map(|(_, link)| link.clone())).collect();
        let files = client.get_files(&links);
        for ((attachment, format), file) in wanted.into_iter().zip(files) {
            let Ok((format, _)) = format else { continue };
            memory.progress.fetched += 1;
            let bytes = match file {
                Ok(bytes) => bytes,
                Err(ApiError::NotFound { .. } | ApiError::Gone { .. }) => continue,
                Err(ApiError::Denied(_)) => {
                    *memory.progress.skipped.entry(Skip::Refused.label().to_string()).or_default() += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let labels = run.labels.get(&attachment.id).cloned().unwrap_or_default();
            // Parsers of files from anywhere can fail in ways that stop the component (a
            // panic traps). The file is marked before its text is extracted and unmarked right
            // after: a step that dies inside leaves the mark. The repeated step tries once more
            // (the death may have been the host's), marked as given up; a file that stops the
            // component twice is skipped as unreadable instead of stopping the memory.
            let second_try = marks.contains_key(&attachment.id);
            let mark_reason = if second_try { Skip::Unreadable.label() } else { EXTRACTION_INTERRUPTED };
            let mark = left_out_record(&attachment, memory.generation, mark_reason, labels.clone());
            self.kv.set(&bucket, &attachment.id, &encode(&mark))?;
            let indexed = self.index_attachment(connection, memory, &attachment, format, &bytes, labels.clone());
            self.kv.delete_many(&bucket, std::slice::from_ref(&attachment.id))?;
            match indexed? {
                Ok(record) => {
                    uncommitted.indexed();
                    uncommitted.record(attachment.id.clone(), encode(&record));
                    memory.progress.attachments += 1;
                    memory.progress.updated += 1;
                    memory.progress.done += 1;
                }
                Err(skip) => {
                    *memory.progress.skipped.entry(skip.label().to_string()).or_default() += 1;
                    // An earlier version of the file may be indexed: it goes.
                    self.index.remove_documents(&memory.id, std::slice::from_ref(&attachment.id))?;
                    uncommitted.indexed();
                    // What is wrong with the file itself holds until it changes: remember it
                    // rather than download it again at every sync.
                    if matches!(skip, Skip::Encrypted | Skip::Unreadable) {
                        let record = left_out_record(&attachment, memory.generation, skip.label(), labels);
                        uncommitted.record(attachment.id.clone(), encode(&record));
                    }
                }
            }
        }
        self.record(memory, uncommitted)?;
        // Gone since it was listed, or done: either way out of the queue.
        let done: Vec<String> = batch.into_iter().filter(|id| !later.contains(id)).collect();
        Ok(dequeue(run, 'a', done))
    }

    /// Extracts a downloaded attachment's text and indexes it; the record to write, or why
    /// it is left out. Only a failure of the host fails the step.
    fn index_attachment(
        &self,
        connection: &Connection,
        memory: &Memory,
        attachment: &Attachment,
        format: extract::Format,
        bytes: &[u8],
        labels: Vec<String>,
    ) -> Result<Result<DocRecord, Skip>, RunFailure> {
        if bytes.len() as u64 > connection.attachment_max_bytes {
            return Ok(Err(Skip::TooLarge));
        }
        let xhtml = match extract::extract(format, bytes, connection.attachment_max_chars as usize) {
            Ok(xhtml) => xhtml,
            Err(skip) => return Ok(Err(skip)),
        };
        let title = labelled_title(&attachment.title, &labels);
        let chunks = converted_chunks(&storage::convert(&xhtml), &title, &self.chunking);
        let count = chunks.len() as u32;
        self.index.replace_document(&memory.id, &attachment.id, chunks)?;
        Ok(Ok(DocRecord {
            kind: 'a',
            title: attachment.title.clone(),
            parent: attachment.container.as_ref().map(|k| k.id.clone()),
            version: attachment.version.number,
            modified: attachment.version.when.clone(),
            webui: attachment.links.webui.clone().unwrap_or_default(),
            chunks: count,
            seen: memory.generation,
            skipped: None,
            labels,
            includes: Vec::new(),
        }))
    }

    /// Takes listed comments into the memory, like [`Self::absorb`] does pages: a comment on
    /// a page or blog post of this run is indexed as a document of its own (new or edited,
    /// when its body is at hand), queued for fetching (new or edited, listed without body)
    /// or marked seen. Resolved inline comments are left out: their discussion is closed, and
    /// what it decided is normally in the page by then; the open ones carry the news.
    fn absorb_comments(
        &self,
        client: &Client<'_>,
        memory: &mut Memory,
        run: &mut Run,
        comments: Vec<Comment>,
        with_bodies: bool,
        uncommitted: &mut StepWrites,
    ) -> Result<(), RunFailure> {
        let comments: Vec<Comment> = comments
            .into_iter()
            .filter(|c| !c.is_resolved())
            .filter(|c| c.container.as_ref().is_some_and(|k| k.kind == "page" || k.kind == "blogpost"))
            .collect();
        if comments.is_empty() {
            return Ok(());
        }
        let containers: Vec<String> =
            comments.iter().filter_map(|c| c.container.as_ref()).map(|k| k.id.clone()).collect();
        let container_records = self.containers_in_run(memory, run, &containers)?;
        let comments: Vec<Comment> = comments
            .into_iter()
            .filter(|c| c.container.as_ref().is_some_and(|k| container_records.contains_key(&k.id)))
            .collect();
        let ids: Vec<String> = comments.iter().map(|c| c.id.clone()).collect();
        // Counted when listed, not again when a changed one's body comes.
        if !with_bodies || run.kind == RunKind::Ingest {
            memory.progress.comments += ids.len() as u32;
        }
        let existing = self.doc_records(&memory.id, &ids)?;
        let mut converted: Vec<Option<storage::Converted>> = comments
            .iter()
            .zip(&existing)
            .map(|(comment, stored)| {
                let changed = stored.as_ref().is_none_or(|r| r.version != comment.version.number);
                (with_bodies && changed).then(|| storage::convert(comment.storage()))
            })
            .collect();
        self.name_mentions(client, &memory.connection_id, &mut converted)?;
        for ((comment, stored), doc) in comments.into_iter().zip(existing).zip(converted) {
            let container = comment.container.as_ref().map(|k| k.id.clone());
            let page_title = container
                .as_ref()
                .and_then(|id| container_records.get(id))
                .and_then(Option::as_ref)
                .map(|r| r.title.clone());
            let label = comment_label(&comment);
            if let Some(doc) = doc {
                let title = page_title.unwrap_or_else(|| label.clone());
                let chunks: Vec<IndexChunk> = converted_chunks(&doc, &title, &self.chunking)
                    .into_iter()
                    .map(|chunk| IndexChunk {
                        heading: if chunk.heading.is_empty() {
                            label.clone()
                        } else {
                            format!("{label} › {}", chunk.heading)
                        },
                        ..chunk
                    })
                    .collect();
                let count = chunks.len() as u32;
                self.index.replace_document(&memory.id, &comment.id, chunks)?;
                uncommitted.indexed();
                memory.progress.updated += 1;
                let record = DocRecord {
                    kind: 'c',
                    title: label,
                    parent: container,
                    version: comment.version.number,
                    modified: comment.version.when.clone(),
                    webui: String::new(),
                    chunks: count,
                    seen: memory.generation,
                    skipped: None,
                    labels: Vec::new(),
                    includes: Vec::new(),
                };
                uncommitted.record(comment.id, encode(&record));
                memory.progress.done += 1;
            } else if stored.as_ref().is_none_or(|r| r.version != comment.version.number) {
                run.pending.push(format!("c:{}", comment.id));
            } else if let Some(mut record) = stored {
                record.parent = container;
                record.seen = memory.generation;
                uncommitted.record(comment.id, encode(&record));
                memory.progress.done += 1;
            }
        }
        Ok(())
    }

    /// Fetches the bodies of changed comments, a batch per request (`id in (...)`).
    fn fetch_comments(&self, client: &Client<'_>, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let batch: Vec<String> = run
            .pending
            .iter()
            .filter(|p| p.starts_with('c'))
            .take(COMMENTS_PER_REQUEST as usize)
            .map(|p| p[2..].to_string())
            .collect();
        let cql = format!("id in ({})", batch.join(","));
        let first = format!(
            "/wiki/rest/api/content/search?cql={}&expand={}&limit={COMMENTS_PER_REQUEST}",
            url_encode(&cql),
            comment_expansions(true)
        );
        let mut uncommitted = StepWrites::default();
        follow_listing(client, first, v1_link, |comments: Vec<Comment>| {
            memory.progress.fetched += comments.len() as u32;
            let wanted: Vec<Comment> = comments.into_iter().filter(|c| batch.contains(&c.id)).collect();
            self.absorb_comments(client, memory, run, wanted, true, &mut uncommitted)
        })?;
        self.record(memory, uncommitted)?;
        Ok(dequeue(run, 'c', batch))
    }

    fn fetch(
        &self,
        client: &Client<'_>,
        connection: &Connection,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let kind = run.pending.first().and_then(|p| p.chars().next()).unwrap_or('p');
        match kind {
            'c' => return self.fetch_comments(client, memory, run),
            'a' => return self.fetch_attachments(client, connection, memory, run),
            _ => {}
        }
        let batch: Vec<String> = run
            .pending
            .iter()
            .filter(|p| p.starts_with(kind))
            .take(PAGE_LIMIT as usize)
            .map(|p| p[2..].to_string())
            .collect();
        let collection = if kind == 'b' { "blogposts" } else { "pages" };
        let first = format!("/wiki/api/v2/{collection}?id={}&body-format=storage&limit={PAGE_LIMIT}", batch.join(","));
        let mut uncommitted = StepWrites::default();
        follow_listing(client, first, v2_link, |contents: Vec<Content>| {
            memory.progress.fetched += contents.len() as u32;
            let wanted: Vec<Content> = contents.into_iter().filter(|c| batch.contains(&c.id)).collect();
            self.absorb(client, memory, run, kind, wanted, true, &mut uncommitted)
        })?;
        self.record(memory, uncommitted)?;
        Ok(dequeue(run, kind, batch))
    }

    fn count(&self, memory: &mut Memory, run: &mut Run) -> Result<Advance, RunFailure> {
        let bucket = docs_bucket(&memory.id);
        let mut tally = tally(self.kv, &bucket, memory.generation)?;
        let unlisted: Vec<char> = [(run.comments_unavailable, 'c'), (run.attachments_unavailable, 'a')]
            .into_iter()
            .filter_map(|(unavailable, kind)| unavailable.then_some(kind))
            .chain(TitleKind::ALL.iter().filter(|_| run.titles_unavailable).map(|kind| kind.code()))
            .collect();
        if !unlisted.is_empty() && !tally.stale.is_empty() {
            // Not listed is not gone when the listing was not available: keep those.
            let records = self.doc_records(&memory.id, &tally.stale)?;
            let mut kept = Vec::new();
            for (id, record) in tally.stale.iter().zip(records) {
                match record {
                    Some(record) if unlisted.contains(&record.kind) => {
                        tally.documents += 1;
                        tally.chunks += record.chunks;
                        kept.push(id.clone());
                    }
                    _ => {}
                }
            }
            tally.stale.retain(|id| !kept.contains(id));
        }
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

/// How a comment introduces itself in its passages: who wrote it and when, and for an
/// inline comment the text it is about.
fn comment_label(comment: &Comment) -> String {
    let history = comment.history.as_ref();
    let author = history.and_then(|h| h.created_by.as_ref()).map(|p| p.display_name.trim()).filter(|n| !n.is_empty());
    let date = history.map(|h| h.created_date.chars().take(10).collect::<String>()).filter(|d| !d.is_empty());
    let what = match (&comment.extensions.inline_properties, comment.ancestors.is_empty()) {
        (Some(_), _) => "Inline comment",
        (None, false) => "Reply",
        (None, true) => "Comment",
    };
    let mut label = what.to_string();
    if let Some(author) = author {
        label.push_str(&format!(" by {author}"));
    }
    if let Some(date) = date {
        label.push_str(&format!(", {date}"));
    }
    if let Some(selection) =
        comment.extensions.inline_properties.as_ref().map(|p| p.original_selection.trim()).filter(|s| !s.is_empty())
    {
        let short: String = selection.chars().take(80).collect();
        let more = if selection.chars().count() > 80 { "…" } else { "" };
        label.push_str(&format!(", on \u{201c}{short}{more}\u{201d}"));
    }
    label
}

/// Where a paged search stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchEnd {
    /// More pages to take.
    More,
    /// The last page was taken.
    Complete,
    /// The site answers no such search.
    Unavailable,
}

/// Whether a search failure means the site offers no such search (an endpoint gone or
/// refused), rather than a failure worth failing the run for.
pub(super) fn search_unavailable(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::NotFound { .. }
            | ApiError::Gone { .. }
            | ApiError::Rejected { .. }
            | ApiError::Forbidden { .. }
            | ApiError::ScopeMismatch { .. }
    )
}

/// Takes a fetched batch of `kind` out of the run's queue; with the queue empty, the run
/// goes on to count what is gone.
fn dequeue(run: &mut Run, kind: char, batch: Vec<String>) -> Advance {
    let done: HashSet<String> = batch.into_iter().map(|id| format!("{kind}:{id}")).collect();
    run.pending.retain(|p| !done.contains(p));
    if run.pending.is_empty() {
        run.phase = Phase::Count;
    }
    Advance::More
}

/// After the listings: fetching what they queued, or counting what is gone.
pub(super) fn fetch_or_count(run: &Run) -> Phase {
    if run.pending.is_empty() { Phase::Count } else { Phase::Fetch }
}

/// Moves a run to the first listing page of `phase`.
pub(super) fn start_phase(run: &mut Run, phase: Phase) {
    run.cursor = None;
    run.visited.clear();
    run.phase = phase;
}

/// Whether an attachment's metadata lets it be indexed: a type with text, within the
/// connection's size limit.
fn admissible(connection: &Connection, attachment: &Attachment) -> Result<extract::Format, Skip> {
    let format = extract::format_of(&attachment.title, &attachment.extensions.media_type).ok_or(Skip::OtherType)?;
    if attachment.extensions.file_size > connection.attachment_max_bytes {
        return Err(Skip::TooLarge);
    }
    Ok(format)
}

/// The Cloud content types the connector indexes by title alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TitleKind {
    Folder,
    Whiteboard,
    Database,
    Embed,
}

impl TitleKind {
    const ALL: [TitleKind; 4] = [TitleKind::Folder, TitleKind::Whiteboard, TitleKind::Database, TitleKind::Embed];

    /// The kind of a v1 `type`.
    fn of(kind: &str) -> Option<TitleKind> {
        TitleKind::ALL.into_iter().find(|k| k.cql() == kind)
    }

    /// Its CQL `type`.
    fn cql(self) -> &'static str {
        match self {
            TitleKind::Folder => "folder",
            TitleKind::Whiteboard => "whiteboard",
            TitleKind::Database => "database",
            TitleKind::Embed => "embed",
        }
    }

    /// Its record kind.
    fn code(self) -> char {
        match self {
            TitleKind::Folder => 'f',
            TitleKind::Whiteboard => 'w',
            TitleKind::Database => 'd',
            TitleKind::Embed => 'e',
        }
    }

    /// The heading its passage carries.
    fn name(self) -> &'static str {
        match self {
            TitleKind::Folder => "Folder",
            TitleKind::Whiteboard => "Whiteboard",
            TitleKind::Database => "Database",
            TitleKind::Embed => "Smart link embed",
        }
    }

    /// What of it is left out, as `status` counts it.
    fn left_out(self) -> &'static str {
        match self {
            TitleKind::Folder => "folders (title only: a folder has no body)",
            TitleKind::Whiteboard => "whiteboards (title only: drawings not indexed)",
            TitleKind::Database => "databases (title only: entries not indexed)",
            TitleKind::Embed => "embeds (title only: embedded sites not indexed)",
        }
    }
}

/// The first page of the space's listing of folders, whiteboards, databases and embeds.
fn titles_start(space_key: &str) -> String {
    let types: Vec<&str> = TitleKind::ALL.iter().map(|k| k.cql()).collect();
    let cql = format!("space = {} AND type in ({})", cql_string(space_key), types.join(", "));
    format!(
        "/wiki/rest/api/content/search?cql={}&expand=version,ancestors&limit={COMMENTS_PER_REQUEST}",
        url_encode(&cql)
    )
}

/// Label names per search of labelled content.
const LABELS_PER_SEARCH: usize = 50;

/// A search of the space's content carrying one of `labels`, with their labels.
fn labelled_start(space_key: &str, labels: &[String]) -> String {
    let quoted: Vec<String> = labels.iter().map(|l| cql_string(l)).collect();
    let cql = format!(
        "space = {} AND type in (page, blogpost, attachment) AND label in ({})",
        cql_string(space_key),
        quoted.join(", ")
    );
    format!(
        "/wiki/rest/api/content/search?cql={}&expand=metadata.labels&limit={COMMENTS_PER_REQUEST}",
        url_encode(&cql)
    )
}

/// A title that also carries the document's labels, for the index's title field: the
/// labels say what a document is about, so they rank like its title (the passage's own
/// title, shown to people, comes from the record).
fn labelled_title(title: &str, labels: &[String]) -> String {
    if labels.is_empty() { title.to_string() } else { format!("{title} ({})", labels.join(", ")) }
}

/// The record of an attachment left out of the index for `reason` (remembered so that it
/// is not downloaded again until it changes).
fn left_out_record(attachment: &Attachment, generation: u64, reason: &str, labels: Vec<String>) -> DocRecord {
    DocRecord {
        kind: 'a',
        title: attachment.title.clone(),
        parent: attachment.container.as_ref().map(|k| k.id.clone()),
        version: attachment.version.number,
        modified: attachment.version.when.clone(),
        webui: String::new(),
        chunks: 0,
        seen: generation,
        skipped: Some(reason.to_string()),
        labels,
        includes: Vec::new(),
    }
}

/// The mark of a file whose extraction is under way (see `fetch_attachments`).
const EXTRACTION_INTERRUPTED: &str = "attachments skipped: extraction interrupted";

/// Attachments downloaded per step, at most.
const DOWNLOADS_PER_STEP: usize = 8;
/// Bytes of attachments a step downloads at most (a single larger file still goes alone),
/// so that the files of one step fit the guest's memory together.
const DOWNLOAD_BYTES_PER_STEP: u64 = 48_000_000;

/// What the attachment listing and metadata lookups expand.
const ATTACHMENT_EXPANSIONS: &str = "version,container,extensions";

/// The first page of a space's attachment listing: one paged CQL search of the whole space.
fn attachments_start(space_key: &str) -> String {
    let cql = format!("space = \"{space_key}\" AND type = attachment");
    format!(
        "/wiki/rest/api/content/search?cql={}&expand={ATTACHMENT_EXPANSIONS}&limit={COMMENTS_PER_REQUEST}",
        url_encode(&cql)
    )
}

/// Comments asked per request of the comment listing (CQL search).
const COMMENTS_PER_REQUEST: u32 = 100;

/// What the comment listing expands: enough to tell a changed comment from an unchanged
/// one, and to cite it; the bodies only when they are indexed at once (an ingest).
fn comment_expansions(with_bodies: bool) -> String {
    let base = "version,history,container,ancestors,extensions.inlineProperties,extensions.resolution";
    if with_bodies { format!("{base},body.storage") } else { base.to_string() }
}

/// The first page of a space's comment listing: every footer and inline comment (and
/// reply) of the space in one paged CQL search, never one request per page.
fn comments_start(space_key: &str, with_bodies: bool) -> String {
    let cql = format!("space = \"{space_key}\" AND type = comment");
    format!(
        "/wiki/rest/api/content/search?cql={}&expand={}&limit={COMMENTS_PER_REQUEST}",
        url_encode(&cql),
        comment_expansions(with_bodies)
    )
}

/// v1 links (`next` pages, attachment downloads) are relative to the wiki base
/// (`/rest/api/...`, `/download/...`); the client's paths start at the site (`/wiki/...`).
pub(super) fn v1_link(link: &str) -> String {
    if link.starts_with('/') && !link.starts_with("/wiki/") { format!("/wiki{link}") } else { link.to_string() }
}

/// The first page of a space's `pages` or `blogposts` listing, with bodies for an ingest.
fn listing_start(space_id: &str, collection: &str, with_bodies: bool) -> String {
    let body = if with_bodies { "&body-format=storage" } else { "" };
    format!("/wiki/api/v2/spaces/{space_id}/{collection}?limit={PAGE_LIMIT}{body}")
}
