//! Whether the knowledge answers a question, from the evidence of both
//! retrievers: how close the closest passage's meaning is (the embedding),
//! how much of the question's weight the best passages contain (BM25's
//! terms, weighted by rarity), and how much of it the knowledge never uses
//! at all (an off-topic question names things no page mentions: "nginx",
//! "refund", "MongoDB"), and, when the cross-encoder is installed, how well
//! the best passages answer the question read together with it (its logit).
//! A small logistic model over these, fitted on training questions only
//! (`parley bench answerability --fit`), gives a probability; below the
//! gate's threshold the bot says it does not know.

use std::sync::Arc;

use serde::Serialize;

use super::analyzer::Analyzer;
use super::index::{Hit, Segment};

/// The evidence for one question.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Cosine similarity of the closest passage (0 when there are no vectors).
    pub similarity: f32,
    /// Share of the question's term weight (IDF) that the best passages
    /// contain, 0 to 1 (absent terms weigh in as `unknown` does).
    pub coverage: f32,
    /// Share of the question's term weight in terms no passage of the
    /// knowledge contains, 0 to 1, discounted on small knowledge bases
    /// (see [`UNKNOWN_FULL_WEIGHT`]).
    pub unknown: f32,
    /// The cross-encoder's best logit over the first passages (`None`
    /// when the model is not installed or there are no passages).
    pub relevance: Option<f32>,
}

/// Knowledge of this many chunks or more gives an absent term its full
/// weight as evidence; below, the weight falls in proportion. A manual's
/// thousands of chunks use every everyday word, so a question word they
/// never use ("nginx", "refund") says the question is elsewhere; ten FAQ
/// entries lack most everyday words ("long", "take"), which says nothing.
/// A prior, not fitted: the training knowledge (the Rust Book, 2,228 chunks)
/// is above it.
pub const UNKNOWN_FULL_WEIGHT: usize = 500;

/// Passages whose terms count for coverage: the best fused hits.
const COVERED_BY: usize = 3;

impl Evidence {
    /// The evidence of `hits` (best first) for a question's analyzed terms;
    /// words of asking ("how", "much", "can", "I") are left out.
    pub fn of(segments: &[Arc<Segment>], analyzer: &Analyzer, terms: &[String], hits: &[Hit]) -> Evidence {
        let similarity = hits
            .iter()
            .filter_map(|h| h.vector.filter(|v| v.rank == 1).map(|v| v.score))
            .next()
            .unwrap_or(0.0);
        let mut unique: Vec<&str> = terms
            .iter()
            .map(String::as_str)
            .filter(|t| !analyzer.is_asking(t))
            .collect();
        unique.sort_unstable();
        unique.dedup();
        let docs: usize = segments.iter().map(|s| s.len()).sum();
        if unique.is_empty() || docs == 0 {
            return Evidence {
                similarity,
                coverage: 0.0,
                unknown: if unique.is_empty() { 0.0 } else { 1.0 },
                relevance: None,
            };
        }
        let (mut total, mut known, mut covered, mut unknown) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for term in unique {
            let df: usize = segments.iter().map(|s| s.df(term)).sum();
            let idf = (1.0 + (docs as f32 - df as f32 + 0.5) / (df as f32 + 0.5)).ln();
            total += idf;
            if df == 0 {
                unknown += idf;
                continue;
            }
            known += idf;
            if hits
                .iter()
                .take(COVERED_BY)
                .any(|h| segments.get(h.segment).is_some_and(|s| s.contains(h.chunk, term)))
            {
                covered += idf;
            }
        }
        let size = (docs as f32 / UNKNOWN_FULL_WEIGHT as f32).min(1.0);
        let weighed = known + unknown * size;
        Evidence {
            similarity,
            coverage: if weighed > 0.0 { covered / weighed } else { 0.0 },
            unknown: unknown / total.max(f32::MIN_POSITIVE) * size,
            relevance: None,
        }
    }

