//! Grounded chat: the retrieval query built from the conversation, hybrid
//! search over the bot's knowledge, an answer provider, and the events that
//! record every turn. Generation runs in its own task, so an answer is
//! finished and stored even when the client leaves mid-stream.

pub mod extractive;
pub mod openai;
pub mod provider;
pub mod turn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_domain::aggregates::bot::BotSettings;
use parley_domain::aggregates::conversation::{
    AnswerFailed, Answered, Citation, Conversation, ConversationCommand, Status, Turn, Usage, asks_for_person,
};
use parley_domain::retrieval::{Analyzer, Embed, Gate, IndexCache, Mode, Rerank, Retriever};
use parley_domain::store::Execute;
use parley_domain::{ErrorCode, Metadata, Store};
use parley_worker::ingest::embed::Embedder;
use parley_worker::ingest::rerank::Reranker;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use parley_domain::retrieval::{Passage, Retrieved, SearchSpec};
pub use provider::{AnswerProvider, AnswerRequest, Generated, ProviderError};

use crate::config::Settings;
use crate::error::ApiError;

/// Passages scoring under this share of the best one are not used.
const RELATIVE_FLOOR: f32 = 0.5;
/// Characters of a passage shown as a source's snippet.
const SNIPPET_CHARS: usize = 240;
/// What a chat turn reports, in order: text pieces, then the sources, then
/// the end (or an error).
#[derive(Debug, Clone)]
pub enum ChatEvent {
    Delta(String),
    Sources(Vec<Citation>),
    /// The answer is stored; `escalated` when the conversation now waits for a person.
    Done {
        answered: Box<Answered>,
        escalated: bool,
    },
    /// The conversation is with a person: the message waits for their reply.
    Waiting,
    Failed(Box<AnswerFailed>),
}

/// How a turn ended.
enum Outcome {
    Answered(Answered, bool),
    Waiting,
}

pub struct ChatEngine {
    store: Store,
    /// Search, with model instances of its own, so questions never wait
    /// behind ingestion.
    retriever: Retriever,
    extractive: extractive::Extractive,
    openai: openai::OpenAi,
    fallback: String,
    passages: usize,
    handoff: String,
    /// Fallback answers in a row that hand the conversation to a person (0: never).
    escalate_after: u32,
}

/// One chat turn to run.
pub struct ChatTurn {
    pub org_id: Uuid,
    pub bot_id: Uuid,
    pub bot: BotSettings,
    pub conversation_id: Uuid,
    pub user_message_id: Uuid,
    pub question: String,
    pub system: Option<String>,
    pub language: Option<String>,
    /// Turns before this question (for follow-ups and prompts).
    pub history: Vec<Turn>,
    pub metadata: Metadata,
    /// Whether a person has the conversation (the bot then stays quiet).
    pub escalated: bool,
    /// The id the bot's answer will have (streamed events carry it).
    pub answer_id: Uuid,
    /// What to say instead of the usual hand-off answer (nobody can answer now).
    pub handoff: Option<String>,
}

fn snippet(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= SNIPPET_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(SNIPPET_CHARS).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    cut.push('…');
    cut
}

pub fn citation(p: &Passage) -> Citation {
    Citation {
        chunk_id: p.id,
        source_id: p.source_id,
        title: p.title.clone(),
        url: p.url.clone(),
        doc_key: p.doc_key.clone(),
        heading_path: p.heading_path.clone(),
        page: p.page,
        score: p.score,
        snippet: snippet(&p.text),
    }
}

