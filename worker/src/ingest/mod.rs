//! Knowledge ingestion: fetching, parsing, chunking and embedding sources.

pub mod context;
pub mod crawl;
pub mod embed;
pub mod parse;
pub mod pipeline;
pub mod rerank;
