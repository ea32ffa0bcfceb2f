//! An organization (tenant). Everything else belongs to one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;

pub const ORG_CREATED: &str = "org.created";
pub const ORG_PLAN_CHANGED: &str = "org.plan_changed";
pub const ORG_EVENTS: &[&str] = &[ORG_CREATED, ORG_PLAN_CHANGED];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgCreated {
    pub org_id: Uuid,
    pub name: String,
    /// The plan the organization is on (`None`: the installation's default plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChanged {
    pub org_id: Uuid,
    pub plan: String,
}

domain_events! {
    pub enum OrgEvent {
        Created(OrgCreated) = ORG_CREATED,
        PlanChanged(PlanChanged) = ORG_PLAN_CHANGED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgState {
    pub created: Option<OrgCreated>,
    pub plan: Option<String>,
}

#[derive(Debug, Clone)]
pub enum OrgCommand {
    Create {
        org_id: Uuid,
        name: String,
        plan: Option<String>,
    },
    /// Put the organization on another plan (the name is checked against
    /// the configured plans by the caller).
    ChangePlan { plan: String },
}

/// A plan name: 1 to 40 lowercase letters, digits, `-` or `_`.
/// A plan name the configuration can define, as the error a command gives.
fn check_plan_name(name: &str) -> Result<(), DomainError> {
    if valid_plan_name(name) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "plan",
            "must be 1 to 40 lowercase letters, digits, `-` or `_`",
        ))
    }
}

pub fn valid_plan_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub struct Org;

impl Aggregate for Org {
    const STREAM_TYPE: &'static str = "org";
    type State = OrgState;
    type Event = OrgEvent;
    type Command = OrgCommand;

    fn apply(state: &mut OrgState, event: &OrgEvent) {
        match event {
            OrgEvent::Created(e) => {
                state.created = Some(e.clone());
                state.plan = e.plan.clone();
            }
            OrgEvent::PlanChanged(e) => state.plan = Some(e.plan.clone()),
        }
    }

    fn decide(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, DomainError> {
        match command {
            OrgCommand::Create { org_id, name, plan } => {
                if state.created.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
                }
                if let Some(plan) = &plan {
                    check_plan_name(plan)?;
                }
                Ok(vec![OrgEvent::Created(OrgCreated { org_id, name, plan })])
            }
            OrgCommand::ChangePlan { plan } => {
                let Some(created) = &state.created else {
                    return Err(DomainError::invalid("org", "no such organization"));
                };
                check_plan_name(&plan)?;
                if state.plan.as_deref() == Some(plan.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![OrgEvent::PlanChanged(PlanChanged {
                    org_id: created.org_id,
                    plan,
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;

    #[test]
    fn create_twice_conflicts_and_blank_names_are_refused() {
        let id = Uuid::now_v7();
        let events = Org::decide(
            &OrgState::default(),
            OrgCommand::Create {
                org_id: id,
                name: " Acme ".into(),
                plan: None,
            },
        )
        .unwrap();
        assert_eq!(
            events,
            vec![OrgEvent::Created(OrgCreated {
                org_id: id,
                name: "Acme".into(),
                plan: None,
            })]
        );
        let mut state = OrgState::default();
        Org::apply(&mut state, &events[0]);
        assert!(
            Org::decide(
                &state,
                OrgCommand::Create {
                    org_id: id,
                    name: "x".into(),
                    plan: None,
                }
            )
            .is_err()
        );
        let err = Org::decide(
            &OrgState::default(),
            OrgCommand::Create {
                org_id: id,
                name: "  ".into(),
                plan: None,
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::ValidationFailed);
    }

    #[test]
    fn plans_change_once_and_names_are_checked() {
        let id = Uuid::now_v7();
        let mut state = OrgState::default();
        for e in Org::decide(
            &state,
            OrgCommand::Create {
                org_id: id,
                name: "Acme".into(),
                plan: Some("pro".into()),
            },
        )
        .unwrap()
        {
            Org::apply(&mut state, &e);
        }
        assert_eq!(state.plan.as_deref(), Some("pro"));
        assert!(
            Org::decide(&state, OrgCommand::ChangePlan { plan: "pro".into() })
                .unwrap()
                .is_empty()
        );
        let changed = Org::decide(&state, OrgCommand::ChangePlan { plan: "team".into() }).unwrap();
        assert_eq!(changed[0].event_type(), ORG_PLAN_CHANGED);
        assert!(
            Org::decide(
                &state,
                OrgCommand::ChangePlan {
                    plan: "Big Plan".into()
                }
            )
            .is_err()
        );
        assert!(
            Org::decide(&OrgState::default(), OrgCommand::ChangePlan { plan: "pro".into() }).is_err(),
            "no organization, no plan"
        );
    }
}
