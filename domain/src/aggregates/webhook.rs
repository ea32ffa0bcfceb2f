//! A webhook endpoint: a URL of the organization's that receives signed
//! deliveries of the events it subscribes to. Its signing secret
//! (`whsec_...`) is shown at creation and on rotation only; during a
//! rotation's grace period deliveries are signed with both secrets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregates::conversation::{
    ADMIN_REPLIED, ANSWERED, CLOSED, CONVERSATION_STARTED, ESCALATED, FEEDBACK_RECEIVED, MESSAGE_RECEIVED, REOPENED,
};
use crate::aggregates::lead::{LEAD_CAPTURED, LEAD_UPDATED};
use crate::aggregates::source::{SOURCE_FAILED, SOURCE_INDEXED};
use crate::domain_events;
use crate::error::{DomainError, FieldError};
use crate::event::Aggregate;

/// The event types endpoints can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "conversation.created",
    "conversation.escalated",
    "conversation.closed",
    "conversation.reopened",
    "message.created",
    "admin.replied",
    "conversation.assigned",
    "conversation.unassigned",
    "conversation.handed_back",
    "conversation.note_added",
    "conversation.rated",
    "feedback.received",
    "lead.captured",
    "lead.updated",
    "source.ready",
    "source.failed",
];

/// A test delivery (`POST /webhooks/{id}/ping`), sent whatever the filter.
pub const PING: &str = "webhook.ping";

/// The public type of a stored event, when endpoints hear about it.
pub fn public_type(stored: &str) -> Option<&'static str> {
    Some(match stored {
        CONVERSATION_STARTED => "conversation.created",
        MESSAGE_RECEIVED | ANSWERED => "message.created",
        ESCALATED => "conversation.escalated",
        ADMIN_REPLIED => "admin.replied",
        crate::aggregates::conversation::ASSIGNED => "conversation.assigned",
        crate::aggregates::conversation::UNASSIGNED => "conversation.unassigned",
        crate::aggregates::conversation::HANDED_BACK => "conversation.handed_back",
        crate::aggregates::conversation::NOTE_ADDED => "conversation.note_added",
        crate::aggregates::conversation::RATED => "conversation.rated",
        CLOSED => "conversation.closed",
        REOPENED => "conversation.reopened",
        FEEDBACK_RECEIVED => "feedback.received",
        LEAD_CAPTURED => "lead.captured",
        LEAD_UPDATED => "lead.updated",
        SOURCE_INDEXED => "source.ready",
        SOURCE_FAILED => "source.failed",
        _ => return None,
    })
}

pub const WEBHOOK_CREATED: &str = "webhook.created";
pub const WEBHOOK_UPDATED: &str = "webhook.updated";
pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
pub const WEBHOOK_DELETED: &str = "webhook.deleted";
pub const WEBHOOK_EVENTS: &[&str] = &[
    WEBHOOK_CREATED,
    WEBHOOK_UPDATED,
    WEBHOOK_SECRET_ROTATED,
    WEBHOOK_DISABLED,
    WEBHOOK_DELETED,
];

/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A new signing secret: `whsec_` and 64 hex characters.
pub fn new_secret() -> String {
    crate::ids::random_token("whsec_", 32)
}

/// What an endpoint is: where deliveries go and which events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSettings {
    pub url: String,
    /// Subscribed event types; empty: all of them.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
}

impl EndpointSettings {
    /// Checks the fields (the URL's reachability is the caller's, with the
    /// SSRF guard); sorts and deduplicates the event types.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        if !super::source::valid_http_url(&self.url) {
            errors.push(FieldError {
                field: "url".into(),
                message: "must be an absolute http or https URL of at most 2048 characters".into(),
            });
        }
        for (i, t) in self.events.iter().enumerate() {
            if !EVENT_TYPES.contains(&t.as_str()) {
                errors.push(FieldError {
                    field: format!("events[{i}]"),
                    message: format!("`{t}` is not an event type; see the webhook event catalogue"),
                });
            }
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            errors.push(FieldError {
                field: "description".into(),
                message: "must be at most 500 characters".into(),
            });
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        self.events.sort();
        self.events.dedup();
        self.description = self.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
        Ok(self)
    }

    /// Whether deliveries of this event type go to the endpoint.
    pub fn wants(&self, event_type: &str) -> bool {
        subscribes(&self.events, event_type)
    }
}

