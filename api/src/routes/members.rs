//! `/api/v1/members` and `/api/v1/invitations`: who belongs to the
//! organization, with which role, and who is invited.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::org::{Org, OrgCommand};
use parley_domain::ids::new_id;
use parley_domain::store::Execute;
use parley_domain::store::content::sha256_hex;
use parley_domain::store::entities::invitations;
use parley_domain::store::people as people_store;
use parley_domain::{DomainError, Role};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::people::link_url;
use crate::schemas::role::RoleName;
use crate::security::{AdminAuth, AgentAuth};
use crate::state::{AppState, Principal};
use crate::types::Text;

pub struct MembersApi {
    pub state: Option<AppState>,
}

/// A member of the organization.
#[derive(Debug, Clone, Object)]
pub struct Member {
    /// The person's id.
    pub id: Uuid,
    /// The email they sign in with.
    pub email: String,
    /// The name colleagues and visitors see.
    pub display_name: String,
    /// Their role in your organization.
    pub role: RoleName,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// `online`, `away` or `offline` now (a status without a heartbeat for two minutes is `offline`).
    pub availability: String,
}

#[derive(Debug, Clone, Object)]
pub struct MemberList {
    /// Every member, oldest first.
    pub data: Vec<Member>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The new role; only owners grant or take away `owner`.
    pub role: RoleName,
}

/// An invitation that is neither accepted nor revoked.
#[derive(Debug, Clone, Object)]
pub struct Invitation {
    /// The invitation's id.
    pub id: Uuid,
    /// The invited email (lowercase).
    pub email: String,
    /// The role it gives.
    pub role: RoleName,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// After this the link no longer works (7 days after it was made).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct InvitationList {
    /// Open invitations (expired ones included), newest first.
    pub data: Vec<Invitation>,
}

