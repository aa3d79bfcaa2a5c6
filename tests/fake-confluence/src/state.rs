//! The in-memory data model of the fake site: users, spaces, pages, blog posts, the logical clock
//! and the request log. All mutations go through [`State`]; the HTTP layer only reads it.

use std::collections::BTreeMap;
use std::time::Duration;

/// Milliseconds since the Unix epoch of 2026-01-05T09:00:00.000Z, the start of the logical clock.
const CLOCK_START_MS: u64 = 1_767_603_600_000;

/// How a user's API token is routed, mirroring Atlassian's two token types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A classic (unscoped) API token: accepted on the site URL only.
    Classic,
    /// A scoped API token: accepted on the `api.atlassian.com`-style gateway only, and only for
    /// endpoints whose granular scope is in `scopes`.
    Scoped {
        /// Granular scopes such as `read:page:confluence`.
        scopes: Vec<String>,
    },
}

/// One request served by the fake, as recorded for assertions in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request path including any gateway prefix, e.g. `/ex/confluence/{cloudId}/wiki/api/v2/spaces`.
    pub path: String,
    /// Raw query string without the leading `?` (empty when absent).
    pub query: String,
    /// HTTP status code of the response.
    pub status: u16,
}

/// A registered user with one API token.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub email: String,
    pub token: String,
    pub kind: TokenKind,
    pub revoked: bool,
    pub account_id: String,
    pub display_name: String,
}

/// A space.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    pub id: u64,
    pub key: String,
    pub name: String,
    pub homepage_id: u64,
    pub author_id: String,
    pub created_at: u64,
}

/// Page, blog post or comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Page,
    BlogPost,
    /// A footer or inline comment (or a reply) on a page or blog post: `parent_id` is the
    /// commented content, [`Content::comment`] the rest.
    Comment,
    /// A file attached to a page or blog post (`parent_id`); `title` is its file name,
    /// [`Content::attachment`] its bytes.
    Attachment,
    /// A Cloud folder: a title that pages and other folders sit under, no body.
    Folder,
    /// A Cloud whiteboard (its drawing is no storage-format body).
    Whiteboard,
    /// A Cloud database (its entries are no storage-format body).
    Database,
    /// A Cloud smart-link embed (an embedded site).
    Embed,
}

/// What only an attachment has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachmentMeta {
    /// Its media type, e.g. `application/pdf`.
    pub media_type: String,
    /// The file.
    pub bytes: Vec<u8>,
}

/// What only a comment has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommentMeta {
    /// The comment it answers (replies).
    pub reply_to: Option<u64>,
    /// The highlighted text of an inline comment (`None`: a footer comment).
    pub selection: Option<String>,
    /// An inline comment marked resolved.
    pub resolved: bool,
}

impl Kind {
    /// The v1 `type` / v2 ancestor `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::BlogPost => "blogpost",
            Kind::Comment => "comment",
            Kind::Attachment => "attachment",
            Kind::Folder => "folder",
            Kind::Whiteboard => "whiteboard",
            Kind::Database => "database",
            Kind::Embed => "embed",
        }
    }

    /// The kind a v1 `type` names, of those [`State::add_titled`] adds.
    pub fn titled(name: &str) -> Option<Kind> {
        [Kind::Folder, Kind::Whiteboard, Kind::Database, Kind::Embed].into_iter().find(|k| k.as_str() == name)
    }
}

/// Content status as exposed by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Current,
    Archived,
    Trashed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Archived => "archived",
            Status::Trashed => "trashed",
        }
    }
}

/// A page or blog post.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub id: u64,
    pub kind: Kind,
    pub space_id: u64,
    pub title: String,
    pub storage: String,
    pub status: Status,
    pub parent_id: Option<u64>,
    pub position: i64,
    pub author_id: String,
    pub created_at: u64,
    pub version: u64,
    pub modified_at: u64,
    pub restricted: bool,
    /// Set for comments.
    pub comment: Option<CommentMeta>,
    /// Set for attachments.
    pub attachment: Option<AttachmentMeta>,
    /// Its labels (global prefix), in the order added.
    pub labels: Vec<String>,
}

/// A pending injected failure (rate limit / overload simulation).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// The whole mutable state of one fake site.
#[derive(Debug)]
pub(crate) struct State {
    pub cloud_id: String,
    pub users: Vec<User>,
    pub spaces: BTreeMap<u64, Space>,
    pub contents: BTreeMap<u64, Content>,
    pub requests: Vec<RequestRecord>,
    pub legacy_v1: bool,
    pub latency: Duration,
    pub failures: Vec<Failure>,
    pub faults: Option<crate::faults::FaultState>,
    pub default_author: String,
    next_id: u64,
    clock: u64,
    ticks: u64,
}

