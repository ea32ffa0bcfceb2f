//! `/api/v1/bots/{id}/chat` (answers, streamed or whole), the retrieval debug
//! search, and reading conversations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use parley_domain::aggregates::bot::{Bot as BotAggregate, BotSettings};
use parley_domain::aggregates::conversation::{
    AnswerFailed, Answered, Citation, Conversation, ConversationCommand, Status, TagChange,
};
use parley_domain::retrieval::Mode;
use parley_domain::store::entities::{conversations, messages};
use parley_domain::store::{Execute, StoreError};
use parley_domain::{Actor, DomainError, ErrorCode, Metadata, read};
use poem::web::Data;
use poem::web::sse::{Event as SseEvent, SSE};
use poem::{IntoResponse, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{ApiTags, live, live_bot};
use crate::auth::ApiKeyAuth;
use crate::chat::{ChatEvent, ChatTurn, SearchSpec, citation};
use crate::error::{ApiError, ErrorDetail};
use crate::middleware::RequestId;
use crate::state::{AppState, StreamSlot};
use crate::types::Text;

pub struct ChatApi {
    pub state: Option<AppState>,
}

/// Hand-off: escalate, reply as a person, close, reopen.
pub struct HandoffApi {
    pub state: Option<AppState>,
}

/// Largest `metadata` object, as JSON bytes.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// One turn of `messages`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ChatMessageIn {
    /// `user`, `assistant` or `system`.
    pub role: Text,
    /// The turn's text.
    pub content: Text,
}

/// A visitor's message to a bot.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ChatRequest {
    /// The visitor's message (give this or `messages`). Empty: 400; over
    /// 10,000 characters: 422.
    pub message: Option<Text>,
    /// Turns with roles `user`, `assistant` and `system`; the last `user` turn
    /// is the question, earlier turns are context, `system` text is appended
    /// to the bot's persona.
    pub messages: Option<Vec<ChatMessageIn>>,
    /// Continue this conversation; absent, a new one starts.
    pub conversation_id: Option<Uuid>,
    /// Your identifier of the visitor, up to 255 characters.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub visitor_id: Option<Text>,
    /// Stream the answer as server-sent events; absent, the bot's `streaming` setting decides.
    pub stream: Option<bool>,
    /// Language tag to answer in, e.g. `en` or `pt-BR`.
    #[oai(validator(min_length = 2, max_length = 35))]
    pub language: Option<Text>,
    /// Any JSON object, stored with the visitor's message (up to 16 KB).
    pub metadata: Option<Value>,
}

/// A cited passage; `[n]` in the answer is the n-th source.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Source {
    /// The passage (chunk).
    pub chunk_id: Uuid,
    /// The knowledge source it belongs to.
    pub source_id: Uuid,
    /// The document's title.
    pub title: Option<String>,
    /// The page's URL (web sources).
    pub url: Option<String>,
    /// The document within the source (URL or file name).
    pub document: String,
    /// Headings above the passage, `A > B`.
    pub heading_path: String,
    /// Page number (PDF).
    pub page: Option<i32>,
    /// Retrieval score (fused).
    pub score: f32,
    /// The start of the passage.
    pub snippet: String,
}

impl From<Citation> for Source {
    fn from(c: Citation) -> Self {
        Source {
            chunk_id: c.chunk_id,
            source_id: c.source_id,
            title: c.title,
            url: c.url,
            document: c.doc_key,
            heading_path: c.heading_path,
            page: c.page,
            score: c.score,
            snippet: c.snippet,
        }
    }
}

/// Tokens and timings of an answer.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatUsage {
    /// Prompt tokens as the provider counted them (0 for the extractive provider).
    pub prompt_tokens: u32,
    /// Answer tokens as the provider counted them (words for the extractive provider).
    pub completion_tokens: u32,
    /// Time spent retrieving passages, in milliseconds.
    pub retrieval_ms: u32,
    /// Time spent writing the answer, in milliseconds.
    pub generation_ms: u32,
}

/// A whole answer (`stream: false`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatReply {
    /// The conversation (new or continued).
    pub conversation_id: Uuid,
    /// The visitor's message as stored.
    pub user_message_id: Uuid,
    /// The bot's answer message (absent while a person has the conversation).
    pub message_id: Option<Uuid>,
    /// The answer, with citation markers `[1]`, `[2]` matching `sources`
    /// (empty while a person has the conversation: the message waits for them).
    pub answer: String,
    /// The passages cited, in marker order.
    pub sources: Vec<Source>,
    /// True when nothing relevant was found and the fallback answer was given.
    pub unanswered: bool,
    /// Set with `unanswered`: the visitor may be offered a person.
    pub handoff_offered: bool,
    /// A person has the conversation (the visitor asked for one, the bot could
    /// not help several times in a row, or it was escalated through the API);
    /// the bot stays quiet until it is closed.
    pub escalated: bool,
    /// `extractive`, `openai`, `fallback` (nothing relevant was found),
    /// `handoff` (the visitor asked for a person) or `human` (a person has
    /// the conversation: no answer from the bot).
    pub provider: String,
    /// Model used by the `openai` provider.
    pub model: Option<String>,
    /// Tokens and timings.
    pub usage: ChatUsage,
}

/// Kinds of streamed events (also the SSE `event:` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ChatEventType {
    /// A piece of the answer's text.
    Delta,
    /// The cited passages, in marker order.
    Sources,
    /// The answer is complete and stored.
    Done,
    /// The answer failed; it is stored as a failed message.
    Error,
}

/// The error of an `error` event.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatError {
    /// Stable code, e.g. `PROVIDER_FAILED`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// One server-sent event of a streamed answer (`stream: true`). Each has an
