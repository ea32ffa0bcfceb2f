//! `/api/v1/saved-replies`: answers the team shares, found by shortcut.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::saved_reply::{SavedReply as SavedReplyAggregate, SavedReplyCommand};
use parley_domain::ids::new_id;
use parley_domain::store::entities::saved_replies;
use parley_domain::store::{Execute, StoreError};
use parley_domain::{DomainError, ErrorCode};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::security::AgentAuth;
use crate::state::{AppState, Principal};
use crate::types::Text;

pub struct SavedRepliesApi {
    pub state: Option<AppState>,
}

/// A saved reply.
#[derive(Debug, Clone, Object)]
pub struct SavedReply {
    /// The saved reply's id.
    pub id: Uuid,
    /// What finds it while typing (`refund` for `/refund`), unique in your organization.
    pub shortcut: String,
    /// The reply.
    pub text: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct SavedReplyList {
    /// Saved replies by shortcut.
    pub data: Vec<SavedReply>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateSavedReplyRequest {
    /// 1 to 32 letters, digits, `-` or `_`; a leading `/` is dropped.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub shortcut: Text,
    /// The reply, 1 to 10,000 characters.
    pub text: Text,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateSavedReplyRequest {
    /// A new shortcut.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub shortcut: Option<Text>,
    /// A new text.
    pub text: Option<Text>,
}

#[derive(ApiResponse)]
pub enum SavedReplyCreated {
    /// The saved reply is stored.
    #[oai(status = 201)]
    Created(Json<SavedReply>),
}

#[derive(ApiResponse)]
pub enum SavedReplyDeleted {
    /// The saved reply is gone.
    #[oai(status = 204)]
    Deleted,
}

fn info(row: saved_replies::Model) -> SavedReply {
    SavedReply {
        id: row.id,
        shortcut: row.shortcut,
        text: row.text,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

async fn find(state: &AppState, org_id: Uuid, id: Uuid) -> Result<SavedReply, ApiError> {
    saved_replies::Entity::find_by_id(id)
        .filter(saved_replies::Column::OrgId.eq(org_id))
        .one(state.store.db())
        .await?
        .map(info)
        .ok_or_else(|| DomainError::SavedReplyNotFound.into())
}

/// Runs a command; a shortcut another saved reply has is `409`.
async fn run(
    state: &AppState,
    principal: &Principal,
    request_id: &RequestId,
    id: Uuid,
    command: SavedReplyCommand,
) -> Result<(), ApiError> {
    let executed = state
        .store
        .execute::<SavedReplyAggregate>(Execute {
            org_id: principal.org_id,
            stream_id: id,
            expected_version: None,
            command,
            metadata: principal.metadata(&request_id.0),
            idempotency: None,
        })
        .await;
    match executed {
        Ok(_) => Ok(()),
        Err(StoreError::Unique {
            projection: "saved_replies",
            ..
        }) => Err(ApiError::new(
            ErrorCode::Conflict,
            "another saved reply of your organization has this shortcut",
        )),
        Err(e) => Err(e.into()),
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Conversations")]
impl SavedRepliesApi {
    /// List saved replies
    ///
    /// Your team's saved replies by shortcut; with `q`, those whose shortcut
    /// starts with it (what a reply box looks up as the agent types `/q`).
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/saved-replies", method = "get", operation_id = "list_saved_replies")]
    async fn list(
        &self,
        auth: AgentAuth,
        /// A shortcut prefix (a leading `/` is dropped).
        q: Query<Option<String>>,
    ) -> Result<Json<SavedReplyList>, ApiError> {
        let state = live(&self.state)?;
        let mut query = saved_replies::Entity::find().filter(saved_replies::Column::OrgId.eq(auth.0.org_id));
        if let Some(prefix) = q.0.as_deref().map(|p| p.trim().trim_start_matches('/').to_lowercase())
            && !prefix.is_empty()
        {
            query = query.filter(saved_replies::Column::Shortcut.starts_with(prefix));
        }
        let rows = query
            .order_by_asc(saved_replies::Column::Shortcut)
            .all(state.store.db())
            .await?;
        Ok(Json(SavedReplyList {
            data: rows.into_iter().map(info).collect(),
        }))
    }

    /// Create a saved reply
    ///
    /// `409 CONFLICT` when another saved reply has the shortcut.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/saved-replies", method = "post", operation_id = "create_saved_reply")]
    async fn create(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        body: Json<CreateSavedReplyRequest>,
    ) -> Result<SavedReplyCreated, ApiError> {
        let state = live(&self.state)?;
        let id = new_id();
        let command = SavedReplyCommand::Create {
            saved_reply_id: id,
            org_id: auth.0.org_id,
            shortcut: body.0.shortcut.into_inner(),
            text: body.0.text.into_inner(),
        };
        run(state, &auth.0, &request_id, id, command).await?;
        Ok(SavedReplyCreated::Created(Json(find(state, auth.0.org_id, id).await?)))
    }

    /// Change a saved reply
    ///
    /// Its shortcut, its text, or both.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/saved-replies/:saved_reply_id",
        method = "patch",
        operation_id = "update_saved_reply"
    )]
    async fn update(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        saved_reply_id: Path<Uuid>,
        body: Json<UpdateSavedReplyRequest>,
    ) -> Result<Json<SavedReply>, ApiError> {
        let state = live(&self.state)?;
        let command = SavedReplyCommand::Update {
            org_id: auth.0.org_id,
            shortcut: body.0.shortcut.map(Text::into_inner),
            text: body.0.text.map(Text::into_inner),
        };
        run(state, &auth.0, &request_id, saved_reply_id.0, command).await?;
        Ok(Json(find(state, auth.0.org_id, saved_reply_id.0).await?))
    }

    /// Delete a saved reply
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/saved-replies/:saved_reply_id",
        method = "delete",
        operation_id = "delete_saved_reply"
    )]
    async fn delete(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        saved_reply_id: Path<Uuid>,
    ) -> Result<SavedReplyDeleted, ApiError> {
        let state = live(&self.state)?;
        let command = SavedReplyCommand::Delete { org_id: auth.0.org_id };
        run(state, &auth.0, &request_id, saved_reply_id.0, command).await?;
        Ok(SavedReplyDeleted::Deleted)
    }
}
