//! What the API asks of ingestion before it records anything: whether
//! Parley may fetch a URL (or post to it), and what an uploaded file is.
//! The only door from the routes into the worker's ingestion code.

use parley_domain::ErrorCode;
use parley_worker::ingest::parse::{self, Kind};
use parley_worker::net;

use crate::error::{ApiError, ErrorDetail};
use crate::state::AppState;

/// `422 URL_NOT_ALLOWED` unless sources may fetch the URL (public
/// addresses, allowed schemes and ports).
pub async fn fetchable(state: &AppState, url: &str) -> Result<(), ApiError> {
    net::check_url(url, &state.ingest.settings.net)
        .await
        .map(|_| ())
        .map_err(|e| {
            ApiError::with_details(
                ErrorCode::UrlNotAllowed,
                "this URL cannot be fetched",
                vec![ErrorDetail {
                    field: Some("url".into()),
                    message: e.0,
                }],
            )
        })
}

/// `422 URL_NOT_ALLOWED` unless webhooks may post to the URL (the same
/// guard as for crawls, with the webhook settings).
pub async fn postable(state: &AppState, url: &str) -> Result<(), ApiError> {
    net::check_url(url, &state.settings.webhook_net())
        .await
        .map(|_| ())
        .map_err(|e| ApiError::new(ErrorCode::UrlNotAllowed, e.0))
}

/// The content type of an uploaded document, decided from its bytes (then
/// its name): PDF, DOCX, plain text or Markdown. `415` for anything else,
/// HTML included (pages are added as URLs). An empty file is taken as
/// text, and fails later with `NO_TEXT` like a text-less one.
pub fn upload_type(bytes: &[u8], file_name: &str) -> Result<&'static str, ApiError> {
    if bytes.is_empty() {
        return Ok(Kind::Text.content_type());
    }
    let kind = parse::detect(bytes, file_name).map_err(|e| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{}: only PDF, DOCX, TXT and Markdown files are supported", e.message),
        )
    })?;
    if kind == Kind::Html {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "HTML files are added as URLs; upload PDF, DOCX, TXT or Markdown",
        ));
    }
    Ok(kind.content_type())
}