/// SSE `event:` name equal to `type` and this JSON as `data:`; the stream
/// ends with `data: [DONE]`. Comments (`:`) are heartbeats.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatStreamEvent {
    /// `delta`, `sources`, `done` or `error` (also the SSE `event:` name).
    #[oai(rename = "type")]
    pub event_type: ChatEventType,
    /// The conversation (new or continued).
    pub conversation_id: Uuid,
    /// The bot message being written (absent while a person has the conversation).
    #[oai(skip_serializing_if_is_none)]
    pub message_id: Option<Uuid>,
    /// `delta`: the next piece of text.
    #[oai(skip_serializing_if_is_none)]
    pub text: Option<String>,
    /// `sources`: the cited passages.
    #[oai(skip_serializing_if_is_none)]
    pub sources: Option<Vec<Source>>,
    /// `done`: whether the fallback answer was given.
    #[oai(skip_serializing_if_is_none)]
    pub unanswered: Option<bool>,
    /// `done`: the provider that answered.
    #[oai(skip_serializing_if_is_none)]
    pub provider: Option<String>,
    /// `done`: a person has the conversation.
    #[oai(skip_serializing_if_is_none)]
    pub escalated: Option<bool>,
    /// `done`: the visitor's message, as stored.
    #[oai(skip_serializing_if_is_none)]
    pub user_message_id: Option<Uuid>,
    /// `done`: tokens and timings.
    #[oai(skip_serializing_if_is_none)]
    pub usage: Option<ChatUsage>,
    /// `error`: what failed.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<ChatError>,
}

/// One server-sent event of a streamed answer as it travels: its `event:`
/// line and its `data:` line. Heartbeats are comment lines (`:`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatStreamFrame {
    /// `delta`, `sources`, `done` or `error`; absent on the final frame.
    pub event: Option<String>,
    /// A `ChatStreamEvent` as JSON, whose `type` equals `event`; `[DONE]` on the final frame.
    pub data: String,
}

fn usage_of(u: &parley_domain::aggregates::conversation::Usage) -> ChatUsage {
    ChatUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        retrieval_ms: u.retrieval_ms,
        generation_ms: u.generation_ms,
    }
}

fn reply_of(user_message_id: Uuid, a: Answered, escalated: bool) -> ChatReply {
    ChatReply {
        conversation_id: a.conversation_id,
        user_message_id,
        message_id: Some(a.message_id),
        answer: a.text,
        sources: a.sources.into_iter().map(Source::from).collect(),
        unanswered: a.unanswered,
        handoff_offered: a.unanswered,
        escalated,
        provider: a.provider,
        model: a.model,
        usage: usage_of(&a.usage),
    }
}

/// The reply while a person has the conversation: nothing from the bot.
fn waiting(conversation_id: Uuid, user_message_id: Uuid) -> ChatReply {
    ChatReply {
        conversation_id,
        user_message_id,
        message_id: None,
        answer: String::new(),
        sources: vec![],
        unanswered: false,
        handoff_offered: false,
        escalated: true,
        provider: "human".into(),
        model: None,
        usage: ChatUsage {
            prompt_tokens: 0,
            completion_tokens: 0,
            retrieval_ms: 0,
            generation_ms: 0,
        },
    }
}

/// The chat answer: JSON, or an event stream.
pub enum ChatResponse {
    Whole(ChatReply),
    Stream {
        conversation_id: Uuid,
        /// The visitor's message, as stored.
        user_message_id: Uuid,
        /// The bot's answer, as the events name it.
        message_id: Uuid,
        events: mpsc::Receiver<ChatEvent>,
        heartbeat: Duration,
        /// Held while the stream is open.
        slot: StreamSlot,
        /// The bot hides sources from visitors.
        hide_sources: bool,
    },
}

impl ChatResponse {
    /// The same answer without its sources (a bot that hides them from visitors).
    pub fn without_sources(self) -> ChatResponse {
        match self {
            ChatResponse::Whole(reply) => ChatResponse::Whole(ChatReply {
                sources: vec![],
                ..reply
            }),
            ChatResponse::Stream {
                conversation_id,
                user_message_id,
                message_id,
                events,
                heartbeat,
                slot,
                ..
            } => ChatResponse::Stream {
                conversation_id,
                user_message_id,
                message_id,
                events,
                heartbeat,
                slot,
                hide_sources: true,
            },
        }
    }
}

impl ApiResponse for ChatResponse {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The answer: `application/json` (a ChatReply) when not streaming, \
                    `text/event-stream` when streaming: frames (ChatStreamFrame) whose `data` is a \
                    ChatStreamEvent as JSON, then `data: [DONE]`.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ChatReply::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "text/event-stream",
                        schema: ChatStreamFrame::schema_ref(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ChatReply::register(registry);
        ChatStreamEvent::register(registry);
        ChatStreamFrame::register(registry);
    }
}

fn stream_event(conversation_id: Uuid, message_id: Option<Uuid>, kind: ChatEventType) -> ChatStreamEvent {
    ChatStreamEvent {
        event_type: kind,
        conversation_id,
        message_id,
        text: None,
        sources: None,
        unanswered: None,
        provider: None,
        escalated: None,
        user_message_id: None,
        usage: None,
        error: None,
    }
}

