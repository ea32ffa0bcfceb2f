//! `/api/v1/webhooks`: endpoints that receive signed deliveries of your
//! organization's events, their delivery log, redelivery and test pings.

use chrono::{DateTime, TimeDelta, Utc};
use parley_domain::aggregates::webhook::{EndpointPatch, EndpointSettings, Webhook, WebhookCommand, new_secret};
use parley_domain::ids::new_id;
use parley_domain::store::deliveries::{self, DeliveryFilter, NewDelivery};
use parley_domain::store::entities::{webhook_attempts, webhook_deliveries, webhook_health, webhooks as endpoints};
use parley_domain::store::{Execute, StoreError};
use parley_domain::webhooks::{self, EVENT_TYPES, PING};
use parley_domain::{DomainError, ErrorCode};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::{Value, json};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::idempotency::{self, Idempotency};
use crate::security::AdminAuth;
use crate::state::AppState;
use crate::types::Text;

pub struct WebhooksApi {
    pub state: Option<AppState>,
}

/// Why an endpoint was disabled.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DisabledInfo {
    /// `gone` (it answered 410) or `failing` (every delivery failed for too long).
    pub code: String,
    /// What happened.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// How an endpoint has been doing.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EndpointHealth {
    /// Since when every delivery failed (absent after a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// The last successful delivery.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookEndpoint {
    /// The endpoint.
    pub id: Uuid,
    /// Where deliveries are posted.
    pub url: String,
    /// Subscribed event types; empty: every type.
    pub events: Vec<String>,
    /// Your note.
    pub description: Option<String>,
    /// Whether deliveries are sent.
    pub active: bool,
    /// Set when Parley disabled the endpoint.
    pub disabled: Option<DisabledInfo>,
    /// Until when the previous secret also signs deliveries (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// Deliveries' recent outcome.
    pub health: EndpointHealth,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint, with its signing secret (shown this once).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedWebhook {
    /// The endpoint.
    #[oai(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_...`); absent when an `Idempotency-Key` replay answers.
    pub secret: Option<String>,
}

/// A new endpoint.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct CreateWebhookRequest {
    /// An http(s) URL that Parley may reach (private addresses are refused).
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Text,
    /// Event types to receive (see `GET /webhooks/event-types`); absent or empty: all.
    #[oai(validator(max_items = 50))]
    pub events: Option<Vec<Text>>,
    /// A note, up to 500 characters.
    #[oai(validator(max_length = 500))]
    pub description: Option<Text>,
    /// Default true.
    pub active: Option<bool>,
}

/// Changes to an endpoint; absent fields keep their value.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct UpdateWebhookRequest {
    /// A new URL.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Option<Text>,
    /// Event types to receive; empty: all.
    #[oai(validator(max_items = 50))]
    pub events: Option<Vec<Text>>,
    /// A note; `null` removes it.
    #[oai(validator(max_length = 500))]
    pub description: MaybeUndefined<Text>,
    /// `true` enables it again after Parley disabled it.
    pub active: Option<bool>,
}

/// A secret rotation.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct RotateSecretRequest {
    /// Hours the previous secret keeps signing deliveries too, 0 to 168 (default 24).
    #[oai(validator(maximum(value = "168")))]
    pub grace_hours: Option<u32>,
}

/// The new signing secret.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RotatedSecret {
    /// The new secret (`whsec_...`), shown this once.
    pub secret: String,
    /// Until when deliveries also carry a signature with the previous secret.
    pub previous_secret_until: DateTime<Utc>,
}

/// The endpoints of your organization.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookList {
    /// Oldest first.
    pub items: Vec<WebhookEndpoint>,
}

/// The event types endpoints can receive.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventTypeList {
    /// Every type; `webhook.ping` is sent by test pings whatever an endpoint subscribes to.
    pub types: Vec<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt is under way.
    Sending,
    /// Failed; tried again at `next_attempt_at`.
    Retrying,
    /// The endpoint answered 2xx.
    Delivered,
    /// No more attempts (the retry window ended, or the endpoint answered 410).
    Failed,
    /// The endpoint was disabled or deleted first.
    Cancelled,
}

