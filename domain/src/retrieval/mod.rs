//! Retrieval: BM25 over chunk text and cosine similarity over the local
//! embeddings, fused. An index is a set of segments, one per source, so a
//! source that changes is reloaded alone; corpus statistics (document count,
//! average length, document frequencies) are summed across segments at query
//! time, which keeps BM25 exact for the whole bot.

pub mod analyzer;
pub mod answerable;
pub mod cache;
pub mod eval;
pub mod index;
pub mod models;
pub mod retriever;

pub use analyzer::Analyzer;
pub use answerable::{Evidence, Gate};
pub use cache::{CacheStats, IndexCache};
pub use index::{Bm25Params, ChunkMeta, Fusion, Hit, Mode, Query, Ranked, Segment, search};
pub use models::{Embed, HashEmbedder, Rerank};
pub use retriever::{FUSION, Passage, RetrievalError, Retrieved, Retriever, SearchSpec};