fn to_sse(conversation_id: Uuid, message_id: Uuid, event: ChatEvent) -> ChatStreamEvent {
    match event {
        ChatEvent::Delta(text) => ChatStreamEvent {
            text: Some(text),
            ..stream_event(conversation_id, Some(message_id), ChatEventType::Delta)
        },
        ChatEvent::Sources(sources) => ChatStreamEvent {
            sources: Some(sources.into_iter().map(Source::from).collect()),
            ..stream_event(conversation_id, Some(message_id), ChatEventType::Sources)
        },
        ChatEvent::Done { answered, escalated } => ChatStreamEvent {
            unanswered: Some(answered.unanswered),
            provider: Some(answered.provider.clone()),
            escalated: Some(escalated),
            usage: Some(usage_of(&answered.usage)),
            ..stream_event(conversation_id, Some(answered.message_id), ChatEventType::Done)
        },
        ChatEvent::Waiting => ChatStreamEvent {
            escalated: Some(true),
            provider: Some("human".into()),
            ..stream_event(conversation_id, None, ChatEventType::Done)
        },
        ChatEvent::Failed(f) => ChatStreamEvent {
            error: Some(ChatError {
                code: f.code.as_str().to_owned(),
                message: f.reason.clone(),
            }),
            ..stream_event(conversation_id, Some(f.message_id), ChatEventType::Error)
        },
    }
}

impl IntoResponse for ChatResponse {
    fn into_response(self) -> Response {
        match self {
            ChatResponse::Whole(reply) => Json(reply).into_response(),
            ChatResponse::Stream {
                conversation_id,
                user_message_id,
                message_id,
                events,
                heartbeat,
                slot,
                hide_sources,
            } => {
                let stream = async_stream::stream! {
                    let _slot = slot;
                    let mut events = events;
                    while let Some(event) = events.recv().await {
                        let name = match &event {
                            ChatEvent::Delta(_) => "delta",
                            ChatEvent::Sources(_) => "sources",
                            ChatEvent::Done { .. } | ChatEvent::Waiting => "done",
                            ChatEvent::Failed(_) => "error",
                        };
                        let event = match event {
                            ChatEvent::Sources(_) if hide_sources => ChatEvent::Sources(vec![]),
                            other @ (ChatEvent::Sources(_)
                            | ChatEvent::Delta(_)
                            | ChatEvent::Done { .. }
                            | ChatEvent::Waiting
                            | ChatEvent::Failed(_)) => other,
                        };
                        let mut payload = to_sse(conversation_id, message_id, event);
                        if payload.event_type == ChatEventType::Done {
                            payload.user_message_id = Some(user_message_id);
                        }
                        yield SseEvent::message(payload.to_json_string()).event_type(name);
                    }
                    yield SseEvent::message("[DONE]");
                };
                // poem's SSE response already says `X-Accel-Buffering: no`.
                SSE::new(stream.boxed()).keep_alive(heartbeat).into_response()
            }
        }
    }
}

/// How the debug search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 and vectors, fused (what chat uses).
    Hybrid,
    /// BM25 over chunk text only.
    Bm25,
    /// Vector similarity only.
    Vector,
}

/// A retrieval debug query.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct SearchRequest {
    /// The question, 1 to 2,000 characters.
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub query: Text,
    /// Results to return, 1 to 50 (default 10).
    #[oai(validator(minimum(value = "1"), maximum(value = "50")))]
    pub limit: Option<u32>,
    /// Only these sources.
    #[oai(validator(max_items = 200))]
    pub source_ids: Option<Vec<Uuid>>,
    /// Default `hybrid`.
    pub mode: Option<SearchMode>,
}

/// A retriever's opinion of a result.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RetrieverScore {
    /// 1-based rank in that retriever's list.
    pub rank: u32,
    /// BM25 score, or cosine similarity for vectors.
    pub score: f32,
}

/// One retrieved chunk with its scores.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchResult {
    /// The chunk.
    pub chunk_id: Uuid,
    /// The knowledge source it belongs to.
    pub source_id: Uuid,
    /// The document within the source (URL or file name).
    pub document: String,
    /// The document's title.
    pub title: Option<String>,
    /// The page's URL (web sources).
    pub url: Option<String>,
    /// Headings above the chunk, `A > B`.
    pub heading_path: String,
    /// Page number (PDF).
    pub page: Option<i32>,
    /// The chunk's text.
    pub text: String,
    /// The fused score (reciprocal rank fusion) or the single retriever's score.
    pub score: f32,
    /// Set when BM25 found it.
    pub bm25: Option<RetrieverScore>,
    /// Set when vector search found it.
    pub vector: Option<RetrieverScore>,
    /// Which retrievers found it: `bm25`, `vector`.
    pub found_by: Vec<String>,
}

/// Both retrievers' evidence that the knowledge answers a question.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Answerability {
    /// The probability that the knowledge answers the question, 0 to 1;
    /// the bot answers at `PARLEY_CHAT_MIN_ANSWERABILITY` and above.
    pub probability: f32,
    /// Cosine similarity of the closest passage.
    pub similarity: f32,
    /// Share of the question's term weight (by rarity) that the best three
    /// passages contain.
    pub coverage: f32,
    /// Share of the question's term weight in words the knowledge never uses.
    pub unknown_terms: f32,
    /// How well the best two passages answer the question, read together
    /// with it by the cross-encoder (its logit: above 0 leans yes); absent
    /// when the model is not installed.
    pub relevance: Option<f32>,
}

/// What a question would retrieve.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchResponse {
    /// Best first.
    pub results: Vec<SearchResult>,
    /// Cosine similarity of the closest chunk (also in `answerability`).
    pub best_similarity: f32,
    /// Whether chat would answer from these results (the answerability gate).
    pub relevant: bool,
    /// Why: both retrievers' evidence and the gate's probability.
    pub answerability: Answerability,
    /// Time taken, in milliseconds.
    pub took_ms: f64,
}

