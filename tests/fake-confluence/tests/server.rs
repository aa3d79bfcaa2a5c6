//! End-to-end tests of the fake over real HTTP on 127.0.0.1.

mod client;

use std::collections::HashSet;

use client::{Resp, basic, get};
use fake_confluence::{
    ALL_SCOPES, DEMO_EMAIL, DEMO_SCOPED_TOKEN, DEMO_SPACE_KEY, DEMO_TOKEN, FakeConfluence, GATEWAY_401_BODY,
    SITE_401_BODY, TokenKind, demo_site,
};
use serde_json::Value;

const EMAIL: &str = "alice@example.com";
const TOKEN: &str = "classic-token-1";
const SCOPED: &str = "scoped-token-1";

fn site() -> (FakeConfluence, String) {
    let s = FakeConfluence::start().expect("start");
    s.add_user(EMAIL, TOKEN, TokenKind::Classic);
    s.add_user(EMAIL, SCOPED, TokenKind::Scoped { scopes: ALL_SCOPES.iter().map(|x| x.to_string()).collect() });
    let space = s.add_space("ENG", "Engineering");
    (s, space)
}

fn auth() -> String {
    basic(EMAIL, TOKEN)
}

fn ids(v: &Value) -> Vec<String> {
    v["results"].as_array().expect("results").iter().map(|r| r["id"].as_str().expect("string id").to_string()).collect()
}

/// Follows `_links.next` from `first` (a path under `api_base`) and returns (ids, pages fetched).
fn follow_all(api_base: &str, first: &str, auth: &str) -> (Vec<String>, Vec<usize>) {
    let mut url = format!("{api_base}{first}");
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let r = get(&url, Some(auth));
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let v = r.json();
        let page = ids(&v);
        sizes.push(page.len());
        all.extend(page);
        match v["_links"]["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/wiki/api/v2/"), "relative next: {next}");
                let link = r.header("link").expect("Link header with next");
                assert_eq!(
                    link,
                    format!("<{next}>; rel=\"next\", <{}>; rel=\"base\"", v["_links"]["base"].as_str().unwrap())
                );
                url = format!("{api_base}{next}");
            }
            None => {
                assert!(r.header("link").is_none());
                break;
            }
        }
    }
    (all, sizes)
}

#[test]
fn tenant_info_is_unauthenticated() {
    let (s, _) = site();
    let r = get(&format!("{}/_edge/tenant_info", s.origin()), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["cloudId"].as_str().unwrap(), s.cloud_id());
    assert_eq!(s.cloud_id().len(), 36);
}

#[test]
fn pagination_over_600_pages_follows_next_to_the_end() {
    let (s, space) = site();
    for i in 0..600 {
        s.add_page("ENG", None, &format!("Page {i:03}"), &format!("<p>body {i}</p>"));
    }
    let (all, sizes) =
        follow_all(&s.origin(), &format!("/wiki/api/v2/spaces/{space}/pages?body-format=storage&limit=250"), &auth());
    assert_eq!(sizes, vec![250, 250, 101]); // 600 + the homepage
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 601);

    // Default limit is 25; the next link keeps the original params.
    let r = get(&format!("{}/wiki/api/v2/spaces/{space}/pages?sort=-id", s.origin()), Some(&auth()));
    let v = r.json();
    assert_eq!(ids(&v).len(), 25);
    let next = v["_links"]["next"].as_str().unwrap();
    assert!(next.contains("sort=-id") && next.contains("cursor="), "{next}");
    assert_eq!(v["_links"]["base"], format!("{}/wiki", s.origin()));
    assert!(v["results"][0].get("body").is_some_and(|b| b.as_object().unwrap().is_empty()));

    // Through the gateway, next is still /wiki/... and is joined with the gateway base.
    s.reset_requests();
    let (all_gw, sizes_gw) =
        follow_all(&s.gateway_base(), &format!("/wiki/api/v2/spaces/{space}/pages?limit=200"), &basic(EMAIL, SCOPED));
    assert_eq!(sizes_gw, vec![200, 200, 200, 1]);
    assert_eq!(all_gw.len(), 601);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs.iter().all(|r| r.path.starts_with("/ex/confluence/") && r.status == 200));
}

