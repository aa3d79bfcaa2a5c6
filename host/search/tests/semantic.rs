//! Behavioural tests of the semantic index beside the tantivy backend, with a small
//! deterministic encoder: words map to concepts, so "roll the credential" and "rotate the
//! key" mean the same thing without sharing a word.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use connector_search::semantic::{Embedder, Fusion, SemanticConfig, SemanticSearch};
use connector_search::{Chunk, SearchBackend, TantivySearch};

const CONCEPTS: &[&[&str]] = &[
    &["rotate", "roll", "renew", "rotation"],
    &["key", "credential", "token", "secret"],
    &["lunch", "cafeteria", "menu", "food"],
    &["deploy", "release", "ship"],
];

/// Counts what it embeds, and can be made to fail.
#[derive(Default)]
struct ConceptEncoder {
    embedded: Mutex<Vec<String>>,
    calls: AtomicUsize,
    model: Mutex<String>,
}

impl Embedder for ConceptEncoder {
    fn model_id(&self) -> String {
        let model = self.model.lock().unwrap();
        if model.is_empty() { "concepts-v1".into() } else { model.clone() }
    }

    fn dimensions(&self) -> usize {
        CONCEPTS.len() + 1
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.embedded.lock().unwrap().extend(texts.iter().map(|t| t.to_string()));
        Ok(texts
            .iter()
            .map(|text| {
                let mut v = vec![0f32; CONCEPTS.len() + 1];
                for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                    match CONCEPTS.iter().position(|c| c.contains(&word)) {
                        Some(i) => v[i] += 1.0,
                        None => v[CONCEPTS.len()] += 0.1,
                    }
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

fn page(title: &str, text: &str) -> Vec<Chunk> {
    vec![Chunk { ordinal: 0, title: title.into(), heading: String::new(), text: text.into() }]
}

fn open(encoder: &Arc<ConceptEncoder>) -> (Arc<TantivySearch>, SemanticSearch) {
    let lexical = Arc::new(TantivySearch::open_in_ram().unwrap());
    let semantic = SemanticSearch::open_in_ram(lexical.clone(), encoder.clone(), SemanticConfig::default()).unwrap();
    (lexical, semantic)
}

fn embed_all(search: &SemanticSearch) -> usize {
    let mut total = 0;
    loop {
        let round = search.embed_pending().unwrap();
        total += round.embedded;
        if round.embedded == 0 {
            assert_eq!(round.remaining, 0);
            return total;
        }
    }
}

fn documents(hits: &[connector_search::Hit]) -> Vec<String> {
    let mut seen = Vec::new();
    for hit in hits {
        if !seen.contains(&hit.document_id) {
            seen.push(hit.document_id.clone());
        }
    }
    seen
}

fn handbook(search: &SemanticSearch) {
    search.replace_document("m", "rotation", &page("Credentials", "Roll the credential every 90 days.")).unwrap();
    search
        .replace_document("m", "api", &page("The API", "The API answers questions about the key store layout."))
        .unwrap();
    search.replace_document("m", "lunch", &page("Cafeteria", "The cafeteria menu changes daily.")).unwrap();
    search.commit().unwrap();
}

#[test]
fn lexical_answers_at_once_and_embedding_catches_up_later() {
    let encoder = Arc::new(ConceptEncoder::default());
    let (_, search) = open(&encoder);
    handbook(&search);
    assert_eq!(encoder.calls.load(Ordering::SeqCst), 0, "commit embeds nothing");
    let coverage = search.coverage("m");
    assert_eq!((coverage.embedded, coverage.pages), (0, 3));
    // Lexical only until vectors exist: no page says "rotate" or "key" but the API page.
    assert_eq!(documents(&search.query("rotate API key", &[], 10).unwrap()), ["api"]);

    assert_eq!(embed_all(&search), 3);
    let coverage = search.coverage("m");
    assert_eq!((coverage.embedded, coverage.pages), (3, 3));
    let answer = documents(&search.query("rotate API key", &[], 10).unwrap());
    assert_eq!(answer, ["api", "rotation", "lunch"], "the paraphrase joins the answer, above the unrelated page");
}

#[test]
fn a_page_found_only_by_meaning_answers_with_its_first_passage() {
    let encoder = Arc::new(ConceptEncoder::default());
    let (_, search) = open(&encoder);
    handbook(&search);
    embed_all(&search);
    let hits = search.query("renew secret", &[], 10).unwrap();
    assert_eq!(hits[0].document_id, "rotation");
    assert_eq!(hits[0].text, "Roll the credential every 90 days.");
    assert!(search.query("renew secret", &["other".into()], 10).unwrap().is_empty(), "memory filter holds");
}

#[test]
fn only_changed_pages_are_embedded_again_and_removed_ones_are_forgotten() {
    let encoder = Arc::new(ConceptEncoder::default());
    let (_, search) = open(&encoder);
    handbook(&search);
    embed_all(&search);
    encoder.embedded.lock().unwrap().clear();

    // A sync that rewrites every page with one edit and one deletion.
    search.replace_document("m", "rotation", &page("Credentials", "Roll the credential every 90 days.")).unwrap();
    search.replace_document("m", "api", &page("The API", "The API key store layout, revised.")).unwrap();
    search.remove_documents("m", &["lunch".into()]).unwrap();
    search.commit().unwrap();
    assert_eq!((search.coverage("m").embedded, search.coverage("m").pages), (1, 2));
    assert_eq!(embed_all(&search), 1);
    assert_eq!(*encoder.embedded.lock().unwrap(), ["The API\nThe API key store layout, revised."]);
    assert!(!documents(&search.query("cafeteria food", &[], 10).unwrap()).contains(&"lunch".to_string()));
}

#[test]
fn rolled_back_writes_stage_nothing() {
    let encoder = Arc::new(ConceptEncoder::default());
    let (_, search) = open(&encoder);
    search.replace_document("m", "a", &page("A", "deploy on friday")).unwrap();
    search.rollback().unwrap();
    search.commit().unwrap();
    assert_eq!(search.coverage("m").pages, 0);
    assert_eq!(search.remaining(), 0);
}

#[test]
fn pending_pages_survive_a_restart_and_a_new_model_embeds_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = Arc::new(ConceptEncoder::default());
    {
        let lexical = Arc::new(TantivySearch::open(&dir.path().join("index")).unwrap());
        let search = SemanticSearch::open(
            lexical,
            &dir.path().join("semantic.redb"),
            encoder.clone(),
            SemanticConfig::default(),
        )
        .unwrap();
        handbook(&search);
        // Dropped before any embedding: a crash after the lexical commit.
    }
    let reopen = |encoder: Arc<ConceptEncoder>| {
        let lexical = Arc::new(TantivySearch::open(&dir.path().join("index")).unwrap());
        SemanticSearch::open(lexical, &dir.path().join("semantic.redb"), encoder, SemanticConfig::default()).unwrap()
    };
    let search = reopen(encoder.clone());
    assert_eq!(search.remaining(), 3);
    assert_eq!(embed_all(&search), 3);
    drop(search);
    assert_eq!(reopen(encoder.clone()).coverage("m").embedded, 3, "vectors are durable");

    *encoder.model.lock().unwrap() = "concepts-v2".into();
    let search = reopen(encoder);
    assert_eq!((search.coverage("m").embedded, search.coverage("m").pages), (0, 3));
}

#[test]
fn turning_semantic_on_for_an_existing_index_embeds_its_pages() {
    let encoder = Arc::new(ConceptEncoder::default());
    let lexical = Arc::new(TantivySearch::open_in_ram().unwrap());
    lexical.replace_document("m", "a", &page("Release", "ship it")).unwrap();
    lexical.commit().unwrap();
    let search = SemanticSearch::open_in_ram(lexical, encoder.clone(), SemanticConfig::default()).unwrap();
    assert_eq!(search.coverage("m").pages, 1);
    assert_eq!(embed_all(&search), 1);
    assert_eq!(*encoder.embedded.lock().unwrap(), ["Release\nship it"]);
}

#[test]
fn reciprocal_rank_fusion_is_available() {
    let encoder = Arc::new(ConceptEncoder::default());
    let lexical = Arc::new(TantivySearch::open_in_ram().unwrap());
    let config = SemanticConfig { fusion: Fusion::Reciprocal { k: 60.0 }, ..SemanticConfig::default() };
    let search = SemanticSearch::open_in_ram(lexical, encoder, config).unwrap();
    handbook(&search);
    embed_all(&search);
    assert_eq!(documents(&search.query("renew secret", &[], 10).unwrap())[0], "rotation");
}

#[test]
fn reconcile_catches_up_with_writes_that_bypassed_it() {
    let encoder = Arc::new(ConceptEncoder::default());
    let (lexical, search) = open(&encoder);
    handbook(&search);
    embed_all(&search);
    encoder.embedded.lock().unwrap().clear();
    lexical.replace_document("m", "new", &page("Release train", "ship on tuesdays")).unwrap();
    lexical.remove_documents("m", &["lunch".into()]).unwrap();
    lexical.commit().unwrap();
    assert_eq!(search.coverage("m").pages, 3, "not seen yet");

    search.reconcile().unwrap();
    assert_eq!((search.coverage("m").embedded, search.coverage("m").pages), (2, 3));
    assert_eq!(embed_all(&search), 1);
    assert_eq!(*encoder.embedded.lock().unwrap(), ["Release train\nship on tuesdays"]);
}
