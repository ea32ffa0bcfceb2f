//! Webhook deliveries as records: the body each event is sent as, one
//! delivery per event and subscribed endpoint (keyed by event and endpoint,
//! so a crash and a re-read create none twice), claims with a lease, the
//! attempts, and each endpoint's health.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::aggregates::conversation::{
    ADMIN_REPLIED, ANSWERED, ASSIGNED, CONVERSATION_STARTED, ESCALATED, FEEDBACK_RECEIVED, MESSAGE_RECEIVED,
    NOTE_ADDED, REOPENED,
};
use crate::aggregates::lead::LEAD_UPDATED;
use crate::aggregates::source::SOURCE_INDEXED;
use crate::aggregates::webhook::{public_type, subscribes};
use crate::event::RecordedEvent;
use crate::store::Store;
use crate::store::entities::{conversations, sources, webhook_attempts, webhook_deliveries, webhook_health, webhooks};
use crate::store::now;
use crate::webhooks::envelope;

/// The body an endpoint receives for an event: `{"id", "type", "created_at", "data"}`.
pub async fn payload(store: &Store, event: &RecordedEvent, public: &str) -> Result<Value, DbErr> {
    let p = &event.payload;
    let mut data = serde_json::Map::new();
    data.insert("org_id".into(), json!(event.org_id));
    let field = |name: &str| p.get(name).cloned().unwrap_or(Value::Null);
    match event.stream_type.as_str() {
        "conversation" => {
            let row = conversations::Entity::find_by_id(event.stream_id)
                .one(store.db())
                .await?;
            data.insert("bot_id".into(), json!(row.as_ref().map(|c| c.bot_id)));
            data.insert("conversation_id".into(), json!(event.stream_id));
            data.insert(
                "visitor_id".into(),
                json!(row.as_ref().and_then(|c| c.visitor_id.clone())),
            );
            match event.event_type.as_str() {
                CONVERSATION_STARTED => {
                    data.insert("channel".into(), field("channel"));
                }
                MESSAGE_RECEIVED => {
                    data.insert("message_id".into(), field("message_id"));
                    data.insert("role".into(), json!("user"));
                    data.insert("text".into(), field("text"));
                }
                ANSWERED => {
                    data.insert("message_id".into(), field("message_id"));
                    data.insert("role".into(), json!("assistant"));
                    data.insert("text".into(), field("text"));
                    data.insert("reply_to".into(), field("reply_to"));
                    data.insert("unanswered".into(), field("unanswered"));
                    let sources: Vec<Value> = p["sources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| json!({"source_id": s["source_id"], "title": s["title"], "url": s["url"]}))
                        .collect();
                    data.insert("sources".into(), Value::Array(sources));
                }
                ESCALATED | REOPENED => {
                    data.insert("reason".into(), field("reason"));
                }
                ADMIN_REPLIED => {
                    for name in ["message_id", "text", "author_id", "author_name"] {
                        data.insert(name.into(), field(name));
                    }
                }
                ASSIGNED => {
                    data.insert("assignee_id".into(), field("assignee_id"));
                    data.insert("how".into(), field("how"));
                }
                NOTE_ADDED => {
                    for name in ["note_id", "text", "author_id"] {
                        data.insert(name.into(), field(name));
                    }
                }
                crate::aggregates::conversation::RATED => {
                    for name in ["score", "comment", "member_id"] {
                        data.insert(name.into(), field(name));
                    }
                }
                FEEDBACK_RECEIVED => {
                    for name in ["message_id", "rating", "comment", "by"] {
                        data.insert(name.into(), field(name));
                    }
                }
                _ => {}
            }
        }
        "lead" => {
            data.insert("lead_id".into(), json!(event.stream_id));
            for name in [
                "bot_id",
                "name",
                "email",
                "phone",
                "fields",
                "visitor_id",
                "conversation_id",
                "source",
            ] {
                data.insert(name.into(), field(name));
            }
            if event.event_type == LEAD_UPDATED {
                data.insert("changed".into(), field("changed"));
            }
            if data["fields"].is_null() {
                data.insert("fields".into(), json!({}));
            }
            if data["bot_id"].is_null() {
                // `lead.updated` does not repeat the bot; the read model knows it.
                let bot = crate::store::entities::leads::Entity::find_by_id(event.stream_id)
                    .one(store.db())
                    .await?
                    .map(|l| l.bot_id);
                data.insert("bot_id".into(), json!(bot));
            }
        }
        "source" => {
            let row = sources::Entity::find_by_id(event.stream_id).one(store.db()).await?;
            data.insert("bot_id".into(), json!(row.as_ref().map(|s| s.bot_id)));
            data.insert("source_id".into(), json!(event.stream_id));
            data.insert("title".into(), json!(row.as_ref().map(|s| s.title.clone())));
            data.insert("run_id".into(), field("run_id"));
            if event.event_type == SOURCE_INDEXED {
                data.insert("chunks".into(), field("chunks"));
                data.insert("pages".into(), json!(p["pages"].as_array().map_or(0, Vec::len)));
            } else {
                data.insert("code".into(), field("code"));
                data.insert("message".into(), field("message"));
            }
        }
        _ => {}
    }
    Ok(envelope(event.event_id, public, event.recorded_at, Value::Object(data)))
}

/// A delivery to create.
pub struct NewDelivery {
    pub org_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub dedup_key: String,
    pub payload: String,
    /// The creator hands it to a job itself (the dispatcher, right after);
    /// otherwise the dispatcher's scan of due deliveries does.
    pub handed_over: bool,
}

/// Creates a delivery, due now; `None` when it exists (the same event for
/// the same endpoint).
pub async fn create_delivery(store: &Store, new: NewDelivery) -> Result<Option<Uuid>, DbErr> {
    let id = Uuid::now_v7();
    let at = now();
    let row = webhook_deliveries::ActiveModel {
        id: Set(id),
        org_id: Set(new.org_id),
        webhook_id: Set(new.webhook_id),
        event_id: Set(new.event_id),
        event_type: Set(new.event_type),
        dedup_key: Set(new.dedup_key),
        payload: Set(new.payload),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(at),
        locked_until: Set(None),
        enqueued_at: Set(new.handed_over.then_some(at)),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        delivered_at: Set(None),
    };
    let inserted = webhook_deliveries::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                webhook_deliveries::Column::WebhookId,
                webhook_deliveries::Column::DedupKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok((inserted > 0).then_some(id))
}

/// The live, active endpoints of some organizations by organization, each
/// with the event types it subscribes to.
async fn active_endpoints(
    store: &Store,
    orgs: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, Vec<(webhooks::Model, Vec<String>)>>, DbErr> {
    let rows = webhooks::Entity::find()
        .filter(webhooks::Column::OrgId.is_in(orgs))
        .filter(webhooks::Column::DeletedAt.is_null())
        .filter(webhooks::Column::Active.eq(true))
        .all(store.db())
        .await?;
    let mut by_org: HashMap<Uuid, Vec<(webhooks::Model, Vec<String>)>> = HashMap::new();
    for w in rows {
        let events = <Vec<String> as serde::Deserialize>::deserialize(&w.events).unwrap_or_default();
        by_org.entry(w.org_id).or_default().push((w, events));
    }
    Ok(by_org)
}

/// Creates the deliveries of a batch of events for the endpoints that
/// subscribe to them. Returns the new deliveries (to hand to jobs) by event.
pub async fn fan_out(store: &Store, events: &[RecordedEvent]) -> Result<HashMap<Uuid, Vec<Uuid>>, DbErr> {
    let mut created: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let public: Vec<_> = events
        .iter()
        .filter_map(|e| public_type(&e.event_type).map(|t| (e, t)))
        .collect();
    if public.is_empty() {
        return Ok(created);
    }
    let orgs: HashSet<Uuid> = public.iter().map(|(e, _)| e.org_id).collect();
    let endpoints = active_endpoints(store, orgs).await?;
    for (event, public) in public {
        let targets: Vec<&webhooks::Model> = endpoints
            .get(&event.org_id)
            .into_iter()
            .flatten()
            .filter(|(w, events)| subscribes(events, public) && w.created_at <= event.recorded_at)
            .map(|(w, _)| w)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let body = payload(store, event, public).await?.to_string();
        for endpoint in targets {
            let made = create_delivery(
                store,
                NewDelivery {
                    org_id: event.org_id,
                    webhook_id: endpoint.id,
                    event_id: event.event_id,
                    event_type: public.to_owned(),
                    dedup_key: format!("event:{}", event.event_id),
                    payload: body.clone(),
                    handed_over: true,
                },
            )
            .await?;
            if let Some(delivery) = made {
                created.entry(event.event_id).or_default().push(delivery);
            }
        }
    }
    Ok(created)
}

/// The delivery as its sender claimed it: still sending under the same
/// lease (the lease's end is the fencing token).
fn still_held(delivery: &webhook_deliveries::Model) -> Condition {
    Condition::all()
        .add(webhook_deliveries::Column::Id.eq(delivery.id))
        .add(webhook_deliveries::Column::Status.eq("sending"))
        .add(webhook_deliveries::Column::LockedUntil.eq(delivery.locked_until))
}

/// Waiting for a sender: new or to retry, or held by a lease that ran out.
fn claimable(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(webhook_deliveries::Column::Status.is_in(["pending", "retrying"]))
        .add(
            Condition::all()
                .add(webhook_deliveries::Column::Status.eq("sending"))
                .add(webhook_deliveries::Column::LockedUntil.lt(at)),
        )
}

/// Deliveries due (new, to retry, or whose sender stopped answering) that no
/// job picked up lately: marks them handed over and returns them as
/// `(delivery, organization, event)`.
pub async fn due(store: &Store, limit: u64) -> Result<Vec<(Uuid, Uuid, Uuid)>, DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let at = now();
    // A job handed over this long ago and not started is taken for lost (a
    // queue that forgot it); the claim keeps a second copy from sending twice.
    let stale = at - TimeDelta::seconds(300);
    let rows: Vec<(Uuid, Uuid, Uuid)> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::Id)
        .column(webhook_deliveries::Column::OrgId)
        .column(webhook_deliveries::Column::EventId)
        .filter(claimable(at))
        .filter(webhook_deliveries::Column::NextAttemptAt.lte(at))
        .filter(
            Condition::any()
                .add(webhook_deliveries::Column::EnqueuedAt.is_null())
                .add(webhook_deliveries::Column::EnqueuedAt.lt(stale))
                // A sender that died holding the lease: handed over once
                // after the lease ran out, not at every scan.
                .add(
                    Condition::all()
                        .add(webhook_deliveries::Column::LockedUntil.lt(at))
                        .add(
                            Expr::col(webhook_deliveries::Column::EnqueuedAt)
                                .lt(Expr::col(webhook_deliveries::Column::LockedUntil)),
                        ),
                ),
        )
        .order_by_asc(webhook_deliveries::Column::NextAttemptAt)
        .limit(limit)
        .into_tuple()
        .all(store.db())
        .await?;
    if !rows.is_empty() {
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::EnqueuedAt, Expr::value(Some(at)))
            .filter(webhook_deliveries::Column::Id.is_in(rows.iter().map(|r| r.0)))
            .exec(store.db())
            .await?;
    }
    Ok(rows)
}