#[test]
fn limit_out_of_range_is_400() {
    let (s, space) = site();
    for q in ["limit=251", "limit=0", "limit=abc"] {
        let r = get(&format!("{}/wiki/api/v2/spaces/{space}/pages?{q}", s.origin()), Some(&auth()));
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["errors"][0]["status"], 400);
    }
    let r = get(&format!("{}/wiki/api/v2/spaces?limit=251", s.origin()), Some(&auth()));
    assert_eq!(r.status, 400);
    let r = get(&format!("{}/wiki/api/v2/spaces?limit=250", s.origin()), Some(&auth()));
    assert_eq!(r.status, 200);
}

#[test]
fn site_auth_failures_are_text_plain_401() {
    let (s, _) = site();
    let url = format!("{}/wiki/rest/api/user/current", s.origin());
    for a in [
        basic(EMAIL, "wrong"),
        basic("bob@example.com", TOKEN),
        basic(EMAIL, SCOPED), // scoped token on the site URL
        "Bearer xyz".to_string(),
    ] {
        let r = get(&url, Some(&a));
        assert_eq!(r.status, 401, "{a}");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, SITE_401_BODY);
    }
    assert_eq!(
        SITE_401_BODY,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/responses/site-401-bad-credentials-text-plain.txt"
        ))
        .expect("the recorded response is a fixture of this crate")
    );

    let ok = get(&url, Some(&auth()));
    assert_eq!(ok.status, 200);
    let v = ok.json();
    assert_eq!(v["type"], "known");
    assert_eq!(v["email"], EMAIL);
    assert_eq!(v["accountType"], "atlassian");
    assert!(v["accountId"].as_str().unwrap().contains(':'));

    let anon = get(&url, None);
    assert_eq!(anon.status, 200);
    assert_eq!(anon.json()["type"], "anonymous");
    // Anonymous v2 calls are rejected.
    assert_eq!(get(&format!("{}/wiki/api/v2/spaces", s.origin()), None).status, 401);

    s.revoke_token(TOKEN);
    let r = get(&url, Some(&auth()));
    assert_eq!(r.status, 401);
    assert_eq!(r.body, SITE_401_BODY);
}

#[test]
fn gateway_requires_scoped_tokens_with_the_right_scope() {
    let (s, space) = site();
    s.add_user("svc@example.com", "narrow", TokenKind::Scoped { scopes: vec!["read:space:confluence".into()] });
    let gw = s.gateway_base();
    let gw401 = |r: &Resp| {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json(), serde_json::from_str::<Value>(GATEWAY_401_BODY).unwrap());
    };
    // Classic token on the gateway.
    gw401(&get(&format!("{gw}/wiki/rest/api/user/current"), Some(&auth())));
    // Scoped token with all scopes.
    let r = get(&format!("{gw}/wiki/rest/api/user/current"), Some(&basic(EMAIL, SCOPED)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["type"], "known");
    // Narrow token: spaces OK, pages and user/current refused.
    let narrow = basic("svc@example.com", "narrow");
    let r = get(&format!("{gw}/wiki/api/v2/spaces?keys=ENG"), Some(&narrow));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["results"][0]["id"], space.as_str());
    assert_eq!(v["_links"]["base"], format!("{}/wiki", s.origin()));
    gw401(&get(&format!("{gw}/wiki/api/v2/spaces/{space}/pages"), Some(&narrow)));
    gw401(&get(&format!("{gw}/wiki/rest/api/user/current"), Some(&narrow)));
    // Trailing slash → scope mismatch, as on Cloud.
    gw401(&get(&format!("{gw}/wiki/api/v2/spaces/"), Some(&basic(EMAIL, SCOPED))));
    // No credentials.
    gw401(&get(&format!("{gw}/wiki/api/v2/spaces"), None));
    // Wrong cloud id.
    let r = get(
        &format!("{}/ex/confluence/00000000-0000-0000-0000-000000000000/wiki/api/v2/spaces", s.origin()),
        Some(&basic(EMAIL, SCOPED)),
    );
    assert_eq!(r.status, 404);
    // Ancestors need read:content.metadata:confluence.
    s.add_user("pages@example.com", "pages-only", TokenKind::Scoped { scopes: vec!["read:page:confluence".into()] });
    let home = s.homepage_id("ENG").unwrap();
    let p = s.add_page("ENG", None, "Child", "<p>x</p>");
    let po = basic("pages@example.com", "pages-only");
    assert_eq!(get(&format!("{gw}/wiki/api/v2/pages/{p}"), Some(&po)).status, 200);
    gw401(&get(&format!("{gw}/wiki/api/v2/pages/{p}/ancestors"), Some(&po)));
    let r = get(&format!("{gw}/wiki/api/v2/pages/{p}/ancestors"), Some(&basic(EMAIL, SCOPED)));
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.json()), vec![home]);
}

