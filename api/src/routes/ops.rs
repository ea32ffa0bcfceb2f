//! Health, readiness and Prometheus metrics.

use parley_domain::jobs::OUTBOX;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;

pub struct OpsApi {
    pub state: Option<crate::state::AppState>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    pub status: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok`, or why the database cannot be used.
    pub database: String,
    /// `ok`, or why the job queue cannot be used.
    pub queue: String,
    /// `sqlite` or `redis`.
    pub queue_backend: String,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database and the job queue answer.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database or the job queue does not answer.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text exposition format.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4")]
    Ok(PlainText<String>),
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness
    ///
    /// Answers while the process runs; checks nothing else.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness
    ///
    /// Whether the database and the job queue answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> ReadyResponse {
        let Some(state) = &self.state else {
            return ReadyResponse::NotReady(Json(Readiness {
                status: "not_ready".into(),
                database: "unavailable".into(),
                queue: "unavailable".into(),
                queue_backend: "none".into(),
            }));
        };
        let database = match state.store.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: database");
                "unavailable".to_owned()
            }
        };
        let queue = match state.queue.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: queue");
                "unavailable".to_owned()
            }
        };
        let ready = database == "ok" && queue == "ok";
        let body = Readiness {
            status: if ready { "ready" } else { "not_ready" }.into(),
            database,
            queue,
            queue_backend: state.queue.kind().into(),
        };
        if ready {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }

    /// Metrics
    ///
    /// Request counts and latency histograms by route and status, job counts
    /// by outcome (this process) and by state (the whole queue), the
    /// positions of the event log and the outbox, and the search index
    /// cache's size, budget, hits, misses and evictions (this process).
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> Result<MetricsResponse, ApiError> {
        let state = live(&self.state)?;
        if let (Ok(head), Ok(outbox)) = (state.store.head().await, state.store.checkpoint(OUTBOX).await) {
            state.metrics.set_log_positions(head, outbox);
        }
        state.metrics.set_index_cache(&state.chat.index_stats());
        match state.queue.stats().await {
            Ok(stats) => state.metrics.set_queue_stats(&stats),
            Err(e) => tracing::warn!(error = %e, "queue statistics unavailable"),
        }
        Ok(MetricsResponse::Ok(PlainText(state.metrics.render())))
    }
}
