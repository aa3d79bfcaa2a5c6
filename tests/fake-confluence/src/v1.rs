//! Legacy REST v1 endpoints. The content/space family answers 410 Gone unless legacy mode is on
//! (then it serves simple v1 shapes with start/limit pagination); the CQL searches are always served,
//! as on Cloud today.

use serde_json::{Value, json};

use crate::cql;
use crate::routes::{Ctx, Query, Reply, decode_cursor, encode_cursor, plain_text, tiny_code, webui};
use crate::state::{Content, Kind, Space, State, Status, format_ts};

const DEPRECATION: &str = "Wed, 1 Mar 2023 00:00:00 GMT";
const DEPRECATION_LINK: &str =
    "<https://developer.atlassian.com/cloud/confluence/changelog/#CHANGE-864>; rel=\"deprecation\"";

/// The 410 GoneException answer of removed v1 endpoints.
pub(crate) fn gone() -> Reply {
    v1_error(
        410,
        "com.atlassian.confluence.api.service.exceptions.pagesmodes.GoneException: This deprecated endpoint has been removed.",
        "Gone",
    )
    .with_header("Deprecation", DEPRECATION.into())
    .with_header("Link", DEPRECATION_LINK.into())
}

/// Adds the headers deprecated-but-alive v1 endpoints carry.
pub(crate) fn with_deprecation_headers(r: Reply) -> Reply {
    r.with_header("Deprecation", DEPRECATION.into())
        .with_header("Warning", "299 - \"Deprecated API, will be removed on Mon, 31 Mar 2025 00:00:00 GMT\"".into())
        .with_header("Link", DEPRECATION_LINK.into())
}

/// The v1 error envelope.
fn v1_error(status: u16, message: &str, reason: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "statusCode": status,
            "data": {"authorized": true, "valid": true, "errors": [], "successful": false},
            "message": message,
            "reason": reason
        }),
    )
}

fn expands(q: &Query, strip: &str) -> Vec<String> {
    q.multi("expand").into_iter().map(|e| e.strip_prefix(strip).map(str::to_string).unwrap_or(e)).collect()
}

fn has(expand: &[String], name: &str) -> bool {
    expand.iter().any(|e| e == name || e.starts_with(&format!("{name}.")))
}

fn v1_limit(q: &Query) -> usize {
    q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100)
}

fn v1_start(q: &Query) -> usize {
    q.get("start").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0)
}

fn user_v1(st: &State, ctx: &Ctx<'_>, account_id: &str) -> Value {
    let name = st
        .users
        .iter()
        .find(|u| u.account_id == account_id)
        .map(|u| u.display_name.clone())
        .unwrap_or_else(|| "Confluence Admin".into());
    json!({
        "type": "known",
        "accountId": account_id,
        "accountType": "atlassian",
        "publicName": name,
        "displayName": name,
        "_links": {"self": format!("{}/rest/api/user?accountId={account_id}", ctx.base())}
    })
}

fn space_v1(ctx: &Ctx<'_>, s: &Space) -> Value {
    json!({
        "id": s.id,
        "key": s.key,
        "name": s.name,
        "type": "global",
        "status": "current",
        "_expandable": {
            "settings": format!("/rest/api/space/{}/settings", s.key),
            "metadata": "", "operations": "", "lookAndFeel": "", "identifiers": "",
            "permissions": "", "icon": "", "description": "", "theme": "",
            "history": "",
            "homepage": format!("/rest/api/content/{}", s.homepage_id)
        },
        "_links": {
            "webui": format!("/spaces/{}", s.key),
            "self": format!("{}/rest/api/space/{}", ctx.base(), s.key)
        }
    })
}

