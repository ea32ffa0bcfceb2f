//! `/api/v1/session`, `/api/v1/me`, `/api/v1/password` and accepting an
//! invitation: how people sign in and out, and manage their own account.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::org::{Org, OrgCommand};
use parley_domain::aggregates::person::{PEOPLE_ORG, Person, PersonCommand, normalize_email};
use parley_domain::ratelimit::Rate;
use parley_domain::store::Execute;
use parley_domain::store::content::sha256_hex;
use parley_domain::store::entities::people as person_rows;
use parley_domain::store::people as people_store;
use parley_domain::{Actor, DomainError, ErrorCode, Metadata};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::people;
use crate::schemas::role::RoleName;
use crate::security::session::{self, SignedIn};
use crate::security::{SessionAuth, passwords};
use crate::state::AppState;
use crate::types::Text;

pub struct SessionApi {
    pub state: Option<AppState>,
}

/// Failed sign-ins are counted over this window.
const FAILURE_WINDOW_MS: u64 = 15 * 60 * 1000;

/// A person, as members and sessions show them.
#[derive(Debug, Clone, Object)]
pub struct PersonInfo {
    /// The person's id (the same in every organization).
    pub id: Uuid,
    /// The email they sign in with (lowercase).
    pub email: String,
    /// The name visitors and colleagues see.
    pub display_name: String,
}

/// An organization the person belongs to, with their role in it.
#[derive(Debug, Clone, Object)]
pub struct Membership {
    /// The organization's id.
    pub organization_id: Uuid,
    /// The organization's name.
    pub organization_name: String,
    /// The person's role in it.
    pub role: RoleName,
}

