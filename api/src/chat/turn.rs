//! One visitor message answered: stored, handed to the chat engine, and sent
//! back whole or as a stream. The API's chat and the widget's both come here.

use std::time::Duration;

use parley_domain::aggregates::bot::BotSettings;
use parley_domain::aggregates::conversation::{AnswerFailed, Conversation, ConversationCommand, Status};
use parley_domain::store::Execute;
use parley_domain::{ErrorCode, Metadata};
use serde_json::Value;
use uuid::Uuid;

use crate::chat::{ChatEvent, ChatTurn};
use crate::error::ApiError;
use crate::schemas::chat::{ChatResponse, reply_of, waiting};
use crate::state::AppState;

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
                human_only: ask.bot.human_only,
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
    // Asked for a person while nobody can answer: say so, and when.
    let handoff = if !escalated && parley_domain::aggregates::conversation::asks_for_person(&ask.question) {
        let available = crate::people::availability(state, ask.org_id, &ask.bot.handoff).await?;
        (!available.person_available()).then(|| crate::people::offline_answer(&ask.bot.handoff, &available))
    } else {
        None
    };
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
        handoff,
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
pub(crate) fn failure(f: AnswerFailed) -> ApiError {
    if f.code == ErrorCode::Internal {
        return ApiError::internal(f.reason);
    }
    ApiError::new(f.code, f.reason)
}