/// v1 `Content` JSON with the requested expansions.
fn content_v1(st: &State, ctx: &Ctx<'_>, c: &Content, expand: &[String]) -> Value {
    let space = &st.spaces[&c.space_id];
    let base = ctx.base();
    let mut v = json!({
        "id": c.id.to_string(),
        "type": c.kind.as_str(),
        "status": c.status.as_str(),
        "title": c.title,
        "macroRenderedOutput": {},
        "extensions": {"position": if c.kind == Kind::Page { json!(c.position) } else { json!("none") }},
        "_links": {
            "webui": webui(space, c),
            "edit": format!("/pages/resumedraft.action?draftId={}", c.id),
            "tinyui": format!("/x/{}", tiny_code(c.id)),
            "self": format!("{base}/rest/api/content/{}", c.id)
        }
    });
    let mut expandable = serde_json::Map::new();
    let space_link = format!("/rest/api/space/{}", space.key);
    if has(expand, "space") {
        v["space"] = space_v1(ctx, space);
    } else {
        expandable.insert("space".into(), json!(space_link));
    }
    let commented = match c.kind {
        Kind::Comment | Kind::Attachment => c.parent_id.and_then(|id| st.contents.get(&id)),
        _ => None,
    };
    if has(expand, "metadata.labels") {
        let labels: Vec<Value> = c
            .labels
            .iter()
            .map(|l| json!({"prefix": "global", "name": l, "id": format!("{}", crate::state::fnv1a(l) % 1_000_000_000), "label": l}))
            .collect();
        v["metadata"] = json!({"labels": {"results": labels, "start": 0, "limit": 200, "size": c.labels.len()}});
    }
    if let Some(meta) = &c.attachment {
        let page = c.parent_id.unwrap_or(0);
        let name = percent_encoding::utf8_percent_encode(&c.title, percent_encoding::NON_ALPHANUMERIC);
        v["extensions"] = json!({"mediaType": meta.media_type, "fileSize": meta.bytes.len(), "comment": ""});
        v["_links"]["download"] = json!(format!(
            "/download/attachments/{page}/{name}?version={}&modificationDate={}&api=v2",
            c.version, c.modified_at
        ));
    }
    if let Some(meta) = &c.comment {
        v["extensions"] = json!({
            "location": if meta.selection.is_some() { "inline" } else { "footer" },
            "inlineProperties": meta.selection.as_ref().map(|s| json!({"originalSelection": s, "markerRef": format!("marker-{}", c.id)})),
            "resolution": meta.selection.as_ref().map(|_| json!({"status": if meta.resolved { "resolved" } else { "open" }})),
        });
    }
    if has(expand, "container") {
        v["container"] = match commented {
            Some(container) => content_v1(st, ctx, container, &[]),
            None => space_v1(ctx, space),
        };
    } else {
        expandable.insert("container".into(), json!(space_link));
    }
    if has(expand, "history") {
        v["history"] = json!({
            "latest": true,
            "createdBy": user_v1(st, ctx, &c.author_id),
            "createdDate": format_ts(c.created_at),
            "lastUpdated": {
                "by": user_v1(st, ctx, &c.author_id),
                "when": format_ts(c.modified_at),
                "number": c.version,
                "message": ""
            }
        });
    } else {
        expandable.insert("history".into(), json!(format!("/rest/api/content/{}/history", c.id)));
    }
    if has(expand, "version") {
        v["version"] = json!({
            "by": user_v1(st, ctx, &c.author_id),
            "when": format_ts(c.modified_at),
            "friendlyWhen": format_ts(c.modified_at),
            "message": "",
            "number": c.version,
            "minorEdit": false,
            "confRev": format!("confluence$content${}.{}", c.id, c.version),
            "contentTypeModified": false,
            "_links": {"self": format!("{base}/rest/api/content/{}/version/{}", c.id, c.version)}
        });
    } else {
        expandable.insert("version".into(), json!(""));
    }
    if has(expand, "ancestors") {
        // A comment's ancestors are the comments it answers; a page's, its parent pages.
        let anc: Vec<Value> = match c.comment.as_ref().and_then(|m| m.reply_to) {
            Some(parent) => st.contents.get(&parent).map(|p| content_v1(st, ctx, p, &[])).into_iter().collect(),
            None if c.kind == Kind::Comment => Vec::new(),
            None => st.ancestors(c.id).into_iter().map(|a| content_v1(st, ctx, a, &[])).collect(),
        };
        v["ancestors"] = json!(anc);
    } else {
        expandable.insert("ancestors".into(), json!(""));
    }
    let reps: Vec<&str> =
        expand.iter().filter_map(|e| e.strip_prefix("body.")).map(|e| e.split('.').next().unwrap_or(e)).collect();
    if reps.is_empty() {
        expandable.insert("body".into(), json!(""));
    } else {
        let mut body = serde_json::Map::new();
        for r in reps {
            let value = match r {
                "atlas_doc_format" => json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":plain_text(&c.storage)}]}]}).to_string(),
                _ => c.storage.clone(),
            };
            body.insert(
                r.to_string(),
                json!({"value": value, "representation": r, "embeddedContent": [], "_expandable": {"content": format!("/rest/api/content/{}", c.id)}}),
            );
        }
        v["body"] = Value::Object(body);
    }
    expandable.insert("children".into(), json!(format!("/rest/api/content/{}/child", c.id)));
    expandable.insert("descendants".into(), json!(format!("/rest/api/content/{}/descendant", c.id)));
    expandable.insert("restrictions".into(), json!(format!("/rest/api/content/{}/restriction/byOperation", c.id)));
    v["_expandable"] = Value::Object(expandable);
    v
}

