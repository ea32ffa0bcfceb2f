//! A question to passages: the query (the question's words, weighted over
//! the previous turn's, and its vector), both retrievers fused, the
//! evidence that the knowledge answers it, the cross-encoder's reading when
//! installed, and the gate's decision. Chat and the debug search share it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::analyzer::Analyzer;
use super::answerable::{Evidence, Gate};
use super::cache::IndexCache;
use super::index::{Bm25Params, ChunkMeta, Fusion, Mode, Query, Ranked, Segment, search};
use super::models::{Embed, Rerank};
use crate::chunking;
use crate::error::ErrorCode;
use crate::store::{Store, StoreError};

/// The fusion chosen on SciFact's train split (`parley bench retrieval`).
/// Min-max normalized scores, half and half: the best of the weights tried
/// on SciFact's train split (0.7356 nDCG@10 there; reciprocal rank fusion 0.7161).
pub const FUSION: Fusion = Fusion::Convex { alpha: 0.5 };
/// Each retriever's list depth before fusion.
const CANDIDATES: usize = 100;
/// Weight of the previous visitor message in a follow-up's query vector.
const PREVIOUS_TURN_WEIGHT: f32 = 0.5;
/// Passages the cross-encoder reads for the answerability gate (the
/// answer rests on the first; the second often says it better).
const RELEVANCE_PASSAGES: usize = 2;

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedding model could not be loaded or failed.
    #[error("the embedding model is not available: {0}")]
    Model(String),
    /// The ranking task stopped (a panic).
    #[error("the search stopped: {0}")]
    Stopped(String),
}

impl From<sea_orm::DbErr> for RetrievalError {
    fn from(e: sea_orm::DbErr) -> Self {
        RetrievalError::Store(StoreError::Db(e))
    }
}

impl RetrievalError {
    /// The code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            RetrievalError::Store(e) if e.is_transient() => ErrorCode::ServiceUnavailable,
            RetrievalError::Model(_) => ErrorCode::ServiceUnavailable,
            RetrievalError::Store(_) | RetrievalError::Stopped(_) => ErrorCode::Internal,
        }
    }
}

/// What to search for.
pub struct SearchSpec<'a> {
    pub question: &'a str,
    /// The visitor's previous message, which a follow-up question leans on.
    pub context: Option<&'a str>,
    /// Only these sources.
    pub sources: Option<&'a [Uuid]>,
    pub limit: usize,
    pub mode: Mode,
}

/// A chunk found for a question, with its fused score and each retriever's.
#[derive(Debug, Clone)]
pub struct Passage {
    pub meta: ChunkMeta,
    pub score: f32,
    pub bm25: Option<Ranked>,
    pub vector: Option<Ranked>,
}

impl std::ops::Deref for Passage {
    type Target = ChunkMeta;
    fn deref(&self) -> &ChunkMeta {
        &self.meta
    }
}

/// What a search found, and whether the bot answers from it.
pub struct Retrieved {
    pub passages: Vec<Passage>,
    /// Cosine similarity of the closest chunk (0 when there is none).
    pub best_similarity: f32,
    /// Both retrievers' evidence that the knowledge answers the question.
    pub evidence: Evidence,
    /// The gate's probability for that evidence.
    pub answerability: f32,
    /// Whether the bot answers (else it gives its fallback answer).
    pub answerable: bool,
    pub elapsed: Duration,
}

/// Searches bots' knowledge: the index cache, the analyzer, the models and
/// the gate.
pub struct Retriever {
    store: Store,
    index: IndexCache,
    analyzer: Arc<Analyzer>,
    embedder: Arc<dyn Embed>,
    reranker: Option<Arc<dyn Rerank>>,
    gate: Gate,
    /// Least cosine similarity of the closest passage for an answer.
    min_relevance: f32,
}

impl Retriever {
    pub fn new(
        store: Store,
        index: IndexCache,
        embedder: Arc<dyn Embed>,
        reranker: Option<Arc<dyn Rerank>>,
        gate: Gate,
        min_relevance: f32,
    ) -> Self {
        Retriever {
            store,
            index,
            analyzer: Arc::new(Analyzer::default()),
            embedder,
            reranker,
            gate,
            min_relevance,
        }
    }

