//! From the index's best chunks to an answer: document-aware scores and distinct sources.
//!
//! The search index ranks chunks (passages) by BM25, one at a time. A chat platform asking
//! for ten passages wants ten good *sources*, and a page that answers the question
//! throughout is a better source than a page with one lucky passage. So `retrieve` asks the
//! index for a pool of chunks several times larger than the answer, groups them by
//! document, scores each document by its best chunk blended with its coverage (the mean
//! score over all its chunks, see [`RankConfig::document_score`]), and answers with at most
//! [`Shape::per_document`] passages per document, best documents first. `per_document == 0` gives the raw passages, exactly as the index ranked
//! them.

use std::collections::HashMap;

use crate::caps::IndexHit;

/// Passages per document when the caller does not say: distinct sources.
pub const DEFAULT_PER_DOCUMENT: u32 = 1;

/// The shape of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Passages in the answer, at most.
    pub limit: usize,
    /// Passages per document, at most; 0 for raw passages (no cap, no document scores).
    pub per_document: usize,
}

/// How documents are scored from their chunks; the defaults were chosen on BEIR SciFact
/// and ArguAna together (see the README's retrieval section and `connector-bench tune`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankConfig {
    /// Chunks asked from the index per passage of the answer.
    pub pool_per_passage: usize,
    /// Chunks asked from the index at least (small answers still see whole documents).
    pub min_pool: usize,
    /// Chunks asked from the index at most (the host's own maximum).
    pub max_pool: usize,
    /// Weight of a document's other matching chunks next to its best one.
    pub other_chunks_weight: f32,
    /// Weight of a document's coverage: the mean score over *all* its chunks (those that
    /// did not match count 0), blended with its best chunk. A page that answers throughout
    /// keeps its best chunk's score; a long page with one lucky chunk loses some.
    pub coverage_weight: f32,
}

impl Default for RankConfig {
    fn default() -> Self {
        RankConfig {
            pool_per_passage: 5,
            min_pool: 50,
            max_pool: 1000,
            other_chunks_weight: 0.0,
            coverage_weight: 0.25,
        }
    }
}

impl RankConfig {
    /// How many chunks to ask the index for to answer in `shape`.
    pub fn pool(&self, shape: Shape) -> usize {
        if shape.per_document == 0 {
            return shape.limit;
        }
        shape.limit.saturating_mul(self.pool_per_passage).clamp(self.min_pool, self.max_pool).max(shape.limit)
    }

    /// Turns the index's hits (best first) into the answer. With a per-document cap,
    /// documents are ordered by their score (see [`Self::document_score`]), each
    /// contributes its best chunks in order, and every passage carries its document's
    /// score. `chunks_of(memory, document)` tells how many chunks a document has (`None`
    /// when unknown: then only its matching chunks count).
    pub fn answer(
        &self,
        hits: Vec<IndexHit>,
        shape: Shape,
        chunks_of: impl Fn(&str, &str) -> Option<usize>,
    ) -> Vec<IndexHit> {
        self.answer_by(hits, shape, chunks_of, |hit| hit.document_id.clone())
    }

    /// [`Self::answer`] with documents grouped into sources by `source_of` (e.g. a page
    /// and its comments are one source): the cap and the score are per source, and each
    /// source is scored on its best hit's document's chunk count.
    pub fn answer_by(
        &self,
        hits: Vec<IndexHit>,
        shape: Shape,
        chunks_of: impl Fn(&str, &str) -> Option<usize>,
        source_of: impl Fn(&IndexHit) -> String,
    ) -> Vec<IndexHit> {
        if shape.per_document == 0 {
            let mut hits = hits;
            hits.truncate(shape.limit);
            return hits;
        }
        // Documents in order of first appearance, i.e. of their best chunk.
        let mut documents: Vec<(f32, Vec<IndexHit>)> = Vec::new();
        let mut position: HashMap<(String, String), usize> = HashMap::new();
        for hit in hits {
            let key = (hit.memory_id.clone(), source_of(&hit));
            let slot = *position.entry(key).or_insert_with(|| {
                documents.push((0.0, Vec::new()));
                documents.len() - 1
            });
            documents[slot].1.push(hit);
        }
        for (score, chunks) in &mut documents {
            chunks.sort_by(|a, b| b.score.total_cmp(&a.score));
            let scores: Vec<f32> = chunks.iter().map(|c| c.score).collect();
            let total = chunks.first().and_then(|c| chunks_of(&c.memory_id, &c.document_id));
            *score = self.document_score(&scores, total);
        }
        // Stable: equal documents keep the index's order.
        documents.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut answer = Vec::with_capacity(shape.limit);
        for (score, chunks) in documents {
            for mut chunk in chunks.into_iter().take(shape.per_document) {
                if answer.len() == shape.limit {
                    return answer;
                }
                chunk.score = score;
                answer.push(chunk);
            }
        }
        answer
    }
}

