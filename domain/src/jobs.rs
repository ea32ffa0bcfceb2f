//! Background jobs and the events that cause them. A job carries ids, never
//! data, and is keyed by the event that caused it, because the outbox
//! delivers at least once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::aggregates::api_key::{API_KEY_CREATED, ApiKeyCreated};
use crate::aggregates::bot::BOT_DELETED;
use crate::event::RecordedEvent;

/// Queue names are explicit so that renaming a Rust type orphans nothing.
pub const JOBS_QUEUE: &str = "parley.jobs";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Remove a deleted bot's derived data, then record `bot.purged`.
    PurgeBot {
        org_id: Uuid,
        bot_id: Uuid,
        /// The `bot.deleted` event this job comes from.
        event_id: Uuid,
        correlation_id: Option<String>,
    },
}

impl Job {
    pub fn name(&self) -> &'static str {
        match self {
            Job::PurgeBot { .. } => "purge_bot",
        }
    }

    /// The event this job comes from: its idempotency key.
    pub fn event_id(&self) -> Uuid {
        match self {
            Job::PurgeBot { event_id, .. } => *event_id,
        }
    }
}

/// The jobs one event causes.
pub fn jobs_for(event: &RecordedEvent) -> Vec<Job> {
    match event.event_type.as_str() {
        BOT_DELETED => vec![Job::PurgeBot {
            org_id: event.org_id,
            bot_id: event.stream_id,
            event_id: event.event_id,
            correlation_id: event.correlation_id().map(str::to_owned),
        }],
        _ => vec![],
    }
}

/// An event's payload as the public event feed shows it: stored secrets
/// (key hashes) are left out.
pub fn public_payload(event: &RecordedEvent) -> Value {
    match event.event_type.as_str() {
        API_KEY_CREATED => match serde_json::from_value::<ApiKeyCreated>(event.payload.clone()) {
            Ok(created) => serde_json::json!({
                "key_id": created.key_id,
                "org_id": created.org_id,
                "name": created.name,
                "prefix": created.prefix,
                "last4": created.last4,
            }),
            Err(_) => Value::Null,
        },
        _ => event.payload.clone(),
    }
}
