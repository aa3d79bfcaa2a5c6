//! Included content: the pages that `include` and `excerpt-include` macros show, fetched in
//! bulk (one search per space and batch of titles, never one request per including page),
//! spliced in to a depth limit and without cycles; and, at a sync, the check that finds the
//! unchanged pages whose included pages changed.

use std::collections::BTreeSet;

use connector_sdk::step::Advance;

use crate::model::Found;
use crate::storage::{Converted, PageRef};

use super::work::{RunFailure, fetch_or_count, search_unavailable, start_phase, v1_link};
use super::*;

/// How deep inclusions nest: a page, what it includes, what that includes, and so on. A
/// deeper inclusion shows nothing (it is counted).
pub(super) const MAX_INCLUDE_DEPTH: usize = 4;
/// Titles per search: the search's page holds them all with their bodies.
const TITLES_PER_SEARCH: usize = 25;
/// Including pages whose included pages one step checks.
const CHECKS_PER_STEP: usize = 200;
/// Why an inclusion shows nothing, as `status` counts it.
pub(super) const UNRESOLVED: &str = "inclusions skipped: page not found or not readable";
/// Likewise, for a page that includes itself (through others) or nests too deep.
pub(super) const CYCLE: &str = "inclusions skipped: cycle or nested too deep";

/// An included page, as a search found it.
struct Source {
    id: String,
    version: u32,
    space: String,
    /// Its converted body (when bodies were asked for).
    doc: Option<Converted>,
}

/// What an inclusion names: the space key, the title, and whether it is a blog post.
type Key = (String, String, bool);

fn key_of(target: &PageRef, space: &str) -> Key {
    (target.space_key.clone().unwrap_or_else(|| space.to_string()), target.title.clone(), target.blog_post)
}

fn key_of_included(included: &Included) -> Key {
    (included.space.clone(), included.title.clone(), included.blog_post)
}

/// What resolving a batch's inclusions did, for the run's counts.
#[derive(Default)]
pub(super) struct Resolution {
    /// Per document: the pages it includes, as found (empty for one without inclusions).
    pub includes: Vec<Vec<Included>>,
    /// Inclusions that showed another page's content.
    pub shown: u32,
    /// Inclusions of pages not found (or not readable by the account).
    pub unresolved: u32,
    /// Inclusions left out as cycles or too deep.
    pub cycles: u32,
}

