//! Request ids, access logs, metrics and body limits around every request.

use std::time::Instant;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::http::metrics::Metrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request: the client's `X-Request-Id` when it is
/// sane, otherwise a new one. It is echoed, logged and stored in event metadata.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Outermost middleware: request id, tracing span, access log and metrics.
pub async fn observe<E: Endpoint>(next: E, mut req: Request, metrics: Metrics) -> poem::Result<Response> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.set_data(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = async move { next.call(req).await.map(IntoResponse::into_response) }
        .instrument(span.clone())
        .await
        .unwrap_or_else(|e| e.into_response());
    let elapsed = started.elapsed();
    let route = response
        .data::<OperationId>()
        .map_or_else(|| unmatched_route(&path), |op| op.0.to_owned());
    let status = response.status();
    metrics.observe_request(&route, method.as_str(), status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), route = %route, latency_ms = elapsed.as_secs_f64() * 1000.0, "request")
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// Routes outside the OpenAPI operations, named without ids so that label
/// values stay few.
fn unmatched_route(path: &str) -> String {
    match path {
        "/docs" | "/openapi.json" => path.to_owned(),
        p if p.starts_with("/docs/") => "/docs".to_owned(),
        _ => "unmatched".to_owned(),
    }
}

/// Largest oversized body read before answering 413; larger ones are cut off.
const DRAIN_CAP: u64 = 64 << 20;

/// Refuses bodies larger than `limit` bytes with 413.
pub async fn limit_body<E: Endpoint>(next: E, mut req: Request, limit: usize) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit as u64) {
        // Read (and drop) a moderately oversized body first, so that the client,
        // still sending, receives the 413 instead of a broken connection.
        if len <= DRAIN_CAP {
            use futures::StreamExt;
            let mut stream = req.take_body().into_bytes_stream();
            while let Some(Ok(_)) = stream.next().await {}
        }
        return Err(poem::Error::from_string(
            format!("the request body is larger than {limit} bytes"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    if declared.is_some() {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    // A body without a length (chunked) is not buffered here: it streams on,
    // counted, to whoever reads it (after the rate limits and the handler's
    // authentication), and breaks off past the limit, which answers 413.
    let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut chunks = req.take_body().into_bytes_stream();
    let flag = over.clone();
    let counted = async_stream::stream! {
        use futures::StreamExt;
        let mut total = 0usize;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => {
                    total += bytes.len();
                    if total > limit {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        yield Err(std::io::Error::other("the request body is too large"));
                        break;
                    }
                    yield Ok(bytes);
                }
                Err(e) => {
                    yield Err(e);
                    break;
                }
            }
        }
    };
    req.set_body(poem::Body::from_bytes_stream(counted));
    let result = next.call(req).await.map(IntoResponse::into_response);
    if over.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(poem::Error::from_string(
            format!("the request body is larger than {limit} bytes"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    result
}

/// Answers 503 when a request takes longer than `timeout` to produce its
/// response head (streams, once started, are not cut).
pub async fn with_timeout<E: Endpoint>(next: E, req: Request, timeout: std::time::Duration) -> poem::Result<Response> {
    match tokio::time::timeout(timeout, next.call(req)).await {
        Ok(result) => result.map(IntoResponse::into_response),
        Err(_) => Err(poem::Error::from_string(
            "the request took too long",
            StatusCode::SERVICE_UNAVAILABLE,
        )),
    }
}
