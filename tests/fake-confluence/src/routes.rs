//! HTTP handling: one axum fallback handler that strips the optional gateway prefix, authenticates,
//! dispatches to the endpoint functions and records the request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::auth::{self, GATEWAY_401_BODY, SITE_401_BODY};
use crate::faults::{self, Outcome};
use crate::state::{Content, Kind, RequestRecord, Space, State, Status, User, blog_date_path, format_ts, mix};
use crate::v1;

/// State shared by all connections of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub origin: String,
    /// Requests being answered now, and the most there were at once.
    pub in_flight: InFlight,
}

/// How many requests are being answered at once, and the most so far.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    pub most: std::sync::atomic::AtomicUsize,
}

/// One request being answered (counted until dropped).
struct Answering<'a>(&'a InFlight);

impl InFlight {
    fn enter(&self) -> Answering<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        Answering(self)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A response before it is turned into an axum [`Response`].
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json;charset=UTF-8",
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// The v2 (JSON:API-like) error envelope.
pub(crate) fn v2_error(status: u16, code: &str, title: &str) -> Reply {
    Reply::json(status, &json!({"errors":[{"status":status,"code":code,"title":title,"detail":null}]}))
}

/// The v2 404 envelope.
pub(crate) fn not_found() -> Reply {
    v2_error(404, "NOT_FOUND", "Not Found")
}

/// A v2 400 for a bad query parameter.
pub(crate) fn bad_param(name: &str, value: &str) -> Reply {
    v2_error(400, "INVALID_REQUEST_PARAMETER", &format!("Provided value {{{value}}} for '{name}' is not valid."))
}

fn gateway_401() -> Reply {
    Reply::json(401, &serde_json::from_str(GATEWAY_401_BODY).expect("static json"))
}

fn site_401() -> Reply {
    Reply { status: 401, content_type: "text/plain", body: SITE_401_BODY.as_bytes().to_vec(), headers: Vec::new() }
}

/// Parsed query string that keeps the raw text for building `next` links.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub raw: String,
    pub pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string (without `?`).
    pub fn parse(raw: &str) -> Query {
        Query {
            raw: raw.to_string(),
            pairs: url::form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        }
    }

    /// First value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// All values of a (possibly repeated, possibly comma-separated) parameter.
    pub fn multi(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The raw query with every `drop` parameter removed and `extra` appended (`k=v`, already encoded).
    pub fn rebuild(&self, drop: &[&str], extra: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = self
            .raw
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("");
                !drop.contains(&k)
            })
            .map(str::to_string)
            .collect();
        for (k, v) in extra {
            parts.push(format!("{k}={v}"));
        }
        parts.join("&")
    }
}

/// Per-request context for the endpoint functions.
pub(crate) struct Ctx<'a> {
    pub origin: &'a str,
    pub user: Option<User>,
}

impl Ctx<'_> {
    /// `_links.base`: always the site, even through the gateway.
    pub fn base(&self) -> String {
        format!("{}/wiki", self.origin)
    }
}

/// The endpoints the fake knows, with path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ep {
    TenantInfo,
    UserCurrent,
    UsersBulk,
    Spaces,
    Space(String),
    SpacePages(String),
    SpaceBlogposts(String),
    SpaceContentLabels(String),
    Pages,
    Page(String),
    Ancestors(String),
    Blogposts,
    Blogpost(String),
    V1Content,
    V1ContentId(String),
    V1Restrictions(String),
    V1ContentOther,
    V1ContentSearch,
    V1Search,
    /// `/wiki/download/attachments/{page}/{file name}`: redirects to the media service.
    Download(String, String),
    /// `/media/{id}/binary?token=…`: the file, for whoever holds the token.
    Media(String),
    V1Spaces,
    V1Space(String),
    V1SpaceContent(String, Option<String>),
    Unknown,
}

