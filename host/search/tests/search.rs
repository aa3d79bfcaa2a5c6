//! What only the tantivy backend has: its directory (durability across reopen, the
//! writer's lock, the analyzer recorded in the schema). What every backend does is in
//! `conformance.rs`.

use connector_search::{AnalyzerConfig, Chunk, SearchBackend, SearchConfig, TantivySearch};

fn chunk(ordinal: u32, title: &str, heading: &str, text: &str) -> Chunk {
    Chunk { ordinal, title: title.into(), heading: heading.into(), text: text.into() }
}

fn chunks(n: u32) -> Vec<Chunk> {
    (0..n).map(|i| chunk(i, "Runbook", "Ops", &format!("paragraph {i} about deployments"))).collect()
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
fn analyzer_name_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(TantivySearch::open(dir.path()).unwrap());
    let other = SearchConfig {
        analyzer: AnalyzerConfig { name: "other".into(), ..AnalyzerConfig::default() },
        ..SearchConfig::default()
    };
    assert!(TantivySearch::open_with(dir.path(), other).is_err());
}
