//! What an answer provider is given and gives back: the extractive answerer
//! and the OpenAI-compatible one implement the same trait.

use async_trait::async_trait;
use std::sync::Arc;

use parley_domain::aggregates::conversation::Turn;
use parley_domain::retrieval::{Analyzer, Passage};
use tokio::sync::mpsc;

/// What a provider gets.
pub struct AnswerRequest {
    pub persona: String,
    /// `system` text sent with the message, appended to the persona.
    pub system: Option<String>,
    pub language: Option<String>,
    pub question: String,
    /// Earlier turns, oldest first.
    pub history: Vec<Turn>,
    pub passages: Vec<Passage>,
    pub model: Option<String>,
    pub temperature: f64,
    pub max_tokens: u32,
    pub analyzer: Arc<Analyzer>,
}

/// What a provider produced.
pub struct Generated {
    pub text: String,
    /// Indexes into the request's passages, in marker order (`[1]` first).
    pub cited: Vec<usize>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub model: Option<String>,
}

#[derive(Debug)]
pub struct ProviderError {
    pub message: String,
    /// Text generated before the failure.
    pub partial: String,
}

/// Generates an answer, sending text pieces to `out` as they are written.
#[async_trait]
pub trait AnswerProvider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn answer(&self, req: &AnswerRequest, out: &mpsc::Sender<String>) -> Result<Generated, ProviderError>;
}