impl Ep {
    fn parse(path: &str) -> Ep {
        let segs: Vec<String> =
            path.split('/').map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let own = |x: &str| x.to_string();
        match s.as_slice() {
            ["", "_edge", "tenant_info"] => Ep::TenantInfo,
            ["", "wiki", "rest", "api", "user", "current"] => Ep::UserCurrent,
            ["", "wiki", "rest", "api", "user", "bulk"] => Ep::UsersBulk,
            ["", "wiki", "download", "attachments", page, name] => Ep::Download(own(page), own(name)),
            ["", "media", id, "binary"] => Ep::Media(own(id)),
            ["", "wiki", "api", "v2", rest @ ..] => match rest {
                ["spaces"] => Ep::Spaces,
                ["spaces", id] if !id.is_empty() => Ep::Space(own(id)),
                ["spaces", id, "pages"] => Ep::SpacePages(own(id)),
                ["spaces", id, "blogposts"] => Ep::SpaceBlogposts(own(id)),
                ["spaces", id, "content", "labels"] => Ep::SpaceContentLabels(own(id)),
                ["pages"] => Ep::Pages,
                ["pages", id] if !id.is_empty() => Ep::Page(own(id)),
                ["pages", id, "ancestors"] => Ep::Ancestors(own(id)),
                ["blogposts"] => Ep::Blogposts,
                ["blogposts", id] if !id.is_empty() => Ep::Blogpost(own(id)),
                _ => Ep::Unknown,
            },
            ["", "wiki", "rest", "api", rest @ ..] => match rest {
                ["content"] => Ep::V1Content,
                ["content", "search"] => Ep::V1ContentSearch,
                ["content", id] if !id.is_empty() => Ep::V1ContentId(own(id)),
                ["content", id, "restriction", "byOperation"] => Ep::V1Restrictions(own(id)),
                ["content", _, ..] => Ep::V1ContentOther,
                ["search"] => Ep::V1Search,
                ["space"] => Ep::V1Spaces,
                ["space", key] if !key.is_empty() => Ep::V1Space(own(key)),
                ["space", key, "content"] => Ep::V1SpaceContent(own(key), None),
                ["space", key, "content", t] => Ep::V1SpaceContent(own(key), Some(own(t))),
                _ => Ep::Unknown,
            },
            _ => Ep::Unknown,
        }
    }

    /// Scopes (any one suffices) a scoped token needs for this endpoint on the gateway.
    /// Empty = any valid scoped token.
    fn scopes(&self) -> &'static [&'static str] {
        match self {
            Ep::UserCurrent | Ep::UsersBulk => &["read:content-details:confluence", "read:confluence-user"],
            Ep::Spaces | Ep::Space(_) => &["read:space:confluence"],
            Ep::SpaceContentLabels(_) => &["read:space:confluence", "read:label:confluence"],
            Ep::SpacePages(_) | Ep::SpaceBlogposts(_) | Ep::Pages | Ep::Page(_) | Ep::Blogposts | Ep::Blogpost(_) => {
                &["read:page:confluence"]
            }
            Ep::Ancestors(_) => &["read:content.metadata:confluence"],
            Ep::V1Content | Ep::V1ContentId(_) | Ep::V1Restrictions(_) | Ep::V1ContentOther => {
                &["read:content-details:confluence", "read:confluence-content.summary", "read:confluence-content.all"]
            }
            Ep::V1ContentSearch | Ep::V1Search => &["read:content-details:confluence", "search:confluence"],
            Ep::V1Spaces | Ep::V1Space(_) | Ep::V1SpaceContent(..) => {
                &["read:content-details:confluence", "read:confluence-space.summary"]
            }
            Ep::Download(..) => &["read:attachment:confluence", "read:confluence-file"],
            Ep::TenantInfo | Ep::Media(_) | Ep::Unknown => &[],
        }
    }

    fn is_legacy(&self) -> bool {
        matches!(
            self,
            Ep::V1Content
                | Ep::V1ContentId(_)
                | Ep::V1Restrictions(_)
                | Ep::V1ContentOther
                | Ep::V1Spaces
                | Ep::V1Space(_)
                | Ep::V1SpaceContent(..)
        )
    }
}

