//! Conversations: reading and exporting them, the hand-off to a person
//! (escalate, reply, close, reopen), tags, ratings and visitors' files.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::conversation::{ConversationCommand, TagChange};
use parley_domain::{DomainError, ErrorCode, store::read};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::{conversation_command, live, live_bot};
use crate::error::{ApiError, bad_request};
use crate::files::{Disposition, FileResponse, file_response};
use crate::http::middleware::RequestId;
use crate::schemas::conversation::{
    ConversationDetail, ConversationInfo, ConversationList, ConversationStatus, FeedbackRequest, FeedbackSummary,
    Message, Rating, info, infos, messages_with_attachments, stored_message,
};
use crate::security::AgentAuth;
use crate::state::AppState;
use crate::types::Text;

/// Conversations: reading, hand-off, tags, ratings and files.
pub struct ConversationsApi {
    pub state: Option<AppState>,
}

/// Tags to set or add.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct TagsRequest {
    /// 1 to 50 lowercase letters, digits, `-`, `_` or `:` each; at most 20 per conversation.
    #[oai(validator(max_items = 20))]
    pub tags: Vec<Text>,
}

/// A person's reply.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ReplyRequest {
    /// The reply, 1 to 10,000 characters.
    pub text: Text,
}

/// Sets, adds or removes tags, and answers with the conversation.
async fn change_tags(
    state: &AppState,
    auth: &AgentAuth,
    request_id: &RequestId,
    conversation_id: Uuid,
    change: TagChange,
) -> Result<Json<ConversationInfo>, ApiError> {
    let command = ConversationCommand::Tags(change);
    let row = conversation_command(state, &auth.0, request_id, conversation_id, command).await?;
    Ok(Json(info(state, row).await?))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// List conversations
    ///
    /// Your organization's conversations, newest first, filtered by bot,
    /// status, visitor, unanswered questions and creation time.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/conversations", method = "get", operation_id = "list_conversations")]
    #[allow(clippy::too_many_arguments)]
    async fn list_conversations(
        &self,
        auth: AgentAuth,
        /// Only this bot's conversations.
        bot_id: Query<Option<Uuid>>,
        /// Only conversations with this status.
        status: Query<Option<ConversationStatus>>,
        /// Only this visitor's conversations.
        visitor_id: Query<Option<String>>,
        /// `true`: only conversations with at least one fallback answer; `false`: only those without.
        unanswered: Query<Option<bool>>,
        /// Only conversations started at or after this time (RFC 3339).
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only conversations started before this time (RFC 3339).
        created_before: Query<Option<DateTime<Utc>>>,
        /// Only conversations with this tag.
        tag: Query<Option<String>>,
        /// `true`: only conversations with a rated answer; `false`: only those without.
        has_feedback: Query<Option<bool>>,
        /// `me` (the signed-in member's), `none` (nobody handles them) or a member's id.
        assignee: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Uuid>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<ConversationList>, ApiError> {
        let state = live(&self.state)?;
        let limit = limit.0.unwrap_or(20);
        let assignee = match assignee.0.as_deref() {
            None => None,
            Some("none") => Some(read::AssigneeFilter::Nobody),
            Some("me") => match auth.0.actor {
                parley_domain::Actor::Member { id } => Some(read::AssigneeFilter::Member(id)),
                parley_domain::Actor::ApiKey { .. }
                | parley_domain::Actor::Visitor { .. }
                | parley_domain::Actor::Cli
                | parley_domain::Actor::System => {
                    return Err(bad_request(
                        "an API key is no member",
                        "assignee",
                        "`me` needs a member's session; give a member's id",
                    ));
                }
            },
            Some(other) => Some(read::AssigneeFilter::Member(other.parse().map_err(|_| {
                bad_request("bad assignee", "assignee", "must be `me`, `none` or a member's id")
            })?)),
        };
        let filter = read::ConversationFilter {
            assignee,
            bot_id: bot_id.0,
            status: status.0.map(|s| s.as_str()),
            visitor_id: visitor_id.0,
            unanswered: unanswered.0,
            created_after: created_after.0,
            created_before: created_before.0,
            tag: tag.0,
            has_feedback: has_feedback.0,
        };
        let mut rows = read::conversations(&state.store, auth.0.org_id, &filter, cursor.0, limit + 1).await?;
        let next_cursor = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|c| c.id)
        } else {
            None
        };
        Ok(Json(ConversationList {
            items: infos(state, rows).await?,
            next_cursor,
        }))
    }

    /// Get a conversation
    ///
    /// One conversation with all its messages in order: the visitor's, the
    /// bot's answers with their sources, and failed answers.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id",
        method = "get",
        operation_id = "get_conversation"
    )]
    async fn get_conversation(
        &self,
        auth: AgentAuth,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationDetail>, ApiError> {
        let state = live(&self.state)?;
        let conversation = read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let messages = messages_with_attachments(state, conversation.id).await?;
        Ok(Json(ConversationDetail {
            conversation: info(state, conversation).await?,
            messages,
        }))
    }

    /// Hand a conversation to a person
    ///
    /// The bot stops answering by itself; visitor messages are stored and
    /// wait for a person's reply. Escalating twice changes nothing.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/escalate",
        method = "post",
        operation_id = "escalate_conversation"
    )]
    async fn escalate(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let command = ConversationCommand::Escalate { reason: "api".into() };
        let row = conversation_command(state, &auth.0, &request_id, conversation_id.0, command).await?;
        Ok(Json(info(state, row).await?))
    }

    /// Reply as a person
    ///
    /// The reply appears in the visitor's conversation (role `agent`), with
    /// the member's display name as its `author` when a member sends it. A
    /// conversation that was not escalated is escalated by it; a closed one
    /// is reopened; an unassigned one becomes the replying member's.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/reply",
        method = "post",
        operation_id = "reply_to_conversation"
    )]
    async fn reply(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<ReplyRequest>,
    ) -> Result<Json<Message>, ApiError> {
        let state = live(&self.state)?;
        if body.0.text.0.trim().is_empty() {
            return Err(bad_request("the reply is empty", "text", "must not be empty"));
        }
        let message_id = Uuid::now_v7();
        let command = ConversationCommand::AdminReply {
            message_id,
            text: body.0.text.into_inner(),
            author: crate::people::author_of(state, &auth.0).await?,
        };
        let row = conversation_command(state, &auth.0, &request_id, conversation_id.0, command).await?;
        let message = stored_message(state, row.id, message_id).await?;
        Ok(Json(message.into()))
    }

    /// Replace a conversation's tags
    ///
    /// The conversation then has exactly these tags (an empty list removes all).
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/tags",
        method = "put",
        operation_id = "set_conversation_tags"
    )]
    async fn set_tags(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<TagsRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let tags = body.0.tags.into_iter().map(Text::into_inner).collect();
        change_tags(
            live(&self.state)?,
            &auth,
            &request_id,
            conversation_id.0,
            TagChange::Set(tags),
        )
        .await
    }

    /// Add tags to a conversation
    ///
    /// Tags it already has are kept once.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/tags",
        method = "post",
        operation_id = "add_conversation_tags"
    )]
    async fn add_tags(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        body: Json<TagsRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let tags = body.0.tags.into_iter().map(Text::into_inner).collect();
        change_tags(
            live(&self.state)?,
            &auth,
            &request_id,
            conversation_id.0,
            TagChange::Add(tags),
        )
        .await
    }

    /// Remove a tag from a conversation
    ///
    /// Removing a tag it does not have changes nothing.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/tags/:tag",
        method = "delete",
        operation_id = "remove_conversation_tag"
    )]
    async fn remove_tag(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        tag: Path<String>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        change_tags(
            live(&self.state)?,
            &auth,
            &request_id,
            conversation_id.0,
            TagChange::Remove(vec![tag.0]),
        )
        .await
    }

    /// Rate an answer
    ///
    /// Thumbs up or down, with an optional comment, on one of the bot's
    /// answers in this conversation; a later rating replaces an earlier one.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/messages/:message_id/feedback",
        method = "post",
        operation_id = "rate_answer"
    )]
    async fn feedback(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
        message_id: Path<Uuid>,
        body: Json<FeedbackRequest>,
    ) -> Result<Json<Message>, ApiError> {
        let state = live(&self.state)?;
        let command = ConversationCommand::Feedback {
            message_id: message_id.0,
            up: body.0.rating == Rating::Up,
            comment: body.0.comment.map(Text::into_inner),
            by: "admin".into(),
        };
        let row = conversation_command(state, &auth.0, &request_id, conversation_id.0, command).await?;
        let message = stored_message(state, row.id, message_id.0).await?;
        Ok(Json(message.into()))
    }

    /// Ratings of a bot's answers
    ///
    /// How many of the bot's answers were rated up and down (the latest
    /// rating of each answer counts).
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots/:bot_id/feedback", method = "get", operation_id = "bot_feedback")]
    async fn bot_feedback(&self, auth: AgentAuth, bot_id: Path<Uuid>) -> Result<Json<FeedbackSummary>, ApiError> {
        let state = live(&self.state)?;
        live_bot(state, auth.0.org_id, bot_id.0).await?;
        let (up, down) = read::feedback_counts(&state.store, auth.0.org_id, bot_id.0).await?;
        Ok(Json(FeedbackSummary {
            up,
            down,
            ratio: (up + down > 0).then(|| up as f64 / (up + down) as f64),
        }))
    }

    /// Close a conversation
    ///
    /// A visitor message (or a reply) reopens it.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/close",
        method = "post",
        operation_id = "close_conversation"
    )]
    async fn close(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let row = conversation_command(
            state,
            &auth.0,
            &request_id,
            conversation_id.0,
            ConversationCommand::Close,
        )
        .await?;
        Ok(Json(info(state, row).await?))
    }

    /// Reopen a conversation
    ///
    /// The bot answers again by itself.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/reopen",
        method = "post",
        operation_id = "reopen_conversation"
    )]
    async fn reopen(
        &self,
        auth: AgentAuth,
        request_id: Data<&RequestId>,
        conversation_id: Path<Uuid>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let state = live(&self.state)?;
        let row = conversation_command(
            state,
            &auth.0,
            &request_id,
            conversation_id.0,
            ConversationCommand::Reopen,
        )
        .await?;
        Ok(Json(info(state, row).await?))
    }

    /// Download a visitor's attachment
    ///
    /// A file a visitor attached in one of your organization's conversations.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/attachments/:attachment_id",
        method = "get",
        operation_id = "download_attachment"
    )]
    async fn download_attachment(
        &self,
        auth: AgentAuth,
        conversation_id: Path<Uuid>,
        attachment_id: Path<Uuid>,
        /// `inline` or `attachment` (default).
        disposition: Query<Option<Disposition>>,
    ) -> Result<FileResponse, ApiError> {
        let state = live(&self.state)?;
        let row = read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let attachment = read::attachment(&state.store, row.id, attachment_id.0)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::AttachmentNotFound, "attachment not found"))?;
        file_response(state, attachment, disposition.0.unwrap_or(Disposition::Attachment)).await
    }
}
