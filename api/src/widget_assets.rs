//! The embeddable widget's files: `/widget.js` (the loader a website pastes
//! in one script tag) and the chat window it opens in an iframe
//! (`/widget/frame.html`, `.js`, `.css`). Compiled into the binary and
//! gzipped once; the frame may only be embedded by the bot's allowed origins.

use std::io::Write;
use std::sync::OnceLock;

use poem::http::{StatusCode, header};
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use crate::state::AppState;

struct Asset {
    content_type: &'static str,
    raw: &'static [u8],
    gzipped: Vec<u8>,
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to memory cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn asset(name: &str) -> Option<&'static Asset> {
    static ASSETS: OnceLock<Vec<(&'static str, Asset)>> = OnceLock::new();
    let assets = ASSETS.get_or_init(|| {
        [
            (
                "widget.js",
                "application/javascript; charset=utf-8",
                include_bytes!("../widget/widget.js").as_slice(),
            ),
            (
                "frame.html",
                "text/html; charset=utf-8",
                include_bytes!("../widget/frame.html").as_slice(),
            ),
            (
                "frame.js",
                "application/javascript; charset=utf-8",
                include_bytes!("../widget/frame.js").as_slice(),
            ),
            (
                "frame.css",
                "text/css; charset=utf-8",
                include_bytes!("../widget/frame.css").as_slice(),
            ),
        ]
        .into_iter()
        .map(|(name, content_type, raw)| {
            (
                name,
                Asset {
                    content_type,
                    raw,
                    gzipped: gzip(raw),
                },
            )
        })
        .collect()
    });
    assets.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
}

fn serve(req: &Request, name: &str) -> Response {
    let Some(asset) = asset(name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let gzip_ok = req
        .header(header::ACCEPT_ENCODING)
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let builder = Response::builder()
        .content_type(asset.content_type)
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .header(header::VARY, "Accept-Encoding")
        .header("X-Content-Type-Options", "nosniff")
        // Pages of any origin load the loader with a script tag.
        .header("Cross-Origin-Resource-Policy", "cross-origin");
    if gzip_ok {
        builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(asset.gzipped.as_slice())
    } else {
        builder.body(asset.raw)
    }
}

/// `GET /widget.js`
#[handler]
pub fn loader(req: &Request) -> Response {
    serve(req, "widget.js")
}

/// `GET /widget/frame.js` and `/widget/frame.css`.
#[handler]
pub fn frame_asset(req: &Request, name: poem::web::Path<String>) -> Response {
    match name.0.as_str() {
        "frame.js" | "frame.css" => serve(req, &name.0),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
pub struct FrameQuery {
    bot_id: Option<Uuid>,
}

/// `GET /widget/frame.html?bot_id=...`: the chat window. Only the bot's
/// allowed origins may frame it (`frame-ancestors`); its own scripts and
/// styles are the only ones it runs.
#[handler]
pub async fn frame(req: &Request, query: Query<FrameQuery>, state: Data<&AppState>) -> Response {
    let mut ancestors = "*".to_owned();
    if let Some(bot_id) = query.0.bot_id {
        let bot = parley_domain::store::read::live_bot_by_id(&state.store, bot_id).await;
        match bot {
            Ok(Some(bot)) => {
                let allowed = parley_domain::store::read::widget_of(&bot).allowed_origins;
                if !allowed.is_empty() {
                    ancestors = allowed.join(" ");
                }
            }
            Ok(None) => return StatusCode::NOT_FOUND.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the bot for its widget frame");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    let mut resp = serve(req, "frame.html");
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
         connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    if let Ok(v) = header::HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    resp.headers_mut()
        .insert("Referrer-Policy", header::HeaderValue::from_static("no-referrer"));
    resp
}