/// The axum handler for every request.
pub(crate) async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let _answering = shared.in_flight.enter();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (outcome, latency, trace) = {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let fault = if st.failures.is_empty() { st.faults.as_mut().and_then(|f| f.draw(&path)) } else { None };
        let reply = dispatch(&mut st, &shared.origin, &method, &path, &query, auth.as_deref());
        let outcome = match fault {
            None => Outcome::Reply(reply, Duration::ZERO),
            Some((fault, bits)) => faults::apply(fault, bits, reply, &self_link(&st.cloud_id, &path, &query)),
        };
        st.requests.push(RequestRecord { method, path, query, status: outcome.status() });
        (outcome, st.latency, st.requests.len())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match outcome {
        Outcome::Reply(reply, delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let (mut resp, body) = response(reply, trace);
            *resp.body_mut() = Body::from(body);
            resp
        }
        Outcome::Reset => Response::new(faults::reset_body()),
        Outcome::Truncated(reply) => {
            let (mut resp, body) = response(reply, trace);
            if let Ok(v) = HeaderValue::from_str(&body.len().to_string()) {
                resp.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            *resp.body_mut() = faults::truncated_body(body);
            resp
        }
    }
}

/// The request's own URL in the form list endpoints use for `_links.next`: without the gateway
/// prefix, and for v1 (`/wiki/rest/...`) relative to `/wiki`.
fn self_link(cloud_id: &str, path: &str, query: &str) -> String {
    let prefix = format!("/ex/confluence/{cloud_id}");
    let site = path.strip_prefix(prefix.as_str()).unwrap_or(path);
    let rel = match site.strip_prefix("/wiki") {
        Some(r) if r.starts_with("/rest/") => r,
        _ => site,
    };
    if query.is_empty() { rel.to_string() } else { format!("{rel}?{query}") }
}

/// The response head for `reply` (empty body) and the body text.
fn response(reply: Reply, trace: usize) -> (Response, Vec<u8>) {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    h.insert(header::SERVER, HeaderValue::from_static("AtlassianEdge"));
    let trace = trace as u64;
    let trace = format!("{:016x}{:016x}", mix(trace), mix(trace ^ 0xa5a5));
    if let Ok(v) = HeaderValue::from_str(&trace) {
        h.insert("atl-traceid", v);
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    (resp, reply.body)
}

/// Routes one request against the state (synchronously, under the lock).
pub(crate) fn dispatch(
    st: &mut State,
    origin: &str,
    method: &str,
    path: &str,
    raw_query: &str,
    auth: Option<&str>,
) -> Reply {
    if !st.failures.is_empty() {
        let f = st.failures.remove(0);
        let mut r = Reply { status: f.status, content_type: "text/plain", body: Vec::new(), headers: Vec::new() };
        if let Some(s) = f.retry_after {
            r = r.with_header("Retry-After", s.to_string());
        }
        if f.status == 429 {
            r = r.with_header("RateLimit-Reason", "confluence-quota-tenant-based".into());
        }
        return r;
    }

    let (gateway, rest) = match path.strip_prefix("/ex/confluence/") {
        Some(r) => {
            let (cid, rest) = r.split_once('/').unwrap_or((r, ""));
            if cid != st.cloud_id {
                return Reply::json(404, &json!({"code":404,"message":"Not Found"}));
            }
            (true, format!("/{rest}"))
        }
        None => (false, path.to_string()),
    };
    if gateway && rest.len() > 1 && rest.ends_with('/') {
        return gateway_401();
    }
    let ep = Ep::parse(&rest);
    let q = Query::parse(raw_query);

    // Authentication.
    let user: Option<User> = if gateway {
        if ep == Ep::TenantInfo {
            return gateway_401();
        }
        match auth::authenticate_gateway(st, auth, ep.scopes()) {
            Ok(u) => Some(u.clone()),
            Err(()) => return gateway_401(),
        }
    } else if ep == Ep::TenantInfo {
        None
    } else {
        match auth::authenticate_site(st, auth) {
            Ok(u) => u.cloned(),
            Err(()) => return site_401(),
        }
    };
    if user.is_none() && !matches!(ep, Ep::TenantInfo | Ep::UserCurrent | Ep::Media(_) | Ep::Unknown) {
        // Anonymous access is disabled on the fake site.
        return site_401();
    }
    if method != "GET" {
        return v2_error(405, "METHOD_NOT_ALLOWED", "Method Not Allowed");
    }
    if ep.is_legacy() && !st.legacy_v1 {
        return v1::gone();
    }

    let ctx = Ctx { origin, user };
    let legacy = ep.is_legacy();
    let result = match ep {
        Ep::TenantInfo => Ok(Reply::json(200, &json!({"cloudId": st.cloud_id}))),
        Ep::UserCurrent => Ok(user_current(&ctx)),
        Ep::UsersBulk => Ok(users_bulk(st, &ctx, &q)),
        Ep::Spaces => list_spaces(st, &ctx, &q),
        Ep::Space(id) => single_space(st, &ctx, &id),
        Ep::SpacePages(id) => list_in_space(st, &ctx, &q, &id, Kind::Page, &rest),
        Ep::SpaceBlogposts(id) => list_in_space(st, &ctx, &q, &id, Kind::BlogPost, &rest),
        Ep::SpaceContentLabels(id) => space_content_labels(st, &ctx, &q, &id, &rest),
        Ep::Pages => list_batch(st, &ctx, &q, Kind::Page, &rest),
        Ep::Blogposts => list_batch(st, &ctx, &q, Kind::BlogPost, &rest),
        Ep::Page(id) => single_content(st, &ctx, &q, &id, Kind::Page),
        Ep::Blogpost(id) => single_content(st, &ctx, &q, &id, Kind::BlogPost),
        Ep::Ancestors(id) => ancestors(st, &ctx, &q, &id),
        Ep::V1Content => v1::list_content(st, &ctx, &q),
        Ep::V1ContentId(id) => v1::content_by_id(st, &ctx, &q, &id),
        Ep::V1Restrictions(id) => v1::restrictions(st, &ctx, &q, &id),
        Ep::V1ContentOther => Ok(not_found()),
        Ep::V1ContentSearch => v1::content_search(st, &ctx, &q),
        Ep::V1Search => v1::search(st, &ctx, &q),
        Ep::Download(page, name) => Ok(download(st, &ctx, &page, &name)),
        Ep::Media(id) => Ok(media(st, &id, &q)),
        Ep::V1Spaces => v1::list_spaces(st, &ctx, &q),
        Ep::V1Space(key) => v1::space(st, &ctx, &q, &key),
        Ep::V1SpaceContent(key, t) => v1::space_content(st, &ctx, &q, &key, t.as_deref()),
        Ep::Unknown => Ok(not_found()),
    };
    let reply = result.unwrap_or_else(|e| e);
    if legacy && matches!(reply.status, 200..=299) {
        return v1::with_deprecation_headers(reply);
    }
    reply
}

/// `GET /spaces/{id}/content/labels`: the labels of the space's visible content, once each.
fn space_content_labels(st: &State, ctx: &Ctx<'_>, q: &Query, id: &str, site_path: &str) -> Result<Reply, Reply> {
    let limit = parse_limit(q, 25, 250)?;
    let space_id = parse_id(id, "id")?;
    if !st.spaces.contains_key(&space_id) {
        return Err(not_found());
    }
    let mut labels: Vec<&str> = st
        .contents
        .values()
        .filter(|c| c.space_id == space_id && !c.restricted && c.status != Status::Trashed)
        .flat_map(|c| c.labels.iter().map(String::as_str))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    paginate(
        ctx,
        q,
        site_path,
        labels,
        limit,
        |l| json!({"id": format!("{}", crate::state::fnv1a(l) % 1_000_000_000), "name": l, "prefix": "global"}),
    )
}

/// Like Cloud, a download answers with a redirect to the media service, whose URL carries
/// its own token (the fake serves it on the same origin).
fn download(st: &State, ctx: &Ctx<'_>, page: &str, name: &str) -> Reply {
    let found = st.contents.values().find(|c| {
        c.kind == Kind::Attachment && c.parent_id.map(|p| p.to_string()).as_deref() == Some(page) && c.title == name
    });
    match found.filter(|c| !c.restricted && c.status == Status::Current) {
        Some(c) => Reply { status: 302, content_type: "text/plain", body: Vec::new(), headers: Vec::new() }
            .with_header("Location", format!("{}/media/{}/binary?token=t{}v{}", ctx.origin, c.id, c.id, c.version)),
        None => not_found(),
    }
}

/// The media service: the file's bytes for a valid token.
fn media(st: &State, id: &str, q: &Query) -> Reply {
    let found = id.parse::<u64>().ok().and_then(|id| st.contents.get(&id)).filter(|c| c.kind == Kind::Attachment);
    match found {
        Some(c) if q.get("token") == Some(format!("t{}v{}", c.id, c.version).as_str()) => {
            let meta = c.attachment.as_ref().expect("an attachment has its bytes");
            Reply {
                status: 200,
                content_type: "application/octet-stream",
                body: meta.bytes.clone(),
                headers: Vec::new(),
            }
            .with_header("X-Media-Type", meta.media_type.clone())
        }
        Some(_) => Reply::json(401, &json!({"error": "invalid or expired media token"})),
        None => not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Parses `limit` (default `default`, valid 1..=max) or produces the 400.
pub(crate) fn parse_limit(q: &Query, default: usize, max: usize) -> Result<usize, Reply> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_param("limit", v)),
        },
    }
}

