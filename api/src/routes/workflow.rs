//! The agent workflow on a conversation: claim, assign, unassign, hand back
//! to the bot, and internal notes (never shown to the visitor).

use chrono::{DateTime, Utc};
use parley_domain::aggregates::conversation::ConversationCommand;
use parley_domain::store::people as people_store;
use parley_domain::store::read;
use parley_domain::{Actor, DomainError, ErrorCode};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::{conversation_command, live};
use crate::error::{ApiError, bad_request};
use crate::http::middleware::RequestId;
use crate::schemas::conversation::{ConversationInfo, info};
use crate::security::AgentAuth;
use crate::state::AppState;
use crate::types::Text;

pub struct WorkflowApi {
    pub state: Option<AppState>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AssignRequest {
    /// The member (person id) who will handle the conversation.
    pub member_id: Uuid,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note, 1 to 10,000 characters. Only your team sees it.
    pub text: Text,
}

/// An internal note on a conversation.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Note {
    /// The note's id.
    pub id: Uuid,
    /// The note.
    pub text: String,
    /// The member who wrote it (absent: an API key).
    pub author_id: Option<Uuid>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct NoteList {
    /// The conversation's notes, oldest first.
    pub data: Vec<Note>,
}

#[derive(ApiResponse)]
pub enum TypingResponse {
    /// The visitor sees you typing for a few seconds.
    #[oai(status = 204)]
    Shown,
}

#[derive(ApiResponse)]
pub enum NoteCreated {
    /// The note is stored.
    #[oai(status = 201)]
    Created(Json<Note>),
}

/// Runs a command on the conversation and answers with it as it is now.
async fn answer(
    state: &AppState,
    principal: &crate::state::Principal,
    request_id: &RequestId,
    conversation_id: Uuid,
    command: ConversationCommand,
) -> Result<Json<ConversationInfo>, ApiError> {
    let row = conversation_command(state, principal, request_id, conversation_id, command).await?;
    Ok(Json(info(state, row).await?))
}

fn note(row: parley_domain::store::entities::conversation_notes::Model) -> Note {
    Note {
        id: row.id,
        text: row.text,
        author_id: row.author_id,
        created_at: row.created_at,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Conversations")]
impl WorkflowApi {
    /// Claim a conversation
    ///
    /// The signed-in member takes the conversation: it is handed to a person
    /// (the bot stops answering) and assigned to them. `409
    /// ALREADY_ASSIGNED` when another member has it. Needs a member's
    /// session: with an API key, `422` (assign instead).
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/claim",
        method = "post",
        operation_id = "claim_conversation"
    )]
    async fn claim(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let Actor::Member { id } = auth.0.actor else {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "an API key is no person: only a signed-in member claims a conversation; assign it to a member instead",
            ));
        };
        let command = ConversationCommand::Claim { member_id: id };
        answer(state, &auth.0, &request_id, conversation_id.0, command).await
    }

    /// Assign a conversation
    ///
    /// Gives the conversation to a member of your organization (it is handed
    /// to a person, the bot stops answering); it replaces whoever had it.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/assign",
        method = "post",
        operation_id = "assign_conversation"
    )]
    async fn assign(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<AssignRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        people_store::membership(&state.store, auth.0.org_id, body.0.member_id)
            .await?
            .ok_or(DomainError::MemberNotFound)?;
        let command = ConversationCommand::Assign {
            member_id: body.0.member_id,
            how: "assign".into(),
        };
        answer(state, &auth.0, &request_id, conversation_id.0, command).await
    }

    /// Unassign a conversation
    ///
    /// Nobody handles it any more; it stays with the people (not the bot)
    /// and waits in the queue. Unassigning twice changes nothing.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/unassign",
        method = "post",
        operation_id = "unassign_conversation"
    )]
    async fn unassign(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        answer(
            state,
            &auth.0,
            &request_id,
            conversation_id.0,
            ConversationCommand::Unassign,
        )
        .await
    }

    /// Hand a conversation back to the bot
    ///
    /// The bot answers the visitor's next messages again; the conversation
    /// is open and nobody's. A conversation the bot already has stays as it is.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/hand-back",
        method = "post",
        operation_id = "hand_back_conversation"
    )]
    async fn hand_back(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        answer(
            state,
            &auth.0,
            &request_id,
            conversation_id.0,
            ConversationCommand::HandBack,
        )
        .await
    }

    /// Show that you are typing
    ///
    /// The visitor sees "<your name> is typing" for six seconds; send it
    /// again while typing (every few seconds). A signal, not an event: it
    /// is not stored.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/typing",
        method = "post",
        operation_id = "agent_typing"
    )]
    async fn typing(&self, auth: AgentAuth, conversation_id: Path<Uuid>) -> Result<TypingResponse, ApiError> {
        let state = live(&self.state)?;
        read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let name = crate::people::author_of(state, &auth.0).await?.map(|(_, name)| name);
        state
            .typing
            .signal(crate::typing::TypingSignal {
                org_id: auth.0.org_id,
                conversation_id: conversation_id.0,
                who: "agent".into(),
                name,
            })
            .await;
        Ok(TypingResponse::Shown)
    }

    /// Add an internal note
    ///
    /// A note for your team on the conversation. Visitors never see notes:
    /// not in the visitor API, the widget or the exports.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/notes",
        method = "post",
        operation_id = "add_conversation_note"
    )]
    async fn add_note(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<NoteRequest>,
    ) -> Result<NoteCreated, ApiError> {
        let state = live(&self.state)?;
        if body.0.text.0.trim().is_empty() {
            return Err(bad_request("the note is empty", "text", "must not be empty"));
        }
        let note_id = Uuid::now_v7();
        let author_id = match auth.0.actor {
            Actor::Member { id } => Some(id),
            Actor::ApiKey { .. } | Actor::Visitor { .. } | Actor::Cli | Actor::System => None,
        };
        let command = ConversationCommand::AddNote {
            note_id,
            text: body.0.text.into_inner(),
            author_id,
        };
        conversation_command(state, &auth.0, &request_id, conversation_id.0, command).await?;
        let row = read::conversation_notes(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .into_iter()
            .find(|n| n.id == note_id)
            .ok_or_else(|| ApiError::internal("a stored note was not found"))?;
        Ok(NoteCreated::Created(Json(note(row))))
    }

    /// List a conversation's notes
    ///
    /// Internal notes, oldest first.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/notes",
        method = "get",
        operation_id = "list_conversation_notes"
    )]
    async fn notes(&self, auth: AgentAuth, conversation_id: Path<Uuid>) -> Result<Json<NoteList>, ApiError> {
        let state = live(&self.state)?;
        read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let rows = read::conversation_notes(&state.store, auth.0.org_id, conversation_id.0).await?;
        Ok(Json(NoteList {
            data: rows.into_iter().map(note).collect(),
        }))
    }
}