/// A message of a conversation.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Message {
    /// The message's id.
    pub id: Uuid,
    /// `user` (the visitor), `assistant` (the bot) or `agent` (a person).
    pub role: String,
    /// The text (for failed answers, what was written before the failure).
    pub text: String,
    /// `complete`, `interrupted` or `failed`.
    pub status: String,
    /// For answers: the visitor message answered.
    pub reply_to: Option<Uuid>,
    /// For answers: `extractive`, `openai`, `fallback` or `handoff`; `human` for a person's reply.
    pub provider: Option<String>,
    /// For answers of the `openai` provider: the model.
    pub model: Option<String>,
    /// For answers: nothing relevant was found.
    pub unanswered: bool,
    /// For answers: the cited passages.
    pub sources: Vec<Source>,
    /// For answers: tokens and timings.
    pub usage: Option<ChatUsage>,
    /// For visitor messages: extra instructions sent with it.
    pub system: Option<String>,
    /// For visitor messages: the language asked for.
    pub language: Option<String>,
    /// For visitor messages: the metadata sent with it.
    pub metadata: Option<Value>,
    /// For failed answers.
    pub error: Option<ChatError>,
    /// For answers: the latest rating.
    pub feedback: Option<Feedback>,
    /// For visitor messages: the files attached to it.
    pub attachments: Vec<super::visitor::AttachmentInfo>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A rating of an answer.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Feedback {
    /// `up` or `down`.
    pub rating: Rating,
    /// The rater's comment.
    pub comment: Option<String>,
}

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Rating {
    /// The answer helped.
    Up,
    /// The answer did not help.
    Down,
}

/// A rating to record.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct FeedbackRequest {
    /// `up` or `down`.
    pub rating: Rating,
    /// Why, up to 2,000 characters.
    pub comment: Option<Text>,
}

/// Ratings of a bot's answers.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FeedbackSummary {
    /// Answers rated up.
    pub up: u64,
    /// Answers rated down.
    pub down: u64,
    /// `up / (up + down)`; absent before the first rating.
    pub ratio: Option<f64>,
}

impl From<messages::Model> for Message {
    fn from(m: messages::Model) -> Self {
        let sources: Vec<Citation> = serde_json::from_value(m.sources).unwrap_or_default();
        let usage = m
            .usage
            .and_then(|u| serde_json::from_value::<parley_domain::aggregates::conversation::Usage>(u).ok())
            .map(|u| usage_of(&u));
        Message {
            id: m.id,
            role: m.role,
            text: m.text,
            status: m.status,
            reply_to: m.reply_to,
            provider: m.provider,
            model: m.model,
            unanswered: m.unanswered,
            sources: sources.into_iter().map(Source::from).collect(),
            usage,
            system: m.system,
            language: m.language,
            metadata: m.metadata,
            error: m.error_code.map(|code| ChatError {
                code,
                message: m.error_message.unwrap_or_default(),
            }),
            feedback: m.feedback.map(|rating| Feedback {
                rating: if rating == "up" { Rating::Up } else { Rating::Down },
                comment: m.feedback_comment,
            }),
            attachments: vec![],
            created_at: m.created_at,
        }
    }
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// The bot answers.
    Open,
    /// A person has it; the bot stays quiet.
    Escalated,
    /// Closed; a visitor message reopens it.
    Closed,
}

impl ConversationStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Escalated => "escalated",
            ConversationStatus::Closed => "closed",
        }
    }
}

/// A conversation between a visitor and a bot.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConversationInfo {
    /// The conversation's id.
    pub id: Uuid,
    /// The bot it is with.
    pub bot_id: Uuid,
    /// Your identifier of the visitor, when given.
    pub visitor_id: Option<String>,
    /// `api` or `widget`.
    pub channel: String,
    /// `open`, `escalated` (a person has it) or `closed`.
    pub status: String,
    /// Messages so far (visitor and bot).
    pub message_count: i64,
    /// Answers that were the fallback ("I don't know").
    pub unanswered_count: i64,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When its last message was stored.
    pub last_message_at: DateTime<Utc>,
}

impl From<conversations::Model> for ConversationInfo {
    fn from(c: conversations::Model) -> Self {
        ConversationInfo {
            id: c.id,
            bot_id: c.bot_id,
            visitor_id: c.visitor_id,
            channel: c.channel,
            status: c.status,
            message_count: c.messages,
            unanswered_count: c.unanswered,
            tags: vec![],
            created_at: c.created_at,
            last_message_at: c.last_message_at,
        }
    }
}

/// A conversation with its messages.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConversationDetail {
    /// The conversation.
    #[oai(flatten)]
    pub conversation: ConversationInfo,
    /// Every message, in order.
    pub messages: Vec<Message>,
}

/// A page of conversations.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConversationList {
    /// Newest first.
    pub items: Vec<ConversationInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

fn bad_request(message: &str, field: &str, detail: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::InvalidRequest,
        message,
        vec![ErrorDetail {
            field: Some(field.to_owned()),
            message: detail.to_owned(),
        }],
    )
}

/// The question, earlier turns and system text from `message` / `messages`.
struct Parsed {
    question: String,
    system: Option<String>,
    history: Vec<parley_domain::aggregates::conversation::Turn>,
}