impl DeliveryStatus {
    fn parse(s: &str) -> DeliveryStatus {
        match s {
            "sending" => DeliveryStatus::Sending,
            "retrying" => DeliveryStatus::Retrying,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "cancelled" => DeliveryStatus::Cancelled,
            _ => DeliveryStatus::Pending,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Delivery {
    /// The delivery.
    pub id: Uuid,
    /// The endpoint.
    pub webhook_id: Uuid,
    /// The event (`X-Parley-Event-Id`; the same on every attempt and redelivery).
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending and retrying deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status.
    pub last_status_code: Option<i32>,
    /// The last attempt's error (timeout, connection, non-2xx status).
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the endpoint accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<webhook_deliveries::Model> for Delivery {
    fn from(d: webhook_deliveries::Model) -> Self {
        let status = DeliveryStatus::parse(&d.status);
        Delivery {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type,
            next_attempt_at: matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying)
                .then_some(d.next_attempt_at),
            status,
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The endpoint's HTTP status (absent when there was no answer).
    pub status_code: Option<i32>,
    /// Time to the answer, in milliseconds.
    pub latency_ms: i64,
    /// The start of the endpoint's answer (at most 2 KB).
    pub response_body: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

impl From<webhook_attempts::Model> for DeliveryAttempt {
    fn from(a: webhook_attempts::Model) -> Self {
        DeliveryAttempt {
            attempt: a.attempt,
            started_at: a.started_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_body: a.response_body,
            error: a.error,
        }
    }
}

/// A delivery with its body and every attempt.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryDetail {
    /// The delivery.
    #[oai(flatten)]
    pub delivery: Delivery,
    /// The JSON body sent: `{"id", "type", "created_at", "data"}`.
    pub payload: Value,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// A page of deliveries.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryList {
    /// Newest first.
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum CreateWebhookResponse {
    /// The endpoint was created.
    #[oai(status = 201)]
    Created(
        Json<CreatedWebhook>,
        #[oai(header = "Location")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum DeleteWebhookResponse {
    /// The endpoint is deleted; pending deliveries are cancelled.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum QueuedDelivery {
    /// The delivery is queued; follow it in the delivery log.
    #[oai(status = 202)]
    Accepted(Json<Delivery>),
}

async fn endpoint_of(state: &AppState, org_id: Uuid, webhook_id: Uuid) -> Result<endpoints::Model, ApiError> {
    deliveries::endpoint(&state.store, org_id, webhook_id)
        .await?
        .ok_or_else(|| DomainError::WebhookNotFound.into())
}

async fn shown(state: &AppState, row: endpoints::Model) -> Result<WebhookEndpoint, ApiError> {
    let health = deliveries::health(&state.store, row.id).await?;
    Ok(endpoint_with(row, health))
}

fn endpoint_with(row: endpoints::Model, health: Option<webhook_health::Model>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: row.id,
        url: row.url,
        events: serde_json::from_value(row.events).unwrap_or_default(),
        description: row.description,
        active: row.active,
        disabled: match (row.disabled_code, row.disabled_reason, row.disabled_at) {
            (Some(code), Some(reason), Some(at)) => Some(DisabledInfo { code, reason, at }),
            _ => None,
        },
        previous_secret_until: row.previous_until.filter(|t| *t > Utc::now()),
        health: EndpointHealth {
            failing_since: health.as_ref().and_then(|h| h.failing_since),
            last_success_at: health.as_ref().and_then(|h| h.last_success_at),
            last_failure_at: health.as_ref().and_then(|h| h.last_failure_at),
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Queues a new delivery of `payload` to an active endpoint.
async fn queue_delivery(
    state: &AppState,
    endpoint: &endpoints::Model,
    event_id: Uuid,
    event_type: &str,
    dedup_key: String,
    payload: String,
) -> Result<Delivery, ApiError> {
    if !endpoint.active {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the endpoint is disabled: enable it (`active: true`) first",
        ));
    }
    let id = deliveries::create_delivery(
        &state.store,
        NewDelivery {
            org_id: endpoint.org_id,
            webhook_id: endpoint.id,
            event_id,
            event_type: event_type.to_owned(),
            dedup_key,
            payload,
            // The dispatcher's scan of due deliveries hands it to a job:
            // every job reaches the queue from the dispatcher.
            handed_over: false,
        },
    )
    .await?
    .ok_or_else(|| ApiError::internal("a new delivery's key was taken"))?;
    let row = deliveries::delivery(&state.store, endpoint.id, id)
        .await?
        .ok_or_else(|| ApiError::internal("the new delivery vanished"))?;
    Ok(row.into())
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook endpoint
    ///
    /// Parley posts every subscribed event to the URL, signed with the
    /// endpoint's secret (shown in this response only): see "Verifying
    /// webhooks" in the API description. The URL must be http(s) and not a
    /// private address (`422 URL_NOT_ALLOWED`).
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        /// Makes a retried request safe: see the API description.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateWebhookRequest>,
    ) -> Result<CreateWebhookResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let idem = Idempotency::from_header(idempotency_key.0, "create_webhook", &body.0)?;
        if let Some(id) = idempotency::prior(&idem, state, org_id).await? {
            return answer_again(state, org_id, id).await;
        }
        let settings = EndpointSettings {
            url: body.0.url.into_inner(),
            events: Text::all(body.0.events.unwrap_or_default()),
            description: body.0.description.map(Text::into_inner),
            active: body.0.active.unwrap_or(true),
        }
        .validated()?;
        crate::ingestion::postable(state, &settings.url).await?;
        let existing = deliveries::endpoint_count(&state.store, org_id).await?;
        if existing >= state.settings.max_webhooks_per_org {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "an organization can have {} webhook endpoints; delete one first",
                    state.settings.max_webhooks_per_org
                ),
            ));
        }
        let webhook_id = new_id();
        let secret = new_secret();
        let executed = state
            .store
            .execute::<Webhook>(Execute {
                org_id,
                stream_id: webhook_id,
                expected_version: Some(0),
                command: WebhookCommand::Create {
                    webhook_id,
                    org_id,
                    settings,
                    secret: secret.clone(),
                },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: idempotency::record(&idem, webhook_id),
            })
            .await;
        match executed {
            Ok(_) => {}
            Err(StoreError::IdempotencyRace) => {
                return answer_again(state, org_id, idempotency::race_winner(&idem, state, org_id).await?).await;
            }
            Err(e) => return Err(e.into()),
        }
        let row = endpoint_of(state, org_id, webhook_id).await?;
        Ok(CreateWebhookResponse::Created(
            Json(CreatedWebhook {
                endpoint: shown(state, row).await?,
                secret: Some(secret),
            }),
            format!("/api/v1/webhooks/{webhook_id}"),
            None,
        ))
    }

    /// List webhook endpoints
    ///
    /// Every endpoint of your organization, oldest first.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(&self, auth: AdminAuth) -> Result<Json<WebhookList>, ApiError> {
        let state = live(&self.state)?;
        let rows = deliveries::endpoints(&state.store, auth.0.org_id).await?;
        let mut health = deliveries::health_of(&state.store, rows.iter().map(|r| r.id)).await?;
        let items = rows
            .into_iter()
            .map(|row| {
                let h = health.remove(&row.id);
                endpoint_with(row, h)
            })
            .collect();
        Ok(Json(WebhookList { items }))
    }

    /// List event types
    ///
    /// The event types an endpoint can subscribe to.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/webhooks/event-types",
        method = "get",
        operation_id = "list_webhook_event_types"
    )]
    async fn event_types(&self, _auth: AdminAuth) -> Result<Json<EventTypeList>, ApiError> {
        let mut types: Vec<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
        types.push(PING.to_owned());
        Ok(Json(EventTypeList { types }))
    }

    /// Get a webhook endpoint
    ///
    /// The endpoint's settings, whether it is disabled and why, and its health.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks/:webhook_id", method = "get", operation_id = "get_webhook")]
    async fn get(&self, auth: AdminAuth, webhook_id: Path<Uuid>) -> Result<Json<WebhookEndpoint>, ApiError> {
        let state = live(&self.state)?;
        let row = endpoint_of(state, auth.0.org_id, webhook_id.0).await?;
        Ok(Json(shown(state, row).await?))
    }

    /// Update a webhook endpoint
    ///
    /// Changes its URL, event types, description, or enables and disables it.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks/:webhook_id", method = "patch", operation_id = "update_webhook")]
    async fn update(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        webhook_id: Path<Uuid>,
        body: Json<UpdateWebhookRequest>,
    ) -> Result<Json<WebhookEndpoint>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let before = endpoint_of(state, org_id, webhook_id.0).await?;
        let req = body.0;
        if let Some(url) = &req.url {
            crate::ingestion::postable(state, &url.0).await?;
        }
        let patch = EndpointPatch {
            url: req.url.map(Text::into_inner),
            events: req.events.map(Text::all),
            description: match req.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(d.into_inner())),
            },
            active: req.active,
        };
        state
            .store
            .execute::<Webhook>(Execute {
                org_id,
                stream_id: webhook_id.0,
                expected_version: None,
                command: WebhookCommand::Update { org_id, patch },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        let row = endpoint_of(state, org_id, webhook_id.0).await?;
        // Enabled again, or somewhere else: its failures so far no longer count.
        if (row.active && !before.active) || row.url != before.url {
            deliveries::reset_health(&state.store, row.id).await?;
        }
        Ok(Json(shown(state, row).await?))
    }

    /// Delete a webhook endpoint
    ///
    /// No more deliveries are sent to it; pending ones are cancelled.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks/:webhook_id", method = "delete", operation_id = "delete_webhook")]
    async fn delete(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        webhook_id: Path<Uuid>,
    ) -> Result<DeleteWebhookResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        state
            .store
            .execute::<Webhook>(Execute {
                org_id,
                stream_id: webhook_id.0,
                expected_version: None,
                command: WebhookCommand::Delete { org_id },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        deliveries::cancel_waiting(&state.store, webhook_id.0, "the endpoint was deleted").await?;
        Ok(DeleteWebhookResponse::Deleted)
    }

    /// Rotate the signing secret
    ///
    /// A new secret signs every delivery from now on. For `grace_hours`
    /// (default 24) deliveries carry a second signature made with the
    /// previous secret, so that receivers can switch without losing any.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/webhooks/:webhook_id/rotate-secret",
        method = "post",
        operation_id = "rotate_webhook_secret"
    )]
    async fn rotate(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        webhook_id: Path<Uuid>,
        body: Json<RotateSecretRequest>,
    ) -> Result<Json<RotatedSecret>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let secret = new_secret();
        let previous_until =
            parley_domain::store::now() + TimeDelta::hours(i64::from(body.0.grace_hours.unwrap_or(24)));
        state
            .store
            .execute::<Webhook>(Execute {
                org_id,
                stream_id: webhook_id.0,
                expected_version: None,
                command: WebhookCommand::RotateSecret {
                    org_id,
                    secret: secret.clone(),
                    previous_until,
                },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        Ok(Json(RotatedSecret {
            secret,
            previous_secret_until: previous_until,
        }))
    }

    /// Send a test ping
    ///
    /// Queues a `webhook.ping` delivery (signed like any other) and answers
    /// `202` with it; its outcome shows in the delivery log.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/webhooks/:webhook_id/ping", method = "post", operation_id = "ping_webhook")]
    async fn ping(&self, auth: AdminAuth, webhook_id: Path<Uuid>) -> Result<QueuedDelivery, ApiError> {
        let state = live(&self.state)?;
        let endpoint = endpoint_of(state, auth.0.org_id, webhook_id.0).await?;
        let event_id = Uuid::now_v7();
        let payload = webhooks::envelope(
            event_id,
            PING,
            parley_domain::store::now(),
            json!({"org_id": endpoint.org_id, "webhook_id": endpoint.id}),
        );
        let delivery = queue_delivery(
            state,
            &endpoint,
            event_id,
            PING,
            format!("ping:{event_id}"),
            payload.to_string(),
        )
        .await?;
        Ok(QueuedDelivery::Accepted(Json(delivery)))
    }

    /// List deliveries
    ///
    /// An endpoint's delivery log, newest first, optionally by status or event type.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        auth: AdminAuth,
        webhook_id: Path<Uuid>,
        /// Only deliveries with this status.
        status: Query<Option<DeliveryStatus>>,
        /// Only deliveries of this event type.
        event_type: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Uuid>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<DeliveryList>, ApiError> {
        let state = live(&self.state)?;
        let endpoint = endpoint_of(state, auth.0.org_id, webhook_id.0).await?;
        let limit = limit.0.unwrap_or(20);
        let filter = DeliveryFilter {
            status: status.0.map(|s| s.as_str().to_owned()),
            event_type: event_type.0,
        };
        let page = deliveries::deliveries(&state.store, endpoint.id, &filter, cursor.0, limit).await?;
        Ok(Json(DeliveryList {
            items: page.items.into_iter().map(Delivery::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Get a delivery
    ///
    /// The body sent and every attempt: time, status code, latency, the
    /// start of the answer, the error.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id",
        method = "get",
        operation_id = "get_webhook_delivery"
    )]
    async fn delivery(
        &self,
        auth: AdminAuth,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Json<DeliveryDetail>, ApiError> {
        let state = live(&self.state)?;
        let endpoint = endpoint_of(state, auth.0.org_id, webhook_id.0).await?;
        let row = deliveries::delivery(&state.store, endpoint.id, delivery_id.0)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::DeliveryNotFound, "delivery not found"))?;
        let attempts = deliveries::attempts(&state.store, row.id).await?;
        Ok(Json(DeliveryDetail {
            payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
            delivery: row.into(),
            attempt_log: attempts.into_iter().map(DeliveryAttempt::from).collect(),
        }))
    }

    /// Redeliver
    ///
    /// Sends a delivery's event again, as a new delivery with the same body
    /// and event id (`202`).
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliver_webhook"
    )]
    async fn redeliver(
        &self,
        auth: AdminAuth,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<QueuedDelivery, ApiError> {
        let state = live(&self.state)?;
        let endpoint = endpoint_of(state, auth.0.org_id, webhook_id.0).await?;
        let original = deliveries::delivery(&state.store, endpoint.id, delivery_id.0)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::DeliveryNotFound, "delivery not found"))?;
        let delivery = queue_delivery(
            state,
            &endpoint,
            original.event_id,
            &original.event_type,
            format!("redeliver:{}", Uuid::now_v7()),
            original.payload,
        )
        .await?;
        Ok(QueuedDelivery::Accepted(Json(delivery)))
    }
}

/// The answer to a replayed create: the endpoint, without its secret.
async fn answer_again(state: &AppState, org_id: Uuid, id: Uuid) -> Result<CreateWebhookResponse, ApiError> {
    let row = endpoint_of(state, org_id, id).await?;
    Ok(CreateWebhookResponse::Created(
        Json(CreatedWebhook {
            endpoint: shown(state, row).await?,
            secret: None,
        }),
        format!("/api/v1/webhooks/{id}"),
        Some("true".into()),
    ))
}