/// The signed-in session.
#[derive(Debug, Clone, Object)]
pub struct SessionInfo {
    /// Who is signed in.
    pub person: PersonInfo,
    /// The organization this session acts in.
    pub organization: Membership,
    /// Every organization the person belongs to.
    pub organizations: Vec<Membership>,
    /// Send it as `X-CSRF-Token` with every request that changes anything.
    pub csrf_token: String,
    /// When the session ends, however active.
    pub expires_at: DateTime<Utc>,
    /// Minutes without a request after which it ends.
    pub idle_timeout_minutes: u32,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SignInRequest {
    /// The email (any case).
    pub email: Text,
    /// The password.
    #[oai(validator(max_length = 1024))]
    pub password: Text,
    /// The organization to act in; default: the oldest membership.
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SwitchRequest {
    /// An organization the person belongs to.
    pub organization_id: Uuid,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// The name colleagues and visitors see, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub display_name: Text,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password used now.
    #[oai(validator(max_length = 1024))]
    pub current_password: Text,
    /// At least 12 characters, and not your email.
    #[oai(validator(max_length = 1024))]
    pub new_password: Text,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The token of a one-time link (after `#token=`).
    pub token: Text,
    /// At least 12 characters, and not your email.
    #[oai(validator(max_length = 1024))]
    pub password: Text,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The token of the invitation link (after `#token=`).
    pub token: Text,
    /// A new password (at least 12 characters) for a new account, or the
    /// password of the account the invited email already has.
    #[oai(validator(max_length = 1024))]
    pub password: Text,
    /// The name colleagues and visitors see (new accounts; default: the
    /// email's name part).
    #[oai(validator(min_length = 1, max_length = 100))]
    pub display_name: Option<Text>,
}

/// A member's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum Availability {
    /// Answers conversations (and may be assigned them automatically).
    Online,
    /// Signed in, but not answering now.
    Away,
    /// Not answering.
    Offline,
}

impl Availability {
    fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AvailabilityRequest {
    /// `online`, `away` or `offline`.
    pub status: Availability,
}

#[derive(Debug, Clone, Object)]
pub struct AvailabilityInfo {
    /// What you set.
    pub status: Availability,
    /// How long it lasts without another heartbeat (then you count as offline).
    pub expires_in_seconds: i64,
}

#[derive(ApiResponse)]
pub enum SignedInResponse {
    /// Signed in: the session cookie is set.
    #[oai(status = 201)]
    Created(Json<SessionInfo>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub enum SignedOutResponse {
    /// Signed out: the cookie is cleared.
    #[oai(status = 204)]
    SignedOut(#[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done.
    #[oai(status = 204)]
    Done,
}

fn person_info(p: &person_rows::Model) -> PersonInfo {
    PersonInfo {
        id: p.id,
        email: p.email.clone(),
        display_name: p.display_name.clone(),
    }
}

/// The session as the API shows it.
async fn session_info(state: &AppState, signed_in: &SignedIn) -> Result<SessionInfo, ApiError> {
    let organizations: Vec<Membership> = people_store::organizations_of(&state.store, signed_in.person.id)
        .await?
        .into_iter()
        .map(|(m, org)| Membership {
            organization_id: org.id,
            organization_name: org.name,
            role: RoleName::stored(&m.role),
        })
        .collect();
    let organization = organizations
        .iter()
        .find(|m| m.organization_id == signed_in.session.org_id)
        .cloned()
        .ok_or_else(people::not_a_member)?;
    Ok(SessionInfo {
        person: person_info(&signed_in.person),
        organization,
        organizations,
        csrf_token: signed_in.session.csrf_token.clone(),
        expires_at: signed_in.session.expires_at,
        idle_timeout_minutes: state.settings.session_idle_minutes,
    })
}

/// Starts a session and answers it with its cookie.
async fn signed_in(state: &AppState, person: person_rows::Model, org_id: Uuid) -> Result<SignedInResponse, ApiError> {
    let membership = people_store::membership(&state.store, org_id, person.id)
        .await?
        .ok_or_else(people::not_a_member)?;
    let (token, row) = people::start_session(state, person.id, org_id).await?;
    let role = membership.role.parse().map_err(ApiError::internal)?;
    let signed = SignedIn {
        principal: crate::state::Principal {
            org_id,
            role,
            actor: Actor::Member { id: person.id },
        },
        person,
        session: row,
    };
    let info = session_info(state, &signed).await?;
    let cookie = session::set_cookie(state, &token, session::lifetimes(state).1);
    Ok(SignedInResponse::Created(Json(info), cookie))
}

fn cross_site() -> ApiError {
    ApiError::new(ErrorCode::CsrfRejected, "sign-in from another site is refused")
}

fn metadata(actor: Actor, request_id: &RequestId) -> Metadata {
    Metadata::new(actor, Some(request_id.0.clone()))
}

/// `429 RATE_LIMITED` (with the seconds to wait) when an account or a
/// client has failed to sign in too often lately.
async fn throttled(state: &AppState, keys: &[(String, Rate)]) -> Result<(), ApiError> {
    for (key, rate) in keys {
        if let Some(d) = state.limiter.peek(key, *rate).await
            && !d.allowed
        {
            let secs = d.retry_after_ms.div_ceil(1000).max(1);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("too many failed sign-ins; try again in {secs} s"),
            )
            .with_retry_after(secs));
        }
    }
    Ok(())
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Session")]
impl SessionApi {
    /// Sign in
    ///
    /// Checks an email and password and starts a session: the answer sets
    /// the session cookie and holds the CSRF token that requests changing
    /// anything must send back. A wrong email and a wrong password answer
    /// alike (`401 SIGN_IN_FAILED`); after repeated failures for one account
    /// or from one client, `429` with `Retry-After`.
    #[oai(path = "/session", method = "post", operation_id = "sign_in")]
    async fn sign_in(
        &self,
        req: &poem::Request,
        request_id: Data<&RequestId>,
        body: Json<SignInRequest>,
    ) -> Result<SignedInResponse, ApiError> {
        let state = live(&self.state)?;
        if !session::same_site(req, state) {
            return Err(cross_site());
        }
        let email = body.0.email.into_inner().trim().to_lowercase();
        let window = |limit| Rate {
            limit,
            period_ms: FAILURE_WINDOW_MS,
        };
        let mut keys = vec![(
            format!("sign-in-account:{}", sha256_hex(email.as_bytes())),
            window(state.settings.sign_in_failures_per_account),
        )];
        if let Some(client) = state.limiter.client_of(req) {
            keys.push((
                format!("sign-in-ip:{client}"),
                window(state.settings.sign_in_failures_per_ip),
            ));
        }
        throttled(state, &keys).await?;
        let person = match normalize_email(&email) {
            Ok(email) => people_store::person_by_email(&state.store, &email).await?,
            Err(_) => None,
        };
        let stored = person.as_ref().and_then(|p| p.password_hash.clone());
        if !passwords::verify(body.0.password.into_inner(), stored).await {
            for (key, rate) in &keys {
                state.limiter.count(key, *rate).await;
            }
            match &person {
                Some(p) => {
                    state
                        .store
                        .execute::<Person>(Execute {
                            org_id: PEOPLE_ORG,
                            stream_id: p.id,
                            expected_version: None,
                            command: PersonCommand::RecordFailedSignIn,
                            metadata: metadata(Actor::System, &request_id),
                            idempotency: None,
                        })
                        .await?;
                    tracing::info!(person_id = %p.id, "failed sign-in");
                }
                None => tracing::info!(
                    email_sha256 = %sha256_hex(email.as_bytes()),
                    "failed sign-in for an unknown email"
                ),
            }
            return Err(ApiError::new(
                ErrorCode::SignInFailed,
                "the email or the password is wrong",
            ));
        }
        let Some(person) = person else {
            return Err(ApiError::internal("a password matched without a person"));
        };
        let orgs = people_store::organizations_of(&state.store, person.id).await?;
        let org_id = match body.0.organization_id {
            Some(id) if orgs.iter().any(|(m, _)| m.org_id == id) => id,
            Some(_) => return Err(people::not_a_member()),
            None => match orgs.first() {
                Some((m, _)) => m.org_id,
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        "you are not a member of any organization",
                    ));
                }
            },
        };
        signed_in(state, person, org_id).await
    }

