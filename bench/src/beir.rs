//! Retrieval quality on BEIR datasets through the full pipeline: every corpus document
//! becomes a page of one space on the fake Confluence (title as page title, text as a
//! storage-format paragraph), the space is ingested by the component, and the test
//! queries go through `retrieve` exactly as a chat platform calls it: 10 passages for
//! nDCG@10, 100 for Recall@100.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{EMAIL, TOKEN, connect, ingest};

/// Space key of a dataset's corpus on the fake.
const KEY: &str = "BEIR";

/// One corpus document (`corpus.jsonl`).
#[derive(Deserialize)]
pub struct CorpusDoc {
    /// Document id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Title (may be empty).
    #[serde(default)]
    pub title: String,
    /// Abstract.
    #[serde(default)]
    pub text: String,
}

impl CorpusDoc {
    /// The page title: the document's title, or its id when it has none.
    pub fn page_title(&self) -> String {
        if self.title.trim().is_empty() { self.id.clone() } else { self.title.trim().to_string() }
    }
}

/// One query (`queries.jsonl`).
#[derive(Deserialize)]
pub struct QueryLine {
    /// Query id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The question.
    pub text: String,
}

/// A BEIR dataset: the corpus, the test queries (those with judgements) and their judgements.
pub struct Dataset {
    /// Corpus documents.
    pub docs: Vec<CorpusDoc>,
    /// Test queries.
    pub queries: Vec<QueryLine>,
    /// Test judgements.
    pub qrels: Qrels,
}

/// Reads a BEIR dataset directory (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`).
pub fn load(dataset: &Path) -> Result<Dataset> {
    let read = |name: &str| {
        std::fs::read_to_string(dataset.join(name)).with_context(|| format!("cannot read {}/{name}", dataset.display()))
    };
    let docs = read("corpus.jsonl")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<CorpusDoc>, _>>()?;
    let qrels = read_qrels(&dataset.join("qrels").join("test.tsv"))?;
    let queries = read("queries.jsonl")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<QueryLine>, _>>()?
        .into_iter()
        .filter(|q| qrels.contains_key(&q.id))
        .collect::<Vec<_>>();
    if queries.is_empty() {
        bail!("no test queries found in {}", dataset.display());
    }
    Ok(Dataset { docs, queries, qrels })
}

/// Escapes text for the Confluence storage format (XHTML).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Graded relevance judgements: query id → (document id → grade).
pub type Qrels = HashMap<String, HashMap<String, u32>>;

/// Reads a BEIR qrels TSV (`query-id corpus-id score`, with a header line).
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut qrels: Qrels = HashMap::new();
    for line in text.lines().skip(1) {
        let mut fields = line.split('\t');
        let (Some(q), Some(d), Some(s)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let grade: u32 = s.trim().parse().unwrap_or(0);
        qrels.entry(q.to_string()).or_default().insert(d.to_string(), grade);
    }
    Ok(qrels)
}

/// nDCG@k with linear gains (as pytrec_eval, which BEIR uses).
pub fn ndcg_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(*judged.get(d).unwrap_or(&0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|g| *g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, g)| f64::from(*g) / ((i + 2) as f64).log2()).sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Recall@k: the share of relevant documents among the first `k` ranked.
pub fn recall_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    let relevant: HashSet<&String> = judged.iter().filter(|(_, g)| **g > 0).map(|(d, _)| d).collect();
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked.iter().take(k).filter(|d| relevant.contains(d)).count();
    found as f64 / relevant.len() as f64
}

/// nDCG@10 and Recall@100 over a dataset's queries, evaluated as BEIR does: a document
/// counts once (at its first place), and a retrieved document whose id is the query's own
/// is dropped (ArguAna's queries are corpus documents; Anserini's `-removeQuery`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Scores {
    ndcg: f64,
    recall: f64,
    queries: usize,
}