/// The v1 offset-paginated array envelope.
fn v1_array(ctx: &Ctx<'_>, q: &Query, rel_path: &str, items: Vec<Value>, start: usize, limit: usize) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let size = page.len();
    let self_link = if q.raw.is_empty() {
        format!("{}{rel_path}", ctx.base())
    } else {
        format!("{}{rel_path}?{}", ctx.base(), q.raw)
    };
    let mut links = json!({"base": ctx.base(), "context": "/wiki", "self": self_link});
    if start + size < total {
        links["next"] = json!(format!(
            "{rel_path}?{}",
            q.rebuild(&["start", "limit"], &[("limit", limit.to_string()), ("start", (start + size).to_string())])
        ));
    }
    if start > 0 {
        links["prev"] = json!(format!(
            "{rel_path}?{}",
            q.rebuild(
                &["start", "limit"],
                &[("limit", limit.to_string()), ("start", start.saturating_sub(limit).to_string())]
            )
        ));
    }
    json!({"results": page, "start": start, "limit": limit, "size": size, "_links": links})
}

fn status_ok(c: &Content, q: &Query) -> bool {
    let statuses = q.multi("status");
    if statuses.is_empty() {
        c.status == Status::Current
    } else {
        statuses.iter().any(|s| s == "any" || s == c.status.as_str())
    }
}

fn visible(st: &State) -> impl Iterator<Item = &Content> {
    st.contents.values().filter(|c| !c.restricted)
}

/// `GET /wiki/rest/api/content` (legacy mode).
pub(crate) fn list_content(st: &State, ctx: &Ctx<'_>, q: &Query) -> Result<Reply, Reply> {
    let kind = match q.get("type").unwrap_or("page") {
        "page" => Kind::Page,
        "blogpost" => Kind::BlogPost,
        other => {
            return Err(v1_error(
                400,
                &format!(
                    "com.atlassian.confluence.api.service.exceptions.BadRequestException: Unsupported content type: {other}"
                ),
                "Bad Request",
            ));
        }
    };
    let space_key = q.get("spaceKey");
    let title = q.get("title");
    let expand = expands(q, "");
    let items: Vec<Value> = visible(st)
        .filter(|c| c.kind == kind && status_ok(c, q))
        .filter(|c| space_key.is_none_or(|k| st.spaces[&c.space_id].key == k))
        .filter(|c| title.is_none_or(|t| c.title == t))
        .map(|c| content_v1(st, ctx, c, &expand))
        .collect();
    Ok(Reply::json(200, &v1_array(ctx, q, "/rest/api/content", items, v1_start(q), v1_limit(q))))
}

/// `GET /wiki/rest/api/content/{id}` (legacy mode).
pub(crate) fn content_by_id(st: &State, ctx: &Ctx<'_>, q: &Query, id: &str) -> Result<Reply, Reply> {
    let not_found = || {
        v1_error(
            404,
            &format!(
                "com.atlassian.confluence.api.service.exceptions.NotFoundException: No content found with id : ContentId{{id={id}}}"
            ),
            "Not Found",
        )
    };
    let n: u64 = id.parse().map_err(|_| not_found())?;
    let c = visible(st).find(|c| c.id == n && status_ok(c, q)).ok_or_else(not_found)?;
    Ok(Reply::json(200, &content_v1(st, ctx, c, &expands(q, ""))))
}