impl State {
    /// A fresh, empty site; `seed` varies the cloud id between servers.
    pub fn new(seed: u64) -> State {
        let h = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
        let h2 = mix(h);
        let cloud_id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16 & 0xfff,
            (h2 >> 48) as u16 & 0xfff,
            h2 & 0xffff_ffff_ffff
        );
        State {
            cloud_id,
            users: Vec::new(),
            spaces: BTreeMap::new(),
            contents: BTreeMap::new(),
            requests: Vec::new(),
            legacy_v1: false,
            latency: Duration::ZERO,
            failures: Vec::new(),
            faults: None,
            default_author: "557058:00000000-0000-4000-8000-0000000000ad".to_string(),
            next_id: 65_537,
            clock: CLOCK_START_MS,
            ticks: 0,
        }
    }

    /// Advances the logical clock (strictly increasing, deterministic) and returns the new time.
    pub fn tick(&mut self) -> u64 {
        self.ticks += 1;
        // 1 minute plus a varying number of milliseconds, so timestamps look organic.
        self.clock += 60_000 + (self.ticks * 7919) % 1000;
        self.clock
    }

    fn alloc_id(&mut self) -> u64 {
        // Ids grow by an irregular stride, like real Confluence ids.
        self.next_id += 1 + (self.next_id * 31) % 97;
        self.next_id
    }

    /// The account id the first registered user (or a fixed admin) has: authors all content.
    fn author(&self) -> String {
        self.users.first().map(|u| u.account_id.clone()).unwrap_or_else(|| self.default_author.clone())
    }

    /// Registers a user; an existing user with the same token is replaced.
    pub fn add_user(&mut self, email: &str, token: &str, kind: TokenKind) {
        self.users.retain(|u| u.token != token);
        let h = mix(fnv1a(email));
        let account_id = format!(
            "712020:{:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16 & 0xfff,
            (h >> 52) as u16 & 0xfff,
            mix(h) & 0xffff_ffff_ffff
        );
        let local = email.split('@').next().unwrap_or(email);
        let display_name = local
            .split(['.', '_', '-'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        self.users.push(User {
            email: email.to_string(),
            token: token.to_string(),
            kind,
            revoked: false,
            account_id,
            display_name,
        });
    }

    /// Creates a space and its homepage; returns the space id.
    pub fn add_space(&mut self, key: &str, name: &str, homepage_storage: &str) -> u64 {
        let space_id = self.alloc_id();
        let created_at = self.tick();
        let author = self.author();
        self.spaces.insert(
            space_id,
            Space {
                id: space_id,
                key: key.to_string(),
                name: name.to_string(),
                homepage_id: 0,
                author_id: author,
                created_at,
            },
        );
        let home = self.insert_content(Kind::Page, space_id, None, name, homepage_storage);
        if let Some(s) = self.spaces.get_mut(&space_id) {
            s.homepage_id = home;
        }
        home_fixup(self, home);
        space_id
    }

    /// Looks up a space by key.
    pub fn space_by_key(&self, key: &str) -> Option<&Space> {
        self.spaces.values().find(|s| s.key == key)
    }

    fn insert_content(&mut self, kind: Kind, space_id: u64, parent_id: Option<u64>, title: &str, storage: &str) -> u64 {
        let position = match kind {
            Kind::Page => {
                let siblings = self
                    .contents
                    .values()
                    .filter(|c| c.kind == Kind::Page && c.parent_id == parent_id && parent_id.is_some())
                    .count() as i64;
                siblings * 256 + 1
            }
            _ => 0,
        };
        self.insert_at(kind, space_id, parent_id, title, storage, position)
    }

    /// Inserts a page or blog post with a given sibling `position` (no sibling scan: bulk loads).
    pub fn insert_at(
        &mut self,
        kind: Kind,
        space_id: u64,
        parent_id: Option<u64>,
        title: &str,
        storage: &str,
        position: i64,
    ) -> u64 {
        let id = self.alloc_id();
        let now = self.tick();
        let author = self.author();
        self.contents.insert(
            id,
            Content {
                id,
                kind,
                space_id,
                title: title.to_string(),
                storage: storage.to_string(),
                status: Status::Current,
                parent_id,
                position,
                author_id: author,
                created_at: now,
                version: 1,
                modified_at: now,
                restricted: false,
                comment: None,
                attachment: None,
                labels: Vec::new(),
            },
        );
        id
    }

    /// Attaches a file to a page or blog post. Panics on an unknown id.
    pub fn add_attachment(&mut self, on: u64, file_name: &str, media_type: &str, bytes: Vec<u8>) -> u64 {
        let space_id =
            self.contents.get(&on).unwrap_or_else(|| panic!("fake-confluence: unknown content id {on}")).space_id;
        let id = self.insert_at(Kind::Attachment, space_id, Some(on), file_name, "", 0);
        self.content_mut(id).attachment = Some(AttachmentMeta { media_type: media_type.to_string(), bytes });
        id
    }

    /// Adds a comment on a page or blog post (`on`), or a reply to a comment; `selection`
    /// makes it an inline comment on that text. Panics on an unknown id.
    pub fn add_comment(&mut self, on: u64, selection: Option<&str>, storage: &str) -> u64 {
        let target = self.contents.get(&on).unwrap_or_else(|| panic!("fake-confluence: unknown content id {on}"));
        let (container, reply_to) = match target.kind {
            Kind::Comment => (target.parent_id.expect("a comment has a container"), Some(on)),
            _ => (on, None),
        };
        let (space_id, title) = {
            let container = &self.contents[&container];
            (container.space_id, format!("Re: {}", container.title))
        };
        let id = self.insert_at(Kind::Comment, space_id, Some(container), &title, storage, 0);
        self.content_mut(id).comment =
            Some(CommentMeta { reply_to, selection: selection.map(str::to_string), resolved: false });
        id
    }

    /// Adds a page; `parent_id` None means a child of the space homepage. Panics on unknown space.
    pub fn add_page(&mut self, space_key: &str, parent_id: Option<u64>, title: &str, storage: &str) -> u64 {
        let space =
            self.space_by_key(space_key).unwrap_or_else(|| panic!("fake-confluence: unknown space key {space_key:?}"));
        let (space_id, home) = (space.id, space.homepage_id);
        let parent = parent_id.unwrap_or(home);
        self.insert_content(Kind::Page, space_id, Some(parent), title, storage)
    }

    /// Adds a folder, whiteboard, database or embed (`kind`) under `parent_id` (None: the
    /// space homepage). Panics on an unknown space.
    pub fn add_titled(&mut self, space_key: &str, kind: Kind, parent_id: Option<u64>, title: &str) -> u64 {
        let space =
            self.space_by_key(space_key).unwrap_or_else(|| panic!("fake-confluence: unknown space key {space_key:?}"));
        let (space_id, home) = (space.id, space.homepage_id);
        self.insert_content(kind, space_id, Some(parent_id.unwrap_or(home)), title, "")
    }

    /// Adds a blog post to a space. Panics on unknown space.
    pub fn add_blogpost(&mut self, space_key: &str, title: &str, storage: &str) -> u64 {
        let space_id = self
            .space_by_key(space_key)
            .unwrap_or_else(|| panic!("fake-confluence: unknown space key {space_key:?}"))
            .id;
        self.insert_content(Kind::BlogPost, space_id, None, title, storage)
    }

    /// Mutable access to a piece of content; panics on an unknown id.
    pub fn content_mut(&mut self, id: u64) -> &mut Content {
        self.contents.get_mut(&id).unwrap_or_else(|| panic!("fake-confluence: unknown content id {id}"))
    }

    /// Publishes a new version.
    pub fn edit(&mut self, id: u64, title: Option<&str>, storage: Option<&str>) {
        let now = self.tick();
        let c = self.content_mut(id);
        if let Some(t) = title {
            c.title = t.to_string();
        }
        if let Some(s) = storage {
            c.storage = s.to_string();
        }
        c.version += 1;
        c.modified_at = now;
    }

    /// Ancestors of a piece of content, top-to-bottom (excluding itself).
    pub fn ancestors(&self, id: u64) -> Vec<&Content> {
        let mut out = Vec::new();
        let mut cur = self.contents.get(&id).and_then(|c| c.parent_id);
        while let Some(pid) = cur {
            match self.contents.get(&pid) {
                Some(p) if !out.iter().any(|a: &&Content| a.id == p.id) => {
                    out.push(p);
                    cur = p.parent_id;
                }
                _ => break,
            }
        }
        out.reverse();
        out
    }
}

/// The homepage has no parent and position 0, like Cloud.
fn home_fixup(state: &mut State, home: u64) {
    let c = state.content_mut(home);
    c.parent_id = None;
    c.position = 0;
}

/// SplitMix64 finaliser: a cheap deterministic hash.
/// One SplitMix64 step: the next value of the sequence `state` is at, advancing it.
pub(crate) fn next_random(state: &mut u64) -> u64 {
    let value = mix(*state);
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value
}

/// FNV-1a of a string (stable ids and seeds derived from names).
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |a, b| (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Converts days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Converts (year, month, day) to days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:mm:ss.sssZ`.
pub(crate) fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, (rem / 60) % 60, rem % 60, ms % 1000)
}

/// The `yyyy/MM/dd` part used in blog post URLs.
pub(crate) fn blog_date_path(ms: u64) -> String {
    let (y, mo, d) = civil_from_days((ms / 1000 / 86_400) as i64);
    format!("{y:04}/{mo:02}/{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_and_increases() {
        assert_eq!(format_ts(CLOCK_START_MS), "2026-01-05T09:00:00.000Z");
        assert_eq!(days_from_civil(2026, 1, 5) * 86_400_000 + 9 * 3_600_000, CLOCK_START_MS as i64);
        let mut s = State::new(1);
        let a = s.tick();
        let b = s.tick();
        assert!(b > a);
        assert_eq!(blog_date_path(CLOCK_START_MS), "2026/01/05");
    }
}
