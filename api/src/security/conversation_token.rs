//! A visitor's access to one conversation: the conversation token
//! (`X-Parley-Conversation-Token`, `ct_` and 64 hex characters) given when
//! the conversation started. Only its hash is stored.

use parley_domain::store::content::sha256_hex;
use parley_domain::store::entities::{bots, conversations};
use parley_domain::{DomainError, ErrorCode, store::read};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// A new conversation token: `ct_` and 64 hex characters.
pub(crate) fn new_conversation_token() -> String {
    parley_domain::ids::random_token("ct_", 32)
}

/// The conversation a token opens: it must belong to the bot and match.
pub(crate) async fn open_conversation(
    state: &AppState,
    bot: &bots::Model,
    conversation_id: Uuid,
    token: Option<&str>,
) -> Result<conversations::Model, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the conversation token is missing (X-Parley-Conversation-Token)",
        ));
    };
    let row = read::conversation_of_bot(&state.store, bot.id, conversation_id)
        .await?
        .ok_or(DomainError::ConversationNotFound)?;
    // A wrong token looks exactly like a missing conversation.
    match &row.token_hash {
        Some(hash) if *hash == sha256_hex(token.as_bytes()) => Ok(row),
        _ => Err(DomainError::ConversationNotFound.into()),
    }
}
