//! Behavioural tests of the tantivy search backend.

use connector_search::{AnalyzerConfig, Chunk, SearchBackend, SearchConfig, SearchError, StopWords, TantivySearch};

fn chunk(ordinal: u32, title: &str, heading: &str, text: &str) -> Chunk {
    Chunk { ordinal, title: title.into(), heading: heading.into(), text: text.into() }
}

fn chunks(n: u32) -> Vec<Chunk> {
    (0..n).map(|i| chunk(i, "Runbook", "Ops", &format!("paragraph {i} about deployments"))).collect()
}

fn ids(hits: &[connector_search::Hit]) -> Vec<(String, String, u32)> {
    hits.iter().map(|h| (h.memory_id.clone(), h.document_id.clone(), h.ordinal)).collect()
}

#[test]
fn replace_document_is_idempotent_and_shrinks() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("m", "d1", &chunks(5)).unwrap();
    s.replace_document("m", "d1", &chunks(5)).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 5);
    s.replace_document("m", "d1", &chunks(5)).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 5);
    let hits = s.query("deployments", &[], 100).unwrap();
    assert_eq!(hits.len(), 5, "no duplicates");

    s.replace_document("m", "d1", &chunks(2)).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 2);
    let mut ords: Vec<u32> = s.query("paragraph", &[], 100).unwrap().iter().map(|h| h.ordinal).collect();
    ords.sort();
    assert_eq!(ords, [0, 1]);

    // An empty list removes the document.
    s.replace_document("m", "d1", &[]).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 0);
}

#[test]
fn document_ids_are_scoped_by_memory() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("m1", "d", &chunks(3)).unwrap();
    s.replace_document("m2", "d", &chunks(4)).unwrap();
    // Would collide with a naive "m1" + "d" key.
    s.replace_document("m", "1d", &chunks(1)).unwrap();
    s.commit().unwrap();
    s.replace_document("m1", "d", &[]).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m1").unwrap(), 0);
    assert_eq!(s.count("m2").unwrap(), 4);
    assert_eq!(s.count("m").unwrap(), 1);
    assert!(matches!(s.replace_document("bad\u{1f}id", "d", &chunks(1)), Err(SearchError::InvalidMemoryId(_))));
}

#[test]
fn remove_documents_and_memory() {
    let s = TantivySearch::open_in_ram().unwrap();
    for d in ["a", "b", "c"] {
        s.replace_document("m", d, &chunks(2)).unwrap();
    }
    s.replace_document("other", "a", &chunks(2)).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 6);
    s.remove_documents("m", &["a".into(), "c".into(), "missing".into()]).unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 2);
    assert_eq!(s.count("other").unwrap(), 2);
    let docs: Vec<_> = s.query("deployments", &["m".into()], 10).unwrap().into_iter().map(|h| h.document_id).collect();
    assert_eq!(docs, ["b", "b"]);
    s.remove_memory("m").unwrap();
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 0);
    assert_eq!(s.count("other").unwrap(), 2);
}

#[test]
fn memory_filter() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("eng", "d1", &[chunk(0, "Deploy", "", "kubernetes rollout")]).unwrap();
    s.replace_document("hr", "d2", &[chunk(0, "Leave", "", "kubernetes training budget")]).unwrap();
    s.replace_document("ops", "d3", &[chunk(0, "Pager", "", "kubernetes alerts")]).unwrap();
    s.commit().unwrap();

    let all = s.query("kubernetes", &[], 10).unwrap();
    assert_eq!(all.len(), 3);
    let eng = s.query("kubernetes", &["eng".into()], 10).unwrap();
    assert_eq!(ids(&eng), [("eng".into(), "d1".into(), 0)]);
    let two = s.query("kubernetes", &["eng".into(), "ops".into()], 10).unwrap();
    let mut mems: Vec<_> = two.iter().map(|h| h.memory_id.as_str()).collect();
    mems.sort();
    assert_eq!(mems, ["eng", "ops"]);
    assert!(s.query("kubernetes", &["nope".into()], 10).unwrap().is_empty());
    // The filter alone never matches: documents must match the text.
    assert!(s.query("payroll", &["eng".into()], 10).unwrap().is_empty());
    // The filter does not change scores.
    let filtered = s.query("kubernetes rollout", &["eng".into()], 10).unwrap();
    let unfiltered = s.query("kubernetes rollout", &[], 10).unwrap();
    assert_eq!(filtered[0].score, unfiltered[0].score);
}

#[test]
fn punctuation_heavy_questions_are_safe() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document(
        "m",
        "oncall",
        &[chunk(
            0,
            "On-call policy",
            "Engineering › On-call",
            "The on-call rotation policy changed in 2024: every engineer takes one week.",
        )],
    )
    .unwrap();
    s.replace_document("m", "other", &[chunk(0, "Lunch", "", "Pizza on Fridays.")]).unwrap();
    s.commit().unwrap();
    for q in [
        "What's the on-call policy? (2024) -- AND/OR: \"x\"",
        "policy AND",
        "title:policy^20",
        "(((on-call",
        "\"unterminated policy",
        "+policy -holidays",
        "policy~2 [2020 TO 2025] {a} * ? \\ / !",
        "ÉNGINEER rotation!!!",
    ] {
        let hits = s.query(q, &[], 10).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(hits.first().map(|h| h.document_id.as_str()), Some("oncall"), "{q}");
    }
}