fn parse_turns(req: &ChatRequest) -> Result<Parsed, ApiError> {
    match (&req.message, &req.messages) {
        (Some(_), Some(_)) => Err(bad_request(
            "give either `message` or `messages`, not both",
            "messages",
            "not allowed with `message`",
        )),
        (None, None) => Err(bad_request(
            "`message` or `messages` is required",
            "message",
            "required",
        )),
        (Some(m), None) => {
            if m.0.trim().is_empty() {
                return Err(bad_request("the message is empty", "message", "must not be empty"));
            }
            Ok(Parsed {
                question: m.0.clone(),
                system: None,
                history: vec![],
            })
        }
        (None, Some(turns)) => {
            let mut details = Vec::new();
            let mut system = Vec::new();
            let mut history = Vec::new();
            for (i, t) in turns.iter().enumerate() {
                let role = match t.role.0.as_str() {
                    "user" => "user",
                    "assistant" => "assistant",
                    "system" => "system",
                    other => {
                        details.push(ErrorDetail {
                            field: Some(format!("messages[{i}].role")),
                            message: format!("`{other}` is not one of user, assistant, system"),
                        });
                        continue;
                    }
                };
                if t.content.0.trim().is_empty() {
                    details.push(ErrorDetail {
                        field: Some(format!("messages[{i}].content")),
                        message: "must not be empty".into(),
                    });
                    continue;
                }
                if role == "system" {
                    system.push(t.content.0.clone());
                } else {
                    history.push(parley_domain::aggregates::conversation::Turn {
                        message_id: Uuid::nil(),
                        role,
                        text: t.content.0.clone(),
                    });
                }
            }
            if !details.is_empty() {
                return Err(ApiError::with_details(
                    ErrorCode::InvalidRequest,
                    "malformed `messages`",
                    details,
                ));
            }
            match history.last() {
                Some(last) if last.role == "user" => {}
                Some(_) => {
                    return Err(bad_request(
                        "malformed `messages`: the last turn must be the user's question",
                        "messages",
                        "the last non-system turn must have role `user`",
                    ));
                }
                None => {
                    return Err(bad_request(
                        "malformed `messages`: there is no user turn",
                        "messages",
                        "at least one turn with role `user` is required",
                    ));
                }
            }
            let question = history.pop().map(|t| t.text).unwrap_or_default();
            Ok(Parsed {
                question,
                system: (!system.is_empty()).then(|| system.join("\n\n")),
                history,
            })
        }
    }
}