/// Encodes an offset as an opaque cursor.
pub(crate) fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"offset\":{offset},\"kind\":\"fake\"}}"))
}

/// Decodes a cursor produced by [`encode_cursor`].
pub(crate) fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("offset")?.as_u64().map(|n| n as usize)
}

/// Builds the paginated v2 response (`results`, `_links.next`, `_links.base`, `Link` header).
fn paginate<T>(
    ctx: &Ctx<'_>,
    q: &Query,
    site_path: &str,
    items: Vec<T>,
    limit: usize,
    render: impl Fn(T) -> Value,
) -> Result<Reply, Reply> {
    let offset = match q.get("cursor") {
        None => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| bad_param("cursor", c))?,
    };
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).map(render).collect();
    let end = offset + page.len();
    let mut links = json!({"base": ctx.base()});
    let mut link_header = None;
    if end < total {
        let next = format!("{site_path}?{}", q.rebuild(&["cursor"], &[("cursor", encode_cursor(end))]));
        link_header = Some(format!("<{next}>; rel=\"next\", <{}>; rel=\"base\"", ctx.base()));
        links["next"] = Value::String(next);
    }
    let mut r = Reply::json(200, &json!({"results": page, "_links": links}));
    if let Some(l) = link_header {
        r = r.with_header("Link", l);
    }
    Ok(r)
}

