//! Diagnostics for retrieval quality (`connector-bench tune-scifact DIR`): replays the
//! connector's conversion and chunking natively (the same `confluence-connector` code the
//! component runs) into in-memory `connector-search` indexes with variant settings, and
//! scores SciFact for each. This is not the benchmark number (that goes through the
//! component); it shows which analyzer or ranking change would move it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use confluence_connector::chunk::{ChunkConfig, page_chunks};
use connector_search::{AnalyzerConfig, Chunk, SearchBackend, SearchConfig, StopWords, TantivySearch};

use crate::scifact::{Dataset, escape, load, ndcg_at, recall_at};

/// One variant to score.
struct Variant {
    name: &'static str,
    search: SearchConfig,
    chunking: ChunkConfig,
    /// Chunks fetched before collapsing to documents.
    fetch: usize,
    /// Collapse by summing the scores of a document's chunks instead of taking the best.
    sum_chunks: bool,
}

/// Scores every variant on SciFact and prints a table.
pub fn run(dataset: &Path) -> Result<()> {
    let Dataset { docs, queries, qrels } = load(dataset)?;

    let base = SearchConfig::default();
    let whole = ChunkConfig { target_chars: 100_000, max_chars: 100_000 };
    let mut variants = vec![
        Variant {
            name: "pipeline defaults, 100 chunks → docs",
            search: base.clone(),
            chunking: ChunkConfig::default(),
            fetch: 100,
            sum_chunks: false,
        },
        Variant {
            name: "pipeline defaults, 1000 chunks → docs",
            search: base.clone(),
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "plus title field, boost 0.5",
            search: SearchConfig { title_boost: 0.5, ..base.clone() },
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "plus title field, boost 2.0 (the first default)",
            search: SearchConfig { title_boost: 2.0, ..base.clone() },
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "tantivy's English stop words (the first default)",
            search: SearchConfig {
                analyzer: AnalyzerConfig {
                    name: "stop".into(),
                    stop_words: StopWords::Language(connector_search::Language::English),
                    ..Default::default()
                },
                ..base.clone()
            },
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "every query term kept (no common-term cutoff)",
            search: SearchConfig { common_term_cutoff: 1.0, ..base.clone() },
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "no stemming",
            search: SearchConfig {
                analyzer: AnalyzerConfig { name: "nostem".into(), stemmer: None, ..Default::default() },
                ..base.clone()
            },
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "whole document per chunk",
            search: base.clone(),
            chunking: whole,
            fetch: 1000,
            sum_chunks: false,
        },
        Variant {
            name: "sum of chunk scores per doc",
            search: base.clone(),
            chunking: ChunkConfig::default(),
            fetch: 1000,
            sum_chunks: true,
        },
    ];
    println!("| variant | chunks | nDCG@10 | Recall@100 |");
    println!("| --- | ---: | ---: | ---: |");
    for v in variants.drain(..) {
        let index = TantivySearch::open_in_ram_with(v.search.clone())?;
        let mut chunks_total = 0;
        for d in &docs {
            let title = d.page_title();
            let chunks: Vec<Chunk> = page_chunks(&format!("<p>{}</p>", escape(&d.text)), &title, &v.chunking)
                .into_iter()
                .map(|c| Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
                .collect();
            chunks_total += chunks.len();
            index.replace_document("m", &d.id, &chunks)?;
        }
        index.commit()?;
        let (mut ndcg, mut recall) = (0.0, 0.0);
        for q in &queries {
            let hits = index.query(&q.text, &[], v.fetch)?;
            let ranked: Vec<String> = if v.sum_chunks {
                let mut scores: HashMap<String, f32> = HashMap::new();
                for h in &hits {
                    *scores.entry(h.document_id.clone()).or_default() += h.score;
                }
                let mut all: Vec<(String, f32)> = scores.into_iter().collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1));
                all.into_iter().map(|(d, _)| d).collect()
            } else {
                let mut seen = HashSet::new();
                hits.into_iter().filter(|h| seen.insert(h.document_id.clone())).map(|h| h.document_id).collect()
            };
            ndcg += ndcg_at(&ranked, &qrels[&q.id], 10);
            recall += recall_at(&ranked, &qrels[&q.id], 100);
        }
        let n = queries.len() as f64;
        println!("| {} | {} | {:.4} | {:.4} |", v.name, chunks_total, ndcg / n, recall / n);
    }
    Ok(())
}