#[test]
fn trashed_restricted_and_purged_pages_vanish() {
    let (s, space) = site();
    let a = s.add_page("ENG", None, "A", "<p>a</p>");
    let b = s.add_page("ENG", None, "B", "<p>b</p>");
    let c = s.add_page("ENG", None, "C", "<p>c</p>");
    let list = |extra: &str| {
        ids(&get(&format!("{}/wiki/api/v2/spaces/{space}/pages?limit=250{extra}", s.origin()), Some(&auth())).json())
    };
    let single =
        |id: &str, extra: &str| get(&format!("{}/wiki/api/v2/pages/{id}{extra}", s.origin()), Some(&auth())).status;
    assert_eq!(list("").len(), 4);

    s.trash_page(&a);
    assert!(!list("").contains(&a));
    assert_eq!(list("&status=trashed"), vec![a.clone()]);
    assert_eq!(single(&a, ""), 404);
    assert_eq!(single(&a, "?status=trashed"), 200);

    s.restrict_page(&b, true);
    assert!(!list("").contains(&b));
    assert_eq!(single(&b, ""), 404);
    let batch = get(&format!("{}/wiki/api/v2/pages?id={a},{b},{c}&body-format=storage", s.origin()), Some(&auth()));
    assert_eq!(ids(&batch.json()), vec![c.clone()]);
    assert_eq!(batch.json()["results"][0]["body"]["storage"]["value"], "<p>c</p>");
    s.restrict_page(&b, false);
    assert_eq!(single(&b, ""), 200);

    s.purge_page(&c);
    assert_eq!(single(&c, ""), 404);
    assert_eq!(single(&c, "?status=trashed"), 404);
    assert_eq!(list("").len(), 2);

    let r = get(&format!("{}/wiki/api/v2/spaces/999999999/pages", s.origin()), Some(&auth()));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "NOT_FOUND");
}

#[test]
fn edits_bump_versions_and_moves_do_not() {
    let (s, space) = site();
    let a = s.add_page("ENG", None, "Alpha Page", "<p>a</p>");
    let b = s.add_page("ENG", None, "Beta", "<p>b</p>");
    let fetch =
        |id: &str| get(&format!("{}/wiki/api/v2/pages/{id}?body-format=storage", s.origin()), Some(&auth())).json();
    let before = fetch(&a);
    assert_eq!(before["version"]["number"], 1);
    assert_eq!(before["_links"]["base"], format!("{}/wiki", s.origin()));
    assert_eq!(before["_links"]["webui"], format!("/spaces/ENG/pages/{a}/Alpha+Page"));
    assert_eq!(before["parentType"], "page");
    s.edit_page(&a, Some("Alpha Page v2"), Some("<p>a2</p>"));
    let after = fetch(&a);
    assert_eq!(after["version"]["number"], 2);
    assert_eq!(after["title"], "Alpha Page v2");
    assert_eq!(after["body"]["storage"]["value"], "<p>a2</p>");
    let (t0, t1) = (
        before["version"]["createdAt"].as_str().unwrap().to_string(),
        after["version"]["createdAt"].as_str().unwrap().to_string(),
    );
    assert!(t1 > t0 && t1.ends_with('Z') && t1.len() == 24, "{t0} {t1}");
    assert_eq!(after["createdAt"], before["createdAt"]);

    s.move_page(&b, &a);
    let moved = fetch(&b);
    assert_eq!(moved["parentId"], a.as_str());
    assert_eq!(moved["version"]["number"], 1);

    let r = get(&format!("{}/wiki/api/v2/spaces/{space}/pages?sort=-modified-date&limit=1", s.origin()), Some(&auth()));
    assert_eq!(ids(&r.json()), vec![a.clone()]);
}