/// Takes a due delivery for one attempt: it is `sending` until `lease`
/// from now. `None` when it is not due, done, or another sender has it.
pub async fn claim(
    store: &Store,
    delivery_id: Uuid,
    lease: Duration,
) -> Result<Option<webhook_deliveries::Model>, DbErr> {
    let at = now();
    let until = at + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(30));
    let claimed = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value("sending"))
        .col_expr(webhook_deliveries::Column::LockedUntil, Expr::value(Some(until)))
        .filter(webhook_deliveries::Column::Id.eq(delivery_id))
        .filter(webhook_deliveries::Column::NextAttemptAt.lte(at))
        .filter(claimable(at))
        .exec(store.db())
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    webhook_deliveries::Entity::find_by_id(delivery_id)
        .one(store.db())
        .await
}

/// What one attempt gave.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// How a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Tried again at this time.
    Retry(DateTime<Utc>),
    /// No more attempts (the retry window is over, or the endpoint is gone).
    Failed,
    /// The endpoint was disabled or deleted before the attempt.
    Cancelled(String),
}

/// Records an attempt and the delivery's new state, if the sender still
/// holds the lease it claimed (`delivery.locked_until` is its fencing
/// token). `false`: the lease ran out and another sender took over, so this
/// attempt's outcome is not recorded.
pub async fn record(
    store: &Store,
    delivery: &webhook_deliveries::Model,
    attempt: &Attempt,
    outcome: &Outcome,
) -> Result<bool, DbErr> {
    let number = delivery.attempts + 1;
    let mut update = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Attempts, Expr::value(number))
        .col_expr(
            webhook_deliveries::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_deliveries::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_deliveries::Column::LastStatus,
            Expr::value(attempt.status_code.map(i32::from)),
        )
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(attempt.error.clone()),
        );
    update = match outcome {
        Outcome::Delivered => update
            .col_expr(webhook_deliveries::Column::Status, Expr::value("delivered"))
            .col_expr(webhook_deliveries::Column::DeliveredAt, Expr::value(Some(now()))),
        Outcome::Retry(at) => update
            .col_expr(webhook_deliveries::Column::Status, Expr::value("retrying"))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(*at)),
        Outcome::Failed => update.col_expr(webhook_deliveries::Column::Status, Expr::value("failed")),
        Outcome::Cancelled(_) => update.col_expr(webhook_deliveries::Column::Status, Expr::value("cancelled")),
    };
    let fenced = update.filter(still_held(delivery)).exec(store.db()).await?;
    if fenced.rows_affected == 0 {
        return Ok(false);
    }
    webhook_attempts::Entity::insert(webhook_attempts::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(delivery.id),
        webhook_id: Set(delivery.webhook_id),
        attempt: Set(number),
        started_at: Set(attempt.started_at),
        status_code: Set(attempt.status_code.map(i32::from)),
        latency_ms: Set(attempt.latency_ms),
        response_body: Set(attempt.response_body.clone()),
        error: Set(attempt.error.clone()),
    })
    .exec_without_returning(store.db())
    .await?;
    Ok(true)
}

