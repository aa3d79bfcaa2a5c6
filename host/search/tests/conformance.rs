//! The search conformance suite: every check runs against every backend — tantivy in
//! memory and a real PostgreSQL server (started by the test; it fails, saying what to
//! install, when it cannot start) — and must behave, and rank, the same on both.

use connector_search::{
    AnalyzerConfig, Chunk, PgSearch, SearchBackend, SearchConfig, SearchError, StopWords, TantivySearch,
};
use pg_server::PgServer;

/// Opens a fresh, empty index of a new instance with the given configuration.
type Opener<'a> = dyn Fn(SearchConfig) -> Box<dyn SearchBackend> + 'a;

/// A check of the suite.
type Check = fn(&Opener);

/// Every check of the suite, by name.
const SUITE: &[(&str, Check)] = &[
    ("replace_document_is_idempotent_and_shrinks", replace_document_is_idempotent_and_shrinks),
    ("document_ids_are_scoped_by_memory", document_ids_are_scoped_by_memory),
    ("remove_documents_and_memory", remove_documents_and_memory),
    ("memory_filter", memory_filter),
    ("punctuation_heavy_questions_are_safe", punctuation_heavy_questions_are_safe),
    ("empty_queries_and_limits", empty_queries_and_limits),
    (
        "common_words_are_searchable_but_left_out_beside_rarer_ones",
        common_words_are_searchable_but_left_out_beside_rarer_ones,
    ),
    ("stemming_and_folding", stemming_and_folding),
    ("headings_are_boosted_and_titles_count_as_text", headings_are_boosted_and_titles_count_as_text),
    ("rollback_forgets_what_was_not_committed", rollback_forgets_what_was_not_committed),
    ("backend_is_object_safe_and_shareable", backend_is_object_safe_and_shareable),
    (
        "document_returns_one_documents_committed_chunks_in_order",
        document_returns_one_documents_committed_chunks_in_order,
    ),
    ("instances_are_isolated", instances_are_isolated),
    ("uncommitted_writes_are_invisible", uncommitted_writes_are_invisible),
];

fn run_suite(backend: &str, open: &Opener) {
    for (name, check) in SUITE {
        eprintln!("{backend}: {name}");
        check(open);
    }
}

#[test]
fn tantivy_passes_the_conformance_suite() {
    run_suite("tantivy", &|config| Box::new(TantivySearch::open_in_ram_with(config).unwrap()));
}

