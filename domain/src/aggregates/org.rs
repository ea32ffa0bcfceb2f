//! An organization (tenant). Everything else belongs to one. Its members
//! (people with a role) and the invitations to join it are decided here,
//! so that an organization always keeps an owner.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregates::person::{normalize_email, person_id};
use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;
use crate::roles::Role;

pub const ORG_CREATED: &str = "org.created";
pub const ORG_PLAN_CHANGED: &str = "org.plan_changed";
pub const MEMBER_ADDED: &str = "member.added";
pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";
pub const MEMBER_REMOVED: &str = "member.removed";
pub const INVITATION_CREATED: &str = "invitation.created";
pub const INVITATION_REVOKED: &str = "invitation.revoked";
pub const ORG_EVENTS: &[&str] = &[
    ORG_CREATED,
    ORG_PLAN_CHANGED,
    MEMBER_ADDED,
    MEMBER_ROLE_CHANGED,
    MEMBER_REMOVED,
    INVITATION_CREATED,
    INVITATION_REVOKED,
];

/// How long an invitation link stays valid.
pub const INVITATION_DAYS: i64 = 7;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub org_id: Uuid,
    pub person_id: Uuid,
    pub role: Role,
    /// The invitation the person accepted, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub org_id: Uuid,
    pub person_id: Uuid,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRemoved {
    pub org_id: Uuid,
    pub person_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationCreated {
    pub org_id: Uuid,
    pub invitation_id: Uuid,
    pub email: String,
    pub role: Role,
    /// SHA-256 of the link's token. Never shown through the API or the feed.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationRevoked {
    pub org_id: Uuid,
    pub invitation_id: Uuid,
}

domain_events! {
    pub enum OrgEvent {
        Created(OrgCreated) = ORG_CREATED,
        PlanChanged(PlanChanged) = ORG_PLAN_CHANGED,
        MemberAdded(MemberAdded) = MEMBER_ADDED,
        MemberRoleChanged(MemberRoleChanged) = MEMBER_ROLE_CHANGED,
        MemberRemoved(MemberRemoved) = MEMBER_REMOVED,
        InvitationCreated(InvitationCreated) = INVITATION_CREATED,
        InvitationRevoked(InvitationRevoked) = INVITATION_REVOKED,
    }
}

/// An invitation that can still be accepted (until it expires).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenInvitation {
    pub email: String,
    pub role: Role,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgState {
    pub created: Option<OrgCreated>,
    pub plan: Option<String>,
    /// Members by person id.
    pub members: BTreeMap<Uuid, Role>,
    /// Invitations neither accepted nor revoked, by id.
    pub invitations: BTreeMap<Uuid, OpenInvitation>,
}

impl OrgState {
    fn owners(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }
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
    ChangePlan {
        plan: String,
    },
    /// Make a person a member directly (the operator's command line).
    AddMember {
        person_id: Uuid,
        role: Role,
    },
    /// Invite an email with a role; `by` is the inviter's role.
    Invite {
        invitation_id: Uuid,
        email: String,
        role: Role,
        token_hash: String,
        now: DateTime<Utc>,
        by: Role,
    },
    /// Accept the invitation whose token hashes to `token_hash`, as the
    /// person with the invited email.
    Accept {
        invitation_id: Uuid,
        token_hash: String,
        now: DateTime<Utc>,
    },
    RevokeInvitation {
        invitation_id: Uuid,
        by: Role,
    },
    ChangeRole {
        person_id: Uuid,
        role: Role,
        by: Role,
    },
    RemoveMember {
        person_id: Uuid,
        by: Role,
    },
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
            OrgEvent::MemberAdded(e) => {
                state.members.insert(e.person_id, e.role);
                if let Some(id) = e.invitation_id {
                    state.invitations.remove(&id);
                }
            }
            OrgEvent::MemberRoleChanged(e) => {
                state.members.insert(e.person_id, e.role);
            }
            OrgEvent::MemberRemoved(e) => {
                state.members.remove(&e.person_id);
            }
            OrgEvent::InvitationCreated(e) => {
                state.invitations.insert(
                    e.invitation_id,
                    OpenInvitation {
                        email: e.email.clone(),
                        role: e.role,
                        token_hash: e.token_hash.clone(),
                        expires_at: e.expires_at,
                    },
                );
            }
            OrgEvent::InvitationRevoked(e) => {
                state.invitations.remove(&e.invitation_id);
            }
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
            OrgCommand::AddMember { person_id, role } => {
                let org_id = existing(state)?;
                if state.members.get(&person_id) == Some(&role) {
                    return Ok(vec![]);
                }
                if state.members.contains_key(&person_id) {
                    return Err(DomainError::AlreadyMember);
                }
                Ok(vec![OrgEvent::MemberAdded(MemberAdded {
                    org_id,
                    person_id,
                    role,
                    invitation_id: None,
                })])
            }
            OrgCommand::Invite {
                invitation_id,
                email,
                role,
                token_hash,
                now,
                by,
            } => {
                let org_id = existing(state)?;
                let email = normalize_email(&email)?;
                if !by.allows(role) {
                    return Err(DomainError::RoleTooHigh { role, yours: by });
                }
                if state.members.contains_key(&person_id(&email)) {
                    return Err(DomainError::AlreadyMember);
                }
                // A new invitation replaces the open ones of the same email.
                let mut events: Vec<OrgEvent> = state
                    .invitations
                    .iter()
                    .filter(|(_, open)| open.email == email)
                    .map(|(id, _)| {
                        OrgEvent::InvitationRevoked(InvitationRevoked {
                            org_id,
                            invitation_id: *id,
                        })
                    })
                    .collect();
                events.push(OrgEvent::InvitationCreated(InvitationCreated {
                    org_id,
                    invitation_id,
                    email,
                    role,
                    token_hash,
                    expires_at: now + chrono::Duration::days(INVITATION_DAYS),
                }));
                Ok(events)
            }
            OrgCommand::Accept {
                invitation_id,
                token_hash,
                now,
            } => {
                let org_id = existing(state)?;
                let Some(open) = state.invitations.get(&invitation_id) else {
                    return Err(DomainError::LinkInvalid);
                };
                if open.token_hash != token_hash || now >= open.expires_at {
                    return Err(DomainError::LinkInvalid);
                }
                let person_id = person_id(&open.email);
                if state.members.contains_key(&person_id) {
                    return Err(DomainError::AlreadyMember);
                }
                Ok(vec![OrgEvent::MemberAdded(MemberAdded {
                    org_id,
                    person_id,
                    role: open.role,
                    invitation_id: Some(invitation_id),
                })])
            }
            OrgCommand::RevokeInvitation { invitation_id, by } => {
                let org_id = existing(state)?;
                let Some(open) = state.invitations.get(&invitation_id) else {
                    return Err(DomainError::InvitationNotFound);
                };
                if !by.allows(open.role) {
                    return Err(DomainError::RoleTooHigh {
                        role: open.role,
                        yours: by,
                    });
                }
                Ok(vec![OrgEvent::InvitationRevoked(InvitationRevoked {
                    org_id,
                    invitation_id,
                })])
            }
            OrgCommand::ChangeRole { person_id, role, by } => {
                let org_id = existing(state)?;
                let Some(current) = state.members.get(&person_id).copied() else {
                    return Err(DomainError::MemberNotFound);
                };
                if current == role {
                    return Ok(vec![]);
                }
                if !by.allows(current) || !by.allows(role) {
                    return Err(DomainError::RoleTooHigh {
                        role: current.max(role),
                        yours: by,
                    });
                }
                if current == Role::Owner && state.owners() == 1 {
                    return Err(DomainError::LastOwner);
                }
                Ok(vec![OrgEvent::MemberRoleChanged(MemberRoleChanged {
                    org_id,
                    person_id,
                    role,
                })])
            }
            OrgCommand::RemoveMember { person_id, by } => {
                let org_id = existing(state)?;
                let Some(current) = state.members.get(&person_id).copied() else {
                    return Err(DomainError::MemberNotFound);
                };
                if !by.allows(current) {
                    return Err(DomainError::RoleTooHigh {
                        role: current,
                        yours: by,
                    });
                }
                if current == Role::Owner && state.owners() == 1 {
                    return Err(DomainError::LastOwner);
                }
                Ok(vec![OrgEvent::MemberRemoved(MemberRemoved { org_id, person_id })])
            }
        }
    }
}