/// `Title With Spaces` → `Title+With+Spaces` (form encoding, as in Cloud web UI links).
pub(crate) fn title_slug(title: &str) -> String {
    url::form_urlencoded::byte_serialize(title.as_bytes()).collect()
}

/// Cloud-style tiny link code: base64url of the little-endian id bytes.
pub(crate) fn tiny_code(id: u64) -> String {
    let bytes = id.to_le_bytes();
    let len = bytes.iter().rposition(|b| *b != 0).map_or(1, |p| p + 1);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..len.max(4)])
}

/// The relative web UI link of a page or blog post.
pub(crate) fn webui(space: &Space, c: &Content) -> String {
    match c.kind {
        Kind::Page => format!("/spaces/{}/pages/{}/{}", space.key, c.id, title_slug(&c.title)),
        Kind::BlogPost => {
            format!("/spaces/{}/blog/{}/{}/{}", space.key, blog_date_path(c.created_at), c.id, title_slug(&c.title))
        }
        Kind::Comment => format!(
            "/spaces/{}/pages/{}?focusedCommentId={}#comment-{}",
            space.key,
            c.parent_id.unwrap_or(0),
            c.id,
            c.id
        ),
        Kind::Folder | Kind::Whiteboard | Kind::Database | Kind::Embed => {
            format!("/spaces/{}/{}/{}", space.key, c.kind.as_str(), c.id)
        }
        Kind::Attachment => {
            let page = c.parent_id.unwrap_or(0);
            let path = format!("/{page}/{}/{}", c.id, c.title);
            let preview = percent_encoding::utf8_percent_encode(&path, percent_encoding::NON_ALPHANUMERIC);
            format!("/pages/viewpageattachments.action?pageId={page}&preview={preview}")
        }
    }
}

