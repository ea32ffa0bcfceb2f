//! Saved replies: answers the team shares, each with a shortcut (`/refund`)
//! that finds it while typing. A shortcut is unique in the organization
//! (the read model's unique index decides a race).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;

pub const SAVED_REPLY_CREATED: &str = "saved_reply.created";
pub const SAVED_REPLY_UPDATED: &str = "saved_reply.updated";
pub const SAVED_REPLY_DELETED: &str = "saved_reply.deleted";
pub const SAVED_REPLY_EVENTS: &[&str] = &[SAVED_REPLY_CREATED, SAVED_REPLY_UPDATED, SAVED_REPLY_DELETED];

/// Longest saved reply, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReplyCreated {
    pub saved_reply_id: Uuid,
    pub org_id: Uuid,
    pub shortcut: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReplyUpdated {
    pub saved_reply_id: Uuid,
    pub shortcut: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReplyDeleted {
    pub saved_reply_id: Uuid,
}

domain_events! {
    pub enum SavedReplyEvent {
        Created(SavedReplyCreated) = SAVED_REPLY_CREATED,
        Updated(SavedReplyUpdated) = SAVED_REPLY_UPDATED,
        Deleted(SavedReplyDeleted) = SAVED_REPLY_DELETED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedReplyState {
    pub created: Option<SavedReplyCreated>,
    pub shortcut: String,
    pub text: String,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub enum SavedReplyCommand {
    Create {
        saved_reply_id: Uuid,
        org_id: Uuid,
        shortcut: String,
        text: String,
    },
    Update {
        org_id: Uuid,
        shortcut: Option<String>,
        text: Option<String>,
    },
    Delete {
        org_id: Uuid,
    },
}

/// A shortcut: 1 to 32 lowercase letters, digits, `-` or `_` (a leading
/// `/` is dropped).
pub fn normalize_shortcut(shortcut: &str) -> Result<String, DomainError> {
    let s = shortcut.trim().trim_start_matches('/').to_lowercase();
    let ok = (1..=32).contains(&s.chars().count()) && s.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(DomainError::invalid(
            "shortcut",
            "must be 1 to 32 letters, digits, `-` or `_` (such as `refund`)",
        ))
    }
}

fn check_text(text: &str) -> Result<String, DomainError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT_CHARS {
        return Err(DomainError::invalid("text", "must be 1 to 10,000 characters"));
    }
    Ok(t.to_owned())
}

pub struct SavedReply;

impl Aggregate for SavedReply {
    const STREAM_TYPE: &'static str = "saved_reply";
    type State = SavedReplyState;
    type Event = SavedReplyEvent;
    type Command = SavedReplyCommand;

    fn apply(state: &mut SavedReplyState, event: &SavedReplyEvent) {
        match event {
            SavedReplyEvent::Created(e) => {
                state.shortcut = e.shortcut.clone();
                state.text = e.text.clone();
                state.created = Some(e.clone());
            }
            SavedReplyEvent::Updated(e) => {
                state.shortcut = e.shortcut.clone();
                state.text = e.text.clone();
            }
            SavedReplyEvent::Deleted(_) => state.deleted = true,
        }
    }

    fn decide(state: &SavedReplyState, command: SavedReplyCommand) -> Result<Vec<SavedReplyEvent>, DomainError> {
        match command {
            SavedReplyCommand::Create {
                saved_reply_id,
                org_id,
                shortcut,
                text,
            } => {
                if state.created.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                Ok(vec![SavedReplyEvent::Created(SavedReplyCreated {
                    saved_reply_id,
                    org_id,
                    shortcut: normalize_shortcut(&shortcut)?,
                    text: check_text(&text)?,
                })])
            }
            SavedReplyCommand::Update { org_id, shortcut, text } => {
                let created = live(state, org_id)?;
                let shortcut = match shortcut {
                    Some(s) => normalize_shortcut(&s)?,
                    None => state.shortcut.clone(),
                };
                let text = match text {
                    Some(t) => check_text(&t)?,
                    None => state.text.clone(),
                };
                if shortcut == state.shortcut && text == state.text {
                    return Ok(vec![]);
                }
                Ok(vec![SavedReplyEvent::Updated(SavedReplyUpdated {
                    saved_reply_id: created.saved_reply_id,
                    shortcut,
                    text,
                })])
            }
            SavedReplyCommand::Delete { org_id } => {
                let created = live(state, org_id)?;
                Ok(vec![SavedReplyEvent::Deleted(SavedReplyDeleted {
                    saved_reply_id: created.saved_reply_id,
                })])
            }
        }
    }
}

fn live(state: &SavedReplyState, org_id: Uuid) -> Result<&SavedReplyCreated, DomainError> {
    match &state.created {
        Some(c) if c.org_id == org_id && !state.deleted => Ok(c),
        _ => Err(DomainError::SavedReplyNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_normalized_and_changes_checked() {
        assert_eq!(normalize_shortcut(" /Refund ").unwrap(), "refund");
        assert!(normalize_shortcut("two words").is_err());
        assert!(normalize_shortcut("/").is_err());
        let org = Uuid::now_v7();
        let mut state = SavedReplyState::default();
        let created = SavedReply::decide(
            &state,
            SavedReplyCommand::Create {
                saved_reply_id: Uuid::now_v7(),
                org_id: org,
                shortcut: "/hours".into(),
                text: " We are open 9 to 5. ".into(),
            },
        )
        .unwrap();
        SavedReply::apply(&mut state, &created[0]);
        assert_eq!(state.text, "We are open 9 to 5.");
        let same = SavedReplyCommand::Update {
            org_id: org,
            shortcut: Some("hours".into()),
            text: None,
        };
        assert!(SavedReply::decide(&state, same).unwrap().is_empty());
        let foreign = SavedReplyCommand::Delete { org_id: Uuid::now_v7() };
        assert_eq!(
            SavedReply::decide(&state, foreign).unwrap_err(),
            DomainError::SavedReplyNotFound
        );
        let deleted = SavedReply::decide(&state, SavedReplyCommand::Delete { org_id: org }).unwrap();
        SavedReply::apply(&mut state, &deleted[0]);
        let again = SavedReplyCommand::Delete { org_id: org };
        assert_eq!(
            SavedReply::decide(&state, again).unwrap_err(),
            DomainError::SavedReplyNotFound
        );
    }
}
