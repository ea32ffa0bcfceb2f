//! The answer to a visitor's message as the API sends it: whole (JSON) or as
//! server-sent events.

use std::time::Duration;

use futures::StreamExt;
use parley_domain::aggregates::conversation::Answered;
use poem::web::sse::{Event as SseEvent, SSE};
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::conversation::{ChatError, ChatUsage, Source, usage_of};
use crate::chat::ChatEvent;
use crate::state::StreamSlot;

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

pub(crate) fn reply_of(user_message_id: Uuid, a: Answered, escalated: bool) -> ChatReply {
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
pub(crate) fn waiting(conversation_id: Uuid, user_message_id: Uuid) -> ChatReply {
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

pub(crate) fn stream_event(conversation_id: Uuid, message_id: Option<Uuid>, kind: ChatEventType) -> ChatStreamEvent {
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

pub(crate) fn to_sse(conversation_id: Uuid, message_id: Uuid, event: ChatEvent) -> ChatStreamEvent {
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