impl ChatEngine {
    pub fn new(store: Store, settings: &Settings) -> Self {
        // Two threads: a question and a dozen sentences are one small batch.
        let embedder: Arc<dyn Embed> = Arc::new(Embedder::new(settings.models_dir.clone().into(), 2, settings.arena()));
        // The cross-encoder that reads the question with the best passages,
        // when installed (the gate weighs the rest without it).
        let reranker = Reranker::installed(std::path::Path::new(&settings.models_dir)).then(|| {
            Arc::new(Reranker::new(settings.models_dir.clone().into(), 2, settings.arena())) as Arc<dyn Rerank>
        });
        let gate = Gate {
            threshold: settings.chat_min_answerability,
            ..Gate::DEFAULT
        };
        ChatEngine {
            retriever: Retriever::new(
                store.clone(),
                IndexCache::new(settings.index_cache_mb << 20),
                embedder.clone(),
                reranker,
                gate,
                settings.chat_min_relevance,
            ),
            store,
            extractive: extractive::Extractive { embedder },
            openai: openai::OpenAi {
                client: reqwest::Client::new(),
                base_url: settings.openai_base_url.clone(),
                api_key: settings.openai_api_key.clone(),
                default_model: settings.openai_model.clone(),
                timeout: Duration::from_secs(settings.openai_timeout_secs),
                idle_timeout: Duration::from_secs(settings.openai_idle_timeout_secs),
            },
            handoff: settings.chat_handoff_message.clone(),
            escalate_after: settings.escalate_after_unanswered,
            fallback: settings.chat_fallback_message.clone(),
            passages: settings.chat_passages,
        }
    }

    /// The search index cache's size and counts (for `/metrics`).
    pub fn index_stats(&self) -> parley_domain::retrieval::CacheStats {
        self.retriever.cache_stats()
    }

    pub fn analyzer(&self) -> &Analyzer {
        self.retriever.analyzer()
    }