/// Crude tag stripper used for the non-storage representations.
pub(crate) fn plain_text(storage: &str) -> String {
    let storage = storage.replace("<![CDATA[", "").replace("]]>", "");
    let mut out = String::with_capacity(storage.len());
    let mut in_tag = false;
    for ch in storage.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&nbsp;", " ")
        .replace("&mdash;", "\u{2014}")
        .replace("&ndash;", "\u{2013}")
        .replace("&rsquo;", "\u{2019}")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `body` object for a requested representation (`None` → `{}`).
fn body_json(c: &Content, format: Option<&str>) -> Value {
    match format {
        None => json!({}),
        Some("storage") => json!({"storage": {"representation": "storage", "value": c.storage}}),
        Some("atlas_doc_format") => {
            let text = plain_text(&c.storage);
            let content = if text.is_empty() {
                json!([])
            } else {
                json!([{"type":"paragraph","content":[{"type":"text","text":text}]}])
            };
            let doc = json!({"type":"doc","version":1,"content":content});
            json!({"atlas_doc_format": {"representation": "atlas_doc_format", "value": doc.to_string()}})
        }
        Some(other) => {
            let mut m = serde_json::Map::new();
            m.insert(other.to_string(), json!({"representation": other, "value": c.storage}));
            Value::Object(m)
        }
    }
}

/// Checks `body-format` against the allowed set.
fn parse_body_format(q: &Query, single: bool) -> Result<Option<&str>, Reply> {
    let Some(f) = q.get("body-format") else {
        return Ok(None);
    };
    let list_ok = ["storage", "atlas_doc_format"];
    let single_ok = ["view", "export_view", "anonymous_export_view", "styled_view", "editor"];
    if list_ok.contains(&f) || (single && single_ok.contains(&f)) {
        Ok(Some(f))
    } else {
        Err(bad_param("body-format", f))
    }
}

/// v2 JSON of a page (PageBulk/PageSingle) or blog post (BlogPostBulk/BlogPostSingle).
pub(crate) fn content_json(st: &State, ctx: &Ctx<'_>, c: &Content, body_format: Option<&str>, single: bool) -> Value {
    let space = &st.spaces[&c.space_id];
    let mut links = json!({
        "webui": webui(space, c),
        "editui": format!("/pages/resumedraft.action?draftId={}", c.id),
        "tinyui": format!("/x/{}", tiny_code(c.id)),
    });
    if single {
        links["base"] = Value::String(ctx.base());
    }
    let version = json!({
        "number": c.version,
        "message": "",
        "minorEdit": false,
        "authorId": c.author_id,
        "createdAt": format_ts(c.modified_at),
    });
    match c.kind {
        Kind::Page => json!({
            "id": c.id.to_string(),
            "status": c.status.as_str(),
            "title": c.title,
            "spaceId": c.space_id.to_string(),
            "parentId": c.parent_id.map(|p| p.to_string()),
            "parentType": c.parent_id.map(|p| st.contents.get(&p).map_or("page", |parent| parent.kind.as_str())),
            "position": c.position,
            "authorId": c.author_id,
            "ownerId": c.author_id,
            "lastOwnerId": null,
            "createdAt": format_ts(c.created_at),
            "version": version,
            "body": body_json(c, body_format),
            "_links": links,
        }),
        _ => json!({
            "id": c.id.to_string(),
            "status": c.status.as_str(),
            "title": c.title,
            "spaceId": c.space_id.to_string(),
            "authorId": c.author_id,
            "createdAt": format_ts(c.created_at),
            "version": version,
            "body": body_json(c, body_format),
            "_links": links,
        }),
    }
}

/// v2 SpaceBulk JSON.
fn space_json(s: &Space, q: &Query) -> Value {
    let mut v = json!({
        "id": s.id.to_string(),
        "key": s.key,
        "name": s.name,
        "type": "global",
        "status": "current",
        "authorId": s.author_id,
        "createdAt": format_ts(s.created_at),
        "homepageId": s.homepage_id.to_string(),
        "currentActiveAlias": s.key,
        "_links": {"webui": format!("/spaces/{}", s.key)},
    });
    if let Some(fmt) = q.get("description-format") {
        v["description"] = json!({fmt: {"representation": fmt, "value": ""}});
    }
    v
}

/// Sort orders of the v2 list endpoints.
#[derive(Debug, Clone, Copy)]
enum SortKey {
    Id,
    Created,
    Modified,
    Title,
}

fn parse_sort(q: &Query, kind: Kind) -> Result<(SortKey, bool), Reply> {
    let Some(s) = q.get("sort") else {
        return Ok((SortKey::Id, false));
    };
    let (desc, name) = match s.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, s),
    };
    let key = match name {
        "id" => SortKey::Id,
        "created-date" => SortKey::Created,
        "modified-date" => SortKey::Modified,
        "title" if kind == Kind::Page => SortKey::Title,
        _ => return Err(bad_param("sort", s)),
    };
    Ok((key, desc))
}

fn sort_contents(items: &mut [&Content], key: SortKey, desc: bool) {
    items.sort_by(|a, b| {
        let o = match key {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Created => a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)),
            SortKey::Modified => a.modified_at.cmp(&b.modified_at).then(a.id.cmp(&b.id)),
            SortKey::Title => a.title.cmp(&b.title).then(a.id.cmp(&b.id)),
        };
        if desc { o.reverse() } else { o }
    });
}

/// Parses a `status` filter; `None` means "use the default".
fn parse_statuses(q: &Query, kind: Kind) -> Result<Option<Vec<String>>, Reply> {
    let vals = q.multi("status");
    if vals.is_empty() {
        return Ok(None);
    }
    for v in &vals {
        let ok = match v.as_str() {
            "current" | "trashed" | "deleted" | "historical" | "draft" | "any" => true,
            "archived" => kind == Kind::Page,
            _ => false,
        };
        if !ok {
            return Err(bad_param("status", v));
        }
    }
    Ok(Some(vals))
}

fn status_matches(c: &Content, statuses: &Option<Vec<String>>) -> bool {
    match statuses {
        None => match c.kind {
            Kind::Page => matches!(c.status, Status::Current | Status::Archived),
            _ => c.status == Status::Current,
        },
        Some(list) => list.iter().any(|s| s == "any" || s == c.status.as_str()),
    }
}

