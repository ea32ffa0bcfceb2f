//! CORS for the public visitor API: answered only for the bot's allowed
//! origins (any origin when the bot allows all), looked up per request, so
//! a change of a bot's widget settings applies at once.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::error::ApiError;
use crate::state::AppState;

const ALLOWED_HEADERS: &str = "content-type, x-parley-site-key, x-parley-conversation-token, x-request-id";
const EXPOSED_HEADERS: &str =
    "retry-after, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, x-request-id, content-disposition";

fn allow(resp: &mut Response, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
}

/// Middleware: preflights and CORS headers of `/api/v1/public/bots/{id}/...`.
pub async fn public_cors<E: Endpoint>(ep: E, mut req: Request, state: AppState) -> poem::Result<Response> {
    let (Some(bot_id), Some(origin)) = (
        crate::security::site_key::bot_id_of(req.uri().path()),
        req.header("origin").map(str::to_owned),
    ) else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let bot = parley_domain::store::read::live_bot_by_id(&state.store, bot_id).await;
    let allowed = match bot {
        Ok(Some(bot)) => {
            let ok = crate::security::site_key::origin_ok(
                &req,
                &parley_domain::store::read::widget_of(&bot).allowed_origins,
            );
            // The endpoint's site-key check uses this row instead of reading it again.
            req.extensions_mut().insert(crate::security::site_key::LiveBot(bot));
            Some(ok)
        }
        // Unknown bots get no CORS headers; the endpoint answers 404.
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the bot's allowed origins");
            None
        }
    };
    let preflight = req.method() == Method::OPTIONS && req.header("access-control-request-method").is_some();
    if preflight {
        if allowed != Some(true) {
            return Ok(ApiError::new(
                parley_domain::ErrorCode::OriginNotAllowed,
                "this website is not among the bot's allowed origins",
            )
            .into_response());
        }
        let mut resp = Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS)
            .header(header::ACCESS_CONTROL_MAX_AGE, "600")
            .finish();
        allow(&mut resp, &origin);
        return Ok(resp);
    }
    let mut resp = ep.call(req).await.map(IntoResponse::into_response)?;
    if allowed == Some(true) {
        allow(&mut resp, &origin);
    }
    Ok(resp)
}
