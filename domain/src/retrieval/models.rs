//! The models retrieval asks: an embedder (text to unit vectors) and,
//! optionally, a cross-encoder (how well a passage answers a question).
//! The worker implements both with local ONNX models; [`HashEmbedder`] is a
//! tiny deterministic embedder for tests.

use async_trait::async_trait;

use super::analyzer::Analyzer;

/// Turns texts into unit vectors of one dimension.
#[async_trait]
pub trait Embed: Send + Sync {
    /// One unit vector per text, in order.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String>;
}

/// Scores passages against a question (higher: answers it better).
#[async_trait]
pub trait Rerank: Send + Sync {
    /// One score per passage, in order.
    async fn score(&self, question: &str, passages: Vec<String>) -> Result<Vec<f32>, String>;
}

/// A deterministic embedder for tests: each analyzed term adds one to a
/// hashed dimension; the vector is then normalized. Texts sharing words are
/// close, others are orthogonal; no model file is needed.
pub struct HashEmbedder {
    pub dimension: usize,
    analyzer: Analyzer,
}

impl HashEmbedder {
    pub fn new(dimension: usize) -> Self {
        HashEmbedder {
            dimension: dimension.max(1),
            analyzer: Analyzer::default(),
        }
    }

    /// The vector of one text.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dimension];
        for term in self.analyzer.terms(text) {
            // FNV-1a: stable across runs and platforms.
            let hash = term.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            v[(hash % self.dimension as u64) as usize] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[async_trait]
impl Embed for HashEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}