#[test]
fn blogposts_and_spaces() {
    let (s, space) = site();
    let other = s.add_space("OPS", "Operations");
    let bp = s.add_blogpost("ENG", "Hello World", "<p>hi</p>");
    let r = get(&format!("{}/wiki/api/v2/spaces/{space}/blogposts?body-format=storage", s.origin()), Some(&auth()));
    let v = r.json();
    assert_eq!(ids(&v), vec![bp.clone()]);
    let post = &v["results"][0];
    assert!(post.get("parentId").is_none() && post.get("position").is_none());
    let webui = post["_links"]["webui"].as_str().unwrap();
    assert!(webui.starts_with("/spaces/ENG/blog/20") && webui.ends_with(&format!("/{bp}/Hello+World")), "{webui}");
    assert_eq!(get(&format!("{}/wiki/api/v2/blogposts/{bp}", s.origin()), Some(&auth())).status, 200);
    assert_eq!(get(&format!("{}/wiki/api/v2/pages/{bp}", s.origin()), Some(&auth())).status, 404);
    let r = get(&format!("{}/wiki/api/v2/blogposts?id={bp}", s.origin()), Some(&auth()));
    assert_eq!(ids(&r.json()), vec![bp]);

    for q in ["keys=ENG,OPS,NOPE", "keys=ENG&keys=OPS", &format!("ids={space},{other}")] {
        let r = get(&format!("{}/wiki/api/v2/spaces?{q}", s.origin()), Some(&auth()));
        let v = r.json();
        assert_eq!(ids(&v), vec![space.clone(), other.clone()], "{q}");
        assert_eq!(v["results"][0]["key"], "ENG");
        assert_eq!(v["results"][0]["_links"]["webui"], "/spaces/ENG");
        assert_eq!(v["results"][0]["homepageId"], s.homepage_id("ENG").unwrap().as_str());
    }
    let r = get(&format!("{}/wiki/api/v2/spaces?keys=NOPE", s.origin()), Some(&auth()));
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 0);
}

#[test]
fn legacy_v1_is_gone_by_default_and_servable_on_demand() {
    let (s, _) = site();
    let p = s.add_page("ENG", None, "Legacy", "<p>old</p>");
    for path in [
        "/wiki/rest/api/content?spaceKey=ENG&expand=body.storage".to_string(),
        format!("/wiki/rest/api/content/{p}"),
        "/wiki/rest/api/space".to_string(),
        "/wiki/rest/api/space/ENG".to_string(),
        "/wiki/rest/api/space/ENG/content".to_string(),
        format!("/wiki/rest/api/content/{p}/restriction/byOperation"),
    ] {
        let r = get(&format!("{}{path}", s.origin()), Some(&auth()));
        assert_eq!(r.status, 410, "{path}");
        let v = r.json();
        assert_eq!(v["statusCode"], 410);
        assert!(v["message"].as_str().unwrap().contains("GoneException"));
    }

    s.set_legacy_v1(true);
    let r = get(
        &format!(
            "{}/wiki/rest/api/content?spaceKey=ENG&type=page&start=0&limit=1&expand=body.storage,version",
            s.origin()
        ),
        Some(&auth()),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").is_some());
    let v = r.json();
    assert_eq!(v["size"], 1);
    assert!(v["_links"]["next"].as_str().unwrap().starts_with("/rest/api/content?"));
    let r = get(&format!("{}/wiki/rest/api/content/{p}?expand=body.storage,ancestors", s.origin()), Some(&auth()));
    let v = r.json();
    assert_eq!(v["body"]["storage"]["value"], "<p>old</p>");
    assert_eq!(v["ancestors"].as_array().unwrap().len(), 1);
    let r = get(&format!("{}/wiki/rest/api/space/ENG", s.origin()), Some(&auth()));
    let v = r.json();
    assert!(v["id"].is_u64(), "v1 space ids are numbers");
    assert_eq!(v["key"], "ENG");
    assert_eq!(get(&format!("{}/wiki/rest/api/space/NOPE", s.origin()), Some(&auth())).status, 404);
    let r = get(&format!("{}/wiki/rest/api/content/{p}/restriction/byOperation", s.origin()), Some(&auth()));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["read"]["restrictions"]["user"]["results"], serde_json::json!([]));
    s.restrict_page(&p, true);
    let r = get(&format!("{}/wiki/rest/api/content/{p}/restriction/byOperation", s.origin()), Some(&auth()));
    assert_eq!(r.status, 404, "invisible pages stay invisible");
}

