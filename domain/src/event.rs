//! The shape of events: what a decider produces, what the log stores, and
//! the traits that tie an aggregate's typed events to their stored form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::DomainError;

/// Who caused an event. Stored in the event's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A request authenticated with a secret API key.
    ApiKey { id: Uuid },
    /// A member (a person signed in), by person id.
    Member { id: Uuid },
    /// A website visitor (public widget endpoints).
    Visitor { id: String },
    /// The operator's command line (`parley admin ...`).
    Cli,
    /// A background job of Parley itself.
    System,
}

/// Metadata recorded with every event of one append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The request id (`X-Request-Id`) or job correlation id that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Metadata {
    pub fn new(actor: Actor, correlation_id: Option<String>) -> Self {
        Metadata {
            correlation_id,
            actor,
            idempotency_key: None,
        }
    }

    pub fn system(correlation_id: impl Into<String>) -> Self {
        Metadata::new(Actor::System, Some(correlation_id.into()))
    }
}

/// An event about to be appended: type name, schema version and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global, gap-free-per-commit order of the log.
    pub position: i64,
    pub event_id: Uuid,
    pub org_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    /// 1 for the first event of a stream.
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.get("correlation_id").and_then(Value::as_str)
    }
}

/// A typed event of one aggregate, with a stable stored name per variant.
pub trait DomainEvent: Sized {
    /// The stored, past-tense type name (`bot.created`).
    fn event_type(&self) -> &'static str;
    /// Serialise to the current schema.
    fn to_new_event(&self) -> NewEvent;
    /// Read a stored event, upcasting older schema versions.
    fn from_stored(event_type: &str, schema_version: i32, payload: &Value) -> Result<Self, UpcastError>;
}

#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown event type `{0}` for this stream")]
    UnknownType(String),
    #[error("unsupported schema version {version} of `{event_type}`")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("malformed payload of `{event_type}`: {source}")]
    Payload {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Deserialise one payload, naming the event in the error.
pub fn payload_of<T: serde::de::DeserializeOwned>(event_type: &str, payload: &Value) -> Result<T, UpcastError> {
    serde_json::from_value(payload.clone()).map_err(|source| UpcastError::Payload {
        event_type: event_type.to_owned(),
        source,
    })
}

/// Serialise a payload struct. Payload structs are plain data, so this cannot fail.
pub fn to_payload<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// An event-sourced aggregate: pure `decide` and `apply`, no I/O.
pub trait Aggregate {
    /// Stored in the log's `stream_type` column.
    const STREAM_TYPE: &'static str;
    type State: Default + Clone + Send;
    type Event: DomainEvent + Send;
    type Command: Send + Clone;

    fn apply(state: &mut Self::State, event: &Self::Event);
    fn decide(state: &Self::State, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;
}

/// Declares an aggregate's event enum, one variant per stored type name, all
/// at schema version 1, with its [`DomainEvent`] implementation.
#[macro_export]
macro_rules! domain_events {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident($payload:ty) = $type_name:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $($variant($payload)),*
        }

        impl $crate::event::DomainEvent for $name {
            fn event_type(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => $type_name),*
                }
            }

            fn to_new_event(&self) -> $crate::event::NewEvent {
                let payload = match self {
                    $($name::$variant(e) => $crate::event::to_payload(e)),*
                };
                $crate::event::NewEvent {
                    event_type: self.event_type(),
                    schema_version: 1,
                    payload,
                }
            }

            fn from_stored(
                event_type: &str,
                schema_version: i32,
                payload: &serde_json::Value,
            ) -> Result<Self, $crate::event::UpcastError> {
                $(
                    if event_type == $type_name {
                        if schema_version != 1 {
                            return Err($crate::event::UpcastError::UnknownVersion {
                                event_type: event_type.into(),
                                version: schema_version,
                            });
                        }
                        return Ok($name::$variant($crate::event::payload_of(event_type, payload)?));
                    }
                )*
                Err($crate::event::UpcastError::UnknownType(event_type.into()))
            }
        }
    };
}