/// Marks a claimed delivery cancelled without an attempt (its endpoint is
/// gone), if the sender still holds its lease.
pub async fn cancel(store: &Store, delivery: &webhook_deliveries::Model, reason: &str) -> Result<(), DbErr> {
    webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value("cancelled"))
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(Some(reason.to_owned())),
        )
        .col_expr(
            webhook_deliveries::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(still_held(delivery))
        .exec(store.db())
        .await?;
    Ok(())
}

/// Cancels an endpoint's deliveries that wait for an attempt (it was
/// deleted); one being sent finishes.
pub async fn cancel_waiting(store: &Store, webhook_id: Uuid, reason: &str) -> Result<u64, DbErr> {
    let done = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value("cancelled"))
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(Some(reason.to_owned())),
        )
        .filter(webhook_deliveries::Column::WebhookId.eq(webhook_id))
        .filter(webhook_deliveries::Column::Status.is_in(["pending", "retrying"]))
        .exec(store.db())
        .await?;
    Ok(done.rows_affected)
}

/// A delivery whose job could not be queued: the dispatcher's next scan
/// hands it to one.
pub async fn unqueued(store: &Store, delivery_id: Uuid) -> Result<(), DbErr> {
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_deliveries::Column::Id.eq(delivery_id))
        .exec(store.db())
        .await?;
    Ok(())
}

