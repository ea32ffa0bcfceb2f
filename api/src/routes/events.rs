//! `/api/v1/events`: the organization's event feed, paged by log position.

use chrono::{DateTime, Utc};
use parley_domain::RecordedEvent;
use parley_domain::jobs::public_payload;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::security::AdminAuth;

pub struct EventsApi {
    pub state: Option<crate::state::AppState>,
}

/// One event of the log.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Event {
    /// Global position in the log; strictly increasing.
    pub position: i64,
    /// The event's unique id.
    pub id: Uuid,
    /// Past-tense type name such as `bot.created`; see docs/events.md.
    #[oai(rename = "type")]
    pub event_type: String,
    /// Version of the payload's schema for this type.
    pub schema_version: i32,
    /// The kind of thing the event is about (`bot`, `api_key`, `org`).
    pub stream_type: String,
    /// The id of that thing.
    pub stream_id: Uuid,
    /// 1 for the thing's first event, then +1 per event.
    pub stream_version: i64,
    /// The event's data (secrets such as key hashes are left out).
    pub data: Value,
    /// The `X-Request-Id` of the request (or job) that caused the event.
    pub correlation_id: Option<String>,
    /// Who caused it: `{"kind": "member", "id": ...}`, `{"kind": "api_key", "id": ...}`,
    /// `{"kind": "visitor", "id": ...}`, `{"kind": "system"}`, `{"kind": "cli"}`.
    pub actor: Value,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventPage {
    /// Events in log order.
    pub data: Vec<Event>,
    /// Pass as `after` to continue; equals the request's `after` when no event was newer.
    pub next_after: i64,
}

impl From<RecordedEvent> for Event {
    fn from(e: RecordedEvent) -> Self {
        let data = public_payload(&e);
        Event {
            position: e.position,
            id: e.event_id,
            correlation_id: e.correlation_id().map(str::to_owned),
            actor: e.metadata.get("actor").cloned().unwrap_or(Value::Null),
            event_type: e.event_type,
            schema_version: e.schema_version,
            stream_type: e.stream_type,
            stream_id: e.stream_id,
            stream_version: e.stream_version,
            data,
            recorded_at: e.recorded_at,
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// List events
    ///
    /// Events of your organization after a position, oldest first. Follow the
    /// feed by passing `next_after` back as `after`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/events", method = "get", operation_id = "list_events")]
    async fn list(
        &self,
        auth: AdminAuth,
        /// Only events after this position (0: from the start).
        #[oai(default, validator(minimum(value = "0")))]
        after: Query<i64>,
        /// Page size, 1 to 1000.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
        /// Only events of these types (repeat the parameter for several).
        #[oai(name = "type")]
        types: Query<Vec<String>>,
        /// Only events caused by this kind of actor: `member`, `api_key`,
        /// `visitor`, `cli` or `system` (the audit log of who did what).
        actor_kind: Query<Option<ActorKind>>,
        /// With `actor_kind`: only this actor (a member's person id, a key's id, a visitor's id).
        actor_id: Query<Option<String>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let state = live(&self.state)?;
        if actor_id.0.is_some() && actor_kind.0.is_none() {
            return Err(crate::error::bad_request(
                "an actor id needs its kind",
                "actor_id",
                "give actor_kind too",
            ));
        }
        let actor = actor_kind.0.map(|k| (k.as_str(), actor_id.0.as_deref()));
        let events = state
            .store
            .read_log_of(Some(auth.0.org_id), after.0, limit.0, &types.0, actor)
            .await?;
        let next_after = events.last().map_or(after.0, |e| e.position);
        Ok(Json(EventPage {
            data: events.into_iter().map(Event::from).collect(),
            next_after,
        }))
    }
}

/// Who causes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in member.
    Member,
    /// A request with a secret API key.
    ApiKey,
    /// A website visitor.
    Visitor,
    /// The operator's command line.
    Cli,
    /// Parley's own jobs.
    System,
}

impl ActorKind {
    fn as_str(self) -> &'static str {
        match self {
            ActorKind::Member => "member",
            ActorKind::ApiKey => "api_key",
            ActorKind::Visitor => "visitor",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }
}

fn default_limit() -> u64 {
    100
}
