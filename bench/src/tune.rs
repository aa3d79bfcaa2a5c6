//! Diagnostics for retrieval quality (`connector-bench tune DIR...`): replays the
//! connector's conversion, chunking and answer ranking natively (the same
//! `confluence-connector` code the component runs) over in-memory `connector-search`
//! indexes with variant settings, and scores every BEIR-format directory given for each
//! variant, as a platform asks: nDCG@10 of a 10-passage answer, Recall@100 of a
//! 100-passage one. This is not the benchmark number (that goes through the component);
//! it shows which analyzer or ranking change would move it, on every dataset at once.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use confluence_connector::chunk::{ChunkConfig, page_chunks};
use connector_sdk::caps::IndexHit;
use connector_sdk::rank::{RankConfig, Shape};
use connector_search::semantic::{Fusion, SemanticConfig, SemanticSearch};
use connector_search::{AnalyzerConfig, Chunk, SearchBackend, SearchConfig, StopWords, TantivySearch};

use crate::beir::{Dataset, Scores, escape, load};

/// How an index is built.
struct IndexVariant {
    name: &'static str,
    search: SearchConfig,
    chunking: ChunkConfig,
}

/// How an answer is drawn from the index.
struct AnswerVariant {
    name: &'static str,
    rank: RankConfig,
    per_document: usize,
}