    /// The current session
    ///
    /// Who is signed in, in which organization and with which role, the
    /// other organizations they belong to, and the CSRF token.
    #[oai(path = "/session", method = "get", operation_id = "get_session")]
    async fn get(&self, auth: SessionAuth) -> Result<Json<SessionInfo>, ApiError> {
        let state = live(&self.state)?;
        Ok(Json(session_info(state, &auth.0).await?))
    }

    /// Switch organization
    ///
    /// The session acts in another organization the person belongs to.
    #[oai(path = "/session", method = "put", operation_id = "switch_organization")]
    async fn switch(&self, auth: SessionAuth, body: Json<SwitchRequest>) -> Result<Json<SessionInfo>, ApiError> {
        let state = live(&self.state)?;
        let mut signed = auth.0;
        let org_id = body.0.organization_id;
        let membership = people_store::membership(&state.store, org_id, signed.person.id)
            .await?
            .ok_or_else(people::not_a_member)?;
        people_store::switch_session(&state.store, signed.session.id, org_id).await?;
        signed.session.org_id = org_id;
        signed.principal.org_id = org_id;
        signed.principal.role = membership.role.parse().map_err(ApiError::internal)?;
        Ok(Json(session_info(state, &signed).await?))
    }

    /// Sign out
    ///
    /// Ends this session and clears its cookie.
    #[oai(path = "/session", method = "delete", operation_id = "sign_out")]
    async fn sign_out(&self, auth: SessionAuth) -> Result<SignedOutResponse, ApiError> {
        let state = live(&self.state)?;
        people_store::end_session(&state.store, auth.0.session.id).await?;
        Ok(SignedOutResponse::SignedOut(session::clear_cookie(state)))
    }

    /// Sign out everywhere
    ///
    /// Ends every session of the signed-in person, on every device.
    #[oai(path = "/sessions", method = "delete", operation_id = "sign_out_everywhere")]
    async fn sign_out_everywhere(&self, auth: SessionAuth) -> Result<SignedOutResponse, ApiError> {
        let state = live(&self.state)?;
        people_store::end_sessions_of(&state.store, auth.0.person.id, None, None).await?;
        Ok(SignedOutResponse::SignedOut(session::clear_cookie(state)))
    }

    /// Change your display name
    ///
    /// The name colleagues and visitors see.
    #[oai(path = "/me", method = "patch", operation_id = "update_me")]
    async fn update_me(
        &self,
        auth: SessionAuth,
        request_id: Data<&RequestId>,
        body: Json<UpdateMeRequest>,
    ) -> Result<Json<PersonInfo>, ApiError> {
        let state = live(&self.state)?;
        let person_id = auth.0.person.id;
        state
            .store
            .execute::<Person>(Execute {
                org_id: PEOPLE_ORG,
                stream_id: person_id,
                expected_version: None,
                command: PersonCommand::Rename {
                    display_name: body.0.display_name.into_inner(),
                },
                metadata: metadata(auth.0.principal.actor.clone(), &request_id),
                idempotency: None,
            })
            .await?;
        let person = people_store::person(&state.store, person_id)
            .await?
            .ok_or(DomainError::PersonNotFound)?;
        Ok(Json(person_info(&person)))
    }

    /// Set your availability (heartbeat)
    ///
    /// `online`, `away` or `offline`. It lasts two minutes: send it again
    /// every minute while you work, so that a closed page means offline. Online members receive automatically assigned conversations,
    /// and make the bot say a person is available.
    #[oai(path = "/me/availability", method = "put", operation_id = "set_availability")]
    async fn set_availability(
        &self,
        auth: SessionAuth,
        body: Json<AvailabilityRequest>,
    ) -> Result<Json<AvailabilityInfo>, ApiError> {
        let state = live(&self.state)?;
        people_store::set_presence(
            &state.store,
            auth.0.person.id,
            body.0.status.as_str(),
            parley_domain::store::now(),
        )
        .await?;
        Ok(Json(AvailabilityInfo {
            status: body.0.status,
            expires_in_seconds: parley_domain::availability::HEARTBEAT_SECS,
        }))
    }