    /// Unit vectors of texts, from the API's own model instance.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ApiError> {
        Ok(self.retriever.embed(texts).await?)
    }

    /// Searches a bot's live sources.
    pub async fn retrieve(&self, org_id: Uuid, bot_id: Uuid, spec: SearchSpec<'_>) -> Result<Retrieved, ApiError> {
        Ok(self.retriever.retrieve(org_id, bot_id, spec).await?)
    }

    /// Runs one turn in its own task; events arrive on the returned channel.
    /// The answer (or the failure) is appended to the conversation whether or
    /// not anyone still listens.
    pub fn start(self: &Arc<Self>, turn: ChatTurn) -> mpsc::Receiver<ChatEvent> {
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            let reply = engine.run(&turn, &tx).await;
            let event = match reply {
                Ok(Outcome::Answered(answered, escalated)) => ChatEvent::Done {
                    answered: Box::new(answered),
                    escalated,
                },
                Ok(Outcome::Waiting) => ChatEvent::Waiting,
                Err(failed) => ChatEvent::Failed(Box::new(failed)),
            };
            let _ = tx.send(event).await;
        });
        rx
    }

    async fn run(&self, turn: &ChatTurn, tx: &mpsc::Sender<ChatEvent>) -> Result<Outcome, AnswerFailed> {
        if turn.escalated {
            return Ok(Outcome::Waiting);
        }
        let message_id = turn.answer_id;
        let provider: &dyn AnswerProvider = match turn.bot.model.provider.as_str() {
            "openai" => &self.openai,
            _ => &self.extractive,
        };
        let fail = |code: ErrorCode, reason: String, partial: String| AnswerFailed {
            conversation_id: turn.conversation_id,
            message_id,
            reply_to: turn.user_message_id,
            provider: provider.name().to_owned(),
            code,
            reason,
            partial_text: partial,
        };
        let context = turn
            .history
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.text.clone());
        let person = asks_for_person(&turn.question);
        let outcome = if person {
            let handoff = turn.handoff.clone().unwrap_or_else(|| self.handoff.clone());
            let _ = tx.send(ChatEvent::Delta(handoff.clone())).await;
            let _ = tx.send(ChatEvent::Sources(vec![])).await;
            Ok(Answered {
                conversation_id: turn.conversation_id,
                message_id,
                reply_to: turn.user_message_id,
                text: handoff,
                sources: vec![],
                provider: "handoff".into(),
                model: None,
                unanswered: false,
                status: "complete".into(),
                usage: Usage::default(),
            })
        } else {
            let retrieved = self
                .retrieve(
                    turn.org_id,
                    turn.bot_id,
                    SearchSpec {
                        question: &turn.question,
                        context: context.as_deref(),
                        sources: None,
                        limit: self.passages,
                        mode: Mode::Hybrid,
                    },
                )
                .await;
            match retrieved {
                Err(e) => Err(fail(e.error_code(), e.body().error.message.clone(), String::new())),
                Ok(retrieved) => self.answer(turn, provider, retrieved, message_id, tx, &fail).await,
            }
        };
        let command = match &outcome {
            Ok(answered) => ConversationCommand::Answer {
                answer: Box::new(answered.clone()),
                escalate_after_unanswered: self.escalate_after,
            },
            Err(failed) => ConversationCommand::Fail(failed.clone()),
        };
        let recorded = self
            .store
            .execute::<Conversation>(Execute {
                org_id: turn.org_id,
                stream_id: turn.conversation_id,
                expected_version: None,
                command,
                metadata: turn.metadata.clone(),
                idempotency: None,
            })
            .await;
        let state = match recorded {
            Ok(executed) => executed.state,
            Err(e) => {
                tracing::error!(error = %e, conversation_id = %turn.conversation_id, "could not store the answer");
                return Err(fail(
                    ErrorCode::Internal,
                    "the answer could not be stored".into(),
                    String::new(),
                ));
            }
        };
        let answered = outcome?;
        // The same append handed the conversation to a person when the rule says so.
        Ok(Outcome::Answered(answered, state.status == Status::Escalated))
    }

    async fn answer(
        &self,
        turn: &ChatTurn,
        provider: &dyn AnswerProvider,
        retrieved: Retrieved,
        message_id: Uuid,
        tx: &mpsc::Sender<ChatEvent>,
        fail: &(dyn Fn(ErrorCode, String, String) -> AnswerFailed + Sync),
    ) -> Result<Answered, AnswerFailed> {
        let started = Instant::now();
        let retrieval_ms = retrieved.elapsed.as_millis() as u32;
        let answered =
            |text: String, sources: Vec<Citation>, provider: &str, model, unanswered, usage: Usage| Answered {
                conversation_id: turn.conversation_id,
                message_id,
                reply_to: turn.user_message_id,
                text,
                sources,
                provider: provider.to_owned(),
                model,
                unanswered,
                status: "complete".into(),
                usage,
            };
        let fallback = || async {
            let text = self.fallback.clone();
            let _ = tx.send(ChatEvent::Delta(text.clone())).await;
            let _ = tx.send(ChatEvent::Sources(vec![])).await;
            let usage = Usage {
                retrieval_ms,
                generation_ms: started.elapsed().as_millis() as u32,
                ..Usage::default()
            };
            Ok(answered(text, vec![], "fallback", None, true, usage))
        };
        if !retrieved.answerable {
            return fallback().await;
        }
        // Passages far weaker than the best one would only distract.
        let best = retrieved.passages.first().map_or(0.0, |p| p.score);
        let passages: Vec<Passage> = retrieved
            .passages
            .into_iter()
            .filter(|p| p.score >= best * RELATIVE_FLOOR)
            .collect();
        let request = AnswerRequest {
            persona: turn.bot.persona.clone(),
            system: turn.system.clone(),
            language: turn.language.clone(),
            question: turn.question.clone(),
            history: turn.history.clone(),
            passages,
            model: turn.bot.model.model.clone(),
            temperature: turn.bot.model.temperature,
            max_tokens: turn.bot.model.max_tokens,
            analyzer: self.retriever.analyzer().clone(),
        };
        let (piece_tx, mut piece_rx) = mpsc::channel::<String>(256);
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(piece) = piece_rx.recv().await {
                    let _ = tx.send(ChatEvent::Delta(piece)).await;
                }
            })
        };
        let generated = provider.answer(&request, &piece_tx).await;
        drop(piece_tx);
        let _ = forward.await;
        let generated = generated.map_err(|e| fail(ErrorCode::ProviderFailed, e.message, e.partial))?;
        if generated.text.trim().is_empty() {
            // Nothing usable came back: never an empty answer.
            return fallback().await;
        }
        let sources: Vec<Citation> = generated
            .cited
            .iter()
            .filter_map(|i| request.passages.get(*i))
            .map(citation)
            .collect();
        let _ = tx.send(ChatEvent::Sources(sources.clone())).await;
        let usage = Usage {
            prompt_tokens: generated.prompt_tokens,
            completion_tokens: generated.completion_tokens,
            retrieval_ms,
            generation_ms: started.elapsed().as_millis() as u32,
        };
        Ok(answered(
            generated.text,
            sources,
            provider.name(),
            generated.model,
            false,
            usage,
        ))
    }
}