    /// The features the gate weighs, after the bias: similarity, coverage,
    /// unknown share, and the relevance logit when there is one.
    pub fn features(&self) -> Vec<f32> {
        let mut x = vec![self.similarity, self.coverage, self.unknown];
        x.extend(self.relevance);
        x
    }
}

/// A logistic model over the evidence, and the probability it must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Bias, then the weights of similarity, coverage, unknown share and
    /// relevance (the cross-encoder's logit).
    pub weights: [f32; 5],
    /// The model for evidence without relevance (the cross-encoder is not
    /// installed): bias, similarity, coverage, unknown share.
    pub fallback: [f32; 4],
    pub threshold: f32,
}

impl Gate {
    /// Both fitted on the two tuning sites together, the Rust Book and the
    /// SQLite docs (100 questions each, `parley bench gate --fit` over their
    /// `bench answerability` dumps, with and without the cross-encoder; see
    /// `docs/benchmarks.md`). One site alone gave a gate that did not carry
    /// over to the other.
    pub const DEFAULT: Gate = Gate {
        weights: [-3.353, 6.818, 2.456, -4.164, 0.170],
        fallback: [-6.358, 10.096, 4.695, -4.030],
        threshold: 0.5,
    };

    /// The probability that the knowledge answers the question.
    pub fn probability(&self, e: &Evidence) -> f32 {
        let x = e.features();
        let weights: &[f32] = if e.relevance.is_some() {
            &self.weights
        } else {
            &self.fallback
        };
        let z = weights[0] + weights[1..].iter().zip(&x).map(|(w, v)| w * v).sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    pub fn answers(&self, e: &Evidence) -> bool {
        self.probability(e) >= self.threshold
    }
}

/// Fits a logistic model's weights (bias first) by gradient descent on the
/// log loss, with a little L2 so separable training sets keep finite
/// weights. Features are standardized while fitting (the relevance logit
/// spans tens, the shares one), and the weights returned for raw features.
pub fn fit(samples: &[(Vec<f32>, bool)], iterations: usize) -> Vec<f32> {
    let Some(n_features) = samples.first().map(|(x, _)| x.len()) else {
        return vec![];
    };
    let n = samples.len() as f32;
    let mean: Vec<f32> = (0..n_features)
        .map(|j| samples.iter().map(|(x, _)| x[j]).sum::<f32>() / n)
        .collect();
    let scale: Vec<f32> = (0..n_features)
        .map(|j| {
            let var = samples.iter().map(|(x, _)| (x[j] - mean[j]).powi(2)).sum::<f32>() / n;
            var.sqrt().max(1e-6)
        })
        .collect();
    let rate = 0.5;
    let l2 = 0.001;
    let mut w = vec![0.0f32; n_features + 1];
    for _ in 0..iterations {
        let mut grad = vec![0.0f32; n_features + 1];
        for (x, y) in samples {
            let z = w[0]
                + (0..n_features)
                    .map(|j| w[j + 1] * (x[j] - mean[j]) / scale[j])
                    .sum::<f32>();
            let err = 1.0 / (1.0 + (-z).exp()) - if *y { 1.0 } else { 0.0 };
            grad[0] += err / n;
            for j in 0..n_features {
                grad[j + 1] += err * (x[j] - mean[j]) / scale[j] / n;
            }
        }
        for (i, (wi, g)) in w.iter_mut().zip(&grad).enumerate() {
            let reg = if i == 0 { 0.0 } else { l2 * *wi };
            *wi -= rate * (g + reg);
        }
    }
    // Back to raw features: w_j / s_j, and the bias absorbs the means.
    let mut raw = vec![0.0f32; n_features + 1];
    raw[0] = w[0];
    for j in 0..n_features {
        raw[j + 1] = w[j + 1] / scale[j];
        raw[0] -= w[j + 1] * mean[j] / scale[j];
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::{Analyzer, Bm25Params, ChunkMeta, Fusion, Mode, Query, search};
    use uuid::Uuid;

    fn segment(texts: &[&str]) -> Arc<Segment> {
        let analyzer = Analyzer::default();
        let key = Uuid::new_v4();
        let items = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let meta = ChunkMeta {
                    id: Uuid::new_v4(),
                    source_id: key,
                    doc_key: format!("d{i}"),
                    ordinal: 0,
                    heading_path: String::new(),
                    text: (*t).to_owned(),
                    page: None,
                    url: None,
                    title: None,
                };
                (meta, vec![1.0, 0.0])
            })
            .collect();
        Arc::new(Segment::build(key, 1, &analyzer, items))
    }

