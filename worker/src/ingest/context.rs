//! What ingestion runs with: its settings, the parser sandbox and the
//! embedder, shared by the pipeline's steps and the crawler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spider::reqwest;

use super::embed::{Arena, Embedder};
use super::parse;
use crate::net::{self, NetPolicy};

/// What ingestion may do.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub net: NetPolicy,
    pub models_dir: PathBuf,
    /// Largest page or file downloaded.
    pub max_download_bytes: usize,
    pub fetch_timeout: Duration,
    pub parse_timeout: Duration,
    /// The child process documents are parsed in (`None`: on a thread of
    /// this process, for tests of the parsers).
    pub parse_sandbox: Option<Arc<parse::Sandbox>>,
    pub embed_threads: usize,
    /// Whether the embedding model keeps ONNX Runtime's memory arena.
    pub model_arena: Arena,
    /// Pause between two requests of one crawl.
    pub crawl_delay: Duration,
    /// Requests of one crawl in flight at once (per host).
    pub crawl_concurrency: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            net: NetPolicy::default(),
            models_dir: PathBuf::from(".parley/models"),
            max_download_bytes: 25 << 20,
            fetch_timeout: Duration::from_secs(30),
            parse_timeout: Duration::from_secs(60),
            parse_sandbox: None,
            embed_threads: 2,
            model_arena: Arena::default(),
            crawl_delay: Duration::from_millis(100),
            crawl_concurrency: 2,
        }
    }
}

/// Shared by the ingestion jobs of a process.
pub struct Ingest {
    pub settings: IngestSettings,
    pub client: reqwest::Client,
    pub embedder: Arc<Embedder>,
}

impl Ingest {
    pub fn new(settings: IngestSettings) -> anyhow::Result<Self> {
        let client = net::http_client(&settings.net, settings.fetch_timeout)?;
        let embedder = Arc::new(Embedder::new(
            settings.models_dir.clone(),
            settings.embed_threads,
            settings.model_arena,
        ));
        Ok(Ingest {
            settings,
            client,
            embedder,
        })
    }
}