/// The organization's id, or the error of a missing one.
fn existing(state: &OrgState) -> Result<Uuid, DomainError> {
    state
        .created
        .as_ref()
        .map(|c| c.org_id)
        .ok_or_else(|| DomainError::invalid("org", "no such organization"))
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

    fn apply_all(state: &mut OrgState, events: Vec<OrgEvent>) {
        for e in events {
            Org::apply(state, &e);
        }
    }

    fn run(state: &mut OrgState, command: OrgCommand) {
        let events = Org::decide(state, command).unwrap();
        apply_all(state, events);
    }

    #[test]
    fn an_organization_keeps_an_owner_and_roles_never_exceed_the_granter() {
        let org_id = Uuid::now_v7();
        let mut state = OrgState::default();
        let create = OrgCommand::Create {
            org_id,
            name: "Acme".into(),
            plan: None,
        };
        run(&mut state, create);
        let owner = person_id("owner@example.com");
        let add = OrgCommand::AddMember {
            person_id: owner,
            role: Role::Owner,
        };
        run(&mut state, add);
        let now = Utc::now();
        let invite = |email: &str, role, by| OrgCommand::Invite {
            invitation_id: Uuid::now_v7(),
            email: email.into(),
            role,
            token_hash: format!("hash-{email}"),
            now,
            by,
        };
        assert_eq!(
            Org::decide(&state, invite("x@example.com", Role::Owner, Role::Admin)).unwrap_err(),
            DomainError::RoleTooHigh {
                role: Role::Owner,
                yours: Role::Admin
            }
        );
        assert_eq!(
            Org::decide(&state, invite("OWNER@example.com", Role::Agent, Role::Owner)).unwrap_err(),
            DomainError::AlreadyMember
        );
        let first = Org::decide(&state, invite("ana@example.com", Role::Agent, Role::Admin)).unwrap();
        let OrgEvent::InvitationCreated(created) = &first[0] else {
            panic!("{first:?}")
        };
        let first_id = created.invitation_id;
        apply_all(&mut state, first);
        // Inviting again replaces the open invitation.
        let again = Org::decide(&state, invite("ana@example.com", Role::Agent, Role::Admin)).unwrap();
        assert!(matches!(&again[0], OrgEvent::InvitationRevoked(r) if r.invitation_id == first_id));
        let OrgEvent::InvitationCreated(second) = &again[1] else {
            panic!("{again:?}")
        };
        let second_id = second.invitation_id;
        apply_all(&mut state, again);
        let accept = |id, hash: &str, at| OrgCommand::Accept {
            invitation_id: id,
            token_hash: hash.into(),
            now: at,
        };
        assert_eq!(
            Org::decide(&state, accept(first_id, "hash-ana@example.com", now)).unwrap_err(),
            DomainError::LinkInvalid,
            "the replaced invitation"
        );
        assert_eq!(
            Org::decide(&state, accept(second_id, "wrong", now)).unwrap_err(),
            DomainError::LinkInvalid
        );
        assert_eq!(
            Org::decide(
                &state,
                accept(second_id, "hash-ana@example.com", now + chrono::Duration::days(8))
            )
            .unwrap_err(),
            DomainError::LinkInvalid,
            "expired"
        );
        run(&mut state, accept(second_id, "hash-ana@example.com", now));
        let ana = person_id("ana@example.com");
        assert_eq!(state.members.get(&ana), Some(&Role::Agent));
        assert_eq!(
            Org::decide(&state, accept(second_id, "hash-ana@example.com", now)).unwrap_err(),
            DomainError::LinkInvalid,
            "single use"
        );
        // The last owner can be neither demoted nor removed.
        let demote = OrgCommand::ChangeRole {
            person_id: owner,
            role: Role::Admin,
            by: Role::Owner,
        };
        assert_eq!(Org::decide(&state, demote.clone()).unwrap_err(), DomainError::LastOwner);
        let remove_owner = OrgCommand::RemoveMember {
            person_id: owner,
            by: Role::Owner,
        };
        assert_eq!(Org::decide(&state, remove_owner).unwrap_err(), DomainError::LastOwner);
        // An admin cannot make an owner, nor touch one.
        let promote = OrgCommand::ChangeRole {
            person_id: ana,
            role: Role::Owner,
            by: Role::Admin,
        };
        assert!(matches!(
            Org::decide(&state, promote).unwrap_err(),
            DomainError::RoleTooHigh { .. }
        ));
        let promote = OrgCommand::ChangeRole {
            person_id: ana,
            role: Role::Owner,
            by: Role::Owner,
        };
        run(&mut state, promote);
        // With two owners, one may step down.
        run(&mut state, demote);
        assert_eq!(state.members.get(&owner), Some(&Role::Admin));
        let remove = OrgCommand::RemoveMember {
            person_id: person_id("nobody@example.com"),
            by: Role::Owner,
        };
        assert_eq!(Org::decide(&state, remove).unwrap_err(), DomainError::MemberNotFound);
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
