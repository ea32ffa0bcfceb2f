//! `/api/v1/events`: the organization's event feed, paged by log position;
//! `/api/v1/stream`: the same events live, as server-sent events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use parley_domain::jobs::public_payload;
use parley_domain::{Actor, RecordedEvent, Role};
use poem::web::sse::{Event as SseEvent, SSE};
use poem::{IntoResponse, Response};
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::security::{AdminAuth, AgentAuth};
use crate::state::{AppState, Principal};

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

/// Whether a role sees an event on the live stream: agents see
/// conversations and leads; admins and owners see everything.
fn visible(role: Role, event: &RecordedEvent) -> bool {
    role.allows(Role::Admin) || matches!(event.stream_type.as_str(), "conversation" | "lead")
}

/// Events read from the log per query while catching up.
const CATCH_UP: u64 = 500;
/// How often a member's stream checks they still belong to the organization.
const RECHECK: Duration = Duration::from_secs(30);

/// Someone typing in a conversation (a `typing` frame of the live stream).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TypingFrame {
    /// The conversation.
    pub conversation_id: Uuid,
    /// `visitor` or `agent`.
    pub who: String,
    /// A member's display name.
    pub name: Option<String>,
}

/// One server-sent event of the live stream as it travels: its `id:`,
/// `event:` and `data:` lines. Heartbeats are comment lines (`:`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StreamFrame {
    /// The event's log position (what `Last-Event-ID` resumes from); absent on `typing` frames.
    pub id: Option<String>,
    /// The event's type (`conversation.started`, ...), or `typing`.
    pub event: String,
    /// An `Event` as JSON, or for `typing` a `TypingFrame` as JSON.
    pub data: String,
}

/// The live stream: server-sent events, one per event of the log.
pub struct LiveStream {
    state: AppState,
    principal: Principal,
    after: i64,
    /// When the stream ends by itself (`None`: when the client leaves).
    until: Option<tokio::time::Instant>,
}

impl ApiResponse for LiveStream {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "`text/event-stream`: for every event, a frame (StreamFrame) with `id:` \
                    its log position (what `Last-Event-ID` resumes from), `event:` its type and `data:` \
                    the Event as JSON; `typing` frames carry a TypingFrame; a comment line every 15 \
                    seconds keeps the connection open.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: StreamFrame::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        StreamFrame::register(registry);
        Event::register(registry);
        TypingFrame::register(registry);
    }
}

impl IntoResponse for LiveStream {
    fn into_response(self) -> Response {
        let LiveStream {
            state,
            principal,
            after,
            until,
        } = self;
        let stream = async_stream::stream! {
            // Subscribed before catching up: nothing falls between the two.
            let mut live = state.live.subscribe(&state.store);
            let mut typing = state.typing.subscribe();
            let org_id = principal.org_id;
            let mut position = after;
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.tick().await;
            let mut behind = true;
            loop {
                if behind {
                    loop {
                        let Ok(events) = state.store.read_log(Some(org_id), position, CATCH_UP, &[]).await else {
                            break;
                        };
                        let full = events.len() as u64 == CATCH_UP;
                        for event in events {
                            position = event.position;
                            if visible(principal.role, &event) {
                                yield frame(event);
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    behind = false;
                }
                let ends = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = ends => break,
                    received = live.recv() => match received {
                        Ok(event) => {
                            if event.org_id != org_id || event.position <= position {
                                continue;
                            }
                            position = event.position;
                            if visible(principal.role, &event) {
                                yield frame(event.as_ref().clone());
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => behind = true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    signal = typing.recv() => match signal {
                        Ok(signal) if signal.org_id == org_id => {
                            // A signal, not an event: no id, nothing to resume.
                            let data = TypingFrame {
                                conversation_id: signal.conversation_id,
                                who: signal.who,
                                name: signal.name,
                            };
                            yield SseEvent::message(data.to_json_string()).event_type("typing");
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = recheck.tick() => {
                        // A member removed since the stream opened hears nothing more.
                        if let Actor::Member { id } = principal.actor {
                            let member = parley_domain::store::people::membership(&state.store, org_id, id).await;
                            if !matches!(member, Ok(Some(_))) {
                                break;
                            }
                        }
                    }
                }
            }
        };
        SSE::new(stream.boxed())
            .keep_alive(Duration::from_secs(15))
            .into_response()
    }
}

fn frame(event: RecordedEvent) -> SseEvent {
    let position = event.position;
    let event_type = event.event_type.clone();
    SseEvent::message(Event::from(event).to_json_string())
        .id(position.to_string())
        .event_type(event_type)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// Follow events live
    ///
    /// Server-sent events of your organization's events as they happen,
    /// from any API process: agents get conversation and lead events,
    /// admins and owners every event. `typing` frames (no `id:`; data:
    /// `conversation_id`, `who` (`visitor` or `agent`), `name`) say someone
    /// is typing in a conversation. Resume after a disconnection with
    /// `Last-Event-ID` (browsers' `EventSource` sends it) or `after`; without
    /// either, only new events come. Works with a member's session cookie,
    /// so `new EventSource('/api/v1/stream')` is enough in a browser page
    /// served by Parley.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/stream", method = "get", operation_id = "stream_events")]
    async fn stream(
        &self,
        auth: AgentAuth,
        /// Resume after this log position (what the last frame's `id:` said).
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
        /// Start after this log position (`Last-Event-ID` wins when both are sent).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// End the stream after this many seconds, 1 to 3600 (for clients
        /// that cannot hold a connection open); absent: when the client leaves.
        #[oai(validator(minimum(value = "1"), maximum(value = "3600")))]
        for_seconds: Query<Option<u64>>,
    ) -> Result<LiveStream, ApiError> {
        let state = live(&self.state)?;
        let after = match last_event_id.0.as_deref().map(str::trim) {
            Some(id) => id.parse::<i64>().ok().filter(|p| *p >= 0).ok_or_else(|| {
                crate::error::bad_request(
                    "bad Last-Event-ID",
                    "Last-Event-ID",
                    "must be a log position (the `id:` of a frame)",
                )
            })?,
            None => match after.0 {
                Some(after) => after,
                None => state.store.head().await?,
            },
        };
        Ok(LiveStream {
            state: state.clone(),
            principal: auth.0,
            after,
            until: for_seconds
                .0
                .map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        })
    }

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