/// The settings of an active bot of the organization, or 404.
pub(crate) async fn active_bot(state: &AppState, org_id: Uuid, bot_id: Uuid) -> Result<BotSettings, ApiError> {
    let (bot, _) = state.store.load::<BotAggregate>(bot_id).await?;
    match bot.settings {
        Some(settings) if bot.org_id == Some(org_id) && !bot.deleted && settings.active => Ok(settings),
        _ => Err(DomainError::BotNotFound.into()),
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Chat")]
impl ChatApi {
    /// Ask a bot
    ///
    /// Answers a visitor's message from the bot's knowledge, with the passages
    /// it used as sources. Streams server-sent events when `stream` is true
    /// (or the bot streams by default): `delta` events with text, a `sources`
    /// event, then `done` (or `error`), then `data: [DONE]`. The visitor's
    /// message and the answer are stored in the conversation, even if the
    /// client disconnects mid-stream. When nothing relevant is found the bot
    /// gives its fallback answer and the message is marked unanswered.
    #[oai(path = "/bots/:bot_id/chat", method = "post", operation_id = "chat")]
    async fn chat(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        body: Json<ChatRequest>,
    ) -> Result<ChatResponse, ApiError> {
        let state = live(&self.state)?;
        let req = body.0;
        let parsed = parse_turns(&req)?;
        if let Some(metadata) = &req.metadata {
            if crate::types::has_nul(metadata) {
                return Err(bad_request(
                    "`metadata` must not contain NUL characters",
                    "metadata",
                    "must not contain NUL characters",
                ));
            }
            if !metadata.is_object() {
                return Err(bad_request(
                    "`metadata` must be an object",
                    "metadata",
                    "must be an object",
                ));
            }
            if metadata.to_string().len() > MAX_METADATA_BYTES {
                return Err(ApiError::with_details(
                    ErrorCode::ValidationFailed,
                    "`metadata` is too large",
                    vec![ErrorDetail {
                        field: Some("metadata".into()),
                        message: format!("at most {MAX_METADATA_BYTES} bytes of JSON"),
                    }],
                ));
            }
        }
        // (An empty question was refused while parsing: this is its length.)
        if let Some(problem) = parley_domain::aggregates::conversation::message_problem(&parsed.question) {
            return Err(DomainError::invalid("message", problem).into());
        }
        let org_id = auth.0.org_id;
        let bot = active_bot(state, org_id, bot_id.0).await?;
        let conversation_id = match req.conversation_id {
            Some(id) => {
                let (existing, _) = state.store.load::<Conversation>(id).await?;
                if !existing.belongs_to(org_id, bot_id.0) {
                    return Err(DomainError::ConversationNotFound.into());
                }
                id
            }
            None => Uuid::now_v7(),
        };
        let visitor_id = req.visitor_id.map(Text::into_inner);
        ask(
            state,
            Ask {
                org_id,
                bot_id: bot_id.0,
                stream: req.stream.unwrap_or(bot.streaming),
                bot,
                conversation_id,
                stream_owner: match &visitor_id {
                    Some(v) => format!("visitor:{v}"),
                    None => format!("key:{}", auth.0.key_id),
                },
                visitor_id,
                channel: "api",
                question: parsed.question,
                system: parsed.system,
                extra_history: parsed.history,
                language: req.language.map(Text::into_inner),
                metadata: req.metadata.unwrap_or(Value::Null),
                recorded: Metadata::new(Actor::ApiKey { id: auth.0.key_id }, Some(request_id.0.0.clone())),
            },
        )
        .await
    }

    /// Search a bot's knowledge
    ///
    /// A retrieval debug view: the chunks a question would get, with their
    /// fused score and each retriever's rank and score.
    #[oai(path = "/bots/:bot_id/search", method = "post", operation_id = "search_knowledge")]
    async fn search(
        &self,
        auth: ApiKeyAuth,
        bot_id: Path<Uuid>,
        body: Json<SearchRequest>,
    ) -> Result<Json<SearchResponse>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        live_bot(state, org_id, bot_id.0).await?;
        let req = body.0;
        if req.query.0.trim().is_empty() {
            return Err(bad_request("the query is empty", "query", "must not be empty"));
        }
        let mode = match req.mode.unwrap_or(SearchMode::Hybrid) {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Bm25 => Mode::Bm25,
            SearchMode::Vector => Mode::Vector,
        };
        let retrieved = state
            .chat
            .retrieve(
                org_id,
                bot_id.0,
                SearchSpec {
                    question: &req.query.0,
                    context: None,
                    sources: req.source_ids.as_deref(),
                    limit: req.limit.unwrap_or(10) as usize,
                    mode,
                },
            )
            .await?;
        let results = retrieved
            .passages
            .iter()
            .map(|p| {
                let c = citation(p);
                let mut found_by = Vec::new();
                if p.bm25.is_some() {
                    found_by.push("bm25".to_owned());
                }
                if p.vector.is_some() {
                    found_by.push("vector".to_owned());
                }
                SearchResult {
                    chunk_id: c.chunk_id,
                    source_id: c.source_id,
                    document: c.doc_key,
                    title: c.title,
                    url: c.url,
                    heading_path: c.heading_path,
                    page: c.page,
                    text: p.text.clone(),
                    score: p.score,
                    bm25: p.bm25.map(|r| RetrieverScore {
                        rank: r.rank,
                        score: r.score,
                    }),
                    vector: p.vector.map(|r| RetrieverScore {
                        rank: r.rank,
                        score: r.score,
                    }),
                    found_by,
                }
            })
            .collect::<Vec<_>>();
        Ok(Json(SearchResponse {
            relevant: retrieved.answerable,
            answerability: Answerability {
                probability: retrieved.answerability,
                similarity: retrieved.evidence.similarity,
                coverage: retrieved.evidence.coverage,
                unknown_terms: retrieved.evidence.unknown,
                relevance: retrieved.evidence.relevance,
            },
            results,
            best_similarity: retrieved.best_similarity,
            took_ms: retrieved.elapsed.as_secs_f64() * 1000.0,
        }))
    }

    /// List conversations
    ///
    /// Your organization's conversations, newest first, filtered by bot,
    /// status, visitor, unanswered questions and creation time.
    #[oai(path = "/conversations", method = "get", operation_id = "list_conversations")]
    #[allow(clippy::too_many_arguments)]
    async fn list_conversations(
        &self,
        auth: ApiKeyAuth,
        /// Only this bot's conversations.
        bot_id: Query<Option<Uuid>>,
        /// Only conversations with this status.
        status: Query<Option<ConversationStatus>>,
        /// Only this visitor's conversations.
        visitor_id: Query<Option<String>>,
        /// `true`: only conversations with at least one fallback answer; `false`: only those without.
        unanswered: Query<Option<bool>>,
        /// Only conversations started at or after this time (RFC 3339).
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only conversations started before this time (RFC 3339).
        created_before: Query<Option<DateTime<Utc>>>,
        /// Only conversations with this tag.
        tag: Query<Option<String>>,
        /// `true`: only conversations with a rated answer; `false`: only those without.
        has_feedback: Query<Option<bool>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Uuid>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<ConversationList>, ApiError> {
        let state = live(&self.state)?;
        let limit = limit.0.unwrap_or(20);
        let filter = read::ConversationFilter {
            bot_id: bot_id.0,
            status: status.0.map(|s| s.as_str()),
            visitor_id: visitor_id.0,
            unanswered: unanswered.0,
            created_after: created_after.0,
            created_before: created_before.0,
            tag: tag.0,
            has_feedback: has_feedback.0,
        };
        let mut rows = read::conversations(&state.store, auth.0.org_id, &filter, cursor.0, limit + 1)
            .await
            .map_err(StoreError::Db)?;
        let next_cursor = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|c| c.id)
        } else {
            None
        };
        Ok(Json(ConversationList {
            items: infos(state, rows).await?,
            next_cursor,
        }))
    }

    /// Get a conversation
    ///
    /// One conversation with all its messages in order: the visitor's, the
    /// bot's answers with their sources, and failed answers.
    #[oai(
        path = "/conversations/:conversation_id",
        method = "get",
        operation_id = "get_conversation"
    )]
    async fn get_conversation(
        &self,
        auth: ApiKeyAuth,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationDetail>, ApiError> {
        let state = live(&self.state)?;
        let conversation = read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await
            .map_err(StoreError::Db)?
            .ok_or(DomainError::ConversationNotFound)?;
        let messages = messages_with_attachments(state, conversation.id).await?;
        Ok(Json(ConversationDetail {
            conversation: info(state, conversation).await?,
            messages,
        }))
    }
}

/// A conversation's messages in order, without their attachments.
pub(crate) async fn messages(state: &AppState, conversation_id: Uuid) -> Result<Vec<Message>, ApiError> {
    let rows = read::messages(&state.store, conversation_id)
        .await
        .map_err(StoreError::Db)?;
    Ok(rows.into_iter().map(Message::from).collect())
}

/// A conversation's messages in order, each with its attachments.
pub(crate) async fn messages_with_attachments(
    state: &AppState,
    conversation_id: Uuid,
) -> Result<Vec<Message>, ApiError> {
    let rows = read::messages(&state.store, conversation_id)
        .await
        .map_err(StoreError::Db)?;
    let files = read::attachments_of(&state.store, conversation_id)
        .await
        .map_err(StoreError::Db)?;
    Ok(rows
        .into_iter()
        .map(|m| {
            let id = m.id;
            Message {
                attachments: files
                    .iter()
                    .filter(|a| a.message_id == id)
                    .cloned()
                    .map(Into::into)
                    .collect(),
                ..Message::from(m)
            }
        })
        .collect())
}