/// Whether a list of subscribed event types (empty: all) takes `event_type`.
pub fn subscribes(events: &[String], event_type: &str) -> bool {
    events.is_empty() || events.iter().any(|e| e == event_type)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub webhook_id: Uuid,
    pub org_id: Uuid,
    #[serde(flatten)]
    pub settings: EndpointSettings,
    /// The signing secret (never shown in the event feed).
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookUpdated {
    pub webhook_id: Uuid,
    #[serde(flatten)]
    pub settings: EndpointSettings,
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRotated {
    pub webhook_id: Uuid,
    pub secret: String,
    /// The previous secret, still signing deliveries until `previous_until`.
    pub previous_secret: String,
    pub previous_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: Uuid,
    /// `gone` (the endpoint answered 410) or `failing` (it failed for too long).
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDeleted {
    pub webhook_id: Uuid,
}

domain_events! {
    pub enum WebhookEvent {
        Created(WebhookCreated) = WEBHOOK_CREATED,
        Updated(WebhookUpdated) = WEBHOOK_UPDATED,
        SecretRotated(SecretRotated) = WEBHOOK_SECRET_ROTATED,
        Disabled(WebhookDisabled) = WEBHOOK_DISABLED,
        Deleted(WebhookDeleted) = WEBHOOK_DELETED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookState {
    pub webhook_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub settings: Option<EndpointSettings>,
    /// The current signing secret.
    pub secret: Option<String>,
    pub deleted: bool,
}

impl WebhookState {
    fn live_for(&self, org_id: Uuid) -> Result<(Uuid, &EndpointSettings), DomainError> {
        match (self.webhook_id, &self.settings) {
            (Some(id), Some(settings)) if self.org_id == Some(org_id) && !self.deleted => Ok((id, settings)),
            _ => Err(DomainError::WebhookNotFound),
        }
    }
}

/// A partial update; absent fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum WebhookCommand {
    Create {
        webhook_id: Uuid,
        org_id: Uuid,
        settings: EndpointSettings,
        secret: String,
    },
    Update {
        org_id: Uuid,
        patch: EndpointPatch,
    },
    RotateSecret {
        org_id: Uuid,
        secret: String,
        previous_until: DateTime<Utc>,
    },
    /// By the delivery worker: the endpoint is gone or failing.
    Disable {
        code: String,
        reason: String,
    },
    Delete {
        org_id: Uuid,
    },
}

pub struct Webhook;

impl Aggregate for Webhook {
    const STREAM_TYPE: &'static str = "webhook";
    type State = WebhookState;
    type Event = WebhookEvent;
    type Command = WebhookCommand;

    fn apply(state: &mut WebhookState, event: &WebhookEvent) {
        match event {
            WebhookEvent::Created(e) => {
                state.webhook_id = Some(e.webhook_id);
                state.org_id = Some(e.org_id);
                state.settings = Some(e.settings.clone());
                state.secret = Some(e.secret.clone());
            }
            WebhookEvent::Updated(e) => state.settings = Some(e.settings.clone()),
            WebhookEvent::Disabled(_) => {
                if let Some(s) = &mut state.settings {
                    s.active = false;
                }
            }
            WebhookEvent::SecretRotated(e) => state.secret = Some(e.secret.clone()),
            WebhookEvent::Deleted(_) => state.deleted = true,
        }
    }

    fn decide(state: &WebhookState, command: WebhookCommand) -> Result<Vec<WebhookEvent>, DomainError> {
        match command {
            WebhookCommand::Create {
                webhook_id,
                org_id,
                settings,
                secret,
            } => {
                if state.webhook_id.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                Ok(vec![WebhookEvent::Created(WebhookCreated {
                    webhook_id,
                    org_id,
                    settings: settings.validated()?,
                    secret,
                })])
            }
            WebhookCommand::Update { org_id, patch } => {
                let (webhook_id, current) = state.live_for(org_id)?;
                let mut next = current.clone();
                if let Some(url) = patch.url {
                    next.url = url;
                }
                if let Some(events) = patch.events {
                    next.events = events;
                }
                if let Some(description) = patch.description {
                    next.description = description;
                }
                if let Some(active) = patch.active {
                    next.active = active;
                }
                let next = next.validated()?;
                let mut changed = Vec::new();
                for (name, differs) in [
                    ("url", next.url != current.url),
                    ("events", next.events != current.events),
                    ("description", next.description != current.description),
                    ("active", next.active != current.active),
                ] {
                    if differs {
                        changed.push(name.to_owned());
                    }
                }
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Updated(WebhookUpdated {
                    webhook_id,
                    settings: next,
                    changed,
                })])
            }
            WebhookCommand::RotateSecret {
                org_id,
                secret,
                previous_until,
            } => {
                let (webhook_id, _) = state.live_for(org_id)?;
                Ok(vec![WebhookEvent::SecretRotated(SecretRotated {
                    webhook_id,
                    secret,
                    previous_secret: state.secret.clone().unwrap_or_default(),
                    previous_until,
                })])
            }
            WebhookCommand::Disable { code, reason } => {
                let (Some(webhook_id), Some(settings)) = (state.webhook_id, &state.settings) else {
                    return Err(DomainError::WebhookNotFound);
                };
                if state.deleted || !settings.active {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Disabled(WebhookDisabled {
                    webhook_id,
                    code,
                    reason,
                })])
            }
            WebhookCommand::Delete { org_id } => {
                let (webhook_id, _) = state.live_for(org_id)?;
                Ok(vec![WebhookEvent::Deleted(WebhookDeleted { webhook_id })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;

    fn given(events: &[WebhookEvent]) -> WebhookState {
        let mut state = WebhookState::default();
        for e in events {
            Webhook::apply(&mut state, e);
        }
        state
    }

    fn settings(url: &str, events: &[&str]) -> EndpointSettings {
        EndpointSettings {
            url: url.into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: Some("  CRM  ".into()),
            active: true,
        }
    }

    #[test]
    fn create_update_rotate_disable_delete() {
        let (org, id) = (Uuid::now_v7(), Uuid::now_v7());
        let created = Webhook::decide(
            &WebhookState::default(),
            WebhookCommand::Create {
                webhook_id: id,
                org_id: org,
                settings: settings("https://crm.example/hook", &["lead.captured", "lead.captured"]),
                secret: new_secret(),
            },
        )
        .unwrap();
        let WebhookEvent::Created(c) = &created[0] else {
            panic!("expected created")
        };
        assert_eq!(c.settings.events, vec!["lead.captured"], "deduplicated");
        assert_eq!(c.settings.description.as_deref(), Some("CRM"));
        assert!(c.secret.starts_with("whsec_") && c.secret.len() == 70);
        let mut events = created.clone();

        let patch = |p: EndpointPatch| WebhookCommand::Update { org_id: org, patch: p };
        let same = Webhook::decide(
            &given(&events),
            patch(EndpointPatch {
                url: Some("https://crm.example/hook".into()),
                ..Default::default()
            }),
        )
        .unwrap();
        assert!(same.is_empty(), "nothing changed, nothing recorded");
        let changed = Webhook::decide(
            &given(&events),
            patch(EndpointPatch {
                events: Some(vec![]),
                ..Default::default()
            }),
        )
        .unwrap();
        let WebhookEvent::Updated(u) = &changed[0] else {
            panic!("expected updated")
        };
        assert_eq!(u.changed, vec!["events"]);
        events.extend(changed);
        assert!(
            given(&events).settings.unwrap().wants("message.created"),
            "empty means all"
        );

        let first_secret = c.secret.clone();
        let rotated = Webhook::decide(
            &given(&events),
            WebhookCommand::RotateSecret {
                org_id: org,
                secret: new_secret(),
                previous_until: Utc::now(),
            },
        )
        .unwrap();
        let WebhookEvent::SecretRotated(r) = &rotated[0] else {
            panic!("expected rotated")
        };
        assert_eq!(r.previous_secret, first_secret);
        events.extend(rotated);

        let disable = || WebhookCommand::Disable {
            code: "gone".into(),
            reason: "410".into(),
        };
        let disabled = Webhook::decide(&given(&events), disable()).unwrap();
        assert_eq!(disabled[0].event_type(), WEBHOOK_DISABLED);
        events.extend(disabled);
        assert!(
            Webhook::decide(&given(&events), disable()).unwrap().is_empty(),
            "disabling a disabled endpoint records nothing"
        );
        assert_eq!(
            Webhook::decide(&given(&events), WebhookCommand::Delete { org_id: Uuid::now_v7() }).unwrap_err(),
            DomainError::WebhookNotFound,
            "another organization's endpoint"
        );
        events.extend(Webhook::decide(&given(&events), WebhookCommand::Delete { org_id: org }).unwrap());
        assert!(given(&events).deleted);
        for e in &events {
            let stored = e.to_new_event();
            assert_eq!(
                &WebhookEvent::from_stored(stored.event_type, 1, &stored.payload).unwrap(),
                e
            );
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let err = Webhook::decide(
            &WebhookState::default(),
            WebhookCommand::Create {
                webhook_id: Uuid::now_v7(),
                org_id: Uuid::now_v7(),
                settings: settings("ftp://x", &["nope"]),
                secret: new_secret(),
            },
        )
        .unwrap_err();
        let DomainError::Validation(fields) = err else {
            panic!("expected validation")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["url", "events[0]"]);
    }
}
