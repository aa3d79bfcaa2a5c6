//! The bulk content generator and its listings.

mod client;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use client::{basic, get};
use fake_confluence::{FakeConfluence, TokenKind, edit_fraction, generate_space, storage_body};
use serde_json::Value;

const EMAIL: &str = "bench@example.com";
const TOKEN: &str = "bench-token";

fn site() -> FakeConfluence {
    let s = FakeConfluence::start().expect("start");
    s.add_user(EMAIL, TOKEN, TokenKind::Classic);
    s
}

/// Follows a listing to its end; returns every result and the number of requests.
fn list_all(s: &FakeConfluence, first: &str) -> (Vec<Value>, usize, Duration) {
    let auth = basic(EMAIL, TOKEN);
    let mut url = format!("{}{first}", s.origin());
    let mut out = Vec::new();
    let mut requests = 0;
    let started = Instant::now();
    loop {
        let r = get(&url, Some(&auth));
        assert_eq!(r.status, 200, "{}", r.body);
        requests += 1;
        let v = r.json();
        out.extend(v["results"].as_array().unwrap().iter().cloned());
        match v["_links"]["next"].as_str() {
            Some(n) => url = format!("{}{n}", s.origin()),
            None => break,
        }
    }
    (out, requests, started.elapsed())
}

fn storage(v: &Value) -> &str {
    v["body"]["storage"]["value"].as_str().expect("storage body")
}

#[test]
fn bodies_are_realistic_and_sized() {
    let mut sizes = Vec::new();
    for seed in 0..400 {
        let b = storage_body(seed, "Title");
        assert!((2048..=20480).contains(&b.len()), "{}", b.len());
        for needle in ["<h1>", "<h2>", "<p>", "<table", "<li>", "ac:name=\"code\"", "<![CDATA[", "ac:name=\"info\""] {
            assert!(b.contains(needle), "{needle} missing");
        }
        sizes.push(b.len());
    }
    assert_eq!(storage_body(7, "T"), storage_body(7, "T"));
    let small = sizes.iter().filter(|s| **s < 6 * 1024).count();
    let large = sizes.iter().filter(|s| **s > 16 * 1024).count();
    assert!(small > 40 && large > 40, "spread: {small} small, {large} large");
}

#[test]
fn small_space_tree_blogposts_and_edits() {
    let s = site();
    let id = generate_space(&s, "GEN", 120, 3);
    let summary = s.spaces();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].id, id);
    assert_eq!((summary[0].pages, summary[0].blogposts), (120, 2));

    let (pages, requests, _) = list_all(&s, &format!("/wiki/api/v2/spaces/{id}/pages?limit=50&body-format=storage"));
    assert_eq!((pages.len(), requests), (120, 3));
    let titles: HashSet<&str> = pages.iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 120, "unique titles");
    for p in &pages {
        assert!((2048..=20480).contains(&storage(p).len()));
    }
    // Depth: homepage → level 1 → level 2 → level 3.
    let parent: HashMap<&str, &str> =
        pages.iter().filter_map(|p| Some((p["id"].as_str()?, p["parentId"].as_str()?))).collect();
    let max = pages
        .iter()
        .map(|p| {
            let mut id = p["id"].as_str().unwrap();
            let mut d = 0;
            while let Some(up) = parent.get(id) {
                d += 1;
                id = up;
            }
            d
        })
        .max();
    assert_eq!(max, Some(3));
    let (blogs, _, _) = list_all(&s, &format!("/wiki/api/v2/spaces/{id}/blogposts"));
    assert_eq!(blogs.len(), 2);

    // Same seed, same content.
    let s2 = site();
    let id2 = generate_space(&s2, "GEN", 120, 3);
    let (pages2, _, _) = list_all(&s2, &format!("/wiki/api/v2/spaces/{id2}/pages?limit=250&body-format=storage"));
    let bodies = |v: &[Value]| v.iter().map(|p| storage(p).to_string()).collect::<Vec<_>>();
    assert_eq!(bodies(&pages), bodies(&pages2));

    // Edits.
    assert_eq!(edit_fraction(&s, "GEN", 0.1, 5), 12);
    assert_eq!(edit_fraction(&s, "NOPE", 0.1, 5), 0);
    let (after, _, _) = list_all(&s, &format!("/wiki/api/v2/spaces/{id}/pages?limit=250&body-format=storage"));
    let changed: Vec<&Value> = after.iter().filter(|p| p["version"]["number"] == 2).collect();
    assert_eq!(changed.len(), 12);
    let before: HashMap<&str, &str> = pages.iter().map(|p| (p["id"].as_str().unwrap(), storage(p))).collect();
    for p in changed {
        let b = storage(p);
        assert_ne!(before[p["id"].as_str().unwrap()], b);
        assert!((2048..=20480).contains(&b.len()));
    }
}

#[test]
fn ten_thousand_pages_generate_and_list_quickly() {
    let s = site();
    let t = Instant::now();
    let id = generate_space(&s, "BIG", 10_000, 1);
    let generated = t.elapsed();
    eprintln!("generated 10,000 pages in {generated:.2?}");
    assert!(generated < Duration::from_secs(20), "{generated:?}");
    let (pages, requests, took) =
        list_all(&s, &format!("/wiki/api/v2/spaces/{id}/pages?limit=250&body-format=storage"));
    eprintln!("listed 10,000 pages in {requests} requests, {took:.2?} ({:.1?} per request)", took / requests as u32);
    assert_eq!(requests, 40);
    assert_eq!(pages.len(), 10_000);
    let unique: HashSet<&str> = pages.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 10_000);
    assert!(pages.iter().all(|p| (2048..=20480).contains(&storage(p).len())));
    assert_eq!(s.spaces()[0].blogposts, 200);
}
