//! What every operation checks first: a live server, and a bot of the
//! caller's organization (that exists; or that is active, with its settings);
//! and commands on a conversation of the caller's organization.

use parley_domain::DomainError;
use parley_domain::aggregates::bot::{Bot as BotAggregate, BotSettings};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The state of a live server. Handlers are never called on a spec-only service.
pub(crate) fn live(state: &Option<AppState>) -> Result<&AppState, ApiError> {
    state
        .as_ref()
        .ok_or_else(|| ApiError::internal("handler called without application state"))
}

/// `404 BOT_NOT_FOUND` unless the bot is a live bot of the organization.
pub(crate) async fn live_bot(state: &AppState, org_id: uuid::Uuid, bot_id: uuid::Uuid) -> Result<(), ApiError> {
    match parley_domain::store::read::bot(&state.store, org_id, bot_id).await? {
        Some(_) => Ok(()),
        None => Err(parley_domain::DomainError::BotNotFound.into()),
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

/// Runs a command on a conversation of the organization and returns the
/// conversation as it is now (`404` for one of another organization).
pub(crate) async fn conversation_command(
    state: &AppState,
    principal: &crate::state::Principal,
    request_id: &crate::http::middleware::RequestId,
    conversation_id: Uuid,
    command: parley_domain::aggregates::conversation::ConversationCommand,
) -> Result<parley_domain::store::entities::conversations::Model, ApiError> {
    use parley_domain::store::read;
    let org_id = principal.org_id;
    read::conversation(&state.store, org_id, conversation_id)
        .await?
        .ok_or(DomainError::ConversationNotFound)?;
    state
        .store
        .execute::<parley_domain::aggregates::conversation::Conversation>(parley_domain::store::Execute {
            org_id,
            stream_id: conversation_id,
            expected_version: None,
            command,
            metadata: principal.metadata(&request_id.0),
            idempotency: None,
        })
        .await?;
    read::conversation(&state.store, org_id, conversation_id)
        .await?
        .ok_or_else(|| DomainError::ConversationNotFound.into())
}
