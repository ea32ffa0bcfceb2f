//! A person who signs in: an email, a display name and a password (only its
//! Argon2id hash is stored). A person's stream id derives from the email,
//! so one email is one person across the installation; people belong to
//! organizations through the organization's members. Person streams belong
//! to no organization (`Uuid::nil()`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;

pub const PERSON_REGISTERED: &str = "person.registered";
pub const PERSON_RENAMED: &str = "person.renamed";
pub const PERSON_PASSWORD_SET: &str = "person.password_set";
pub const PERSON_PASSWORD_LINK_ISSUED: &str = "person.password_link_issued";
pub const PERSON_SIGN_IN_FAILED: &str = "person.sign_in_failed";
pub const PERSON_EVENTS: &[&str] = &[
    PERSON_REGISTERED,
    PERSON_RENAMED,
    PERSON_PASSWORD_SET,
    PERSON_PASSWORD_LINK_ISSUED,
    PERSON_SIGN_IN_FAILED,
];

/// Person streams belong to the installation, not to an organization.
pub const PEOPLE_ORG: Uuid = Uuid::nil();

/// The namespace of people's ids (UUIDv5 of the normalized email).
const NAMESPACE: Uuid = Uuid::from_u128(0x7061_726c_6579_2d70_656f_706c_652d_6964);

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing cost stays bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// An email as Parley compares it: trimmed and lowercased, checked for the
/// shape `local@domain.tld`.
pub fn normalize_email(email: &str) -> Result<String, DomainError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if ok {
        Ok(email)
    } else {
        Err(DomainError::invalid("email", "is not an email address"))
    }
}

/// The id of the person with this (normalized) email.
pub fn person_id(normalized_email: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, normalized_email.as_bytes())
}

/// A password Parley accepts for this email: at least 12 characters, at
/// most 1,024 bytes, and not the email (or its name part) itself.
pub fn check_password(password: &str, normalized_email: &str) -> Result<(), DomainError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid("password", "must be at least 12 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::invalid("password", "must be at most 1,024 bytes"));
    }
    let lowered = password.trim().to_lowercase();
    let local = normalized_email.split('@').next().unwrap_or_default();
    if lowered == normalized_email || lowered == local {
        return Err(DomainError::invalid("password", "must not be your email address"));
    }
    Ok(())
}