/// Scores every variant on every dataset and prints one table per dataset.
pub fn run(datasets: &[impl AsRef<Path>]) -> Result<()> {
    let base = SearchConfig::default();
    let english = |name: &str| AnalyzerConfig {
        name: name.into(),
        stop_words: StopWords::Language(connector_search::Language::English),
        ..Default::default()
    };
    let index_variants = vec![
        IndexVariant { name: "defaults", search: base.clone(), chunking: ChunkConfig::default() },
        IndexVariant {
            name: "every distinct query term once",
            search: SearchConfig { query_term_counts: false, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "common terms: over half the chunks, weighted like the others (the old rule)",
            search: SearchConfig { common_term_cutoff: 0.5, common_term_weight: None, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "common terms: over 20% of the chunks, weighted like the others",
            search: SearchConfig { common_term_weight: None, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "common terms: over half the chunks, weigh 0.5",
            search: SearchConfig { common_term_cutoff: 0.5, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "common terms: over 10% of the chunks, weigh 0.5",
            search: SearchConfig { common_term_cutoff: 0.1, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "no common-term rule",
            search: SearchConfig { common_term_cutoff: 1.0, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "title field boost 0.25",
            search: SearchConfig { title_boost: 0.25, ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "tantivy's English stop words",
            search: SearchConfig { analyzer: english("stop"), ..base.clone() },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "no stemming",
            search: SearchConfig {
                analyzer: AnalyzerConfig { name: "nostem".into(), stemmer: None, ..Default::default() },
                ..base.clone()
            },
            chunking: ChunkConfig::default(),
        },
        IndexVariant {
            name: "shorter chunks (800/1,400 chars)",
            search: base.clone(),
            chunking: ChunkConfig { target_chars: 800, max_chars: 1400 },
        },
        IndexVariant {
            name: "longer chunks (2,000/3,000 chars)",
            search: base.clone(),
            chunking: ChunkConfig { target_chars: 2000, max_chars: 3000 },
        },
        IndexVariant {
            name: "whole document per chunk",
            search: base.clone(),
            chunking: ChunkConfig { target_chars: 100_000, max_chars: 100_000 },
        },
    ];
    let rank = RankConfig::default();
    let answer_variants = [
        AnswerVariant { name: "defaults", rank, per_document: 1 },
        AnswerVariant { name: "raw passages (no per-document cap)", rank, per_document: 0 },
        AnswerVariant {
            name: "best chunk only (no coverage)",
            rank: RankConfig { coverage_weight: 0.0, other_chunks_weight: 0.0, ..rank },
            per_document: 1,
        },
        AnswerVariant { name: "coverage 0.1", rank: RankConfig { coverage_weight: 0.1, ..rank }, per_document: 1 },
        AnswerVariant { name: "coverage 0.5", rank: RankConfig { coverage_weight: 0.5, ..rank }, per_document: 1 },
        AnswerVariant { name: "coverage 0.35", rank: RankConfig { coverage_weight: 0.35, ..rank }, per_document: 1 },
        AnswerVariant {
            name: "best chunk plus 0.1 × other chunks",
            rank: RankConfig { coverage_weight: 0.0, other_chunks_weight: 0.1, ..rank },
            per_document: 1,
        },
        AnswerVariant { name: "two passages per document", rank, per_document: 2 },
    ];

    for path in datasets {
        let path = path.as_ref();
        let dataset = load(path)?;
        println!("\n### {} ({} documents, {} queries)\n", path.display(), dataset.docs.len(), dataset.queries.len());
        println!("| index | answer | chunks | nDCG@10 | Recall@100 |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for index_variant in &index_variants {
            let (index, chunks, counts) = build_index(&dataset, index_variant)?;
            // Answer variants only on the default index: the others show the index's effect
            // under the default answer and under best-chunk-only.
            let answers = if index_variant.name == "defaults" { &answer_variants[..] } else { &answer_variants[..3] };
            for answer_variant in answers.iter().filter(|a| index_variant.name == "defaults" || a.per_document != 0) {
                let scores = score(&dataset, &index, &counts, answer_variant)?;
                println!(
                    "| {} | {} | {chunks} | {:.4} | {:.4} |",
                    index_variant.name,
                    answer_variant.name,
                    scores.ndcg_at_10(),
                    scores.recall_at_100()
                );
            }
        }
    }
    Ok(())
}

/// Scores fusion variants of semantic retrieval on every dataset (default index and
/// answer shape), next to lexical alone and dense alone.
pub fn run_semantic(datasets: &[impl AsRef<Path>], model_dir: &Path) -> Result<()> {
    let model = std::sync::Arc::new(connector_embed::EmbeddingModel::load(model_dir)?);
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache/page-embeddings.bin");
    let embedder = std::sync::Arc::new(crate::embedding_cache::CachedEmbedder::open(model, &cache)?);
    let base = SemanticConfig::default();
    let convex = |w: f32| SemanticConfig { fusion: Fusion::Convex { lexical_weight: w }, ..base };
    let mut variants: Vec<(String, Option<SemanticConfig>)> = vec![("lexical only".into(), None)];
    for w in [0.0, 0.3, 0.4, 0.5, 0.6, 0.7] {
        variants.push((format!("convex, lexical weight {w}"), Some(convex(w))));
    }
    for k in [20.0, 60.0] {
        variants.push((
            format!("reciprocal rank, k {k}"),
            Some(SemanticConfig { fusion: Fusion::Reciprocal { k }, ..base }),
        ));
    }
    for candidates in [10, 30] {
        variants.push((
            format!("convex 0.5, {candidates} dense candidates"),
            Some(SemanticConfig { dense_candidates: candidates, ..convex(0.5) }),
        ));
    }
    print_vector_scan_times();
    let defaults = IndexVariant { name: "defaults", search: SearchConfig::default(), chunking: ChunkConfig::default() };
    let answer = AnswerVariant { name: "defaults", rank: RankConfig::default(), per_document: 1 };
    for path in datasets {
        let path = path.as_ref();
        let dataset = load(path)?;
        let (index, _, counts) = build_index(&dataset, &defaults)?;
        let lexical: std::sync::Arc<dyn SearchBackend> = std::sync::Arc::new(index);
        println!("\n### {} ({} documents, {} queries)\n", path.display(), dataset.docs.len(), dataset.queries.len());
        println!("| retrieval | nDCG@10 | Recall@100 | query ms (mean) |");
        println!("| --- | ---: | ---: | ---: |");
        for (name, config) in &variants {
            let mut started = std::time::Instant::now();
            let scores = match config {
                None => score(&dataset, lexical.as_ref(), &counts, &answer)?,
                Some(config) => {
                    let semantic = SemanticSearch::open_in_ram(lexical.clone(), embedder.clone(), *config)?;
                    let total = semantic.remaining();
                    let embedding = std::time::Instant::now();
                    while semantic.embed_pending()?.embedded > 0 {
                        let done = total - semantic.remaining();
                        if done % 512 < config.batch {
                            eprint!("\r[tune] {}: {done}/{total} pages embedded", path.display());
                        }
                    }
                    eprintln!(
                        "\r[tune] {}: {total} pages embedded in {:.1} s",
                        path.display(),
                        embedding.elapsed().as_secs_f64()
                    );
                    started = std::time::Instant::now();
                    score(&dataset, &semantic, &counts, &answer)?
                }
            };
            let per_query = started.elapsed().as_secs_f64() * 1000.0 / (2 * dataset.queries.len()) as f64;
            println!("| {name} | {:.4} | {:.4} | {per_query:.1} |", scores.ndcg_at_10(), scores.recall_at_100());
        }
    }
    print_fused_latency(datasets, model_dir, embedder)?;
    Ok(())
}

/// Latency of one fused query (as `retrieve` with limit 10 asks the index) over every
/// dataset's pages in one instance, one memory each: the page vectors come from the
/// cache, but every question is embedded by the model as it is asked.
fn print_fused_latency(
    datasets: &[impl AsRef<Path>],
    model_dir: &Path,
    cached: std::sync::Arc<crate::embedding_cache::CachedEmbedder>,
) -> Result<()> {
    let index = TantivySearch::open_in_ram_with(SearchConfig::default())?;
    let mut loaded = Vec::new();
    let mut pages = 0;
    for (i, path) in datasets.iter().enumerate() {
        let dataset = load(path.as_ref())?;
        add_documents(&index, &format!("d{i}"), &dataset, &ChunkConfig::default())?;
        pages += dataset.docs.len();
        loaded.push((path.as_ref().display().to_string(), dataset));
    }
    index.commit()?;
    let lexical: std::sync::Arc<dyn SearchBackend> = std::sync::Arc::new(index);
    let store = tempfile::tempdir()?;
    let store_path = store.path().join("semantic.redb");
    {
        let filling = SemanticSearch::open(lexical.clone(), &store_path, cached, SemanticConfig::default())?;
        while filling.embed_pending()?.embedded > 0 {}
    }
    let model = std::sync::Arc::new(connector_embed::EmbeddingModel::load(model_dir)?);
    let semantic = SemanticSearch::open(lexical.clone(), &store_path, model, SemanticConfig::default())?;
    if semantic.remaining() > 0 {
        anyhow::bail!("{} pages were not embedded", semantic.remaining());
    }
    let pool = RankConfig::default().pool(Shape { limit: 10, per_document: 1 });
    println!(
        "\n### Fused query latency ({pages} pages in one instance, index pool {pool} chunks, question embedded per query)\n"
    );
    println!("| questions | lexical p50 / p99 ms | fused p50 / p99 ms |");
    println!("| --- | ---: | ---: |");
    for (name, dataset) in &loaded {
        let questions: Vec<&str> = dataset.queries.iter().take(300).map(|q| q.text.as_str()).collect();
        let time = |index: &dyn SearchBackend| -> Result<(f64, f64)> {
            let mut times = Vec::with_capacity(questions.len());
            for q in &questions {
                let started = std::time::Instant::now();
                std::hint::black_box(index.query(q, &[], pool)?);
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
            Ok((at(0.5), at(0.99)))
        };
        let (lexical_p50, lexical_p99) = time(lexical.as_ref())?;
        let (fused_p50, fused_p99) = time(&semantic)?;
        println!(
            "| {name} ({} questions) | {lexical_p50:.1} / {lexical_p99:.1} | {fused_p50:.1} / {fused_p99:.1} |",
            questions.len()
        );
    }
    Ok(())
}

/// How long an exact scan of an instance's page vectors takes (384 floats each, random unit
/// vectors, top 100), to know when an approximate index would be worth its cost.
fn print_vector_scan_times() {
    use connector_search::semantic::vectors::Vectors;
    println!("\n### Exact vector search (one query, top 100 pages, 384 dimensions)\n");
    println!("| pages | vectors MiB | scan p50 ms | scan p99 ms |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut unit = |n: usize| -> Vec<f32> {
        let v: Vec<f32> = (0..n).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    };
    for pages in [10_000usize, 100_000] {
        let mut vectors = Vectors::new(384);
        for i in 0..pages {
            vectors.upsert(&format!("m\u{1f}{i}"), &unit(384));
        }
        let mut times: Vec<f64> = (0..200)
            .map(|_| {
                let query = unit(384);
                let started = std::time::Instant::now();
                std::hint::black_box(vectors.nearest(&query, &[], 100));
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mib = (pages * 384 * 4) as f64 / (1 << 20) as f64;
        println!("| {pages} | {mib:.0} | {:.2} | {:.2} |", times[100], times[197]);
    }
}

/// The index, its number of chunks, and each document's.
fn build_index(dataset: &Dataset, variant: &IndexVariant) -> Result<(TantivySearch, usize, HashMap<String, usize>)> {
    let index = TantivySearch::open_in_ram_with(variant.search.clone())?;
    let counts = add_documents(&index, "m", dataset, &variant.chunking)?;
    index.commit()?;
    Ok((index, counts.values().sum(), counts))
}

/// Writes every document of `dataset` into `memory` of `index`, converted and chunked as
/// the connector does; returns each document's number of chunks.
fn add_documents(
    index: &TantivySearch,
    memory: &str,
    dataset: &Dataset,
    chunking: &ChunkConfig,
) -> Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for d in &dataset.docs {
        let chunks: Vec<Chunk> = page_chunks(&format!("<p>{}</p>", escape(&d.text)), &d.page_title(), chunking)
            .into_iter()
            .map(|c| Chunk { ordinal: c.ordinal, title: c.title, heading: c.heading, text: c.text })
            .collect();
        counts.insert(d.id.clone(), chunks.len());
        index.replace_document(memory, &d.id, &chunks)?;
    }
    Ok(counts)
}

fn score(
    dataset: &Dataset,
    index: &dyn SearchBackend,
    counts: &HashMap<String, usize>,
    variant: &AnswerVariant,
) -> Result<Scores> {
    let mut scores = Scores::default();
    for q in &dataset.queries {
        let answer = |limit: usize| -> Result<Vec<String>> {
            let shape = Shape { limit, per_document: variant.per_document };
            let hits = index.query(&q.text, &[], variant.rank.pool(shape))?;
            let hits = hits
                .into_iter()
                .map(|h| IndexHit {
                    memory_id: h.memory_id,
                    document_id: h.document_id,
                    ordinal: h.ordinal,
                    title: h.title,
                    heading: h.heading,
                    text: h.text,
                    score: h.score,
                })
                .collect();
            let chunks_of = |_: &str, document: &str| counts.get(document).copied();
            Ok(variant.rank.answer(hits, shape, chunks_of).into_iter().map(|h| h.document_id).collect())
        };
        scores.add(dataset, &q.id, &answer(10)?, &answer(100)?);
    }
    Ok(scores)
}