/// `GET /wiki/rest/api/content/{id}/restriction/byOperation` (legacy mode): what
/// LangChain's loader asks for every page by default. Visible pages are unrestricted.
pub(crate) fn restrictions(st: &State, ctx: &Ctx<'_>, q: &Query, id: &str) -> Result<Reply, Reply> {
    content_by_id(st, ctx, q, id)?;
    let none = |operation: &str| {
        json!({
            "operation": operation,
            "restrictions": {"user": {"results": [], "size": 0}, "group": {"results": [], "size": 0}},
        })
    };
    Ok(Reply::json(200, &json!({"read": none("read"), "update": none("update")})))
}

fn cql_error(msg: &str) -> Reply {
    v1_error(
        400,
        &format!("com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse cql : {msg}"),
        "Bad Request",
    )
}

/// Runs a CQL query: matching visible current content, sorted.
fn run_cql<'a>(st: &'a State, q: &Query) -> Result<(String, Vec<&'a Content>), Reply> {
    let text = q.get("cql").ok_or_else(|| cql_error("the cql parameter is required"))?.to_string();
    let parsed = cql::parse(&text).map_err(|e| cql_error(&e))?;
    let mut out = Vec::new();
    for c in visible(st).filter(|c| c.status == Status::Current) {
        let keep = match &parsed.expr {
            Some(e) => cql::eval(e, st, c).map_err(|e| cql_error(&e))?,
            None => true,
        };
        if keep {
            out.push(c);
        }
    }
    cql::sort(&mut out, &parsed.order).map_err(|e| cql_error(&e))?;
    Ok((text, out))
}

/// Cursor/start pagination used by the CQL endpoints.
fn search_links(
    ctx: &Ctx<'_>,
    q: &Query,
    rel_path: &str,
    start: usize,
    size: usize,
    limit: usize,
    total: usize,
) -> Value {
    let mut links = json!({
        "base": ctx.base(),
        "context": "/wiki",
        "self": format!("{}{rel_path}?{}", ctx.base(), q.raw)
    });
    if start + size < total {
        links["next"] = json!(format!(
            "{rel_path}?{}",
            q.rebuild(
                &["cursor", "start", "limit", "next", "prev"],
                &[("next", "true".into()), ("limit", limit.to_string()), ("cursor", encode_cursor(start + size))]
            )
        ));
    }
    if start > 0 {
        links["prev"] = json!(format!(
            "{rel_path}?{}",
            q.rebuild(
                &["cursor", "start", "limit", "next", "prev"],
                &[
                    ("prev", "true".into()),
                    ("limit", limit.to_string()),
                    ("cursor", encode_cursor(start.saturating_sub(limit)))
                ]
            )
        ));
    }
    links
}

fn search_start(q: &Query) -> Result<usize, Reply> {
    match q.get("cursor") {
        Some(c) => decode_cursor(c).ok_or_else(|| cql_error("invalid cursor")),
        None => Ok(v1_start(q)),
    }
}

/// `GET /wiki/rest/api/content/search?cql=...` (always served).
pub(crate) fn content_search(st: &State, ctx: &Ctx<'_>, q: &Query) -> Result<Reply, Reply> {
    let (_, hits) = run_cql(st, q)?;
    let (start, limit) = (search_start(q)?, v1_limit(q));
    let expand = expands(q, "");
    let total = hits.len();
    let page: Vec<Value> = hits.into_iter().skip(start).take(limit).map(|c| content_v1(st, ctx, c, &expand)).collect();
    let size = page.len();
    let links = search_links(ctx, q, "/rest/api/content/search", start, size, limit, total);
    Ok(Reply::json(200, &json!({"results": page, "start": start, "limit": limit, "size": size, "_links": links})))
}

