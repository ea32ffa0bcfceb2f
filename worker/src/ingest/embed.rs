//! Local embeddings: all-MiniLM-L6-v2 (int8 ONNX) through fastembed and ONNX
//! Runtime, both loaded from disk (see `scripts/setup-models`). Inference runs
//! on blocking threads, never on the async executor, in small batches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use parley_domain::chunking::TokenCounter;
use tokenizers::Tokenizer;

pub const MODEL_DIR: &str = "all-minilm-l6-v2";
pub const DIMENSION: usize = 384;
/// The model reads at most this many word pieces, special tokens included.
pub const MAX_LENGTH: usize = 256;
/// Measured on 2 cores: batches of 8-16 are fastest and use 0.5-0.9 GB.
pub const BATCH: usize = 16;

/// ONNX Runtime allows one environment per process, ever.
static ORT_ENV: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn ort_environment(dylib: &Path) -> Result<ort::environment::Environment, String> {
    let mut slot = ORT_ENV.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let env = ort::init_from(dylib)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", dylib.display()))?
        .with_name("parley")
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
    *slot = Some(env.clone());
    Ok(env)
}

/// Whether model sessions keep ONNX Runtime's memory arena
/// (`PARLEY_MODEL_ARENA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arena {
    /// Memory goes back after each batch. Measured with one `parley serve`
    /// (three model sessions) after indexing 400 KB and six answers: about
    /// 0.5-0.7 GB resident instead of 1.0-1.1 GB, for about 30 % fewer
    /// chunks embedded per second.
    #[default]
    Off,
    /// Each session keeps, for its life, what its largest batch asked for
    /// (bounded by `BATCH` and `MAX_LENGTH`) and reuses it.
    Kept,
}

/// The CPU execution provider, with or without the arena.
pub(crate) fn execution_providers(arena: Arena) -> Vec<ort::ep::ExecutionProviderDispatch> {
    vec![
        ort::ep::CPU::default()
            .with_arena_allocator(arena == Arena::Kept)
            .build(),
    ]
}

/// A model's folder under the models folder, with ONNX Runtime loaded.
pub(crate) struct ModelDir {
    pub path: PathBuf,
}

impl ModelDir {
    /// Checks that `<models_dir>/<name>/model.onnx` and ONNX Runtime are
    /// installed (`what` names the model in the error) and starts the runtime.
    pub fn open(
        models_dir: &Path,
        name: &str,
        what: &str,
    ) -> Result<(ModelDir, ort::environment::Environment), String> {
        let dylib = models_dir.join("onnxruntime").join("libonnxruntime.so");
        let path = models_dir.join(name);
        if !dylib.exists() || !path.join("model.onnx").exists() {
            return Err(format!(
                "{what} is not installed in {}: run scripts/setup-models",
                models_dir.display()
            ));
        }
        Ok((ModelDir { path }, ort_environment(&dylib)?))
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.path.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    }
}

/// Counts word pieces with the model's own tokenizer (no padding, no truncation).
pub struct WordPieceCounter {
    tokenizer: Tokenizer,
}

impl WordPieceCounter {
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| format!("cannot read tokenizer {}: {e}", path.display()))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| format!("tokenizer: {e}"))?;
        Ok(WordPieceCounter { tokenizer })
    }
}

impl TokenCounter for WordPieceCounter {
    fn count(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }
}

/// The loaded model and its tokenizer.
pub struct MiniLm {
    model: Mutex<TextEmbedding>,
    pub counter: WordPieceCounter,
}

impl MiniLm {
    /// Loads from `<models_dir>/all-minilm-l6-v2` and `<models_dir>/onnxruntime`.
    pub fn load(models_dir: &Path, threads: usize, arena: Arena) -> Result<Self, String> {
        let (dir, environment) = ModelDir::open(models_dir, MODEL_DIR, "the embedding model")?;
        let read = |name: &str| dir.read(name);
        let files = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        // Mean pooling: fastembed's default (CLS) is wrong for this model.
        let model = UserDefinedEmbeddingModel::new(read("model.onnx")?, files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_execution_providers(execution_providers(arena))
            .with_max_length(MAX_LENGTH)
            .with_intra_threads(threads.max(1));
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| format!("cannot load the model: {e}"))?;
        let counter = WordPieceCounter::from_file(&dir.path.join("tokenizer.json"))?;
        Ok(MiniLm {
            model: Mutex::new(model),
            counter,
        })
    }

    /// L2-normalised vectors, one per text, in order. Blocking.
    pub fn embed_blocking(&self, texts: &[String], batch: usize) -> Result<Vec<Vec<f32>>, String> {
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        model
            .embed(texts, Some(batch.max(1)))
            .map_err(|e| format!("embedding failed: {e}"))
    }
}

/// The model, loaded on first use and shared by every job of the process.
pub struct Embedder {
    models_dir: PathBuf,
    threads: usize,
    arena: Arena,
    loaded: Arc<OnceLock<Result<Arc<MiniLm>, String>>>,
}

impl Embedder {
    pub fn new(models_dir: PathBuf, threads: usize, arena: Arena) -> Self {
        Embedder {
            models_dir,
            threads,
            arena,
            loaded: Arc::new(OnceLock::new()),
        }
    }

    /// The model, loading it (on a blocking thread) the first time.
    pub async fn model(&self) -> Result<Arc<MiniLm>, String> {
        if let Some(loaded) = self.loaded.get() {
            return loaded.clone();
        }
        let (loaded, dir, threads, arena) = (self.loaded.clone(), self.models_dir.clone(), self.threads, self.arena);
        tokio::task::spawn_blocking(move || {
            loaded
                .get_or_init(|| MiniLm::load(&dir, threads, arena).map(Arc::new))
                .clone()
        })
        .await
        .map_err(|e| format!("loading the model failed: {e}"))?
    }

    /// Embeds on a blocking thread.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        let model = self.model().await?;
        tokio::task::spawn_blocking(move || model.embed_blocking(&texts, BATCH))
            .await
            .map_err(|e| format!("embedding failed: {e}"))?
    }
}

/// The local model as retrieval's embedder.
#[async_trait::async_trait]
impl parley_domain::retrieval::Embed for Embedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        Embedder::embed(self, texts).await
    }
}
