//! A loopback HTTP server that behaves like Confluence Cloud for the endpoints the connector uses:
//! REST v2 spaces/pages/blog posts with cursor pagination, `user/current`, `/_edge/tenant_info`,
//! the `api.atlassian.com`-style gateway for scoped tokens, 410 for removed v1 content endpoints
//! (or a simple legacy v1 mode), and a small CQL search.
//!
//! ```no_run
//! let site = fake_confluence::demo_site().unwrap();
//! println!("{} {} {}", site.origin(), fake_confluence::DEMO_EMAIL, fake_confluence::DEMO_TOKEN);
//! ```

#![warn(missing_docs)]

mod auth;
mod cql;
mod demo;
mod faults;
mod generate;
mod routes;
mod state;
mod v1;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

pub use auth::{GATEWAY_401_BODY, SITE_401_BODY};
pub use demo::{
    DEMO_EMAIL, DEMO_SCOPED_TOKEN, DEMO_SPACE_KEY, DEMO_SPACE_NAME, DEMO_TOKEN, demo_site, populate_demo, sample_bodies,
};
pub use faults::{Fault, FaultPlan};
pub use generate::{
    edit_fraction, generate_attachments, generate_comments, generate_labels, generate_space, storage_body,
};
pub use state::{RequestRecord, TokenKind};

use routes::Shared;
use state::{Failure, Kind, State, Status};

/// Every granular scope the fake checks; handy for a scoped token that may do everything.
pub const ALL_SCOPES: &[&str] = &[
    "read:content-details:confluence",
    "read:space:confluence",
    "read:page:confluence",
    "read:content.metadata:confluence",
    "search:confluence",
];

/// Summary of one space: what the binary prints on start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceSummary {
    /// Space key, e.g. `ENG`.
    pub key: String,
    /// Numeric space id (as a string, like the API).
    pub id: String,
    /// Number of visible current or archived pages, including the homepage.
    pub pages: usize,
    /// Number of visible current blog posts.
    pub blogposts: usize,
}

/// A running fake Confluence Cloud site. Dropping it shuts the server down.
pub struct FakeConfluence {
    shared: Arc<Shared>,
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeConfluence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConfluence").field("origin", &self.origin()).finish_non_exhaustive()
    }
}

fn parse_id(id: &str) -> u64 {
    id.parse().unwrap_or_else(|_| panic!("fake-confluence: content ids are numeric, got {id:?}"))
}

impl FakeConfluence {
    /// Starts the server on 127.0.0.1 with an ephemeral port, on its own thread with its own tokio
    /// runtime (so it works from sync tests and from inside another runtime). Returns once the
    /// socket is listening.
    pub fn start() -> anyhow::Result<FakeConfluence> {
        Self::start_on(0)
    }