impl Engine<'_> {
    /// Puts into `docs` (the converted bodies of `ids`, pages and blog posts of space
    /// `space_key`) the content their inclusions show: the included pages are found by
    /// title, a search per space and [`TITLES_PER_SEARCH`] titles with their bodies, level by
    /// level to [`MAX_INCLUDE_DEPTH`].
    pub(super) fn resolve_inclusions(
        &self,
        client: &Client<'_>,
        space_key: &str,
        ids: &[String],
        docs: &mut [Option<Converted>],
    ) -> Result<Resolution, RunFailure> {
        let mut resolution = Resolution::default();
        let mut found: HashMap<Key, Option<Source>> = HashMap::new();
        let mut frontier: Vec<Key> =
            docs.iter().flatten().flat_map(|d| d.inclusions.iter().map(|i| key_of(&i.target, space_key))).collect();
        for _ in 0..MAX_INCLUDE_DEPTH {
            frontier.sort();
            frontier.dedup();
            frontier.retain(|key| !found.contains_key(key));
            if frontier.is_empty() {
                break;
            }
            let mut fetched = self.find_pages(client, &frontier, true)?;
            let mut next = Vec::new();
            for key in frontier.drain(..) {
                let source = fetched.remove(&key);
                if let Some(Source { doc: Some(doc), space, .. }) = &source {
                    next.extend(doc.inclusions.iter().map(|i| key_of(&i.target, space)));
                }
                found.insert(key, source);
            }
            frontier = next;
        }
        for (id, doc) in ids.iter().zip(docs.iter_mut()) {
            let Some(doc) = doc.as_mut().filter(|d| !d.inclusions.is_empty()) else {
                resolution.includes.push(Vec::new());
                continue;
            };
            let mut used = BTreeSet::new();
            let mut path = vec![id.clone()];
            expand(doc, space_key, &mut path, &found, &mut used, &mut resolution);
            resolution.includes.push(used.into_iter().collect());
        }
        Ok(resolution)
    }

    /// Finds pages and blog posts by space and title: one CQL search per space and
    /// [`TITLES_PER_SEARCH`] titles, with their bodies when `with_bodies`. A title no
    /// readable content has is absent from the answer; so are all of them when the site
    /// answers no search (the inclusions then show nothing, as they would to the account).
    fn find_pages(
        &self,
        client: &Client<'_>,
        keys: &[Key],
        with_bodies: bool,
    ) -> Result<HashMap<Key, Source>, ApiError> {
        let mut groups: BTreeMap<(&str, bool), Vec<&str>> = BTreeMap::new();
        for (space, title, blog_post) in keys {
            groups.entry((space.as_str(), *blog_post)).or_default().push(title.as_str());
        }
        let expand = if with_bodies { "version,space,body.storage" } else { "version,space" };
        let mut sources = HashMap::new();
        for ((space, blog_post), titles) in groups {
            for batch in titles.chunks(TITLES_PER_SEARCH) {
                let quoted: Vec<String> = batch.iter().map(|t| cql_string(t)).collect();
                let cql = format!(
                    "space = {} AND type = {} AND title in ({})",
                    cql_string(space),
                    if blog_post { "blogpost" } else { "page" },
                    quoted.join(", ")
                );
                let first = format!(
                    "/wiki/rest/api/content/search?cql={}&expand={expand}&limit={TITLES_PER_SEARCH}",
                    url_encode(&cql)
                );
                let listed = follow_listing(client, first, v1_link, |pages: Vec<Found>| {
                    for page in pages {
                        // CQL matches titles loosely; an inclusion names its page exactly
                        // (Confluence itself resolves case-insensitively).
                        let Some(title) = batch
                            .iter()
                            .find(|t| **t == page.title)
                            .or_else(|| batch.iter().find(|t| t.eq_ignore_ascii_case(&page.title)))
                        else {
                            continue;
                        };
                        let key = (space.to_string(), title.to_string(), blog_post);
                        let doc = with_bodies.then(|| storage::convert(page.storage()));
                        let space = page.space.as_ref().map(|s| s.key.clone()).unwrap_or_else(|| space.to_string());
                        sources.entry(key).or_insert(Source { id: page.id, version: page.version.number, space, doc });
                    }
                    Ok::<(), ApiError>(())
                });
                match listed {
                    Ok(()) => {}
                    Err(error) if search_unavailable(&error) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(sources)
    }

    /// Checks the included pages of a batch of unchanged including pages (a search per space
    /// and batch of titles, versions only): one whose included page changed, appeared, went
    /// or was renamed is queued to be indexed again.
    pub(super) fn check_includes(
        &self,
        client: &Client<'_>,
        memory: &mut Memory,
        run: &mut Run,
    ) -> Result<Advance, RunFailure> {
        let batch: Vec<String> = run.include_checks.iter().take(CHECKS_PER_STEP).cloned().collect();
        let records: Vec<(String, DocRecord)> = batch
            .iter()
            .cloned()
            .zip(self.doc_records(&memory.id, &batch)?)
            .filter_map(|(id, record)| Some((id, record?)))
            .collect();
        let mut keys: Vec<Key> = records.iter().flat_map(|(_, r)| r.includes.iter().map(key_of_included)).collect();
        keys.sort();
        keys.dedup();
        let current = self.find_pages(client, &keys, false)?;
        for (id, record) in records {
            let changed = record.includes.iter().any(|included| {
                current.get(&key_of_included(included)).map(|s| (s.id.clone(), s.version)) != included.found
            });
            if changed {
                run.pending.push(format!("{}:{id}", record.kind));
                run.refresh.push(id);
                // Counted done when listed unchanged; done again once fetched.
                memory.progress.done = memory.progress.done.saturating_sub(1);
            }
        }
        run.include_checks.drain(..batch.len());
        if run.include_checks.is_empty() {
            start_phase(run, fetch_or_count(run));
        }
        Ok(Advance::More)
    }
}

/// Splices into `doc` (content of `space`, reached through the pages of `path`) what its
/// inclusions show, recursively, recording in `used` the pages it looked up.
fn expand(
    doc: &mut Converted,
    space: &str,
    path: &mut Vec<String>,
    found: &HashMap<Key, Option<Source>>,
    used: &mut BTreeSet<Included>,
    resolution: &mut Resolution,
) {
    doc.splice(|inclusion| {
        let key = key_of(&inclusion.target, space);
        // Deeper than the pages looked up: shows nothing, and is no reason to index the
        // including page again.
        let Some(source) = found.get(&key).filter(|_| path.len() <= MAX_INCLUDE_DEPTH) else {
            resolution.cycles += 1;
            return None;
        };
        used.insert(Included {
            space: key.0,
            title: key.1,
            blog_post: key.2,
            found: source.as_ref().map(|s| (s.id.clone(), s.version)),
        });
        let Some(source) = source else {
            resolution.unresolved += 1;
            return None;
        };
        if path.contains(&source.id) {
            resolution.cycles += 1;
            return None;
        }
        let doc = source.doc.as_ref()?;
        let mut part = match &inclusion.excerpt {
            Some(name) => doc.excerpt(name)?,
            None => doc.clone(),
        };
        path.push(source.id.clone());
        expand(&mut part, &source.space, path, found, used, resolution);
        path.pop();
        resolution.shown += 1;
        Some(part)
    });
}