/// `GET /wiki/rest/api/search?cql=...` (always served).
pub(crate) fn search(st: &State, ctx: &Ctx<'_>, q: &Query) -> Result<Reply, Reply> {
    let (text, hits) = run_cql(st, q)?;
    let (start, limit) = (search_start(q)?, v1_limit(q));
    let expand = expands(q, "content.");
    let total = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|c| {
            let space = &st.spaces[&c.space_id];
            let excerpt: String = plain_text(&c.storage).chars().take(200).collect();
            json!({
                "content": content_v1(st, ctx, c, &expand),
                "title": c.title,
                "excerpt": excerpt,
                "url": webui(space, c),
                "resultGlobalContainer": {"title": space.name, "displayUrl": format!("/spaces/{}", space.key)},
                "breadcrumbs": [],
                "entityType": "content",
                "iconCssClass": if c.kind == Kind::Page { "aui-icon content-type-page" } else { "aui-icon content-type-blogpost" },
                "lastModified": format_ts(c.modified_at),
                "friendlyLastModified": format_ts(c.modified_at),
                "score": 0.0
            })
        })
        .collect();
    let size = page.len();
    let links = search_links(ctx, q, "/rest/api/search", start, size, limit, total);
    Ok(Reply::json(
        200,
        &json!({
            "results": page, "start": start, "limit": limit, "size": size, "totalSize": total,
            "cqlQuery": text, "searchDuration": 7, "archivedResultCount": 0, "_links": links
        }),
    ))
}

/// `GET /wiki/rest/api/space` (legacy mode).
pub(crate) fn list_spaces(st: &State, ctx: &Ctx<'_>, q: &Query) -> Result<Reply, Reply> {
    let mut keys = q.multi("spaceKey");
    keys.extend(q.multi("keys"));
    let items: Vec<Value> =
        st.spaces.values().filter(|s| keys.is_empty() || keys.contains(&s.key)).map(|s| space_v1(ctx, s)).collect();
    Ok(Reply::json(200, &v1_array(ctx, q, "/rest/api/space", items, v1_start(q), v1_limit(q))))
}

fn space_not_found(key: &str) -> Reply {
    v1_error(404, &format!("No space found with key : {key}"), "Not Found")
}

/// `GET /wiki/rest/api/space/{key}` (legacy mode).
pub(crate) fn space(st: &State, ctx: &Ctx<'_>, q: &Query, key: &str) -> Result<Reply, Reply> {
    let s = st.space_by_key(key).ok_or_else(|| space_not_found(key))?;
    let mut v = space_v1(ctx, s);
    if has(&expands(q, ""), "homepage")
        && let Some(home) = st.contents.get(&s.homepage_id)
    {
        v["homepage"] = content_v1(st, ctx, home, &[]);
    }
    Ok(Reply::json(200, &v))
}

/// `GET /wiki/rest/api/space/{key}/content[/{type}]` (legacy mode).
pub(crate) fn space_content(
    st: &State,
    ctx: &Ctx<'_>,
    q: &Query,
    key: &str,
    kind: Option<&str>,
) -> Result<Reply, Reply> {
    let s = st.space_by_key(key).ok_or_else(|| space_not_found(key))?;
    let expand = expands(q, "");
    let list = |k: Kind, path: &str| {
        let items: Vec<Value> = visible(st)
            .filter(|c| c.kind == k && c.space_id == s.id && status_ok(c, q))
            .map(|c| content_v1(st, ctx, c, &expand))
            .collect();
        v1_array(ctx, q, path, items, v1_start(q), v1_limit(q))
    };
    let page_path = format!("/rest/api/space/{key}/content/page");
    let blog_path = format!("/rest/api/space/{key}/content/blogpost");
    match kind {
        None => Ok(Reply::json(
            200,
            &json!({
                "page": list(Kind::Page, &page_path),
                "blogpost": list(Kind::BlogPost, &blog_path),
                "_links": {"base": ctx.base(), "context": "/wiki"}
            }),
        )),
        Some("page") => Ok(Reply::json(200, &list(Kind::Page, &page_path))),
        Some("blogpost") => Ok(Reply::json(200, &list(Kind::BlogPost, &blog_path))),
        Some(_) => Err(crate::routes::not_found()),
    }
}