#[test]
fn cql_search_and_unknown_routes() {
    let s = demo_site().expect("demo");
    let a = basic(DEMO_EMAIL, DEMO_TOKEN);
    let r = get(
        &format!(
            "{}/wiki/rest/api/content/search?cql=space%3DDOCS%20and%20type%3Dpage&limit=100&expand=body.storage",
            s.origin()
        ),
        Some(&a),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["size"], 16);
    let r = get(
        &format!(
            "{}/wiki/rest/api/search?cql=type%20in%20(page%2Cblogpost)%20AND%20text%20~%20%22escalation%22&limit=5",
            s.origin()
        ),
        Some(&a),
    );
    let v = r.json();
    assert!(v["totalSize"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len().min(5), v["size"].as_u64().unwrap() as usize);
    let r = get(&format!("{}/wiki/rest/api/search?cql=space%3D", s.origin()), Some(&a));
    assert_eq!(r.status, 400);

    let r = get(&format!("{}/wiki/api/v2/nope", s.origin()), Some(&a));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"errors":[{"status":404,"code":"NOT_FOUND","title":"Not Found","detail":null}]})
    );
}

#[test]
fn demo_site_has_the_documented_shape() {
    let s = demo_site().expect("demo");
    let a = basic(DEMO_EMAIL, DEMO_TOKEN);
    let r = get(&format!("{}/wiki/api/v2/spaces?keys={DEMO_SPACE_KEY}", s.origin()), Some(&a));
    let space = r.json()["results"][0].clone();
    let id = space["id"].as_str().unwrap();
    let pages =
        get(&format!("{}/wiki/api/v2/spaces/{id}/pages?body-format=storage&limit=250", s.origin()), Some(&a)).json();
    let results = pages["results"].as_array().unwrap();
    assert_eq!(results.len(), 16);
    assert!(results.iter().all(|p| p["body"]["storage"]["value"].as_str().unwrap().len() > 100));
    let pm = results.iter().find(|p| p["title"] == "Postmortem Template").unwrap();
    let anc =
        get(&format!("{}/wiki/api/v2/pages/{}/ancestors", s.origin(), pm["id"].as_str().unwrap()), Some(&a)).json();
    assert_eq!(anc["results"].as_array().unwrap().len(), 3);
    assert_eq!(anc["results"][0]["id"], space["homepageId"]);
    let blogs = get(&format!("{}/wiki/api/v2/spaces/{id}/blogposts", s.origin()), Some(&a)).json();
    assert_eq!(blogs["results"].as_array().unwrap().len(), 2);
    // The scoped demo token works on the gateway.
    let r = get(
        &format!("{}/wiki/api/v2/spaces/{id}/pages?limit=5", s.gateway_base()),
        Some(&basic(DEMO_EMAIL, DEMO_SCOPED_TOKEN)),
    );
    assert_eq!(r.status, 200);
    assert_eq!(fake_confluence::sample_bodies().len(), 4);
}

#[test]
fn failures_latency_requests_and_shutdown() {
    let (s, _) = site();
    s.fail_next(1, 429, Some(2));
    let url = format!("{}/wiki/rest/api/user/current", s.origin());
    let r = get(&url, Some(&auth()));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(get(&url, Some(&auth())).status, 200);
    s.set_latency(std::time::Duration::from_millis(50));
    let t = std::time::Instant::now();
    assert_eq!(get(&url, Some(&auth())).status, 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(50));
    let reqs = s.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].status, 429);
    assert_eq!(reqs[1].path, "/wiki/rest/api/user/current");
    assert_eq!(reqs[1].method, "GET");
    let port = s.port();
    drop(s);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn works_from_inside_another_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let (s, _) = site();
        let url = format!("{}/_edge/tenant_info", s.origin());
        let r = tokio::task::spawn_blocking(move || get(&url, None)).await.unwrap();
        assert_eq!(r.status, 200);
        drop(s);
    });
}