    /// The index cache's size and counts.
    pub fn cache_stats(&self) -> super::cache::CacheStats {
        self.index.stats()
    }

    pub fn analyzer(&self) -> &Arc<Analyzer> {
        &self.analyzer
    }

    /// Unit vectors of texts.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, RetrievalError> {
        self.embedder.embed(texts).await.map_err(RetrievalError::Model)
    }

    /// Searches a bot's live sources.
    pub async fn retrieve(
        &self,
        org_id: Uuid,
        bot_id: Uuid,
        spec: SearchSpec<'_>,
    ) -> Result<Retrieved, RetrievalError> {
        let started = Instant::now();
        let segments = self.index.segments(&self.store, org_id, bot_id).await?;
        let mut found = self.retrieve_in(segments, spec).await?;
        found.elapsed = started.elapsed();
        Ok(found)
    }

    /// Searches the given segments (what [`Retriever::retrieve`] does once
    /// the bot's segments are loaded).
    pub async fn retrieve_in(
        &self,
        segments: Vec<Arc<Segment>>,
        spec: SearchSpec<'_>,
    ) -> Result<Retrieved, RetrievalError> {
        let SearchSpec {
            question,
            context,
            sources,
            limit,
            mode,
        } = spec;
        let started = Instant::now();
        let asked = self.analyzer.terms(question);
        let mut terms = asked.clone();
        // The question's own words weigh double those of the turn before.
        terms.extend(terms.clone());
        let vector = if mode == Mode::Bm25 {
            None
        } else {
            let mut texts = vec![question.to_owned()];
            texts.extend(context.map(str::to_owned));
            let vectors = self.embed(texts).await?;
            let mut v = vectors.first().cloned().unwrap_or_default();
            if let Some(prev) = vectors.get(1) {
                for (x, y) in v.iter_mut().zip(prev) {
                    *x += PREVIOUS_TURN_WEIGHT * y;
                }
            }
            Some(v)
        };
        let mut asked = asked;
        if let Some(context) = context {
            let previous = self.analyzer.terms(context);
            // A follow-up with no words of its own ("and how much is it?")
            // is judged with the question it follows.
            if asked.iter().all(|t| self.analyzer.is_asking(t)) {
                asked.extend(previous.iter().cloned());
            }
            terms.extend(previous);
        }
        let (mut hits, evidence) = tokio::task::spawn_blocking({
            let segments = segments.clone();
            let analyzer = self.analyzer.clone();
            let sources = sources.map(<[Uuid]>::to_vec);
            move || {
                // The evidence reads the best three passages and the closest
                // one by meaning, wherever the fusion ranks it, so every fused
                // candidate is kept until it is taken; search and chat decide alike.
                let hits = search(
                    &segments,
                    &Query {
                        terms: &terms,
                        vector: vector.as_deref(),
                        sources: sources.as_deref(),
                        limit: CANDIDATES.max(limit) * 2,
                        candidates: CANDIDATES.max(limit),
                        mode,
                        fusion: FUSION,
                        bm25: Bm25Params::default(),
                    },
                );
                let evidence = Evidence::of(&segments, &analyzer, &asked, &hits);
                (hits, evidence)
            }
        })
        .await
        .map_err(|e| RetrievalError::Stopped(e.to_string()))?;
        hits.truncate(limit);
        let mut evidence = evidence;
        if let Some(reranker) = &self.reranker {
            let texts: Vec<String> = hits
                .iter()
                .take(RELEVANCE_PASSAGES)
                .map(|h| {
                    let c = &segments[h.segment].chunks[h.chunk];
                    chunking::embedding_text(&chunking::context(c.title.as_deref(), &c.heading_path), &c.text)
                })
                .collect();
            if !texts.is_empty() {
                match reranker.score(question, texts).await {
                    Ok(scores) => evidence.relevance = scores.into_iter().reduce(f32::max),
                    Err(e) => tracing::warn!(error = %e, "the cross-encoder failed; the gate decides without it"),
                }
            }
        }
        let best_similarity = evidence.similarity;
        let hits_empty = hits.is_empty();
        let passages = hits
            .into_iter()
            .map(|h| Passage {
                meta: segments[h.segment].chunks[h.chunk].clone(),
                score: h.score,
                bm25: h.bm25,
                vector: h.vector,
            })
            .collect();
        let answerability = self.gate.probability(&evidence);
        let answerable = !hits_empty && self.gate.answers(&evidence) && evidence.similarity >= self.min_relevance;
        Ok(Retrieved {
            passages,
            best_similarity,
            evidence,
            answerability,
            answerable,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::retrieval::models::HashEmbedder;

    /// A cross-encoder that likes passages mentioning refunds.
    struct Likes(&'static str);

    #[async_trait]
    impl Rerank for Likes {
        async fn score(&self, _question: &str, passages: Vec<String>) -> Result<Vec<f32>, String> {
            Ok(passages
                .iter()
                .map(|p| if p.contains(self.0) { 5.0 } else { -5.0 })
                .collect())
        }
    }

    fn chunk(source_id: Uuid, ordinal: i32, text: &str) -> ChunkMeta {
        ChunkMeta {
            id: Uuid::now_v7(),
            source_id,
            doc_key: "handbook".into(),
            ordinal,
            heading_path: String::new(),
            text: text.into(),
            page: None,
            url: None,
            title: Some("Handbook".into()),
        }
    }

    fn handbook(reranker: Option<Arc<dyn Rerank>>) -> (Retriever, Vec<Arc<Segment>>) {
        let embedder = HashEmbedder::new(256);
        let analyzer = Analyzer::default();
        let source = Uuid::now_v7();
        let texts = [
            "Refunds are paid within 14 days of the return reaching our warehouse.",
            "Shipping to Europe takes three to five working days.",
            "The warranty covers manufacturing defects for two years.",
        ];
        let items = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (chunk(source, i as i32, t), embedder.vector(t)))
            .collect();
        let segment = Arc::new(Segment::build(source, 1, &analyzer, items));
        let retriever = Retriever::new(
            Store::new(sea_orm::DatabaseConnection::default()),
            IndexCache::new(1 << 20),
            Arc::new(embedder),
            reranker,
            Gate::DEFAULT,
            0.0,
        );
        (retriever, vec![segment])
    }

    fn spec<'a>(question: &'a str, context: Option<&'a str>) -> SearchSpec<'a> {
        SearchSpec {
            question,
            context,
            sources: None,
            limit: 3,
            mode: Mode::Hybrid,
        }
    }

    #[tokio::test]
    async fn both_retrievers_find_the_passage_and_the_models_are_asked() {
        let (retriever, segments) = handbook(Some(Arc::new(Likes("Refunds"))));
        let found = retriever
            .retrieve_in(segments.clone(), spec("When are refunds paid?", None))
            .await
            .unwrap();
        let best = &found.passages[0];
        assert!(best.text.starts_with("Refunds"), "{}", best.text);
        assert!(best.bm25.is_some() && best.vector.is_some(), "found by both retrievers");
        assert!(found.evidence.similarity > 0.3, "{:?}", found.evidence);
        assert_eq!(
            found.evidence.relevance,
            Some(5.0),
            "the cross-encoder read the best passages"
        );

        // Without a cross-encoder the gate decides on the rest of the evidence.
        let (plain, _) = handbook(None);
        let found = plain
            .retrieve_in(segments.clone(), spec("When are refunds paid?", None))
            .await
            .unwrap();
        assert_eq!(found.evidence.relevance, None);

        // A follow-up without words of its own leans on the question before it.
        let found = plain
            .retrieve_in(segments, spec("and how long?", Some("Shipping to Europe")))
            .await
            .unwrap();
        assert!(
            found.passages[0].text.starts_with("Shipping"),
            "{}",
            found.passages[0].text
        );
    }

    #[tokio::test]
    async fn the_deterministic_embedder_is_deterministic() {
        let embedder = HashEmbedder::new(64);
        let a = embedder
            .embed(vec!["refund policy".into(), "refund policy".into()])
            .await
            .unwrap();
        assert_eq!(a[0], a[1]);
        let norm: f32 = a[0].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(embedder.vector(""), vec![0.0; 64], "no words, no direction");
    }
}