    /// Change your password
    ///
    /// Needs the current password. Every other session of yours ends.
    #[oai(path = "/me/password", method = "put", operation_id = "change_password")]
    async fn change_password(
        &self,
        auth: SessionAuth,
        request_id: Data<&RequestId>,
        body: Json<ChangePasswordRequest>,
    ) -> Result<DoneResponse, ApiError> {
        let state = live(&self.state)?;
        let person = &auth.0.person;
        if !passwords::verify(body.0.current_password.into_inner(), person.password_hash.clone()).await {
            return Err(ApiError::new(ErrorCode::SignInFailed, "the current password is wrong"));
        }
        let password_hash = people::new_password_hash(body.0.new_password.as_ref(), &person.email).await?;
        let recorded = metadata(auth.0.principal.actor.clone(), &request_id);
        people::set_password(&state.store, person.id, password_hash, recorded).await?;
        people_store::end_sessions_of(&state.store, person.id, None, Some(auth.0.session.id)).await?;
        Ok(DoneResponse::Done)
    }

    /// Set a password with a one-time link
    ///
    /// The link comes from `parley admin reset-password` or
    /// `parley admin create-org --owner-email`. It works once; every session
    /// of the person ends.
    #[oai(path = "/password", method = "post", operation_id = "set_password")]
    async fn set_password(
        &self,
        request_id: Data<&RequestId>,
        body: Json<SetPasswordRequest>,
    ) -> Result<DoneResponse, ApiError> {
        let state = live(&self.state)?;
        people::set_password_by_link(
            &state.store,
            body.0.token.as_ref(),
            body.0.password.as_ref(),
            metadata(Actor::System, &request_id),
        )
        .await?;
        Ok(DoneResponse::Done)
    }

    /// Accept an invitation
    ///
    /// Joins the organization with the invited role and signs in. A new
    /// email gets an account with this password; an email that already has
    /// an account must give its password. The link works once, for 7 days.
    #[oai(path = "/invitations/accept", method = "post", operation_id = "accept_invitation")]
    async fn accept(
        &self,
        req: &poem::Request,
        request_id: Data<&RequestId>,
        body: Json<AcceptInvitationRequest>,
    ) -> Result<SignedInResponse, ApiError> {
        let state = live(&self.state)?;
        if !session::same_site(req, state) {
            return Err(cross_site());
        }
        let token_hash = sha256_hex(body.0.token.as_ref().as_bytes());
        let invitation = people_store::invitation_by_token_hash(&state.store, &token_hash)
            .await?
            .filter(|i| i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > parley_domain::store::now())
            .ok_or(DomainError::LinkInvalid)?;
        let password = body.0.password.into_inner();
        let existing = people_store::person_by_email(&state.store, &invitation.email).await?;
        let person_id = match existing {
            Some(person) if person.password_hash.is_some() => {
                if !passwords::verify(password, person.password_hash.clone()).await {
                    return Err(ApiError::new(
                        ErrorCode::SignInFailed,
                        "this email already has an account: give its password",
                    ));
                }
                person.id
            }
            _ => {
                let hash = people::new_password_hash(&password, &invitation.email).await?;
                let (id, created) = people::ensure_person(
                    &state.store,
                    &invitation.email,
                    body.0.display_name.map(Text::into_inner),
                    Some(hash.clone()),
                    metadata(Actor::System, &request_id),
                )
                .await?;
                if !created {
                    // An account made by the operator, still without a password.
                    people::set_password(&state.store, id, hash, metadata(Actor::System, &request_id)).await?;
                }
                id
            }
        };
        state
            .store
            .execute::<Org>(Execute {
                org_id: invitation.org_id,
                stream_id: invitation.org_id,
                expected_version: None,
                command: OrgCommand::Accept {
                    invitation_id: invitation.id,
                    token_hash,
                    now: parley_domain::store::now(),
                },
                metadata: metadata(Actor::Member { id: person_id }, &request_id),
                idempotency: None,
            })
            .await?;
        let person = people_store::person(&state.store, person_id)
            .await?
            .ok_or(DomainError::PersonNotFound)?;
        signed_in(state, person, invitation.org_id).await
    }
}