fn parse_id(raw: &str, name: &str) -> Result<u64, Reply> {
    raw.parse::<u64>().map_err(|_| bad_param(name, raw))
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// `GET /wiki/rest/api/user/current`.
/// `GET /wiki/rest/api/user/bulk?accountId=..&accountId=..`: the known accounts among the
/// ids, at most 200 (unknown ids are left out, as Confluence does for deleted accounts).
fn users_bulk(st: &State, ctx: &Ctx<'_>, q: &Query) -> Reply {
    let base = ctx.base();
    let ids = q.multi("accountId");
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(200).clamp(1, 200);
    let results: Vec<Value> = ids
        .iter()
        .take(limit)
        .filter_map(|id| st.users.iter().find(|u| &u.account_id == id))
        .map(|u| {
            json!({
                "type": "known",
                "accountId": u.account_id,
                "accountType": "atlassian",
                "publicName": u.display_name,
                "displayName": u.display_name,
                "_links": {"self": format!("{base}/rest/api/user?accountId={}", u.account_id)}
            })
        })
        .collect();
    let size = results.len();
    Reply::json(
        200,
        &json!({"results": results, "start": 0, "limit": limit, "size": size, "_links": {"base": base, "context": "/wiki"}}),
    )
}

fn user_current(ctx: &Ctx<'_>) -> Reply {
    let base = ctx.base();
    match &ctx.user {
        Some(u) => Reply::json(
            200,
            &json!({
                "type": "known",
                "accountId": u.account_id,
                "accountType": "atlassian",
                "email": u.email,
                "publicName": u.display_name,
                "profilePicture": {
                    "path": format!("/wiki/aa-avatar/{}", u.account_id),
                    "width": 48, "height": 48, "isDefault": false
                },
                "displayName": u.display_name,
                "timeZone": "Etc/UTC",
                "isExternalCollaborator": false,
                "externalCollaborator": false,
                "_expandable": {"operations": "", "personalSpace": ""},
                "_links": {
                    "self": format!("{base}/rest/api/user?accountId={}", u.account_id),
                    "base": base,
                    "context": "/wiki"
                }
            }),
        ),
        None => Reply::json(
            200,
            &json!({
                "type": "anonymous",
                "profilePicture": {
                    "path": "/wiki/s/-1/default/_/images/icons/profilepics/anonymous.svg",
                    "width": 48, "height": 48, "isDefault": true
                },
                "displayName": "Anonymous",
                "isExternalCollaborator": false,
                "_expandable": {"operations": "", "personalSpace": ""},
                "_links": {"self": format!("{base}/rest/api/user/anonymous"), "base": base, "context": "/wiki"}
            }),
        ),
    }
}

/// `GET /wiki/api/v2/spaces`.
fn list_spaces(st: &State, ctx: &Ctx<'_>, q: &Query) -> Result<Reply, Reply> {
    let limit = parse_limit(q, 25, 250)?;
    let keys = q.multi("keys");
    let ids = q.multi("ids").iter().map(|i| parse_id(i, "ids")).collect::<Result<Vec<u64>, Reply>>()?;
    let types = q.multi("type");
    let statuses = q.multi("status");
    let mut spaces: Vec<&Space> = st
        .spaces
        .values()
        .filter(|s| keys.is_empty() || keys.contains(&s.key))
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "global"))
        .filter(|_| statuses.is_empty() || statuses.iter().any(|t| t == "current"))
        .collect();
    match q.get("sort") {
        None | Some("id") => {}
        Some("-id") => spaces.reverse(),
        Some("key") => spaces.sort_by(|a, b| a.key.cmp(&b.key)),
        Some("-key") => spaces.sort_by(|a, b| b.key.cmp(&a.key)),
        Some("name") => spaces.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("-name") => spaces.sort_by(|a, b| b.name.cmp(&a.name)),
        Some(other) => return Err(bad_param("sort", other)),
    }
    paginate(ctx, q, "/wiki/api/v2/spaces", spaces, limit, |s| space_json(s, q))
}

/// `GET /wiki/api/v2/spaces/{id}`.
fn single_space(st: &State, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "id")?;
    let s = st.spaces.get(&id).ok_or_else(not_found)?;
    let mut v = space_json(s, &Query::parse(""));
    v["_links"]["base"] = Value::String(ctx.base());
    Ok(Reply::json(200, &v))
}