/// A new invitation, with its link (shown this once).
#[derive(Debug, Clone, Object)]
pub struct CreatedInvitation {
    /// The invitation.
    #[oai(flatten)]
    pub invitation: Invitation,
    /// The invitation's token; Parley keeps only its SHA-256.
    pub token: String,
    /// The link to send to the invited person.
    pub link: String,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct InviteRequest {
    /// The email to invite.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: Text,
    /// The role they get (never more than yours).
    pub role: RoleName,
}

#[derive(ApiResponse)]
pub enum InvitedResponse {
    /// The invitation is made; an earlier open one for the same email is revoked.
    #[oai(status = 201)]
    Created(Json<CreatedInvitation>),
}

#[derive(ApiResponse)]
pub enum RemovedResponse {
    /// Done.
    #[oai(status = 204)]
    Removed,
}

fn invitation(row: &invitations::Model) -> Invitation {
    Invitation {
        id: row.id,
        email: row.email.clone(),
        role: RoleName::stored(&row.role),
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

fn availability_of(
    presence: &[parley_domain::store::entities::presence::Model],
    person_id: Uuid,
    now: DateTime<Utc>,
) -> String {
    presence
        .iter()
        .find(|p| p.person_id == person_id)
        .map_or("offline", |p| {
            parley_domain::availability::effective_availability(&p.status, p.updated_at, now)
        })
        .to_owned()
}

/// One member of the organization, with their availability now.
async fn member(state: &AppState, org_id: Uuid, person_id: Uuid) -> Result<Member, ApiError> {
    let membership = people_store::membership(&state.store, org_id, person_id)
        .await?
        .ok_or(DomainError::MemberNotFound)?;
    let person = people_store::person(&state.store, person_id)
        .await?
        .ok_or(DomainError::MemberNotFound)?;
    let presence = people_store::presence_of(&state.store, vec![person_id]).await?;
    Ok(Member {
        availability: availability_of(&presence, person_id, parley_domain::store::now()),
        id: person.id,
        email: person.email,
        display_name: person.display_name,
        role: RoleName::stored(&membership.role),
        joined_at: membership.created_at,
    })
}

async fn org_command(
    state: &AppState,
    principal: &Principal,
    request_id: &RequestId,
    command: OrgCommand,
) -> Result<(), ApiError> {
    state
        .store
        .execute::<Org>(Execute {
            org_id: principal.org_id,
            stream_id: principal.org_id,
            expected_version: None,
            command,
            metadata: principal.metadata(&request_id.0),
            idempotency: None,
        })
        .await?;
    Ok(())
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Members")]
impl MembersApi {
    /// List members
    ///
    /// The people of your organization with their roles, oldest first.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/members", method = "get", operation_id = "list_members")]
    async fn list(&self, auth: AgentAuth) -> Result<Json<MemberList>, ApiError> {
        let state = live(&self.state)?;
        let rows = people_store::members(&state.store, auth.0.org_id).await?;
        let presence = people_store::presence_of(&state.store, rows.iter().map(|(m, _)| m.person_id).collect()).await?;
        let now = parley_domain::store::now();
        let data = rows
            .into_iter()
            .map(|(m, p)| Member {
                availability: availability_of(&presence, p.id, now),
                id: p.id,
                email: p.email,
                display_name: p.display_name,
                role: RoleName::stored(&m.role),
                joined_at: m.created_at,
            })
            .collect();
        Ok(Json(MemberList { data }))
    }

    /// Change a member's role
    ///
    /// Admins change agents and admins; only owners grant or take away
    /// `owner`. The last owner keeps the role (`409 LAST_OWNER`). Takes
    /// effect with the member's next request.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/members/:person_id", method = "patch", operation_id = "change_member_role")]
    async fn change_role(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        person_id: Path<Uuid>,
        body: Json<ChangeRoleRequest>,
    ) -> Result<Json<Member>, ApiError> {
        let state = live(&self.state)?;
        let command = OrgCommand::ChangeRole {
            person_id: person_id.0,
            role: Role::from(body.0.role),
            by: auth.0.role,
        };
        org_command(state, &auth.0, &request_id, command).await?;
        Ok(Json(member(state, auth.0.org_id, person_id.0).await?))
    }

    /// Remove a member
    ///
    /// Their sessions in this organization end at once. Admins remove
    /// agents and admins; only owners remove owners, and never the last one.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/members/:person_id", method = "delete", operation_id = "remove_member")]
    async fn remove(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        person_id: Path<Uuid>,
    ) -> Result<RemovedResponse, ApiError> {
        let state = live(&self.state)?;
        let command = OrgCommand::RemoveMember {
            person_id: person_id.0,
            by: auth.0.role,
        };
        org_command(state, &auth.0, &request_id, command).await?;
        people_store::end_sessions_of(&state.store, person_id.0, Some(auth.0.org_id), None).await?;
        Ok(RemovedResponse::Removed)
    }

    /// Invite a person
    ///
    /// Makes a one-time link, valid for 7 days, that lets the person with
    /// this email join with the role (never more than yours). The link is
    /// in the answer: send it to them. A new invitation for the same email
    /// replaces the open one.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/invitations", method = "post", operation_id = "invite_member")]
    async fn invite(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        req: &poem::Request,
        body: Json<InviteRequest>,
    ) -> Result<InvitedResponse, ApiError> {
        let state = live(&self.state)?;
        let invitation_id = new_id();
        let token = parley_domain::ids::random_token("iv_", 32);
        let command = OrgCommand::Invite {
            invitation_id,
            email: body.0.email.into_inner(),
            role: Role::from(body.0.role),
            token_hash: sha256_hex(token.as_bytes()),
            now: parley_domain::store::now(),
            by: auth.0.role,
        };
        org_command(state, &auth.0, &request_id, command).await?;
        let row = people_store::invitation(&state.store, auth.0.org_id, invitation_id)
            .await?
            .ok_or(DomainError::InvitationNotFound)?;
        let link = link_url(&state.public_base(req.header("host")), "accept-invitation", &token);
        Ok(InvitedResponse::Created(Json(CreatedInvitation {
            invitation: invitation(&row),
            token,
            link,
        })))
    }

    /// List invitations
    ///
    /// Invitations neither accepted nor revoked, newest first.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/invitations", method = "get", operation_id = "list_invitations")]
    async fn list_invitations(&self, auth: AdminAuth) -> Result<Json<InvitationList>, ApiError> {
        let state = live(&self.state)?;
        let rows = people_store::open_invitations(&state.store, auth.0.org_id).await?;
        Ok(Json(InvitationList {
            data: rows.iter().map(invitation).collect(),
        }))
    }

    /// Revoke an invitation
    ///
    /// Its link stops working.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/invitations/:invitation_id",
        method = "delete",
        operation_id = "revoke_invitation"
    )]
    async fn revoke_invitation(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        invitation_id: Path<Uuid>,
    ) -> Result<RemovedResponse, ApiError> {
        let state = live(&self.state)?;
        let command = OrgCommand::RevokeInvitation {
            invitation_id: invitation_id.0,
            by: auth.0.role,
        };
        org_command(state, &auth.0, &request_id, command).await?;
        Ok(RemovedResponse::Removed)
    }
}