impl Scores {
    /// Adds one query: the documents of its 10-passage and of its 100-passage answers.
    pub fn add(&mut self, dataset: &Dataset, query_id: &str, top10: &[String], top100: &[String]) {
        let evaluated = |ranked: &[String]| -> Vec<String> {
            let mut seen = HashSet::new();
            ranked.iter().filter(|d| d.as_str() != query_id && seen.insert(d.as_str())).cloned().collect()
        };
        let judged = &dataset.qrels[query_id];
        self.ndcg += ndcg_at(&evaluated(top10), judged, 10);
        self.recall += recall_at(&evaluated(top100), judged, 100);
        self.queries += 1;
    }

    /// Mean nDCG@10.
    pub fn ndcg_at_10(&self) -> f64 {
        self.ndcg / self.queries.max(1) as f64
    }

    /// Mean Recall@100.
    pub fn recall_at_100(&self) -> f64 {
        self.recall / self.queries.max(1) as f64
    }
}

/// A published BM25 figure for a dataset.
struct Published {
    dataset: &'static str,
    source: &'static str,
    ndcg_at_10: f64,
    recall_at_100: f64,
}

/// Published BM25 figures: the BEIR paper's final table (Thakur et al., NeurIPS 2021
/// Datasets and Benchmarks, arXiv:2104.08663 v4; Elasticsearch BM25, multifield) and
/// Anserini's flat BM25 regressions (castorini/anserini
/// `docs/regressions/regressions-beir-v1.0.0-<dataset>.flat.md`: Lucene, k1 0.9, b 0.4).
const PUBLISHED: &[Published] = &[
    Published { dataset: "scifact", source: "BEIR paper", ndcg_at_10: 0.665, recall_at_100: 0.908 },
    Published { dataset: "scifact", source: "Anserini flat", ndcg_at_10: 0.6789, recall_at_100: 0.9253 },
    Published { dataset: "arguana", source: "BEIR paper", ndcg_at_10: 0.414, recall_at_100: 0.942 },
    Published { dataset: "arguana", source: "Anserini flat", ndcg_at_10: 0.3970, recall_at_100: 0.9324 },
];