/// A display name: 1 to 100 characters after trimming.
pub fn check_display_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "display_name",
            "must be 1 to 100 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRegistered {
    pub person_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// Argon2id hash (PHC string); `None` until a one-time link sets one.
    /// Never shown through the API or the event feed.
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRenamed {
    pub person_id: Uuid,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordSet {
    pub person_id: Uuid,
    /// Never shown through the API or the event feed.
    pub password_hash: String,
    /// Whether a one-time link set it (else the person, with the old one).
    pub by_link: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordLinkIssued {
    pub person_id: Uuid,
    /// SHA-256 of the link's token. Never shown.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInFailed {
    pub person_id: Uuid,
}

domain_events! {
    pub enum PersonEvent {
        Registered(PersonRegistered) = PERSON_REGISTERED,
        Renamed(PersonRenamed) = PERSON_RENAMED,
        PasswordSet(PasswordSet) = PERSON_PASSWORD_SET,
        PasswordLinkIssued(PasswordLinkIssued) = PERSON_PASSWORD_LINK_ISSUED,
        SignInFailed(SignInFailed) = PERSON_SIGN_IN_FAILED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonState {
    pub registered: Option<PersonRegistered>,
    pub display_name: String,
    pub has_password: bool,
    /// The outstanding one-time link: its token hash and expiry.
    pub link: Option<(String, DateTime<Utc>)>,
}

#[derive(Debug, Clone)]
pub enum PersonCommand {
    Register {
        email: String,
        display_name: String,
        password_hash: Option<String>,
    },
    Rename {
        display_name: String,
    },
    /// A new password, by the person (who proved the old one) or through
    /// the outstanding one-time link (`link_token_hash`), which it uses up.
    SetPassword {
        password_hash: String,
        link_token_hash: Option<String>,
        now: DateTime<Utc>,
    },
    /// A one-time link to set the password; it replaces an earlier one.
    IssuePasswordLink {
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    RecordFailedSignIn,
}

pub struct Person;

impl Aggregate for Person {
    const STREAM_TYPE: &'static str = "person";
    type State = PersonState;
    type Event = PersonEvent;
    type Command = PersonCommand;

    fn apply(state: &mut PersonState, event: &PersonEvent) {
        match event {
            PersonEvent::Registered(e) => {
                state.display_name = e.display_name.clone();
                state.has_password = e.password_hash.is_some();
                state.registered = Some(e.clone());
            }
            PersonEvent::Renamed(e) => state.display_name = e.display_name.clone(),
            PersonEvent::PasswordSet(e) => {
                state.has_password = true;
                if e.by_link {
                    state.link = None;
                }
            }
            PersonEvent::PasswordLinkIssued(e) => state.link = Some((e.token_hash.clone(), e.expires_at)),
            PersonEvent::SignInFailed(_) => {}
        }
    }

    fn decide(state: &PersonState, command: PersonCommand) -> Result<Vec<PersonEvent>, DomainError> {
        if let PersonCommand::Register {
            email,
            display_name,
            password_hash,
        } = command
        {
            if state.registered.is_some() {
                return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
            }
            let email = normalize_email(&email)?;
            return Ok(vec![PersonEvent::Registered(PersonRegistered {
                person_id: person_id(&email),
                email,
                display_name: check_display_name(&display_name)?,
                password_hash,
            })]);
        }
        let Some(registered) = &state.registered else {
            return Err(DomainError::PersonNotFound);
        };
        let person_id = registered.person_id;
        match command {
            PersonCommand::Register { .. } => Err(DomainError::VersionConflict { expected: 0, actual: 1 }),
            PersonCommand::Rename { display_name } => {
                let display_name = check_display_name(&display_name)?;
                if display_name == state.display_name {
                    return Ok(vec![]);
                }
                Ok(vec![PersonEvent::Renamed(PersonRenamed {
                    person_id,
                    display_name,
                })])
            }
            PersonCommand::SetPassword {
                password_hash,
                link_token_hash,
                now,
            } => {
                let by_link = match link_token_hash {
                    Some(presented) => match &state.link {
                        Some((hash, expires_at)) if *hash == presented && now < *expires_at => true,
                        _ => return Err(DomainError::LinkInvalid),
                    },
                    None => false,
                };
                Ok(vec![PersonEvent::PasswordSet(PasswordSet {
                    person_id,
                    password_hash,
                    by_link,
                })])
            }
            PersonCommand::IssuePasswordLink { token_hash, expires_at } => {
                Ok(vec![PersonEvent::PasswordLinkIssued(PasswordLinkIssued {
                    person_id,
                    token_hash,
                    expires_at,
                })])
            }
            PersonCommand::RecordFailedSignIn => Ok(vec![PersonEvent::SignInFailed(SignInFailed { person_id })]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> PersonState {
        let mut state = PersonState::default();
        for e in Person::decide(
            &state,
            PersonCommand::Register {
                email: " Ana@Example.COM ".into(),
                display_name: "Ana".into(),
                password_hash: None,
            },
        )
        .unwrap()
        {
            Person::apply(&mut state, &e);
        }
        state
    }

    #[test]
    fn one_email_is_one_person() {
        let state = registered();
        let r = state.registered.as_ref().unwrap();
        assert_eq!(r.email, "ana@example.com");
        assert_eq!(r.person_id, person_id("ana@example.com"));
        assert!(!state.has_password);
        assert!(normalize_email("not an email").is_err());
        assert!(normalize_email("a@b").is_err());
        assert!(normalize_email("a@@b.com").is_err());
        assert!(normalize_email("a@b..com").is_err());
    }

    #[test]
    fn passwords_are_long_and_not_the_email() {
        assert!(check_password("short", "ana@example.com").is_err());
        assert!(check_password("ana@example.com", "ana@example.com").is_err());
        assert!(check_password("ANA@example.com ", "ana@example.com").is_err());
        assert!(check_password(&"x".repeat(2000), "ana@example.com").is_err());
        assert!(check_password("correct horse battery", "ana@example.com").is_ok());
    }

    #[test]
    fn a_link_sets_the_password_once_before_it_expires() {
        let mut state = registered();
        let now = Utc::now();
        for e in Person::decide(
            &state,
            PersonCommand::IssuePasswordLink {
                token_hash: "h1".into(),
                expires_at: now + chrono::Duration::hours(1),
            },
        )
        .unwrap()
        {
            Person::apply(&mut state, &e);
        }
        let set = |token: &str, at| PersonCommand::SetPassword {
            password_hash: "$argon2id$...".into(),
            link_token_hash: Some(token.into()),
            now: at,
        };
        assert_eq!(
            Person::decide(&state, set("h2", now)).unwrap_err(),
            DomainError::LinkInvalid
        );
        assert_eq!(
            Person::decide(&state, set("h1", now + chrono::Duration::hours(2))).unwrap_err(),
            DomainError::LinkInvalid,
            "expired"
        );
        let events = Person::decide(&state, set("h1", now)).unwrap();
        Person::apply(&mut state, &events[0]);
        assert!(state.has_password);
        assert_eq!(
            Person::decide(&state, set("h1", now)).unwrap_err(),
            DomainError::LinkInvalid,
            "used up"
        );
    }
}