/// Conversations as the API shows them, with their tags.
pub(crate) async fn infos(
    state: &AppState,
    rows: Vec<conversations::Model>,
) -> Result<Vec<ConversationInfo>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
    let mut tags = read::tags_of(&state.store, &ids).await.map_err(StoreError::Db)?;
    Ok(rows
        .into_iter()
        .map(|c| {
            let tags = tags.remove(&c.id).unwrap_or_default();
            ConversationInfo {
                tags,
                ..ConversationInfo::from(c)
            }
        })
        .collect())
}

pub(crate) async fn info(state: &AppState, row: conversations::Model) -> Result<ConversationInfo, ApiError> {
    infos(state, vec![row])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("conversation vanished"))
}

/// A message the command just recorded, as its projection holds it.
async fn stored_message(
    state: &AppState,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<messages::Model, ApiError> {
    read::message(&state.store, conversation_id, message_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(|| ApiError::internal("the message is missing from its conversation"))
}

/// Tags to set or add.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct TagsRequest {
    /// 1 to 50 lowercase letters, digits, `-`, `_` or `:` each; at most 20 per conversation.
    #[oai(validator(max_items = 20))]
    pub tags: Vec<Text>,
}

/// A person's reply.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ReplyRequest {
    /// The reply, 1 to 10,000 characters.
    pub text: Text,
}

/// Runs a hand-off command on a conversation of the organization and
/// returns it as it is now.
async fn conversation_command(
    state: &AppState,
    auth: &ApiKeyAuth,
    request_id: &RequestId,
    conversation_id: Uuid,
    command: ConversationCommand,
) -> Result<conversations::Model, ApiError> {
    let org_id = auth.0.org_id;
    read::conversation(&state.store, org_id, conversation_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or(DomainError::ConversationNotFound)?;
    state
        .store
        .execute::<Conversation>(Execute {
            org_id,
            stream_id: conversation_id,
            expected_version: None,
            command,
            metadata: Metadata::new(Actor::ApiKey { id: auth.0.key_id }, Some(request_id.0.clone())),
            idempotency: None,
        })
        .await?;
    read::conversation(&state.store, org_id, conversation_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(|| DomainError::ConversationNotFound.into())
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Chat")]
impl HandoffApi {
    /// Hand a conversation to a person
    ///
    /// The bot stops answering by itself; visitor messages are stored and
    /// wait for a person's reply. Escalating twice changes nothing.
    #[oai(
        path = "/conversations/:conversation_id/escalate",
        method = "post",
        operation_id = "escalate_conversation"
    )]
    async fn escalate(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let command = ConversationCommand::Escalate { reason: "api".into() };
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Reply as a person
    ///
    /// The reply appears in the visitor's conversation (role `agent`). A
    /// conversation that was not escalated is escalated by it; a closed one
    /// is reopened.
    #[oai(
        path = "/conversations/:conversation_id/reply",
        method = "post",
        operation_id = "reply_to_conversation"
    )]
    async fn reply(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<ReplyRequest>,
    ) -> Result<Json<Message>, ApiError> {
        let state = live(&self.state)?;
        if body.0.text.0.trim().is_empty() {
            return Err(bad_request("the reply is empty", "text", "must not be empty"));
        }
        let message_id = Uuid::now_v7();
        let command = ConversationCommand::AdminReply {
            message_id,
            text: body.0.text.into_inner(),
        };
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        let message = stored_message(state, row.id, message_id).await?;
        Ok(Json(message.into()))
    }

    /// Replace a conversation's tags
    ///
    /// The conversation then has exactly these tags (an empty list removes all).
    #[oai(
        path = "/conversations/:conversation_id/tags",
        method = "put",
        operation_id = "set_conversation_tags"
    )]
    async fn set_tags(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<TagsRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let tags = body.0.tags.into_iter().map(Text::into_inner).collect();
        let command = ConversationCommand::Tags(TagChange::Set(tags));
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Add tags to a conversation
    ///
    /// Tags it already has are kept once.
    #[oai(
        path = "/conversations/:conversation_id/tags",
        method = "post",
        operation_id = "add_conversation_tags"
    )]
    async fn add_tags(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<TagsRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let tags = body.0.tags.into_iter().map(Text::into_inner).collect();
        let command = ConversationCommand::Tags(TagChange::Add(tags));
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Remove a tag from a conversation
    ///
    /// Removing a tag it does not have changes nothing.
    #[oai(
        path = "/conversations/:conversation_id/tags/:tag",
        method = "delete",
        operation_id = "remove_conversation_tag"
    )]
    async fn remove_tag(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        tag: Path<String>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let command = ConversationCommand::Tags(TagChange::Remove(vec![tag.0]));
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Rate an answer
    ///
    /// Thumbs up or down, with an optional comment, on one of the bot's
    /// answers in this conversation; a later rating replaces an earlier one.
    #[oai(
        path = "/conversations/:conversation_id/messages/:message_id/feedback",
        method = "post",
        operation_id = "rate_answer"
    )]
    async fn feedback(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        message_id: Path<Uuid>,
        body: Json<FeedbackRequest>,
    ) -> Result<Json<Message>, ApiError> {
        let state = live(&self.state)?;
        let command = ConversationCommand::Feedback {
            message_id: message_id.0,
            up: body.0.rating == Rating::Up,
            comment: body.0.comment.map(Text::into_inner),
            by: "admin".into(),
        };
        let row = conversation_command(state, &auth, &request_id, conversation_id.0, command).await?;
        let message = stored_message(state, row.id, message_id.0).await?;
        Ok(Json(message.into()))
    }

    /// Ratings of a bot's answers
    ///
    /// How many of the bot's answers were rated up and down (the latest
    /// rating of each answer counts).
    #[oai(path = "/bots/:bot_id/feedback", method = "get", operation_id = "bot_feedback")]
    async fn bot_feedback(&self, auth: ApiKeyAuth, bot_id: Path<Uuid>) -> Result<Json<FeedbackSummary>, ApiError> {
        let state = live(&self.state)?;
        live_bot(state, auth.0.org_id, bot_id.0).await?;
        let (up, down) = read::feedback_counts(&state.store, auth.0.org_id, bot_id.0)
            .await
            .map_err(StoreError::Db)?;
        Ok(Json(FeedbackSummary {
            up,
            down,
            ratio: (up + down > 0).then(|| up as f64 / (up + down) as f64),
        }))
    }

    /// Close a conversation
    ///
    /// A visitor message (or a reply) reopens it.
    #[oai(
        path = "/conversations/:conversation_id/close",
        method = "post",
        operation_id = "close_conversation"
    )]
    async fn close(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let row =
            conversation_command(state, &auth, &request_id, conversation_id.0, ConversationCommand::Close).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Reopen a conversation
    ///
    /// The bot answers again by itself.
    #[oai(
        path = "/conversations/:conversation_id/reopen",
        method = "post",
        operation_id = "reopen_conversation"
    )]
    async fn reopen(
        &self,
        auth: ApiKeyAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let row = conversation_command(
            state,
            &auth,
            &request_id,
            conversation_id.0,
            ConversationCommand::Reopen,
        )
        .await?;
        Ok(Json(info(state, row).await?))
    }
}

