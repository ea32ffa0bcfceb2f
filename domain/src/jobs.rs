//! Background jobs and the events that cause them. A job carries ids, never
//! data, and is keyed by the event that caused it, because the outbox
//! delivers at least once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::aggregates::api_key::{API_KEY_CREATED, ApiKeyCreated};
use crate::aggregates::bot::BOT_DELETED;
use crate::aggregates::source::{
    DocumentRenamed, RefreshRequested, SOURCE_ADDED, SOURCE_DELETED, SOURCE_DOCUMENT_RENAMED, SOURCE_FETCHED,
    SOURCE_PARSED, SOURCE_REFRESH_REQUESTED, SourceAdded,
};
use crate::event::RecordedEvent;

/// The dispatcher's checkpoint and lease: how far the log has been turned into jobs.
pub const OUTBOX: &str = "outbox";

/// Queue names are explicit so that renaming a Rust type orphans nothing.
pub const JOBS_QUEUE: &str = "parley.jobs";
/// Webhook deliveries have a queue of their own: a flood of them never
/// holds up indexing.
pub const WEBHOOKS_QUEUE: &str = "parley.webhooks";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The event this job comes from: its idempotency key.
    pub event_id: Uuid,
    pub org_id: Uuid,
    /// The request (or job) that caused the event, carried into what the job records.
    pub correlation_id: Option<String>,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    /// Remove a deleted bot's derived data, then record `bot.purged`.
    PurgeBot { bot_id: Uuid },
    /// Crawl, download or read a source's content.
    FetchSource { source_id: Uuid, run_id: Uuid },
    /// Turn fetched content into text.
    ParseSource { source_id: Uuid, run_id: Uuid },
    /// Chunk and embed changed documents.
    EmbedSource { source_id: Uuid, run_id: Uuid },
    /// Remove a deleted source's content and chunks, then record `source.purged`.
    PurgeSource { source_id: Uuid },
    /// Embed a renamed document's chunks again under its new title.
    RetitleDocument { source_id: Uuid, doc_key: String },
    /// Post one webhook delivery (an attempt; failures are scheduled again).
    DeliverWebhook { delivery_id: Uuid },
    /// Give a conversation handed to a person to an online member, when its
    /// bot assigns automatically.
    AutoAssign { conversation_id: Uuid },
}

impl Job {
    /// The job that posts one webhook delivery.
    pub fn deliver_webhook(org_id: Uuid, delivery_id: Uuid, event_id: Uuid) -> Job {
        Job {
            event_id,
            org_id,
            correlation_id: Some(format!("webhook-delivery-{delivery_id}")),
            task: Task::DeliverWebhook { delivery_id },
        }
    }

    pub fn name(&self) -> &'static str {
        match self.task {
            Task::PurgeBot { .. } => "purge_bot",
            Task::FetchSource { .. } => "fetch_source",
            Task::ParseSource { .. } => "parse_source",
            Task::EmbedSource { .. } => "embed_source",
            Task::PurgeSource { .. } => "purge_source",
            Task::RetitleDocument { .. } => "retitle_document",
            Task::DeliverWebhook { .. } => "deliver_webhook",
            Task::AutoAssign { .. } => "auto_assign",
        }
    }
}

fn run_id(event: &RecordedEvent) -> Option<Uuid> {
    event
        .payload
        .get("run_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// The jobs one event causes.
pub fn jobs_for(event: &RecordedEvent) -> Vec<Job> {
    let source_id = event.stream_id;
    let task = match event.event_type.as_str() {
        BOT_DELETED => Some(Task::PurgeBot {
            bot_id: event.stream_id,
        }),
        crate::aggregates::conversation::ESCALATED => Some(Task::AutoAssign {
            conversation_id: event.stream_id,
        }),
        SOURCE_ADDED => serde_json::from_value::<SourceAdded>(event.payload.clone())
            .ok()
            .map(|e| Task::FetchSource {
                source_id,
                run_id: e.run_id,
            }),
        SOURCE_REFRESH_REQUESTED => serde_json::from_value::<RefreshRequested>(event.payload.clone())
            .ok()
            .map(|e| Task::FetchSource {
                source_id,
                run_id: e.run_id,
            }),
        SOURCE_FETCHED => run_id(event).map(|run_id| Task::ParseSource { source_id, run_id }),
        SOURCE_PARSED => run_id(event).map(|run_id| Task::EmbedSource { source_id, run_id }),
        SOURCE_DELETED => Some(Task::PurgeSource { source_id }),
        SOURCE_DOCUMENT_RENAMED => serde_json::from_value::<DocumentRenamed>(event.payload.clone())
            .ok()
            .map(|e| Task::RetitleDocument {
                source_id,
                doc_key: e.doc_key,
            }),
        _ => None,
    };
    task.into_iter()
        .map(|task| Job {
            event_id: event.event_id,
            org_id: event.org_id,
            correlation_id: event.correlation_id().map(str::to_owned),
            task,
        })
        .collect()
}

/// An event's payload as the public event feed shows it: stored secrets
/// (key, password and link hashes) and bulky bodies (texts, Q&A) are left out.
pub fn public_payload(event: &RecordedEvent) -> Value {
    match event.event_type.as_str() {
        API_KEY_CREATED => match serde_json::from_value::<ApiKeyCreated>(event.payload.clone()) {
            Ok(created) => serde_json::json!({
                "key_id": created.key_id,
                "org_id": created.org_id,
                "name": created.name,
                "prefix": created.prefix,
                "last4": created.last4,
                "role": created.role,
            }),
            Err(_) => Value::Null,
        },
        SOURCE_ADDED => match serde_json::from_value::<SourceAdded>(event.payload.clone()) {
            Ok(added) => serde_json::json!({
                "source_id": added.source_id,
                "org_id": added.org_id,
                "bot_id": added.bot_id,
                "run_id": added.run_id,
                "spec": added.spec.summary(),
                "schedule": added.schedule,
            }),
            Err(_) => Value::Null,
        },
        // Password hashes and one-time links' token hashes are never shown.
        crate::aggregates::org::INVITATION_CREATED
        | crate::aggregates::person::PERSON_REGISTERED
        | crate::aggregates::person::PERSON_PASSWORD_SET
        | crate::aggregates::person::PERSON_PASSWORD_LINK_ISSUED => {
            let mut payload = event.payload.clone();
            if let Some(object) = payload.as_object_mut() {
                object.remove("token_hash");
                object.remove("password_hash");
            }
            payload
        }
        // Signing secrets are shown at creation and rotation only.
        crate::aggregates::webhook::WEBHOOK_CREATED | crate::aggregates::webhook::WEBHOOK_SECRET_ROTATED => {
            let mut payload = event.payload.clone();
            if let Some(object) = payload.as_object_mut() {
                object.remove("secret");
                object.remove("previous_secret");
            }
            payload
        }
        // The conversation token's hash stays private to the visitor.
        crate::aggregates::conversation::CONVERSATION_STARTED => {
            let mut payload = event.payload.clone();
            if let Some(object) = payload.as_object_mut() {
                object.remove("token_hash");
            }
            payload
        }
        _ => event.payload.clone(),
    }
}
