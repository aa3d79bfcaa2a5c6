//! What the connector persists in key-value storage, and the public shapes it returns.
//!
//! Layout: bucket `default` holds `conn/{id}`, `mem/{id}` and id counters; bucket
//! `docs-{memory id}` holds one [`DocRecord`] per indexed page or blog post, so a
//! memory's documents can be listed without touching anyone else's.

use serde::{Deserialize, Serialize};

/// Bucket of connections and memories.
pub const MAIN_BUCKET: &str = "default";

/// Bucket of one memory's document records.
pub fn docs_bucket(memory_id: &str) -> String {
    format!("docs-{memory_id}")
}

/// Key of a connection record.
pub fn connection_key(id: &str) -> String {
    format!("conn/{id}")
}

/// Key of a memory record.
pub fn memory_key(id: &str) -> String {
    format!("mem/{id}")
}

/// Name of a connection's API token in the secret store.
pub fn token_secret(connection_id: &str) -> String {
    format!("token/{connection_id}")
}

/// How a connection reaches Confluence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Classic (unscoped) token on the site.
    Classic,
    /// Scoped token through the API gateway.
    Scoped,
}

/// A connected account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Stable id.
    pub id: String,
    /// Canonical site origin, or the gateway base when only that was given.
    pub site: String,
    /// Base REST paths are appended to.
    pub api_base: String,
    /// Identity of the site for reconnects (cloud id when known, else the origin).
    pub site_identity: String,
    /// Atlassian e-mail (as typed, trimmed).
    pub email: String,
    /// Classic or scoped.
    pub access: Access,
    /// Whether credentials are present.
    pub connected: bool,
    /// Attachments larger than this are not downloaded (bytes; 0: none are).
    #[serde(default = "default_attachment_max_bytes")]
    pub attachment_max_bytes: u64,
    /// Attachments with more text than this are not indexed (characters).
    #[serde(default = "default_attachment_max_chars")]
    pub attachment_max_chars: u32,
}

/// 20 MB: larger files are rarely the answer, and cost a download every time they change.
pub fn default_attachment_max_bytes() -> u64 {
    20_000_000
}

/// 200,000 characters: about a hundred pages of text.
pub fn default_attachment_max_chars() -> u32 {
    200_000
}

/// The origin of Confluence Cloud's media service, where attachment downloads redirect.
pub const MEDIA_ORIGIN: &str = "https://api.media.atlassian.com";

impl Connection {
    /// Human description of the access path.
    pub fn access_label(&self) -> &'static str {
        match self.access {
            Access::Classic => "classic token",
            Access::Scoped => "scoped token via API gateway",
        }
    }

    /// The origins its requests go to: the one of its REST base (the site for a classic
    /// token, the API gateway for a scoped one).
    pub fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = crate::site::origin_of(&self.api_base).into_iter().collect();
        // Cloud answers attachment downloads with a redirect to its media service (a loopback
        // test site serves them itself).
        if self.attachment_max_bytes > 0 && origins.iter().any(|o| o.starts_with("https://")) {
            origins.push(MEDIA_ORIGIN.to_string());
        }
        origins
    }
}

/// Memory lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryStatus {
    /// Work registered or running.
    InProgress,
    /// Up to date as of the last run.
    Ingested,
    /// The last run failed.
    Error,
}

/// Counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Current phase, human readable.
    pub phase: String,
    /// Documents processed.
    pub done: u32,
    /// Documents known.
    pub known: u32,
    /// HTTP requests.
    pub requests: u32,
    /// Retried requests.
    pub retries: u32,
    /// Documents listed.
    pub listed: u32,
    /// Bodies fetched.
    pub fetched: u32,
    /// Documents (re)indexed.
    pub updated: u32,
    /// Documents removed.
    pub deleted: u32,
    /// Comments of the space's pages and blog posts taken into the memory.
    #[serde(default)]
    pub comments: u32,
    /// Attachments whose text was indexed in this run.
    #[serde(default)]
    pub attachments: u32,
    /// Distinct labels of the space's content seen in this run.
    #[serde(default)]
    pub labels: u32,
    /// Inclusions (`include`, `excerpt-include`) that showed another page's content in the
    /// pages indexed in this run.
    #[serde(default)]
    pub includes: u32,
    /// Attachments left out, by reason (`attachments skipped: too large`, ...).
    #[serde(default)]
    pub skipped: std::collections::BTreeMap<String, u32>,
}

/// Kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunKind {
    /// First load: bodies come with the listing.
    Ingest,
    /// Update: list versions only, fetch changed bodies.
    Sync,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Listing the labels of the space's content (in bulk).
    Labels,
    /// Listing pages.
    Pages,
    /// Listing blog posts.
    BlogPosts,
    /// Listing the comments of the space's pages and blog posts (in bulk).
    Comments,
    /// Listing the attachments of the space's pages and blog posts (in bulk).
    Attachments,
    /// Listing the space's folders, whiteboards, databases and embeds (in bulk).
    Titles,
    /// Checking whether pages that unchanged pages include have changed.
    Includes,
    /// Fetching bodies of changed documents.
    Fetch,
    /// Counting what the listing did not see.
    Count,
    /// Removing documents that are gone.
    Delete,
}