/// One visitor message to answer, from the API or the widget.
pub(crate) struct Ask {
    pub org_id: Uuid,
    pub bot_id: Uuid,
    pub bot: BotSettings,
    /// An existing conversation of this bot (checked by the caller), or a new id.
    pub conversation_id: Uuid,
    pub visitor_id: Option<String>,
    /// `api` or `widget`.
    pub channel: &'static str,
    pub stream: bool,
    /// Whose open streams are counted (`visitor:...` or `key:...`).
    pub stream_owner: String,
    pub question: String,
    pub system: Option<String>,
    /// Turns the client sent along, after the stored ones.
    pub extra_history: Vec<parley_domain::aggregates::conversation::Turn>,
    pub language: Option<String>,
    pub metadata: Value,
    /// The actor and correlation id recorded with the events.
    pub recorded: Metadata,
}

/// Stores the visitor's message and answers it: an event stream, or the
/// whole answer. The answer is generated in its own task and stored even
/// when the client leaves.
pub(crate) async fn ask(state: &AppState, ask: Ask) -> Result<ChatResponse, ApiError> {
    // Taken before anything is stored: a refused stream leaves no trace.
    let slot = if ask.stream {
        Some(state.open_stream(ask.org_id, ask.stream_owner.clone())?)
    } else {
        None
    };
    state.take_message(ask.org_id).await?;
    let user_message_id = Uuid::now_v7();
    let conversation_id = ask.conversation_id;
    let executed = state
        .store
        .execute::<Conversation>(Execute {
            org_id: ask.org_id,
            stream_id: conversation_id,
            expected_version: None,
            command: ConversationCommand::Receive {
                conversation_id,
                org_id: ask.org_id,
                bot_id: ask.bot_id,
                visitor_id: ask.visitor_id.clone(),
                channel: ask.channel.into(),
                message_id: user_message_id,
                text: ask.question.clone(),
                system: ask.system.clone(),
                language: ask.language.clone(),
                metadata: ask.metadata,
            },
            metadata: ask.recorded.clone(),
            idempotency: None,
        })
        .await?;
    // Stored turns first, then turns the client sent along.
    let mut history: Vec<_> = executed
        .state
        .turns
        .iter()
        .filter(|t| t.message_id != user_message_id)
        .cloned()
        .collect();
    history.extend(ask.extra_history);
    let language = ask.language.or_else(|| Some(ask.bot.language.clone()));
    let answer_id = Uuid::now_v7();
    let escalated = executed.state.status == Status::Escalated;
    let events = state.chat.start(ChatTurn {
        org_id: ask.org_id,
        bot_id: ask.bot_id,
        bot: ask.bot,
        conversation_id,
        user_message_id,
        question: ask.question,
        system: ask.system,
        language,
        history,
        metadata: ask.recorded,
        escalated,
        answer_id,
    });
    if let Some(slot) = slot {
        return Ok(ChatResponse::Stream {
            conversation_id,
            user_message_id,
            message_id: answer_id,
            events,
            heartbeat: Duration::from_secs(state.settings.sse_heartbeat_secs),
            slot,
            hide_sources: false,
        });
    }
    let mut events = events;
    while let Some(event) = events.recv().await {
        match event {
            ChatEvent::Done { answered, escalated } => {
                return Ok(ChatResponse::Whole(reply_of(user_message_id, *answered, escalated)));
            }
            ChatEvent::Waiting => return Ok(ChatResponse::Whole(waiting(conversation_id, user_message_id))),
            ChatEvent::Failed(failed) => return Err(failure(*failed)),
            ChatEvent::Delta(_) | ChatEvent::Sources(_) => {}
        }
    }
    Err(ApiError::internal("the answer task ended without a result"))
}

/// A failed answer as an HTTP error (non-streaming).
fn failure(f: AnswerFailed) -> ApiError {
    if f.code == ErrorCode::Internal {
        return ApiError::internal(f.reason);
    }
    ApiError::new(f.code, f.reason)
}