    fn evidence(segments: &[Arc<Segment>], question: &str) -> Evidence {
        let terms = Analyzer::default().terms(question);
        let hits = search(
            segments,
            &Query {
                terms: &terms,
                vector: Some(&[1.0, 0.0]),
                sources: None,
                limit: 5,
                candidates: 10,
                mode: Mode::Hybrid,
                fusion: Fusion::Convex { alpha: 0.5 },
                bm25: Bm25Params::default(),
            },
        );
        Evidence::of(segments, &Analyzer::default(), &terms, &hits)
    }

    #[test]
    fn coverage_and_unknown_terms() {
        let segs = vec![segment(&[
            "Shipping to Germany costs 9 euros and takes three days.",
            "Reset your password with the Forgot password link.",
            "Invoices are sent by email every month.",
        ])];
        let e = evidence(&segs, "shipping costs to Germany");
        assert!(e.coverage > 0.99, "{e:?}");
        assert_eq!(e.unknown, 0.0);
        // Words of asking that the knowledge never uses count for nothing.
        let asked = evidence(&segs, "How much is shipping to Germany?");
        assert_eq!(asked, e);
        assert!((e.similarity - 1.0).abs() < 1e-6);
        let off = evidence(&segs, "How do I configure nginx as a reverse proxy?");
        // Every term is absent, but three chunks are no evidence of that.
        assert!((off.unknown - 3.0 / UNKNOWN_FULL_WEIGHT as f32).abs() < 1e-6, "{off:?}");
        assert_eq!(off.coverage, 0.0);
        // With similarities the model gives such questions, the gate answers
        // the first and refuses the second, on a knowledge base of three entries.
        assert!(Gate::DEFAULT.answers(&Evidence { similarity: 0.6, ..e }));
        assert!(!Gate::DEFAULT.answers(&Evidence { similarity: 0.3, ..off }));
        // On three chunks an absent term hardly counts against coverage.
        let half = evidence(&segs, "shipping kubernetes");
        assert!(half.coverage > 0.98 && half.unknown > 0.0, "{half:?}");
    }

    #[test]
    fn the_fit_separates_what_it_is_shown() {
        let yes = Evidence {
            similarity: 0.6,
            coverage: 0.9,
            unknown: 0.0,
            relevance: Some(4.0),
        };
        let no = Evidence {
            similarity: 0.3,
            coverage: 0.2,
            unknown: 0.6,
            relevance: Some(-9.0),
        };
        let samples: Vec<(Vec<f32>, bool)> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    (yes.features(), true)
                } else {
                    (no.features(), false)
                }
            })
            .collect();
        let w = fit(&samples, 2000);
        let gate = Gate {
            weights: w.clone().try_into().unwrap(),
            ..Gate::DEFAULT
        };
        assert!(gate.answers(&yes) && !gate.answers(&no), "{w:?}");
        assert!(Gate::DEFAULT.answers(&yes) && !Gate::DEFAULT.answers(&no));
        // Without the cross-encoder the gate falls back to the other three.
        let (yes, no) = (Evidence { relevance: None, ..yes }, Evidence { relevance: None, ..no });
        assert!(Gate::DEFAULT.answers(&yes) && !Gate::DEFAULT.answers(&no));
    }
}