impl Phase {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Labels => "listing labels",
            Phase::Pages => "listing pages",
            Phase::BlogPosts => "listing blog posts",
            Phase::Comments => "listing comments",
            Phase::Attachments => "listing attachments",
            Phase::Titles => "listing folders, whiteboards, databases and embeds",
            Phase::Includes => "checking included pages",
            Phase::Fetch => "fetching changed pages",
            Phase::Count => "checking for deleted pages",
            Phase::Delete => "removing deleted pages",
        }
    }
}

/// An unfinished ingest or sync; the checkpoint that makes it resumable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Ingest or sync.
    pub kind: RunKind,
    /// Current phase.
    pub phase: Phase,
    /// Next listing link (None = start of the phase).
    pub cursor: Option<String>,
    /// Hashes of the listing links followed in this phase (loop guard).
    pub visited: Vec<u64>,
    /// Changed documents still to fetch (`p:{id}` or `b:{id}`).
    pub pending: Vec<String>,
    /// Documents to remove.
    pub stale: Vec<String>,
    /// Deletions of most of the memory were confirmed.
    pub allow_mass_delete: bool,
    /// The site answered no comment listing (the search API is missing or refused): this
    /// run keeps the comments indexed before instead of removing them.
    #[serde(default)]
    pub comments_unavailable: bool,
    /// Likewise for attachments.
    #[serde(default)]
    pub attachments_unavailable: bool,
    /// The searches that list labelled content, still to run (`None` until the space's
    /// labels are known).
    #[serde(default)]
    pub label_searches: Option<Vec<String>>,
    /// The labels of the space's content, by content id (unlabelled content is absent).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, Vec<String>>,
    /// The site answered no label search: documents keep the labels they had.
    #[serde(default)]
    pub labels_unavailable: bool,
    /// Likewise for folders, whiteboards, databases and embeds.
    #[serde(default)]
    pub titles_unavailable: bool,
    /// Unchanged pages and blog posts that include others, whose included pages are still
    /// to check.
    #[serde(default)]
    pub include_checks: Vec<String>,
    /// Pages and blog posts to index again although their own version did not change (a
    /// page they include did).
    #[serde(default)]
    pub refresh: Vec<String>,
}

impl Run {
    /// A run at its first phase.
    pub fn start(kind: RunKind, allow_mass_delete: bool) -> Run {
        Run {
            kind,
            phase: Phase::Labels,
            cursor: None,
            visited: Vec::new(),
            pending: Vec::new(),
            stale: Vec::new(),
            allow_mass_delete,
            comments_unavailable: false,
            attachments_unavailable: false,
            label_searches: None,
            labels: Default::default(),
            labels_unavailable: false,
            titles_unavailable: false,
            include_checks: Vec::new(),
            refresh: Vec::new(),
        }
    }
}

/// One memory: a space ingested for a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Stable id.
    pub id: String,
    /// Owning connection.
    pub connection_id: String,
    /// Space key as Confluence spells it (as typed until resolved).
    pub space_key: String,
    /// Space id once resolved.
    pub space_id: Option<String>,
    /// Space display name.
    pub space_name: String,
    /// The space homepage (left out of breadcrumbs: it stands for the space).
    pub homepage_id: Option<String>,
    /// Wiki base for citations, e.g. `https://acme.atlassian.net/wiki`.
    pub wiki_base: String,
    /// Lifecycle status.
    pub status: MemoryStatus,
    /// Why it is in error.
    pub error: Option<String>,
    /// Documents indexed.
    pub documents: u32,
    /// Chunks indexed.
    pub chunks: u32,
    /// Counters of the current or last run.
    pub progress: Progress,
    /// Last successful run (RFC 3339).
    pub synced_at: Option<String>,
    /// Generation of the current run: documents not seen in it are gone.
    pub generation: u64,
    /// The unfinished run, if any.
    pub run: Option<Run>,
}

/// One indexed page, blog post, comment, attachment, folder, whiteboard, database or embed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    /// `p` for a page, `b` for a blog post, `c` for a comment, `a` for an attachment; `f`,
    /// `w`, `d`, `e` for a folder, whiteboard, database or embed (indexed by title).
    pub kind: char,
    /// Title (a comment's: who wrote it, e.g. `Comment by Ada Lovelace`).
    pub title: String,
    /// Parent page (a comment's: the page or blog post it is on).
    pub parent: Option<String>,
    /// Version number indexed.
    pub version: u32,
    /// Last modified (RFC 3339).
    pub modified: String,
    /// Relative web UI link.
    pub webui: String,
    /// Chunks indexed.
    pub chunks: u32,
    /// Generation of the run that last saw it.
    pub seen: u64,
    /// Why it is not indexed (an attachment that cannot be read): remembered so that it is
    /// not downloaded again until it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Its labels, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The pages its text includes (`include`, `excerpt-include`, and what those include),
    /// as they were when it was indexed: a sync that finds one changed indexes it again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<Included>,
}

/// A page another page includes, as it was resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Included {
    /// Its space key.
    pub space: String,
    /// The title the including page names it by.
    pub title: String,
    /// Whether it is a blog post.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blog_post: bool,
    /// Its id and version when it was found; `None`: no readable page had that title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<(String, u32)>,
}

pub use connector_sdk::types::{ConfigField, Passage};

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// Memory after the step.
    pub memory: Memory,
    /// No work left.
    pub finished: bool,
}