#[test]
fn empty_queries_and_limits() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("m", "d", &chunks(20)).unwrap();
    s.commit().unwrap();
    for q in ["", "   \n\t", "?!-- ()", "\"\""] {
        assert!(s.query(q, &[], 10).unwrap().is_empty(), "{q:?}");
    }
    assert!(s.query("deployments", &[], 0).unwrap().is_empty());
    assert_eq!(s.query("deployments", &[], 3).unwrap().len(), 3);
    assert_eq!(s.query("deployments", &[], usize::MAX).unwrap().len(), 20);

    let capped = TantivySearch::open_in_ram_with(SearchConfig { max_limit: 5, ..SearchConfig::default() }).unwrap();
    capped.replace_document("m", "d", &chunks(20)).unwrap();
    capped.commit().unwrap();
    assert_eq!(capped.query("deployments", &[], 1000).unwrap().len(), 5);
}

#[test]
fn common_words_are_searchable_but_left_out_beside_rarer_ones() {
    let load = |s: &TantivySearch| {
        for i in 0..10 {
            let text = format!("the service {i} is the best of the lot");
            s.replace_document("m", &format!("d{i}"), &[chunk(0, "", "", &text)]).unwrap();
        }
        s.replace_document("m", "neg", &[chunk(0, "", "", "the export is not supported")]).unwrap();
        s.commit().unwrap();
    };
    let s = TantivySearch::open_in_ram().unwrap();
    load(&s);
    let only = |hits: Vec<connector_search::Hit>| hits.into_iter().map(|h| h.document_id).collect::<Vec<_>>();
    assert_eq!(only(s.query("not", &[], 100).unwrap()), ["neg"], "negations are words, not stop words");
    assert_eq!(s.query("the", &[], 100).unwrap().len(), 11, "a question of common words alone keeps them");
    assert_eq!(
        only(s.query("is the export supported", &[], 100).unwrap()),
        ["neg"],
        "words in more than half the chunks are left out beside rarer ones"
    );

    let keep_all =
        TantivySearch::open_in_ram_with(SearchConfig { common_term_cutoff: 1.0, ..SearchConfig::default() }).unwrap();
    load(&keep_all);
    let hits = keep_all.query("is the export supported", &[], 100).unwrap();
    assert_eq!(hits.len(), 11, "without the cutoff every chunk with 'the' matches");
    assert_eq!(hits[0].document_id, "neg", "and still ranks below the rare words");
}

#[test]
fn stemming_and_folding() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("m", "keys", &[chunk(0, "Secrets", "", "Rotate the key monthly.")]).unwrap();
    s.replace_document("m", "cafe", &[chunk(0, "Menu", "", "The café serves crêpes.")]).unwrap();
    s.commit().unwrap();
    let hits = s.query("rotating keys", &[], 10).unwrap();
    assert_eq!(hits[0].document_id, "keys");
    assert_eq!(hits[0].text, "Rotate the key monthly.");
    assert_eq!(s.query("CAFE crepe", &[], 10).unwrap()[0].document_id, "cafe");

    // Without stemming, inflections no longer match.
    let plain = TantivySearch::open_in_ram_with(SearchConfig {
        analyzer: AnalyzerConfig {
            name: "plain".into(),
            stemmer: None,
            stop_words: StopWords::None,
            ..AnalyzerConfig::default()
        },
        ..SearchConfig::default()
    })
    .unwrap();
    plain.replace_document("m", "keys", &[chunk(0, "", "", "Rotate the key monthly.")]).unwrap();
    plain.commit().unwrap();
    assert!(plain.query("rotating", &[], 10).unwrap().is_empty());
    assert_eq!(plain.query("the", &[], 10).unwrap().len(), 1);
}

#[test]
fn headings_are_boosted_and_titles_count_as_text() {
    let s = TantivySearch::open_in_ram().unwrap();
    let filler = "lorem ipsum dolor sit amet";
    s.replace_document("m", "in-text", &[chunk(0, "Alpha", "Beta", &format!("vacation {filler}"))]).unwrap();
    s.replace_document("m", "in-heading", &[chunk(0, "Gamma", "Vacation", filler)]).unwrap();
    s.replace_document("m", "in-title", &[chunk(0, "Vacation", "Delta", filler)]).unwrap();
    s.replace_document("m", "nowhere", &[chunk(0, "Epsilon", "Zeta", filler)]).unwrap();
    s.commit().unwrap();
    let hits = s.query("vacation", &[], 10).unwrap();
    let order: Vec<_> = hits.iter().map(|h| h.document_id.as_str()).collect();
    // A title match scores like a text match in a slightly shorter field.
    assert_eq!(order, ["in-heading", "in-title", "in-text"]);
    assert_eq!(hits[1].text, filler, "hits return the text, not the title indexed with it");
}

