//! What every operation checks first: a live server, and a bot of the
//! caller's organization (that exists; or that is active, with its settings).

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
