//! An organization (tenant). Everything else belongs to one.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::DomainError;
use crate::event::{Aggregate, DomainEvent, NewEvent, UpcastError, payload_of, to_payload};

pub const ORG_CREATED: &str = "org.created";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgCreated {
    pub org_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrgEvent {
    Created(OrgCreated),
}

impl DomainEvent for OrgEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OrgEvent::Created(_) => ORG_CREATED,
        }
    }

    fn to_new_event(&self) -> NewEvent {
        let payload = match self {
            OrgEvent::Created(e) => to_payload(e),
        };
        NewEvent {
            event_type: self.event_type(),
            schema_version: 1,
            payload,
        }
    }

    fn from_stored(event_type: &str, schema_version: i32, payload: &Value) -> Result<Self, UpcastError> {
        match (event_type, schema_version) {
            (ORG_CREATED, 1) => Ok(OrgEvent::Created(payload_of(event_type, payload)?)),
            (ORG_CREATED, v) => Err(UpcastError::UnknownVersion {
                event_type: event_type.into(),
                version: v,
            }),
            (other, _) => Err(UpcastError::UnknownType(other.into())),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgState {
    pub created: Option<OrgCreated>,
}

#[derive(Debug, Clone)]
pub enum OrgCommand {
    Create { org_id: Uuid, name: String },
}

pub struct Org;

impl Aggregate for Org {
    const STREAM_TYPE: &'static str = "org";
    type State = OrgState;
    type Event = OrgEvent;
    type Command = OrgCommand;

    fn apply(state: &mut OrgState, event: &OrgEvent) {
        match event {
            OrgEvent::Created(e) => state.created = Some(e.clone()),
        }
    }

    fn decide(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, DomainError> {
        match command {
            OrgCommand::Create { org_id, name } => {
                if state.created.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
                }
                Ok(vec![OrgEvent::Created(OrgCreated { org_id, name })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_twice_conflicts_and_blank_names_are_refused() {
        let id = Uuid::now_v7();
        let events = Org::decide(
            &OrgState::default(),
            OrgCommand::Create {
                org_id: id,
                name: " Acme ".into(),
            },
        )
        .unwrap();
        assert_eq!(
            events,
            vec![OrgEvent::Created(OrgCreated {
                org_id: id,
                name: "Acme".into()
            })]
        );
        let mut state = OrgState::default();
        Org::apply(&mut state, &events[0]);
        assert!(
            Org::decide(
                &state,
                OrgCommand::Create {
                    org_id: id,
                    name: "x".into()
                }
            )
            .is_err()
        );
        let err = Org::decide(
            &OrgState::default(),
            OrgCommand::Create {
                org_id: id,
                name: "  ".into(),
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::ValidationFailed);
    }
}
