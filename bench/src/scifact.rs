//! Retrieval quality on BEIR SciFact through the full pipeline: every corpus document
//! becomes a page of one space on the fake Confluence (title as page title, text as a
//! storage-format paragraph), the space is ingested by the component, and the test
//! queries go through `retrieve`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{EMAIL, TOKEN, connect, ingest, open_host};

/// Space key of the SciFact corpus on the fake.
const KEY: &str = "SCIFACT";
/// Passages asked per query (the connector's maximum), collapsed to documents for ranking.
const LIMIT: u32 = 1000;

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

/// SciFact: the corpus, the test queries (those with judgements) and their judgements.
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

/// Loads SciFact from `dataset`, ingests it through the fake and the component in
/// `data_dir`, and scores the test queries.
pub async fn run(dataset: &Path, data_dir: &Path, cache: &Path) -> Result<Value> {
    let Dataset { docs, queries, qrels } = load(dataset)?;

    let site = fake_confluence::FakeConfluence::start()?;
    site.add_user(EMAIL, TOKEN, fake_confluence::TokenKind::Classic);
    site.add_space(KEY, "SciFact");
    let mut page_to_doc: HashMap<String, String> = HashMap::new();
    let mut corpus_bytes = 0usize;
    for doc in docs {
        let title = doc.page_title();
        let body = format!("<p>{}</p>", escape(&doc.text));
        corpus_bytes += body.len();
        let page = site.add_page(KEY, None, &title, &body);
        page_to_doc.insert(page, doc.id);
    }
    let pages = page_to_doc.len();
    eprintln!("[scifact] {pages} pages, {} test queries", queries.len());

    let host = open_host(data_dir, cache)?;
    let mut instance = host.instance("scifact").await?;
    let connection = connect(&mut instance, &site.origin()).await?;
    site.reset_requests();
    let started = Instant::now();
    let memory = ingest(&mut instance, &connection, KEY).await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let requests = site.requests().len();
    eprintln!(
        "[scifact] ingested {} documents, {} chunks in {ingest_seconds:.1} s ({requests} requests)",
        memory.documents, memory.chunks
    );

    let mut ndcg = 0.0;
    let mut recall = 0.0;
    let mut distinct_docs = 0usize;
    let started = Instant::now();
    for q in &queries {
        let passages = instance
            .retrieve(&q.text, std::slice::from_ref(&memory.id), LIMIT)
            .await?
            .map_err(|e| anyhow!("retrieve failed: {}", connector_host::driver::describe_error(&e)))?;
        let mut seen = HashSet::new();
        let mut ranked = Vec::new();
        for p in passages {
            if seen.insert(p.document_id.clone()) {
                let doc = page_to_doc.get(&p.document_id).cloned().unwrap_or_else(|| format!("page:{}", p.document_id));
                ranked.push(doc);
            }
        }
        distinct_docs += ranked.len();
        let judged = &qrels[&q.id];
        ndcg += ndcg_at(&ranked, judged, 10);
        recall += recall_at(&ranked, judged, 100);
    }
    let query_seconds = started.elapsed().as_secs_f64();
    let n = queries.len() as f64;
    let value = json!({
        "documents": memory.documents,
        "chunks": memory.chunks,
        "corpus_storage_bytes": corpus_bytes,
        "ingest_seconds": ingest_seconds,
        "ingest_http_requests": requests,
        "queries": queries.len(),
        "ndcg_at_10": ndcg / n,
        "recall_at_100": recall / n,
        "passages_per_query": LIMIT,
        "mean_distinct_documents_per_query": distinct_docs as f64 / n,
        "mean_query_ms": query_seconds * 1000.0 / n,
        "published_bm25_ndcg_at_10": 0.665,
        "target_ndcg_at_10": 0.69,
    });
    println!("\n## Retrieval quality: BEIR SciFact ({} test queries, full pipeline)\n", queries.len());
    println!("| documents | chunks | ingest | nDCG@10 | Recall@100 | BM25 (published) nDCG@10 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {:.1} s | {:.3} | {:.3} | 0.665 |",
        memory.documents,
        memory.chunks,
        ingest_seconds,
        ndcg / n,
        recall / n
    );
    Ok(value)
}