/// The dataset directories under `root` (each with a `corpus.jsonl`), or `root` itself
/// when it is one, by name.
pub fn datasets_in(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    if root.join("corpus.jsonl").is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found: Vec<_> = std::fs::read_dir(root)
        .with_context(|| format!("cannot read {}", root.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("corpus.jsonl").is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no BEIR datasets (directories with corpus.jsonl) in {}", root.display());
    }
    Ok(found)
}

/// Runs every dataset under `root` through the full pipeline, prints one table and
/// returns the figures per dataset. With a Python interpreter that has `bm25s` and
/// `PyStemmer` (bench/run.sh makes one), `bm25s` scores the same files alongside.
pub async fn run_all(
    root: &Path,
    work: &Path,
    cache: &Path,
    python: Option<&Path>,
    embedding_model: Option<&Path>,
) -> Result<Value> {
    let mut values = serde_json::Map::new();
    for (i, dataset) in datasets_in(root)?.into_iter().enumerate() {
        let name = dataset.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let data_dir = work.join(format!("beir-{i}"));
        crate::prepare_data_dir(&data_dir)?;
        let mut value = run(&dataset, &data_dir, cache, embedding_model).await?;
        value["bm25s"] = match python {
            Some(python) => bm25s(python, &dataset)?,
            None => Value::Null,
        };
        values.insert(name, value);
    }
    println!("\n## Retrieval quality: BEIR datasets through the full pipeline (retrieve, limit 10 and 100)\n");
    println!(
        "| dataset | documents | chunks | queries | nDCG@10 | Recall@100 | bm25s nDCG@10 / R@100 | published BM25 nDCG@10 / R@100 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (name, v) in &values {
        let bm25s = match v["bm25s"].as_object() {
            Some(b) => format!(
                "{:.3} / {:.3}",
                b["ndcg_at_10"].as_f64().unwrap_or(f64::NAN),
                b["recall_at_100"].as_f64().unwrap_or(f64::NAN)
            ),
            None => "not run (no --python)".into(),
        };
        let published: Vec<String> = PUBLISHED
            .iter()
            .filter(|p| p.dataset == name)
            .map(|p| format!("{:.3} / {:.3} ({})", p.ndcg_at_10, p.recall_at_100, p.source))
            .collect();
        println!(
            "| {name} | {} | {} | {} | {:.3} | {:.3} | {bm25s} | {} |",
            v["documents"],
            v["chunks"],
            v["queries"],
            v["ndcg_at_10"].as_f64().unwrap_or(f64::NAN),
            v["recall_at_100"].as_f64().unwrap_or(f64::NAN),
            if published.is_empty() { "—".to_string() } else { published.join("; ") }
        );
    }
    if values.values().any(|v| !v["hybrid"].is_null()) {
        println!("\n### Lexical and hybrid (semantic retrieval on: all-MiniLM-L6-v2 page vectors fused with BM25)\n");
        println!(
            "| dataset | retrieval | nDCG@10 | Recall@100 | retrieve p50 / p99 ms | pages embedded | embedding pages/s | RSS before / after MiB |"
        );
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let ms = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.1}"));
        for (name, v) in &values {
            println!(
                "| {name} | lexical | {:.3} | {:.3} | {} / {} | | | |",
                v["ndcg_at_10"].as_f64().unwrap_or(f64::NAN),
                v["recall_at_100"].as_f64().unwrap_or(f64::NAN),
                ms(&v["retrieve_10_p50_ms"]),
                ms(&v["retrieve_10_p99_ms"]),
            );
            let h = &v["hybrid"];
            if h.is_null() {
                continue;
            }
            let mib = |k: &str| h[k].as_f64().unwrap_or(f64::NAN) / 1024.0;
            println!(
                "| {name} | hybrid | {:.3} | {:.3} | {} / {} | {} | {:.1} | {:.0} / {:.0} |",
                h["ndcg_at_10"].as_f64().unwrap_or(f64::NAN),
                h["recall_at_100"].as_f64().unwrap_or(f64::NAN),
                ms(&h["retrieve_10_p50_ms"]),
                ms(&h["retrieve_10_p99_ms"]),
                h["pages_embedded"],
                h["pages_per_second"].as_f64().unwrap_or(f64::NAN),
                mib("rss_before_kib"),
                mib("rss_after_kib"),
            );
        }
    }
    Ok(Value::Object(values))
}

/// `bm25s` (k1 1.5, b 0.75, English stop words, Snowball stemmer; its defaults) on the same
/// files, evaluated the same way (`bench/beir/bm25s_baseline.py`).
fn bm25s(python: &Path, dataset: &Path) -> Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("beir").join("bm25s_baseline.py");
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(dataset)
        .output()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!("bm25s failed on {}: {}", dataset.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    serde_json::from_slice(&output.stdout).context("bm25s printed no JSON")
}

