//! People, sessions and one-time links: the steps that sign-in, invitations
//! and the operator's commands share. Decisions stay in the person and
//! organization aggregates; this module hashes, stores sessions and links.

use chrono::{DateTime, Duration, Utc};
use parley_domain::aggregates::org::{Org, OrgCommand};
use parley_domain::aggregates::person::{
    PEOPLE_ORG, Person, PersonCommand, check_password, normalize_email, person_id,
};
use parley_domain::store::content::sha256_hex;
use parley_domain::store::entities::{people, sessions};
use parley_domain::store::people as people_store;
use parley_domain::store::{Execute, Store};
use parley_domain::{DomainError, ErrorCode, Metadata, Role};
use uuid::Uuid;

use crate::error::ApiError;
use crate::security::passwords;
use crate::security::session;
use crate::state::AppState;

/// How long a link to set a forgotten password stays valid.
pub const RESET_LINK_HOURS: i64 = 24;
/// How long the first owner's link (from `parley admin create-org`) stays valid.
pub const OWNER_LINK_DAYS: i64 = 7;

/// A one-time link: its token (shown once) and where a person opens it.
/// The token travels in the fragment (`#token=`), which browsers never send
/// to a server or in a `Referer`.
pub struct OneTimeLink {
    pub token: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

pub fn link_url(base: &str, page: &str, token: &str) -> String {
    format!("{base}/{page}#token={token}")
}

/// A checked, hashed password for this email.
pub async fn new_password_hash(password: &str, normalized_email: &str) -> Result<String, ApiError> {
    check_password(password, normalized_email)?;
    passwords::hash(password.to_owned()).await
}

/// The person with this email, registered now if there is none
/// (`display_name` defaults to the email's name part). Answers the person's
/// id and whether it was registered now.
pub async fn ensure_person(
    store: &Store,
    email: &str,
    display_name: Option<String>,
    password_hash: Option<String>,
    metadata: Metadata,
) -> Result<(Uuid, bool), ApiError> {
    let email = normalize_email(email)?;
    let id = person_id(&email);
    if people_store::person(store, id).await?.is_some() {
        return Ok((id, false));
    }
    let display_name = display_name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    let executed = store
        .execute::<Person>(Execute {
            org_id: PEOPLE_ORG,
            stream_id: id,
            expected_version: Some(0),
            command: PersonCommand::Register {
                email,
                display_name,
                password_hash,
            },
            metadata,
            idempotency: None,
        })
        .await;
    match executed {
        Ok(_) => Ok((id, true)),
        // Registered by a concurrent request: the person exists now.
        Err(parley_domain::StoreError::Domain(DomainError::VersionConflict { .. })) => Ok((id, false)),
        Err(e) => Err(e.into()),
    }
}

/// A new one-time link to set the person's password, valid for `valid`;
/// it replaces the person's earlier link.
pub async fn issue_password_link(
    store: &Store,
    base: &str,
    person_id: Uuid,
    valid: Duration,
    metadata: Metadata,
) -> Result<OneTimeLink, ApiError> {
    let token = parley_domain::ids::random_token("pl_", 32);
    let expires_at = parley_domain::store::now() + valid;
    store
        .execute::<Person>(Execute {
            org_id: PEOPLE_ORG,
            stream_id: person_id,
            expected_version: None,
            command: PersonCommand::IssuePasswordLink {
                token_hash: sha256_hex(token.as_bytes()),
                expires_at,
            },
            metadata,
            idempotency: None,
        })
        .await?;
    Ok(OneTimeLink {
        url: link_url(base, "set-password", &token),
        token,
        expires_at,
    })
}

/// Sets a person's (already hashed) password; the caller has checked who asks.
pub async fn set_password(
    store: &Store,
    person_id: Uuid,
    password_hash: String,
    metadata: Metadata,
) -> Result<(), ApiError> {
    store
        .execute::<Person>(Execute {
            org_id: PEOPLE_ORG,
            stream_id: person_id,
            expected_version: None,
            command: PersonCommand::SetPassword {
                password_hash,
                link_token_hash: None,
                now: parley_domain::store::now(),
            },
            metadata,
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// Sets a password through a one-time link; every session of the person
/// ends. Answers the person.
pub async fn set_password_by_link(
    store: &Store,
    token: &str,
    password: &str,
    metadata: Metadata,
) -> Result<people::Model, ApiError> {
    let hash = sha256_hex(token.as_bytes());
    let Some(person) = people_store::person_by_link_hash(store, &hash).await? else {
        return Err(DomainError::LinkInvalid.into());
    };
    let password_hash = new_password_hash(password, &person.email).await?;
    store
        .execute::<Person>(Execute {
            org_id: PEOPLE_ORG,
            stream_id: person.id,
            expected_version: None,
            command: PersonCommand::SetPassword {
                password_hash,
                link_token_hash: Some(hash),
                now: parley_domain::store::now(),
            },
            metadata,
            idempotency: None,
        })
        .await?;
    people_store::end_sessions_of(store, person.id, None, None).await?;
    Ok(person)
}

/// Makes a person a member of an organization directly (the operator's command line).
pub async fn add_member(
    store: &Store,
    org_id: Uuid,
    person_id: Uuid,
    role: Role,
    metadata: Metadata,
) -> Result<(), ApiError> {
    store
        .execute::<Org>(Execute {
            org_id,
            stream_id: org_id,
            expected_version: None,
            command: OrgCommand::AddMember { person_id, role },
            metadata,
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// A new session of a member in one of their organizations: its token (for
/// the cookie) and row. Ended sessions of anyone are deleted first.
pub async fn start_session(
    state: &AppState,
    person_id: Uuid,
    org_id: Uuid,
) -> Result<(String, sessions::Model), ApiError> {
    // Sessions past their end go as new ones come: the table holds live ones.
    let now = parley_domain::store::now();
    let (idle, _) = session::lifetimes(state);
    people_store::purge_sessions(&state.store, now, now - idle).await?;
    let token = session::new_token();
    let row = people_store::create_session(
        &state.store,
        people_store::NewSession {
            token_hash: sha256_hex(token.as_bytes()),
            person_id,
            org_id,
            csrf_token: parley_domain::ids::random_token("", 24),
            expires_at: session::expiry(state, parley_domain::store::now()),
        },
    )
    .await?;
    Ok((token, row))
}

/// `403 FORBIDDEN` naming the problem when a person may not act in `org_id`.
pub fn not_a_member() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "you are not a member of this organization")
}

/// The member acting and their display name (none for a key): the author
/// of a person's reply.
pub async fn author_of(
    state: &AppState,
    principal: &crate::state::Principal,
) -> Result<Option<(Uuid, String)>, ApiError> {
    let parley_domain::Actor::Member { id } = principal.actor else {
        return Ok(None);
    };
    let person = people_store::person(&state.store, id)
        .await?
        .ok_or(DomainError::PersonNotFound)?;
    Ok(Some((id, person.display_name)))
}

/// Whether a person can answer a bot's visitors now.
#[derive(Debug, Clone)]
pub struct Availability {
    /// Within the bot's opening hours (always, without hours).
    pub within_hours: bool,
    /// At least one member of the organization is online (an organization
    /// without members answers through the API: its availability is not tracked).
    pub members_online: bool,
    /// When the hours open next (now when open); none without hours.
    pub next_opening: Option<DateTime<Utc>>,
}

impl Availability {
    pub fn person_available(&self) -> bool {
        self.within_hours && self.members_online
    }
}

pub async fn availability(
    state: &AppState,
    org_id: Uuid,
    handoff: &parley_domain::availability::HandoffSettings,
) -> Result<Availability, ApiError> {
    let now = parley_domain::store::now();
    let hours = handoff.business_hours.as_ref();
    let within_hours = hours.is_none_or(|h| h.open_at(now));
    let members_online = !people_store::online_members(&state.store, org_id, now)
        .await?
        .is_empty()
        || people_store::members(&state.store, org_id).await?.is_empty();
    Ok(Availability {
        within_hours,
        members_online,
        next_opening: hours.and_then(|h| h.next_opening(now)),
    })
}

/// What the bot says when a visitor asks for a person and nobody can
/// answer now: the offline message, and when the team is back.
pub fn offline_answer(handoff: &parley_domain::availability::HandoffSettings, available: &Availability) -> String {
    let mut text = handoff
        .offline_message
        .clone()
        .unwrap_or_else(|| parley_domain::availability::DEFAULT_OFFLINE.to_owned());
    let trimmed = text.trim_end().trim_end_matches('.').to_owned();
    text = format!("{trimmed}.");
    if let (false, Some(next), Some(hours)) = (
        available.within_hours,
        available.next_opening,
        handoff.business_hours.as_ref(),
    ) {
        let zone: chrono_tz::Tz = hours.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let local = next.with_timezone(&zone);
        text.push_str(&format!(
            " We are back {} at {} ({}).",
            local.format("%A"),
            local.format("%H:%M"),
            hours.time_zone
        ));
    }
    text
}