#[test]
fn rollback_forgets_what_was_not_committed() {
    let s = TantivySearch::open_in_ram().unwrap();
    s.replace_document("m", "committed", &chunks(2)).unwrap();
    s.commit().unwrap();
    s.replace_document("m", "abandoned", &chunks(3)).unwrap();
    s.remove_documents("m", &["committed".into()]).unwrap();
    s.rollback().unwrap();
    s.replace_document("m", "next", &[chunk(0, "", "", "paragraph after the rollback")]).unwrap();
    s.commit().unwrap();
    let mut docs: Vec<_> = s.query("paragraph", &[], 10).unwrap().into_iter().map(|h| h.document_id).collect();
    docs.sort();
    assert_eq!(docs, ["committed", "committed", "next"], "the next commit publishes nothing that was rolled back");
}

#[test]
fn uncommitted_writes_are_invisible_and_not_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = TantivySearch::open(dir.path()).unwrap();
        s.replace_document("m", "committed", &chunks(2)).unwrap();
        s.commit().unwrap();
        s.replace_document("m", "pending", &chunks(3)).unwrap();
        s.remove_documents("m", &["committed".into()]).unwrap();
        // Not committed: queries and counts still see the last commit.
        assert_eq!(s.count("m").unwrap(), 2);
        let docs: Vec<_> = s.query("deployments", &[], 10).unwrap().into_iter().map(|h| h.document_id).collect();
        assert_eq!(docs, ["committed", "committed"]);
        // The directory is locked while open.
        assert!(TantivySearch::open(dir.path()).is_err());
    }
    let s = TantivySearch::open(dir.path()).unwrap();
    assert_eq!(s.count("m").unwrap(), 2, "only the committed state survives");
    let docs: Vec<_> = s.query("paragraph", &[], 10).unwrap().into_iter().map(|h| h.document_id).collect();
    assert_eq!(docs, ["committed", "committed"]);

    // And committed writes survive a reopen.
    s.replace_document("m", "later", &[chunk(7, "T", "H", "persisted text")]).unwrap();
    s.commit().unwrap();
    drop(s);
    let s = TantivySearch::open(dir.path()).unwrap();
    let hit = &s.query("persisted", &[], 10).unwrap()[0];
    assert_eq!(
        (hit.document_id.as_str(), hit.ordinal, hit.title.as_str(), hit.heading.as_str()),
        ("later", 7, "T", "H")
    );
}

#[test]
fn instances_in_separate_dirs_are_isolated() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = TantivySearch::open(a_dir.path()).unwrap();
    let b = TantivySearch::open(b_dir.path()).unwrap();
    a.replace_document("shared-memory-id", "d", &[chunk(0, "", "", "alpha secret")]).unwrap();
    b.replace_document("shared-memory-id", "d", &[chunk(0, "", "", "beta public")]).unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    assert!(b.query("alpha secret", &[], 10).unwrap().is_empty());
    assert!(a.query("beta public", &[], 10).unwrap().is_empty());
    assert_eq!(a.count("shared-memory-id").unwrap(), 1);
    assert_eq!(b.query("beta", &["shared-memory-id".into()], 10).unwrap().len(), 1);
}

#[test]
fn analyzer_name_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(TantivySearch::open(dir.path()).unwrap());
    let other = SearchConfig {
        analyzer: AnalyzerConfig { name: "other".into(), ..AnalyzerConfig::default() },
        ..SearchConfig::default()
    };
    assert!(TantivySearch::open_with(dir.path(), other).is_err());
}

#[test]
fn backend_is_object_safe_and_shareable() {
    use std::sync::Arc;
    let s: Arc<dyn SearchBackend> = Arc::new(TantivySearch::open_in_ram().unwrap());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = s.clone();
            scope.spawn(move || {
                for d in 0..10 {
                    s.replace_document("m", &format!("{t}-{d}"), &chunks(2)).unwrap();
                }
            });
        }
    });
    s.commit().unwrap();
    assert_eq!(s.count("m").unwrap(), 80);
}

#[test]
fn document_returns_one_documents_committed_chunks_in_order() {
    let s = TantivySearch::open_in_ram().unwrap();
    let mut shuffled = chunks(4);
    shuffled.reverse();
    s.replace_document("m1", "d", &shuffled).unwrap();
    s.replace_document("m2", "d", &chunks(2)).unwrap();
    s.replace_document("m", "1d", &chunks(1)).unwrap();
    assert!(s.document("m1", "d").unwrap().is_empty(), "uncommitted chunks are not shown");
    s.commit().unwrap();
    let hits = s.document("m1", "d").unwrap();
    assert_eq!(ids(&hits), (0..4).map(|i| ("m1".to_string(), "d".to_string(), i)).collect::<Vec<_>>());
    assert_eq!(hits[2].text, "paragraph 2 about deployments");
    assert_eq!(s.document("m2", "d").unwrap().len(), 2);
    assert!(s.document("m1", "unknown").unwrap().is_empty());
}