/// Forgets an endpoint's failure history (it was enabled again or points
/// somewhere else): it is judged afresh.
pub async fn reset_health(store: &Store, webhook_id: Uuid) -> Result<(), DbErr> {
    webhook_health::Entity::delete_by_id(webhook_id)
        .exec(store.db())
        .await?;
    Ok(())
}

/// Notes a success or failure of an endpoint; returns since when it has
/// been failing (`None` after a success).
pub async fn note_health(store: &Store, webhook_id: Uuid, success: bool) -> Result<Option<DateTime<Utc>>, DbErr> {
    let at = now();
    let current = webhook_health::Entity::find_by_id(webhook_id).one(store.db()).await?;
    let failing_since = if success {
        None
    } else {
        Some(current.as_ref().and_then(|h| h.failing_since).unwrap_or(at))
    };
    let row = webhook_health::ActiveModel {
        webhook_id: Set(webhook_id),
        failing_since: Set(failing_since),
        last_success_at: if success {
            Set(Some(at))
        } else {
            current.as_ref().map_or(Set(None), |h| Set(h.last_success_at))
        },
        last_failure_at: if success {
            current.as_ref().map_or(Set(None), |h| Set(h.last_failure_at))
        } else {
            Set(Some(at))
        },
    };
    webhook_health::Entity::insert(row)
        .on_conflict(
            OnConflict::column(webhook_health::Column::WebhookId)
                .update_columns([
                    webhook_health::Column::FailingSince,
                    webhook_health::Column::LastSuccessAt,
                    webhook_health::Column::LastFailureAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok(failing_since)
}

/// An endpoint's health record.
pub async fn health(store: &Store, webhook_id: Uuid) -> Result<Option<webhook_health::Model>, DbErr> {
    webhook_health::Entity::find_by_id(webhook_id).one(store.db()).await
}

/// The health of several endpoints, by endpoint.
pub async fn health_of(
    store: &Store,
    webhook_ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, webhook_health::Model>, DbErr> {
    Ok(webhook_health::Entity::find()
        .filter(webhook_health::Column::WebhookId.is_in(webhook_ids))
        .all(store.db())
        .await?
        .into_iter()
        .map(|h| (h.webhook_id, h))
        .collect())
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub event_type: Option<String>,
}

/// An endpoint's deliveries, newest first, after `cursor`.
pub async fn deliveries(
    store: &Store,
    webhook_id: Uuid,
    filter: &DeliveryFilter,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<crate::store::read::Page<webhook_deliveries::Model>, DbErr> {
    let mut q = webhook_deliveries::Entity::find().filter(webhook_deliveries::Column::WebhookId.eq(webhook_id));
    if let Some(status) = &filter.status {
        q = q.filter(webhook_deliveries::Column::Status.eq(status.clone()));
    }
    if let Some(t) = &filter.event_type {
        q = q.filter(webhook_deliveries::Column::EventType.eq(t.clone()));
    }
    if let Some(cursor) = cursor {
        q = q.filter(webhook_deliveries::Column::Id.lt(cursor));
    }
    let rows = q
        .order_by_desc(webhook_deliveries::Column::Id)
        .limit(limit + 1)
        .all(store.db())
        .await?;
    Ok(crate::store::read::page(rows, limit, |d| d.id))
}

pub async fn delivery(
    store: &Store,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<Option<webhook_deliveries::Model>, DbErr> {
    webhook_deliveries::Entity::find_by_id(delivery_id)
        .filter(webhook_deliveries::Column::WebhookId.eq(webhook_id))
        .one(store.db())
        .await
}

pub async fn attempts(store: &Store, delivery_id: Uuid) -> Result<Vec<webhook_attempts::Model>, DbErr> {
    webhook_attempts::Entity::find()
        .filter(webhook_attempts::Column::DeliveryId.eq(delivery_id))
        .order_by_asc(webhook_attempts::Column::Attempt)
        .all(store.db())
        .await
}

/// A live endpoint of the organization.
pub async fn endpoint(store: &Store, org_id: Uuid, webhook_id: Uuid) -> Result<Option<webhooks::Model>, DbErr> {
    webhooks::Entity::find_by_id(webhook_id)
        .filter(webhooks::Column::OrgId.eq(org_id))
        .filter(webhooks::Column::DeletedAt.is_null())
        .one(store.db())
        .await
}

/// The organization's live endpoints, oldest first.
pub async fn endpoints(store: &Store, org_id: Uuid) -> Result<Vec<webhooks::Model>, DbErr> {
    live_endpoints(org_id)
        .order_by_asc(webhooks::Column::Id)
        .all(store.db())
        .await
}

/// How many endpoints the organization has.
pub async fn endpoint_count(store: &Store, org_id: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    live_endpoints(org_id).count(store.db()).await
}

fn live_endpoints(org_id: Uuid) -> sea_orm::Select<webhooks::Entity> {
    webhooks::Entity::find()
        .filter(webhooks::Column::OrgId.eq(org_id))
        .filter(webhooks::Column::DeletedAt.is_null())
}

/// An endpoint by id alone (the delivery worker).
pub async fn endpoint_by_id(store: &Store, webhook_id: Uuid) -> Result<Option<webhooks::Model>, DbErr> {
    webhooks::Entity::find_by_id(webhook_id).one(store.db()).await
}
