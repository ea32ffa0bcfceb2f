//! The job dashboard: apalis-board's API and web UI for the job queue, on a
//! port of its own (the UI's assets and API paths assume the root of an
//! origin), behind HTTP Basic credentials from the configuration, read-only.

use std::sync::{Arc, Mutex};

use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
use apalis_board::axum::sse::TracingBroadcaster;
use apalis_board::axum::ui::ServeUI;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use parley_domain::jobs::Job;
use parley_worker::JobQueue;
use parley_worker::queue::Lane;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Who may look at the dashboard.
#[derive(Clone)]
pub struct BoardCredentials {
    pub user: String,
    pub password: SecretString,
}

/// The dashboard's routes: its JSON API under `/api/v1`, the UI elsewhere.
pub fn router(queue: &JobQueue, credentials: &BoardCredentials) -> Router {
    let mut builder = ApiBuilder::new(Router::new());
    for lane in queue.lanes() {
        let name = lane.name().to_owned();
        builder = match lane {
            Lane::Sqlite { storage, .. } => RegisterRoute::<_, Job>::register(builder, &name, storage.clone()),
            Lane::Redis { storage, .. } => RegisterRoute::<_, Job>::register(builder, &name, storage.clone()),
        };
    }
    let api = builder.build();
    let mut app = Router::new()
        .nest("/api/v1", api)
        .fallback_service(ServeUI::new())
        // The live log stream needs a broadcaster; worker logs are not fed to it.
        .layer(Extension(Arc::new(Mutex::new(TracingBroadcaster::create()))));
    if queue.redis_conn().is_some() {
        let queue = queue.clone();
        app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let queue = queue.clone();
            async move { redis_counts(&queue, req, next).await }
        }));
    }
    let expected = digest(&credentials.user, credentials.password.expose_secret());
    app.layer(middleware::from_fn(move |req: Request, next: Next| async move {
        if !authorized(&req, &expected) {
            let mut denied = (StatusCode::UNAUTHORIZED, "the job dashboard needs its credentials").into_response();
            denied.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"parley jobs\", charset=\"UTF-8\""),
            );
            return denied;
        }
        // Read-only: the board's PUT would let anyone with the password enqueue any job.
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut refused = (StatusCode::METHOD_NOT_ALLOWED, "the job dashboard is read-only").into_response();
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return refused;
        }
        next.run(req).await
    }))
}

fn digest(user: &str, password: &str) -> [u8; 32] {
    Sha256::digest(format!("{user}:{password}")).into()
}

/// Compares digests of the Basic credentials, so the time taken says
/// nothing about how much of them matched.
fn authorized(req: &Request, expected: &[u8; 32]) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let got: [u8; 32] = Sha256::digest(&raw).into();
    got.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// apalis-redis 1.0.0's queue and overview statistics scripts fail (one
/// misses an argument, one passes names as keys, one reads a key nothing
/// writes) and its task listing reads a key nothing writes, so those answers
/// come from our own reading of its sets and lists.
async fn redis_counts(queue: &JobQueue, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    for lane in queue.lanes() {
        if path == format!("/api/v1/queues/{}/tasks", lane.name()) && req.method() == Method::GET {
            return redis_tasks(lane, req.uri().query().unwrap_or("")).await;
        }
    }
    let stats_of = queue
        .lanes()
        .into_iter()
        .find(|lane| path == format!("/api/v1/queues/{}/stats", lane.name()));
    let listed = path == "/api/v1/queues" || path == "/api/v1/overview";
    if !listed && stats_of.is_none() {
        return next.run(req).await;
    }
    let render = |counts: &[(String, f64)]| -> Vec<serde_json::Value> {
        counts
            .iter()
            .enumerate()
            .map(|(i, (name, value))| {
                json!({"title": name.to_uppercase(), "stat_type": "Number", "value": value.to_string(), "priority": i})
            })
            .collect()
    };
    if path == "/api/v1/overview" {
        return match queue.stats().await {
            Ok(counts) => Json(render(&counts)).into_response(),
            Err(e) => {
                tracing::warn!(error = %e, "job queue statistics unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "the job queue does not answer").into_response()
            }
        };
    }
    let mut per_lane = Vec::new();
    for lane in queue.lanes() {
        if stats_of.is_some_and(|wanted| wanted.name() != lane.name()) {
            continue;
        }
        match lane.stats().await {
            Ok(counts) => per_lane.push((lane.name().to_owned(), render(&counts))),
            Err(e) => {
                tracing::warn!(error = %e, "job queue statistics unavailable");
                return (StatusCode::SERVICE_UNAVAILABLE, "the job queue does not answer").into_response();
            }
        }
    }
    if path == "/api/v1/queues" {
        return Json(
            per_lane
                .into_iter()
                .map(|(name, stats)| json!({"name": name, "stats": stats, "workers": [], "activity": []}))
                .collect::<Vec<_>>(),
        )
        .into_response();
    }
    Json(per_lane.pop().map(|(_, stats)| stats).unwrap_or_default()).into_response()
}

/// The queue's tasks (`?status=Done&page=1&page_size=10`), from Redis.
async fn redis_tasks(queue: &Lane, query: &str) -> Response {
    let (mut status, mut page, mut page_size) = (None, 1usize, 10usize);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "status" if !value.is_empty() => status = Some(value.into_owned()),
            "page" => page = value.parse().unwrap_or(1).max(1),
            "page_size" => page_size = value.parse().unwrap_or(10).clamp(1, 500),
            _ => {}
        }
    }
    match queue.redis_jobs(status.as_deref(), page, page_size).await {
        Ok(Some(tasks)) => Json(tasks).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "not a Redis queue").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "job listing unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "the job queue does not answer").into_response()
        }
    }
}