/// Loads one BEIR dataset, ingests it through the fake and the component in `data_dir`,
/// and scores its test queries through `retrieve` as a platform calls it.
/// With an embedding model, semantic retrieval is then turned on, every page embedded (timed)
/// and the queries scored again: the hybrid row.
pub async fn run(dataset: &Path, data_dir: &Path, cache: &Path, embedding_model: Option<&Path>) -> Result<Value> {
    let loaded = load(dataset)?;
    let name = dataset.display().to_string();

    let site = fake_confluence::FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, fake_confluence::TokenKind::Classic);
    let page_to_doc = add_space(&site, KEY, &name, &loaded);
    eprintln!("[beir] {name}: {} pages, {} test queries", page_to_doc.len(), loaded.queries.len());

    let host = crate::open_host_with(data_dir, cache, embedding_model)?;
    let mut instance = host.instance("beir").await?;
    let connection = connect(&mut instance, &site.origin()).await?;
    let started = Instant::now();
    let memory = ingest(&mut instance, &connection, KEY).await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    eprintln!("[beir] {name}: {} documents, {} chunks in {ingest_seconds:.1} s", memory.documents, memory.chunks);

    let lexical = score_queries(&mut instance, &loaded, &memory.id, &page_to_doc).await?;
    let mut value = json!({
        "documents": memory.documents,
        "chunks": memory.chunks,
        "ingest_seconds": ingest_seconds,
        "queries": loaded.queries.len(),
        "ndcg_at_10": lexical.scores.ndcg_at_10(),
        "recall_at_100": lexical.scores.recall_at_100(),
        "retrieve_10_p50_ms": lexical.percentile(0.5),
        "retrieve_10_p99_ms": lexical.percentile(0.99),
        "hybrid": null,
    });
    if embedding_model.is_some() {
        let rss_before = crate::rss_kib();
        let started = Instant::now();
        host.set_semantic("beir", true)?;
        let mut embedded = 0u64;
        while let Some(round) = tokio::task::block_in_place(|| host.embed_round("beir"))? {
            embedded += round.embedded as u64;
            if embedded % 512 < round.embedded as u64 {
                eprint!("\r[beir] {name}: {embedded} pages embedded, {} to go   ", round.remaining);
            }
        }
        let embed_seconds = started.elapsed().as_secs_f64();
        eprintln!("\r[beir] {name}: {embedded} pages embedded in {embed_seconds:.0} s");
        let hybrid = score_queries(&mut instance, &loaded, &memory.id, &page_to_doc).await?;
        value["hybrid"] = json!({
            "ndcg_at_10": hybrid.scores.ndcg_at_10(),
            "recall_at_100": hybrid.scores.recall_at_100(),
            "retrieve_10_p50_ms": hybrid.percentile(0.5),
            "retrieve_10_p99_ms": hybrid.percentile(0.99),
            "pages_embedded": embedded,
            "embed_seconds": embed_seconds,
            "pages_per_second": embedded as f64 / embed_seconds,
            "rss_before_kib": rss_before,
            "rss_after_kib": crate::rss_kib(),
        });
    }
    Ok(value)
}

/// `retrieve` with limit 10 through the component, lexical and fused, over every dataset's
/// pages in one instance (a memory each): the scale at which `retrieve` p99 with fusion is
/// aimed at (10,000 pages and more). Page vectors come from `tune`'s embedding cache (a page
/// it lacks is embedded and added); every question is embedded by the model as it is asked.
pub async fn fused_latency_at_scale(root: &Path, work: &Path, cache: &Path, model_dir: &Path) -> Result<Value> {
    const QUESTIONS: usize = 300;
    let site = fake_confluence::FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, fake_confluence::TokenKind::Classic);
    let mut sets = Vec::new();
    let mut pages = 0;
    for (i, path) in datasets_in(root)?.into_iter().enumerate() {
        let loaded = load(&path)?;
        let key = format!("SCALE{i}");
        add_space(&site, &key, &path.display().to_string(), &loaded);
        pages += loaded.docs.len();
        sets.push((path.display().to_string(), key, loaded));
    }
    let mut host = crate::open_host_with(work, cache, Some(model_dir))?;
    let model = std::sync::Arc::new(connector_embed::EmbeddingModel::load(model_dir)?);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache/page-embeddings.bin");
    host.use_embedder(std::sync::Arc::new(
        crate::embedding_cache::CachedEmbedder::open(model, &vectors)?.questions_uncached(),
    ));
    let mut instance = host.instance("scale").await?;
    let connection = connect(&mut instance, &site.origin()).await?;
    for (name, key, _) in &sets {
        let memory = ingest(&mut instance, &connection, key).await?;
        eprintln!("[scale] {name}: {} documents, {} chunks", memory.documents, memory.chunks);
    }
    let time = async |instance: &mut connector_host::runtime::Instance| -> Result<Vec<(f64, f64)>> {
        let mut rows = Vec::new();
        for (_, _, loaded) in &sets {
            let mut ms = Vec::with_capacity(QUESTIONS);
            for q in loaded.queries.iter().take(QUESTIONS) {
                let started = Instant::now();
                instance
                    .retrieve(&q.text, &[], 10)
                    .await?
                    .map_err(|e| anyhow!("retrieve failed: {}", connector_host::driver::describe_error(&e)))?;
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            let at = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
            rows.push((at(0.5), at(0.99)));
        }
        Ok(rows)
    };
    let lexical = time(&mut instance).await?;
    host.set_semantic("scale", true)?;
    let started = Instant::now();
    while tokio::task::block_in_place(|| host.embed_round("scale"))?.is_some() {}
    eprintln!("[scale] {pages} pages' vectors in place in {:.0} s", started.elapsed().as_secs_f64());
    let fused = time(&mut instance).await?;

    println!(
        "\n### `retrieve` at scale: {pages} pages in one instance (limit 10, {QUESTIONS} questions per dataset)\n"
    );
    println!("| questions | lexical p50 / p99 ms | fused p50 / p99 ms |");
    println!("| --- | ---: | ---: |");
    let mut rows = Vec::new();
    for ((name, _, _), (l, f)) in sets.iter().zip(lexical.iter().zip(&fused)) {
        println!("| {name} | {:.1} / {:.1} | {:.1} / {:.1} |", l.0, l.1, f.0, f.1);
        rows.push(json!({"questions": name, "lexical_p50_ms": l.0, "lexical_p99_ms": l.1,
            "fused_p50_ms": f.0, "fused_p99_ms": f.1}));
    }
    Ok(json!({"pages": pages, "rows": rows}))
}