/// `GET /wiki/api/v2/spaces/{id}/pages` and `/blogposts`.
fn list_in_space(
    st: &State,
    ctx: &Ctx<'_>,
    q: &Query,
    space_id: &str,
    kind: Kind,
    site_path: &str,
) -> Result<Reply, Reply> {
    let space_id = parse_id(space_id, "id")?;
    if !st.spaces.contains_key(&space_id) {
        return Err(not_found());
    }
    let limit = parse_limit(q, 25, 250)?;
    let body_format = parse_body_format(q, false)?;
    let (key, desc) = parse_sort(q, kind)?;
    let statuses = parse_statuses(q, kind)?;
    let root_only = match (kind, q.get("depth")) {
        (_, None) | (Kind::Page, Some("all")) => false,
        (Kind::Page, Some("root")) => true,
        (_, Some(d)) => return Err(bad_param("depth", d)),
    };
    let title = q.get("title").map(str::to_lowercase);
    let mut items: Vec<&Content> = st
        .contents
        .values()
        .filter(|c| c.kind == kind && c.space_id == space_id && !c.restricted)
        .filter(|c| status_matches(c, &statuses))
        .filter(|c| !root_only || c.parent_id.is_none())
        .filter(|c| title.as_ref().is_none_or(|t| c.title.to_lowercase().contains(t.as_str())))
        .collect();
    sort_contents(&mut items, key, desc);
    paginate(ctx, q, site_path, items, limit, |c| content_json(st, ctx, c, body_format, false))
}

/// `GET /wiki/api/v2/pages` and `/blogposts` (batch by id / space-id).
fn list_batch(st: &State, ctx: &Ctx<'_>, q: &Query, kind: Kind, site_path: &str) -> Result<Reply, Reply> {
    let limit = parse_limit(q, 25, 250)?;
    let body_format = parse_body_format(q, false)?;
    let (key, desc) = parse_sort(q, kind)?;
    let statuses = parse_statuses(q, kind)?;
    let ids = q.multi("id").iter().map(|i| parse_id(i, "id")).collect::<Result<Vec<u64>, Reply>>()?;
    if ids.len() > 250 {
        return Err(bad_param("id", "too many ids"));
    }
    let space_ids = q.multi("space-id").iter().map(|i| parse_id(i, "space-id")).collect::<Result<Vec<u64>, Reply>>()?;
    if space_ids.len() > 100 {
        return Err(bad_param("space-id", "too many ids"));
    }
    let title = q.get("title").map(str::to_lowercase);
    let mut items: Vec<&Content> = st
        .contents
        .values()
        .filter(|c| c.kind == kind && !c.restricted)
        .filter(|c| ids.is_empty() || ids.contains(&c.id))
        .filter(|c| space_ids.is_empty() || space_ids.contains(&c.space_id))
        .filter(|c| status_matches(c, &statuses))
        .filter(|c| title.as_ref().is_none_or(|t| c.title.to_lowercase().contains(t.as_str())))
        .collect();
    sort_contents(&mut items, key, desc);
    paginate(ctx, q, site_path, items, limit, |c| content_json(st, ctx, c, body_format, false))
}

/// `GET /wiki/api/v2/pages/{id}` and `/blogposts/{id}`.
fn single_content(st: &State, ctx: &Ctx<'_>, q: &Query, id: &str, kind: Kind) -> Result<Reply, Reply> {
    let id = parse_id(id, "id")?;
    let body_format = parse_body_format(q, true)?;
    let statuses = parse_statuses(q, kind)?;
    let c = st
        .contents
        .get(&id)
        .filter(|c| c.kind == kind && !c.restricted && status_matches(c, &statuses))
        .ok_or_else(not_found)?;
    if let Some(v) = q.get("version")
        && v.parse::<u64>().ok() != Some(c.version)
    {
        return Err(not_found());
    }
    Ok(Reply::json(200, &content_json(st, ctx, c, body_format, true)))
}

/// `GET /wiki/api/v2/pages/{id}/ancestors`.
fn ancestors(st: &State, ctx: &Ctx<'_>, q: &Query, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "id")?;
    let limit = parse_limit(q, 25, 250)?;
    st.contents
        .get(&id)
        .filter(|c| c.kind == Kind::Page && !c.restricted && c.status != Status::Trashed)
        .ok_or_else(not_found)?;
    let all = st.ancestors(id);
    let skip = all.len().saturating_sub(limit);
    let results: Vec<Value> = all.iter().skip(skip).map(|a| json!({"id": a.id.to_string(), "type": "page"})).collect();
    Ok(Reply::json(200, &json!({"results": results, "_links": {"base": ctx.base()}})))
}
