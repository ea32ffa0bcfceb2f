//! A cross-encoder (ms-marco-MiniLM-L-12-v2, int8 ONNX) that reads a question
//! and a passage together and scores how well the passage answers it. Unlike
//! the bi-encoder's cosine it sees both texts at once, so "what's the capital
//! of Australia" and a page about schemas score far apart even when they share
//! words. Loaded from disk (see `scripts/setup-models`), run through fastembed
//! and ONNX Runtime on blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use fastembed::{RerankInitOptionsUserDefined, TextRerank, TokenizerFiles, UserDefinedRerankingModel};

use super::embed::{Arena, ModelDir};

pub const MODEL_DIR: &str = "ms-marco-minilm-l12-v2";
/// Word pieces read of a question and passage together: a chunk is at most
/// 256, and its opening decides most of the score.
pub const MAX_LENGTH: usize = 256;

struct Loaded {
    model: Mutex<TextRerank>,
}

/// The cross-encoder, loaded on first use and shared by every request.
pub struct Reranker {
    models_dir: PathBuf,
    threads: usize,
    arena: Arena,
    loaded: Arc<OnceLock<Result<Arc<Loaded>, String>>>,
}

impl Reranker {
    pub fn new(models_dir: PathBuf, threads: usize, arena: Arena) -> Self {
        Reranker {
            models_dir,
            threads,
            arena,
            loaded: Arc::new(OnceLock::new()),
        }
    }

    /// Whether the model's files are installed.
    pub fn installed(models_dir: &Path) -> bool {
        models_dir.join(MODEL_DIR).join("model.onnx").exists()
    }

    fn load(models_dir: &Path, threads: usize, arena: Arena) -> Result<Loaded, String> {
        let (dir, environment) = ModelDir::open(models_dir, MODEL_DIR, "the answer-checking model")?;
        let read = |name: &str| dir.read(name);
        let files = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            // The model's config says nothing the tokenizer needs (its
            // padding token is named in tokenizer_config.json).
            config_file: b"{}".to_vec(),
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let model = UserDefinedRerankingModel::new(read("model.onnx")?, files);
        let options = RerankInitOptionsUserDefined::new()
            .with_environment(environment)
            .with_execution_providers(super::embed::execution_providers(arena))
            .with_max_length(MAX_LENGTH)
            .with_intra_threads(threads.max(1));
        let model = TextRerank::try_new_from_user_defined(model, options)
            .map_err(|e| format!("cannot load the answer-checking model: {e}"))?;
        Ok(Loaded {
            model: Mutex::new(model),
        })
    }

    /// The model's logit for each passage as an answer to `question`, in the
    /// passages' order (higher: a better answer; around 0: undecided).
    pub async fn score(&self, question: &str, passages: Vec<String>) -> Result<Vec<f32>, String> {
        if passages.is_empty() {
            return Ok(vec![]);
        }
        let (loaded, dir, threads, arena) = (self.loaded.clone(), self.models_dir.clone(), self.threads, self.arena);
        let question = question.to_owned();
        tokio::task::spawn_blocking(move || {
            let loaded = loaded
                .get_or_init(|| Self::load(&dir, threads, arena).map(Arc::new))
                .clone()?;
            let mut model = loaded.model.lock().unwrap_or_else(PoisonError::into_inner);
            let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
            let ranked = model
                .rerank(question.as_str(), refs, false, Some(passages.len()))
                .map_err(|e| format!("answer checking failed: {e}"))?;
            let mut scores = vec![0.0; passages.len()];
            for r in ranked {
                scores[r.index] = r.score;
            }
            Ok(scores)
        })
        .await
        .map_err(|e| format!("answer checking failed: {e}"))?
    }
}

/// The local cross-encoder as retrieval's reranker.
#[async_trait::async_trait]
impl parley_domain::retrieval::Rerank for Reranker {
    async fn score(&self, question: &str, passages: Vec<String>) -> Result<Vec<f32>, String> {
        Reranker::score(self, question, passages).await
    }
}