impl RankConfig {
    /// A document's score from the scores of its matching chunks (best first) and its
    /// number of chunks: `(1 - c) × best + c × mean over all chunks + o × sum of the
    /// others`, with `c` the coverage weight and `o` the other-chunks weight.
    pub fn document_score(&self, matching: &[f32], chunks: Option<usize>) -> f32 {
        let Some(&best) = matching.first() else { return 0.0 };
        let sum: f32 = matching.iter().sum();
        let chunks = chunks.unwrap_or(matching.len()).max(matching.len()).max(1);
        let mean = sum / chunks as f32;
        (1.0 - self.coverage_weight) * best + self.coverage_weight * mean + self.other_chunks_weight * (sum - best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(document: &str, ordinal: u32, score: f32) -> IndexHit {
        IndexHit {
            memory_id: "m".into(),
            document_id: document.into(),
            ordinal,
            title: document.into(),
            heading: String::new(),
            text: format!("{document} #{ordinal}"),
            score,
        }
    }

    fn documents(answer: &[IndexHit]) -> Vec<&str> {
        answer.iter().map(|h| h.document_id.as_str()).collect()
    }

    #[test]
    fn one_passage_per_document_by_default_gives_distinct_sources() {
        let hits = vec![hit("a", 0, 9.0), hit("a", 1, 8.0), hit("a", 2, 7.5), hit("b", 0, 7.0), hit("c", 0, 6.0)];
        let config = RankConfig { other_chunks_weight: 0.0, coverage_weight: 0.0, ..RankConfig::default() };
        let answer = config.answer(hits, Shape { limit: 3, per_document: DEFAULT_PER_DOCUMENT as usize }, unknown);
        assert_eq!(documents(&answer), ["a", "b", "c"]);
        assert_eq!(answer[0].ordinal, 0, "a document answers with its best passage");
    }

    #[test]
    fn a_cap_of_two_groups_a_documents_passages_best_first() {
        let hits = vec![hit("a", 3, 9.0), hit("b", 0, 8.5), hit("a", 1, 8.0), hit("a", 0, 7.0), hit("b", 4, 1.0)];
        let config = RankConfig { other_chunks_weight: 0.0, coverage_weight: 0.0, ..RankConfig::default() };
        let answer = config.answer(hits, Shape { limit: 10, per_document: 2 }, unknown);
        let got: Vec<(&str, u32)> = answer.iter().map(|h| (h.document_id.as_str(), h.ordinal)).collect();
        assert_eq!(got, [("a", 3), ("a", 1), ("b", 0), ("b", 4)]);
        assert!(answer.iter().all(|h| h.document_id != "a" || h.score == 9.0), "passages carry their document's score");
    }

    #[test]
    fn raw_passages_are_the_index_order_cut_at_the_limit() {
        let hits = vec![hit("a", 0, 9.0), hit("a", 1, 8.0), hit("b", 0, 7.0)];
        let config = RankConfig::default();
        let shape = Shape { limit: 2, per_document: 0 };
        assert_eq!(config.pool(shape), 2);
        let answer = config.answer(hits.clone(), shape, unknown);
        assert_eq!(answer, hits[..2]);
    }

    fn unknown(_: &str, _: &str) -> Option<usize> {
        None
    }

    #[test]
    fn a_page_that_matches_throughout_beats_one_lucky_chunk() {
        // "lucky" (5 chunks) has the single best chunk; "thorough" (3 chunks) matches almost
        // as well in every one of them.
        let hits =
            vec![hit("lucky", 0, 10.0), hit("thorough", 0, 9.0), hit("thorough", 1, 8.0), hit("thorough", 2, 7.0)];
        let chunks = |_: &str, document: &str| Some(if document == "lucky" { 5 } else { 3 });
        let answer = RankConfig::default().answer(hits.clone(), Shape { limit: 2, per_document: 1 }, chunks);
        assert_eq!(documents(&answer), ["thorough", "lucky"]);
        assert!(answer[0].score > answer[1].score);

        let best_chunk_only = RankConfig { coverage_weight: 0.0, ..RankConfig::default() };
        let answer = best_chunk_only.answer(hits, Shape { limit: 2, per_document: 1 }, chunks);
        assert_eq!(documents(&answer), ["lucky", "thorough"], "without coverage the lucky chunk wins");
    }

    #[test]
    fn a_single_chunk_document_scores_its_chunk() {
        let config = RankConfig::default();
        assert_eq!(config.document_score(&[4.0], Some(1)), 4.0);
        assert_eq!(config.document_score(&[4.0], None), 4.0);
        assert!(config.document_score(&[4.0], Some(4)) < 4.0, "one matching chunk of four");
    }

    #[test]
    fn the_pool_grows_with_the_answer_within_bounds() {
        let config = RankConfig::default();
        assert_eq!(config.pool(Shape { limit: 1, per_document: 1 }), 50);
        assert_eq!(config.pool(Shape { limit: 100, per_document: 1 }), 500);
        assert_eq!(config.pool(Shape { limit: 1000, per_document: 1 }), 1000);
    }

    #[test]
    fn the_same_document_id_in_two_memories_is_two_sources() {
        let mut other = hit("a", 0, 8.0);
        other.memory_id = "n".into();
        let answer =
            RankConfig::default().answer(vec![hit("a", 0, 9.0), other], Shape { limit: 5, per_document: 1 }, unknown);
        assert_eq!(answer.len(), 2);
    }

    #[test]
    fn documents_of_one_source_share_its_cap() {
        let hits = vec![hit("comment", 0, 9.0), hit("page", 0, 8.0), hit("other", 0, 7.0)];
        let source = |h: &IndexHit| if h.document_id == "comment" { "page".to_string() } else { h.document_id.clone() };
        let config = RankConfig { coverage_weight: 0.0, ..RankConfig::default() };
        let answer = config.answer_by(hits, Shape { limit: 5, per_document: 1 }, unknown, source);
        assert_eq!(documents(&answer), ["comment", "other"], "the page answers once, with its best hit");
    }
}
