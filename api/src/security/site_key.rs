//! The visitor API's security scheme: a bot's public site key
//! (`X-Parley-Site-Key`), from one of the bot's allowed origins.

use parley_domain::aggregates::bot::looks_like_site_key;
use parley_domain::store::entities::bots;
use parley_domain::widget::origin_allowed;
use parley_domain::{DomainError, ErrorCode, store::read};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The public site key of a bot (`ps_` and 32 hex characters), shown in
/// its widget settings. Requests from browsers must also come from one of
/// the bot's allowed origins.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-Parley-Site-Key",
    key_in = "header",
    checker = "check_site_key",
    rename = "SiteKey"
)]
pub struct SiteKeyAuth(pub bots::Model);

/// The bot id of a public path: `/api/v1/public/bots/{id}/...`.
pub(crate) fn bot_id_of(path: &str) -> Option<Uuid> {
    path.strip_prefix("/api/v1/public/bots/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

pub(crate) async fn check_site_key(req: &Request, key: ApiKey) -> poem::Result<bots::Model> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::internal("application state missing")))?;
    let bot_id =
        bot_id_of(req.uri().path()).ok_or_else(|| poem::Error::from(ApiError::from(DomainError::BotNotFound)))?;
    authorize(state, req, bot_id, &key.key).await.map_err(poem::Error::from)
}

/// Whether a browser request comes from a page allowed to use the bot:
/// the widget's own frame (same origin), one of the allowed origins, or no
/// browser at all (no `Origin`).
pub(crate) fn origin_ok(req: &Request, allowed: &[String]) -> bool {
    if req.header("sec-fetch-site") == Some("same-origin") {
        return true;
    }
    let Some(origin) = req.header("origin") else {
        return true;
    };
    let own = req.header("host").is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    own || origin_allowed(allowed, origin)
}

/// A live bot's row, read once for a visitor request (by the CORS layer).
#[derive(Clone)]
pub(crate) struct LiveBot(pub bots::Model);

/// The live bot a site key opens, checked against the request's origin.
pub(crate) async fn authorize(
    state: &AppState,
    req: &Request,
    bot_id: Uuid,
    key: &str,
) -> Result<bots::Model, ApiError> {
    if !looks_like_site_key(key) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "malformed site key: expected ps_ followed by 32 hex characters",
        ));
    }
    let bot = match req.extensions().get::<LiveBot>() {
        Some(LiveBot(bot)) if bot.id == bot_id => bot.clone(),
        _ => read::live_bot_by_id(&state.store, bot_id)
            .await?
            .ok_or(DomainError::BotNotFound)?,
    };
    if bot.site_key.as_deref() != Some(key) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "this is not the bot's site key (it may have been rotated)",
        ));
    }
    if !origin_ok(req, &read::widget_of(&bot).allowed_origins) {
        return Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            "this website is not among the bot's allowed origins",
        ));
    }
    Ok(bot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths_name_their_bot() {
        let id = Uuid::now_v7();
        assert_eq!(bot_id_of(&format!("/api/v1/public/bots/{id}/config")), Some(id));
        assert_eq!(bot_id_of("/api/v1/public/bots/nope/config"), None);
        assert_eq!(bot_id_of("/api/v1/bots/x"), None);
    }
}
