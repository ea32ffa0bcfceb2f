//! What the API shows of conversations and their messages, and how it reads
//! them from the projections.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::conversation::Citation;
use parley_domain::store::entities::{attachments, conversations, messages};
use parley_domain::store::read;
use poem_openapi::{Enum, Object};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::types::Text;

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

/// The error of an `error` event.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatError {
    /// Stable code, e.g. `PROVIDER_FAILED`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

pub(crate) fn usage_of(u: &parley_domain::aggregates::conversation::Usage) -> ChatUsage {
    ChatUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        retrieval_ms: u.retrieval_ms,
        generation_ms: u.generation_ms,
    }
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
    pub attachments: Vec<AttachmentInfo>,
    /// For a person's reply: the member who wrote it (absent: an API key).
    pub author_id: Option<Uuid>,
    /// For a person's reply: their display name (absent: an API key).
    pub author: Option<String>,
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
            author_id: m.author_id,
            author: m.author_name,
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
    pub(crate) fn as_str(self) -> &'static str {
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
    /// The member who handles it (claimed, or assigned to them).
    pub assignee_id: Option<Uuid>,
    /// The visitor's rating (1 to 5) after a person closed it.
    pub satisfaction: Option<i32>,
    /// The comment that came with the rating.
    pub satisfaction_comment: Option<String>,
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
            assignee_id: c.assignee_id,
            satisfaction: c.satisfaction,
            satisfaction_comment: c.satisfaction_comment,
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

/// A conversation's messages in order, without their attachments.
pub(crate) async fn messages(state: &AppState, conversation_id: Uuid) -> Result<Vec<Message>, ApiError> {
    let rows = read::messages(&state.store, conversation_id).await?;
    Ok(rows.into_iter().map(Message::from).collect())
}

/// A conversation's messages in order, each with its attachments.
pub(crate) async fn messages_with_attachments(
    state: &AppState,
    conversation_id: Uuid,
) -> Result<Vec<Message>, ApiError> {
    let rows = read::messages(&state.store, conversation_id).await?;
    let files = read::attachments_of(&state.store, conversation_id).await?;
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
    let mut tags = read::tags_of(&state.store, &ids).await?;
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
pub(crate) async fn stored_message(
    state: &AppState,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<messages::Model, ApiError> {
    read::message(&state.store, conversation_id, message_id)
        .await?
        .ok_or_else(|| ApiError::internal("the message is missing from its conversation"))
}

/// A file attached to a visitor's message.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AttachmentInfo {
    /// The attachment.
    pub id: Uuid,
    /// The visitor message it belongs to.
    pub message_id: Uuid,
    /// The file's name as uploaded (without folders).
    pub file_name: String,
    /// `image/png`, `image/jpeg`, `image/gif`, `image/webp`, `application/pdf` or `text/plain`.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was attached.
    pub created_at: DateTime<Utc>,
}

impl From<attachments::Model> for AttachmentInfo {
    fn from(a: attachments::Model) -> Self {
        AttachmentInfo {
            id: a.id,
            message_id: a.message_id,
            file_name: a.file_name,
            content_type: a.content_type,
            size: a.size,
            created_at: a.created_at,
        }
    }
}