#[test]
fn postgres_passes_the_conformance_suite() {
    let server = PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
    let url = server.database().unwrap();
    let instances = std::sync::atomic::AtomicUsize::new(0);
    run_suite("postgres", &|config| {
        let namespace = format!("instance-{}", instances.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        Box::new(PgSearch::connect_with(&url, &namespace, config).unwrap_or_else(|e| panic!("{e}\n{}", server.log())))
    });
}

fn chunk(ordinal: u32, title: &str, heading: &str, text: &str) -> Chunk {
    Chunk { ordinal, title: title.into(), heading: heading.into(), text: text.into() }
}

fn chunks(n: u32) -> Vec<Chunk> {
    (0..n).map(|i| chunk(i, "Runbook", "Ops", &format!("paragraph {i} about deployments"))).collect()
}

fn ids(hits: &[connector_search::Hit]) -> Vec<(String, String, u32)> {
    hits.iter().map(|h| (h.memory_id.clone(), h.document_id.clone(), h.ordinal)).collect()
}

fn replace_document_is_idempotent_and_shrinks(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn document_ids_are_scoped_by_memory(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn remove_documents_and_memory(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn memory_filter(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn punctuation_heavy_questions_are_safe(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn empty_queries_and_limits(open: &Opener) {
    let s = open(SearchConfig::default());
    s.replace_document("m", "d", &chunks(20)).unwrap();
    s.commit().unwrap();
    for q in ["", "   \n\t", "?!-- ()", "\"\""] {
        assert!(s.query(q, &[], 10).unwrap().is_empty(), "{q:?}");
    }
    assert!(s.query("deployments", &[], 0).unwrap().is_empty());
    assert_eq!(s.query("deployments", &[], 3).unwrap().len(), 3);
    assert_eq!(s.query("deployments", &[], usize::MAX).unwrap().len(), 20);

    let capped = open(SearchConfig { max_limit: 5, ..SearchConfig::default() });
    capped.replace_document("m", "d", &chunks(20)).unwrap();
    capped.commit().unwrap();
    assert_eq!(capped.query("deployments", &[], 1000).unwrap().len(), 5);
}

fn common_words_are_searchable_but_left_out_beside_rarer_ones(open: &Opener) {
    let load = |s: &dyn SearchBackend| {
        for i in 0..10 {
            let text = format!("the service {i} is the best of the lot");
            s.replace_document("m", &format!("d{i}"), &[chunk(0, "", "", &text)]).unwrap();
        }
        s.replace_document("m", "neg", &[chunk(0, "", "", "the export is not supported")]).unwrap();
        s.commit().unwrap();
    };
    let s = open(SearchConfig::default());
    load(&*s);
    let only = |hits: Vec<connector_search::Hit>| hits.into_iter().map(|h| h.document_id).collect::<Vec<_>>();
    assert_eq!(only(s.query("not", &[], 100).unwrap()), ["neg"], "negations are words, not stop words");
    assert_eq!(s.query("the", &[], 100).unwrap().len(), 11, "a question of common words alone keeps them");
    assert_eq!(
        only(s.query("is the export supported", &[], 100).unwrap()),
        ["neg"],
        "words in more than half the chunks are left out beside rarer ones"
    );

    let keep_all = open(SearchConfig { common_term_cutoff: 1.0, ..SearchConfig::default() });
    load(&*keep_all);
    let hits = keep_all.query("is the export supported", &[], 100).unwrap();
    assert_eq!(hits.len(), 11, "without the cutoff every chunk with 'the' matches");
    assert_eq!(hits[0].document_id, "neg", "and still ranks below the rare words");
}

fn stemming_and_folding(open: &Opener) {
    let s = open(SearchConfig::default());
    s.replace_document("m", "keys", &[chunk(0, "Secrets", "", "Rotate the key monthly.")]).unwrap();
    s.replace_document("m", "cafe", &[chunk(0, "Menu", "", "The café serves crêpes.")]).unwrap();
    s.commit().unwrap();
    let hits = s.query("rotating keys", &[], 10).unwrap();
    assert_eq!(hits[0].document_id, "keys");
    assert_eq!(hits[0].text, "Rotate the key monthly.");
    assert_eq!(s.query("CAFE crepe", &[], 10).unwrap()[0].document_id, "cafe");

    // Without stemming, inflections no longer match.
    let plain = open(SearchConfig {
        analyzer: AnalyzerConfig {
            name: "plain".into(),
            stemmer: None,
            stop_words: StopWords::None,
            ..AnalyzerConfig::default()
        },
        ..SearchConfig::default()
    });
    plain.replace_document("m", "keys", &[chunk(0, "", "", "Rotate the key monthly.")]).unwrap();
    plain.commit().unwrap();
    assert!(plain.query("rotating", &[], 10).unwrap().is_empty());
    assert_eq!(plain.query("the", &[], 10).unwrap().len(), 1);
}

fn headings_are_boosted_and_titles_count_as_text(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn rollback_forgets_what_was_not_committed(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn backend_is_object_safe_and_shareable(open: &Opener) {
    use std::sync::Arc;
    let s: Arc<dyn SearchBackend> = Arc::from(open(SearchConfig::default()));
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

fn document_returns_one_documents_committed_chunks_in_order(open: &Opener) {
    let s = open(SearchConfig::default());
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

fn instances_are_isolated(open: &Opener) {
    let a = open(SearchConfig::default());
    let b = open(SearchConfig::default());
    a.replace_document("shared-memory-id", "d", &[chunk(0, "", "", "alpha secret")]).unwrap();
    b.replace_document("shared-memory-id", "d", &[chunk(0, "", "", "beta public")]).unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    assert!(b.query("alpha secret", &[], 10).unwrap().is_empty());
    assert!(a.query("beta public", &[], 10).unwrap().is_empty());
    assert_eq!(a.count("shared-memory-id").unwrap(), 1);
    assert_eq!(b.query("beta", &["shared-memory-id".into()], 10).unwrap().len(), 1);
}

fn uncommitted_writes_are_invisible(open: &Opener) {
    let s = open(SearchConfig::default());
    s.replace_document("m", "committed", &chunks(2)).unwrap();
    s.commit().unwrap();
    s.replace_document("m", "pending", &chunks(3)).unwrap();
    s.remove_documents("m", &["committed".into()]).unwrap();
    assert_eq!(s.count("m").unwrap(), 2);
    let docs: Vec<_> = s.query("deployments", &[], 10).unwrap().into_iter().map(|h| h.document_id).collect();
    assert_eq!(docs, ["committed", "committed"]);
    assert_eq!(s.export().unwrap().len(), 2);
}

#[test]
fn postgres_ranks_like_tantivy() {
    // A deterministic corpus: 400 chunks of words drawn from a skewed vocabulary, with
    // headings and titles, so that term frequencies, lengths and the common-words rule all
    // play; then the same questions to both backends.
    let vocabulary: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Skewed: low word numbers are common.
        let r = (seed % 1_000_000) as f64 / 1_000_000.0;
        ((r * r * r) * n as f64) as usize
    };
    let mut documents = Vec::new();
    for d in 0..100 {
        let chunks: Vec<Chunk> = (0..4)
            .map(|o| {
                let words = |count: usize, next: &mut dyn FnMut(usize) -> usize| {
                    (0..count).map(|_| vocabulary[next(vocabulary.len())].clone()).collect::<Vec<_>>().join(" ")
                };
                let length = 5 + next(60);
                chunk(o, &words(2, &mut next), &words(1 + o as usize % 3, &mut next), &words(length, &mut next))
            })
            .collect();
        documents.push((format!("doc-{d}"), chunks));
    }
    let server = PgServer::start().unwrap_or_else(|e| panic!("the PostgreSQL test server did not start: {e}"));
    let pg = PgSearch::connect(&server.database().unwrap(), "ranking").unwrap();
    let tantivy = TantivySearch::open_in_ram().unwrap();
    for backend in [&pg as &dyn SearchBackend, &tantivy] {
        for (id, chunks) in &documents {
            backend.replace_document("m", id, chunks).unwrap();
        }
        backend.commit().unwrap();
    }
    for q in 0..60 {
        let question: Vec<&str> = (0..1 + q % 5).map(|_| vocabulary[next(vocabulary.len())].as_str()).collect();
        let question = question.join(" ");
        let expected = tantivy.query(&question, &[], 10).unwrap();
        let got = pg.query(&question, &[], 10).unwrap();
        assert_eq!(got.len(), expected.len(), "{question}");
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (g.score - e.score).abs() <= 1e-3 * e.score.abs().max(1.0),
                "{question}: {} vs {}",
                g.score,
                e.score
            );
        }
        // The same chunks with the same scores; chunks whose scores tie (within float
        // rounding) may swap places, and a tie at the cut may bring in another chunk.
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-3 * b.abs().max(1.0);
        let last = expected.last().map_or(0.0, |h| h.score);
        for hit in &got {
            match expected.iter().find(|e| e.document_id == hit.document_id && e.ordinal == hit.ordinal) {
                Some(e) => assert!(close(hit.score, e.score), "{question}: {hit:?} vs {e:?}"),
                None => assert!(close(hit.score, last), "{question}: {hit:?} is not in tantivy's top 10"),
            }
        }
    }
}
