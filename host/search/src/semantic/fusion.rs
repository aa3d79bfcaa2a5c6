//! Fusing the lexical and the dense ranking of pages into one score per page.

/// How the two rankings are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// `w · lexical + (1 − w) · dense`, each min-max normalised over the candidates.
    Convex {
        /// The lexical side's weight `w` (0..=1).
        lexical_weight: f32,
    },
    /// Reciprocal rank fusion: `Σ 1 / (k + rank)` over the rankings a page is in.
    Reciprocal {
        /// The rank offset `k` (60 in the original paper).
        k: f32,
    },
}

/// One page to score: its best lexical score (if the lexical search found it) and its
/// similarity to the question (if it has a vector).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    /// Best BM25 score among its chunks the lexical search returned.
    pub lexical: Option<f32>,
    /// Cosine similarity of its page vector to the question's.
    pub dense: Option<f32>,
}

/// The fused score of every candidate, in order; higher is better.
///
/// A page without a vector (not embedded yet) is scored by its lexical side alone, as if
/// the dense side agreed, so partial coverage never demotes a page the lexical search
/// ranks well; a page the lexical search did not find gets nothing from that side.
pub fn fuse(fusion: Fusion, candidates: &[Candidate]) -> Vec<f32> {
    match fusion {
        Fusion::Convex { lexical_weight } => {
            let w = lexical_weight.clamp(0.0, 1.0);
            let lexical = normalised(candidates.iter().map(|c| c.lexical));
            let dense = normalised(candidates.iter().map(|c| c.dense));
            lexical
                .iter()
                .zip(&dense)
                .map(|(&l, d)| {
                    let l = l.unwrap_or(0.0);
                    w * l + (1.0 - w) * d.unwrap_or(l)
                })
                .collect()
        }
        Fusion::Reciprocal { k } => {
            let lexical = ranks(candidates.iter().map(|c| c.lexical));
            let dense = ranks(candidates.iter().map(|c| c.dense));
            lexical
                .iter()
                .zip(&dense)
                .map(|(l, d)| {
                    let part = |rank: Option<usize>| rank.map_or(0.0, |r| 1.0 / (k + r as f32));
                    match (l, d) {
                        (Some(_), None) => 2.0 * part(*l),
                        _ => part(*l) + part(*d),
                    }
                })
                .collect()
        }
    }
}

/// Min-max normalisation of the present values to 0..=1 (all 1 when they are equal).
fn normalised(values: impl Iterator<Item = Option<f32>> + Clone) -> Vec<Option<f32>> {
    let present = values.clone().flatten();
    let (min, max) = present.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = max - min;
    values.map(|v| v.map(|v| if span > 0.0 { (v - min) / span } else { 1.0 })).collect()
}

/// 1-based rank of each present value, best (highest) first.
fn ranks(values: impl Iterator<Item = Option<f32>>) -> Vec<Option<usize>> {
    let values: Vec<Option<f32>> = values.collect();
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_some()).collect();
    order.sort_by(|&a, &b| values[b].unwrap_or_default().total_cmp(&values[a].unwrap_or_default()));
    let mut out = vec![None; values.len()];
    for (rank, i) in order.into_iter().enumerate() {
        out[i] = Some(rank + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(lexical: Option<f32>, dense: Option<f32>) -> Candidate {
        Candidate { lexical, dense }
    }

    #[test]
    fn convex_fusion_lets_a_close_paraphrase_overtake_a_weak_word_match() {
        let candidates =
            [c(Some(10.0), Some(0.20)), c(Some(9.5), Some(0.80)), c(Some(2.0), Some(0.3)), c(None, Some(0.50))];
        let fused = fuse(Fusion::Convex { lexical_weight: 0.5 }, &candidates);
        assert!(fused[1] > fused[0], "{fused:?}");
        assert!(fused[3] < fused[0], "{fused:?}");
        let lexical_only = fuse(Fusion::Convex { lexical_weight: 1.0 }, &candidates);
        assert!(lexical_only[0] > lexical_only[1]);
    }

    #[test]
    fn a_page_without_a_vector_keeps_its_lexical_standing() {
        let fused = fuse(Fusion::Convex { lexical_weight: 0.5 }, &[c(Some(10.0), None), c(Some(5.0), Some(0.9))]);
        assert_eq!(fused[0], 1.0);
        let rrf = fuse(Fusion::Reciprocal { k: 60.0 }, &[c(Some(10.0), None), c(Some(5.0), Some(0.9))]);
        assert!(rrf[0] > rrf[1], "{rrf:?}");
    }

    #[test]
    fn reciprocal_rank_fusion_rewards_agreement() {
        let fused = fuse(
            Fusion::Reciprocal { k: 60.0 },
            &[c(Some(3.0), Some(0.1)), c(Some(2.0), Some(0.9)), c(None, Some(0.8))],
        );
        assert!(fused[1] > fused[0] && fused[0] > fused[2], "{fused:?}");
    }
}