/// A space `key` on `site` with a page per document of `loaded` (its text as one
/// paragraph); returns page id → document id.
fn add_space(
    site: &fake_confluence::FakeConfluence,
    key: &str,
    name: &str,
    loaded: &Dataset,
) -> HashMap<String, String> {
    site.add_space(key, name);
    loaded
        .docs
        .iter()
        .map(|doc| {
            let page = site.add_page(key, None, &doc.page_title(), &format!("<p>{}</p>", escape(&doc.text)));
            (page, doc.id.clone())
        })
        .collect()
}

/// Scores and `retrieve` latencies of every test query.
struct Answers {
    scores: Scores,
    latencies_ms: Vec<f64>,
}

impl Answers {
    fn percentile(&self, p: f64) -> Option<f64> {
        let at = ((self.latencies_ms.len() as f64 * p) as usize).min(self.latencies_ms.len().saturating_sub(1));
        self.latencies_ms.get(at).copied()
    }
}

/// Asks every test query through `retrieve` as a platform calls it: 10 passages for
/// nDCG@10 (timed), 100 for Recall@100.
async fn score_queries(
    instance: &mut connector_host::runtime::Instance,
    loaded: &Dataset,
    memory_id: &str,
    page_to_doc: &HashMap<String, String>,
) -> Result<Answers> {
    let mut scores = Scores::default();
    let mut latencies_ms = Vec::with_capacity(loaded.queries.len());
    for q in &loaded.queries {
        let mut answer = async |limit: u32| -> Result<Vec<String>> {
            let started = Instant::now();
            let passages = instance
                .retrieve(&q.text, &[memory_id.to_string()], limit)
                .await?
                .map_err(|e| anyhow!("retrieve failed: {}", connector_host::driver::describe_error(&e)))?;
            if limit == 10 {
                latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(passages
                .into_iter()
                .map(|p| page_to_doc.get(&p.document_id).cloned().unwrap_or_else(|| format!("page:{}", p.document_id)))
                .collect())
        };
        let top10 = answer(10).await?;
        let top100 = answer(100).await?;
        scores.add(loaded, &q.id, &top10, &top100);
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Answers { scores, latencies_ms })
}