    /// Like [`FakeConfluence::start`], on a given port (0 = ephemeral).
    pub fn start_on(port: u16) -> anyhow::Result<FakeConfluence> {
        let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let origin = format!("http://127.0.0.1:{port}");
        let shared =
            Arc::new(Shared { state: Mutex::new(State::new(u64::from(port))), origin, in_flight: Default::default() });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let app_state = shared.clone();
        let thread = std::thread::Builder::new().name(format!("fake-confluence-{port}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let app = axum::Router::new().fallback(routes::handle).with_state(app_state);
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(200));
        })?;
        ready_rx.recv().context("fake-confluence server thread died during start-up")??;
        Ok(FakeConfluence { shared, port, shutdown: Some(tx), thread: Some(thread) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The site origin, `http://127.0.0.1:PORT` (classic tokens; REST base is `{origin}/wiki`).
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// The gateway origin: the same server. Gateway paths are `/ex/confluence/{cloudId}/wiki/...`.
    pub fn gateway_origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// The full gateway API base for scoped tokens: `{gateway_origin}/ex/confluence/{cloudId}`.
    pub fn gateway_base(&self) -> String {
        format!("{}/ex/confluence/{}", self.gateway_origin(), self.cloud_id())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This site's cloud id (uuid-like, fixed for the lifetime of the server).
    pub fn cloud_id(&self) -> String {
        self.state().cloud_id.clone()
    }

    /// Registers a user with an API token (replacing any user that had the same token).
    pub fn add_user(&self, email: &str, token: &str, kind: TokenKind) {
        self.state().add_user(email, token, kind);
    }

    /// Revokes a token: further requests with it get 401.
    pub fn revoke_token(&self, token: &str) {
        for u in self.state().users.iter_mut().filter(|u| u.token == token) {
            u.revoked = true;
        }
    }

    /// Creates a space (returns its numeric id) and its homepage titled `name`.
    pub fn add_space(&self, key: &str, name: &str) -> String {
        let body = format!("<p>Welcome to the {name} space.</p>");
        self.add_space_with_homepage(key, name, &body)
    }

    /// Like [`FakeConfluence::add_space`] with a given homepage body (storage format).
    pub fn add_space_with_homepage(&self, key: &str, name: &str, homepage_storage: &str) -> String {
        self.state().add_space(key, name, homepage_storage).to_string()
    }

    /// The homepage id of a space, by key.
    pub fn homepage_id(&self, space_key: &str) -> Option<String> {
        self.state().space_by_key(space_key).map(|s| s.homepage_id.to_string())
    }

    /// Adds a page (version 1); `parent_id` None = child of the homepage. Returns the page id.
    /// Panics on an unknown space key.
    pub fn add_page(&self, space_key: &str, parent_id: Option<&str>, title: &str, storage: &str) -> String {
        self.state().add_page(space_key, parent_id.map(parse_id), title, storage).to_string()
    }

    /// Adds a Cloud content item with a title and no storage body: `kind` is `folder`,
    /// `whiteboard`, `database` or `embed`; `parent_id` None = child of the homepage. Returns
    /// its id. Pages go under a folder with [`FakeConfluence::add_page`]. Panics on an
    /// unknown space key or kind.
    pub fn add_titled(&self, space_key: &str, kind: &str, parent_id: Option<&str>, title: &str) -> String {
        let kind =
            state::Kind::titled(kind).unwrap_or_else(|| panic!("fake-confluence: {kind:?} is not a titled kind"));
        self.state().add_titled(space_key, kind, parent_id.map(parse_id), title).to_string()
    }

    /// Adds a blog post. Returns its id. Panics on an unknown space key.
    pub fn add_blogpost(&self, space_key: &str, title: &str, storage: &str) -> String {
        self.state().add_blogpost(space_key, title, storage).to_string()
    }

    /// Publishes a new version of a page or blog post: bumps `version.number` and `version.createdAt`.
    pub fn edit_page(&self, id: &str, title: Option<&str>, storage: Option<&str>) {
        self.state().edit(parse_id(id), title, storage);
    }

    /// Moves a page under a new parent (does not bump the version, like Cloud).
    pub fn move_page(&self, id: &str, new_parent_id: &str) {
        let parent = parse_id(new_parent_id);
        let mut st = self.state();
        let position = st.contents.values().filter(|c| c.parent_id == Some(parent)).count() as i64 * 256 + 1;
        let c = st.content_mut(parse_id(id));
        c.parent_id = Some(parent);
        c.position = position;
    }

    /// Moves a page or blog post to the trash: it vanishes from default listings and single GETs
    /// answer 404 unless `status=trashed` is asked for.
    pub fn trash_page(&self, id: &str) {
        self.state().content_mut(parse_id(id)).status = Status::Trashed;
    }

    /// Restores a trashed page or blog post to `current`.
    pub fn restore_page(&self, id: &str) {
        self.state().content_mut(parse_id(id)).status = Status::Current;
    }

    /// Archives (or un-archives) a page: archived pages are still listed by default.
    pub fn archive_page(&self, id: &str, archived: bool) {
        self.state().content_mut(parse_id(id)).status = if archived { Status::Archived } else { Status::Current };
    }

    /// Adds a footer comment to a page or blog post, or a reply when `on` is a comment.
    /// Returns its id.
    pub fn add_comment(&self, on: &str, storage: &str) -> String {
        self.state().add_comment(parse_id(on), None, storage).to_string()
    }

    /// Adds an inline comment on `selection`, text of the page or blog post `on`.
    pub fn add_inline_comment(&self, on: &str, selection: &str, storage: &str) -> String {
        self.state().add_comment(parse_id(on), Some(selection), storage).to_string()
    }

    /// Edits a comment (a new version).
    pub fn edit_comment(&self, id: &str, storage: &str) {
        self.state().edit(parse_id(id), None, Some(storage));
    }

    /// Marks an inline comment resolved (its version does not change, like Cloud).
    pub fn resolve_comment(&self, id: &str) {
        let mut st = self.state();
        let now = st.tick();
        let comment = st.content_mut(parse_id(id));
        comment.modified_at = now;
        if let Some(meta) = comment.comment.as_mut() {
            meta.resolved = true;
        }
    }

    /// Attaches a file to a page or blog post. Returns its id.
    pub fn add_attachment(&self, on: &str, file_name: &str, media_type: &str, bytes: &[u8]) -> String {
        self.state().add_attachment(parse_id(on), file_name, media_type, bytes.to_vec()).to_string()
    }

    /// Uploads a new version of an attachment.
    pub fn replace_attachment(&self, id: &str, bytes: &[u8]) {
        let mut st = self.state();
        let now = st.tick();
        let attachment = st.content_mut(parse_id(id));
        attachment.version += 1;
        attachment.modified_at = now;
        if let Some(meta) = attachment.attachment.as_mut() {
            meta.bytes = bytes.to_vec();
        }
    }

    /// Adds a label to a page, blog post or attachment (no new version, like Cloud).
    pub fn add_label(&self, id: &str, label: &str) {
        let mut st = self.state();
        let content = st.content_mut(parse_id(id));
        if !content.labels.iter().any(|l| l == label) {
            content.labels.push(label.to_string());
        }
    }

    /// Removes a label.
    pub fn remove_label(&self, id: &str, label: &str) {
        self.state().content_mut(parse_id(id)).labels.retain(|l| l != label);
    }

    /// Deletes a comment and the replies to it.
    pub fn delete_comment(&self, id: &str) {
        let id = parse_id(id);
        let mut st = self.state();
        st.contents.retain(|_, c| c.id != id && c.comment.as_ref().is_none_or(|m| m.reply_to != Some(id)));
    }

    /// Removes a page or blog post entirely.
    pub fn purge_page(&self, id: &str) {
        let id = parse_id(id);
        // Its comments go with it.
        self.state().contents.retain(|_, c| c.id != id && !(c.comment.is_some() && c.parent_id == Some(id)));
    }

    /// Restricts a page so no user can see it (omitted from lists, 404 on GET), or lifts that.
    pub fn restrict_page(&self, id: &str, restricted: bool) {
        self.state().content_mut(parse_id(id)).restricted = restricted;
    }

    /// Every request served so far: method, path (incl. gateway prefix), query and status.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    /// The account id of the user registered with `email` (for mentions in page bodies:
    /// `<ac:link><ri:user ri:account-id="…"/></ac:link>`).
    pub fn account_id(&self, email: &str) -> Option<String> {
        self.state().users.iter().find(|u| u.email == email).map(|u| u.account_id.clone())
    }

    /// Forgets the recorded requests (and the most in flight at once).
    pub fn reset_requests(&self) {
        self.state().requests.clear();
        self.shared.in_flight.most.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// The most requests answered at once since the start or [`Self::reset_requests`].
    pub fn most_in_flight(&self) -> usize {
        self.shared.in_flight.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Serves the legacy v1 content/space endpoints (default false: they answer 410 Gone).
    pub fn set_legacy_v1(&self, enabled: bool) {
        self.state().legacy_v1 = enabled;
    }

    /// Adds a delay before every response (benchmarks).
    pub fn set_latency(&self, per_request: Duration) {
        self.state().latency = per_request;
    }

    /// Makes the next `count` requests fail with `status` (e.g. 429 or 503), with an optional
    /// `Retry-After` (seconds). Failed requests are recorded like any other.
    pub fn fail_next(&self, count: usize, status: u16, retry_after_secs: Option<u64>) {
        let mut st = self.state();
        for _ in 0..count {
            st.failures.push(Failure { status, retry_after: retry_after_secs });
        }
    }
}

/// A response produced in process by [`FakeConfluence::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (the fake's reply headers plus `content-type`), lower-case names.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl FakeConfluence {
    /// Answers one request in process, exactly as the server routes it (state, tokens,
    /// scopes, queued [`FakeConfluence::fail_next`] failures, the request record) but
    /// without the network, latency or a fault plan: for native tests of connector logic
    /// that has no HTTP stack. `url` is absolute on this site's origin, or a path.
    pub fn answer(&self, method: &str, url: &str, authorization: Option<&str>) -> Answer {
        let target = url.strip_prefix(self.shared.origin.as_str()).unwrap_or(url);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut st = self.state();
        let reply = routes::dispatch(&mut st, &self.shared.origin, method, path, query, authorization);
        st.requests.push(RequestRecord {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status: reply.status,
        });
        let mut headers = vec![("content-type".to_string(), reply.content_type.to_string())];
        headers.extend(reply.headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)));
        Answer { status: reply.status, headers, body: reply.body }
    }

    /// Installs (or with `None` removes) a seeded fault-injection plan and resets the count of
    /// faulted requests. Failures queued with [`FakeConfluence::fail_next`] take precedence.
    pub fn set_faults(&self, plan: Option<FaultPlan>) {
        self.state().faults = plan.map(faults::FaultState::new);
    }

    /// How many requests got a fault since the last [`FakeConfluence::set_faults`].
    pub fn faults_injected(&self) -> u64 {
        self.state().faults.as_ref().map_or(0, |f| f.injected)
    }

    /// Every space with its page and blog post counts, in id order.
    pub fn spaces(&self) -> Vec<SpaceSummary> {
        let st = self.state();
        let mut out: Vec<SpaceSummary> = st
            .spaces
            .values()
            .map(|s| SpaceSummary { key: s.key.clone(), id: s.id.to_string(), pages: 0, blogposts: 0 })
            .collect();
        let index: std::collections::HashMap<u64, usize> =
            st.spaces.keys().enumerate().map(|(i, id)| (*id, i)).collect();
        for c in st.contents.values() {
            let Some(&i) = index.get(&c.space_id).filter(|_| !c.restricted) else {
                continue;
            };
            match (c.kind, c.status) {
                (Kind::Page, Status::Current | Status::Archived) => out[i].pages += 1,
                (Kind::BlogPost, Status::Current) => out[i].blogposts += 1,
                _ => {}
            }
        }
        out
    }
}

impl Drop for FakeConfluence {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
