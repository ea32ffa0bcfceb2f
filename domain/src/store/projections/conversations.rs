//! The `conversations` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::conversation::{CONVERSATION_EVENTS, ConversationEvent};
use crate::event::RecordedEvent;
use crate::store::entities::conversations;

pub struct ConversationsProjection;

#[async_trait]
impl Projection for ConversationsProjection {
    fn name(&self) -> &'static str {
        "conversations"
    }

    fn handles(&self, event_type: &str) -> bool {
        // Tags, feedback and attachments have read models of their own.
        CONVERSATION_EVENTS.contains(&event_type)
            && !matches!(
                event_type,
                crate::aggregates::conversation::TAGS_CHANGED
                    | crate::aggregates::conversation::FEEDBACK_RECEIVED
                    | crate::aggregates::conversation::ATTACHMENT_ADDED
                    | crate::aggregates::conversation::NOTE_ADDED
            )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let id = event.stream_id;
        let decoded = match decode::<ConversationEvent>(event)? {
            ConversationEvent::Started(e) => {
                let row = conversations::ActiveModel {
                    id: Set(id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    visitor_token: Set(e.visitor_id.clone().filter(|_| e.channel == "widget")),
                    visitor_id: Set(e.visitor_id),
                    channel: Set(e.channel),
                    status: Set("open".into()),
                    messages: Set(0),
                    unanswered: Set(0),
                    created_at: Set(event.recorded_at),
                    last_message_at: Set(event.recorded_at),
                    token_hash: Set(e.token_hash),
                    escalated_at: Set(None),
                    assignee_id: Set(None),
                    satisfaction: Set(None),
                    satisfaction_comment: Set(None),
                    satisfaction_member_id: Set(None),
                    rated_at: Set(None),
                };
                conversations::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            // Not handled (see `handles`).
            ConversationEvent::TagsChanged(_)
            | ConversationEvent::FeedbackReceived(_)
            | ConversationEvent::AttachmentAdded(_)
            | ConversationEvent::NoteAdded(_) => return Ok(()),
            other @ (ConversationEvent::MessageReceived(_)
            | ConversationEvent::Assigned(_)
            | ConversationEvent::Unassigned(_)
            | ConversationEvent::HandedBack(_)
            | ConversationEvent::Rated(_)
            | ConversationEvent::Answered(_)
            | ConversationEvent::AnswerFailed(_)
            | ConversationEvent::AdminReplied(_)
            | ConversationEvent::Escalated(_)
            | ConversationEvent::Closed(_)
            | ConversationEvent::Reopened(_)) => other,
        };
        let Some(current) = conversations::Entity::find_by_id(id).one(txn).await? else {
            return Err(DbErr::Custom(format!("conversation {id} has no row")));
        };
        let mut row: conversations::ActiveModel = current.clone().into();
        match &decoded {
            ConversationEvent::Escalated(_) => {
                row.status = Set("escalated".into());
                if current.escalated_at.is_none() {
                    row.escalated_at = Set(Some(event.recorded_at));
                }
            }
            ConversationEvent::Closed(_) => row.status = Set("closed".into()),
            ConversationEvent::Reopened(_) => row.status = Set("open".into()),
            ConversationEvent::Assigned(e) => row.assignee_id = Set(Some(e.assignee_id)),
            ConversationEvent::Unassigned(_) => row.assignee_id = Set(None),
            ConversationEvent::HandedBack(_) => {
                row.status = Set("open".into());
                row.assignee_id = Set(None);
            }
            ConversationEvent::Rated(e) => {
                row.satisfaction = Set(Some(i32::from(e.score)));
                row.satisfaction_comment = Set(e.comment.clone());
                row.satisfaction_member_id = Set(e.member_id);
                row.rated_at = Set(Some(event.recorded_at));
            }
            ConversationEvent::Started(_)
            | ConversationEvent::TagsChanged(_)
            | ConversationEvent::FeedbackReceived(_)
            | ConversationEvent::AttachmentAdded(_)
            | ConversationEvent::NoteAdded(_) => unreachable!("handled before the row is read"),
            ConversationEvent::MessageReceived(_)
            | ConversationEvent::Answered(_)
            | ConversationEvent::AnswerFailed(_)
            | ConversationEvent::AdminReplied(_) => {
                let unanswered = matches!(&decoded, ConversationEvent::Answered(a) if a.unanswered);
                row.messages = Set(current.messages + 1);
                row.unanswered = Set(current.unanswered + i64::from(unanswered));
                row.last_message_at = Set(event.recorded_at);
            }
        }
        conversations::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<conversations::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<conversations::Entity>(db, &[conversations::Column::Id]).await
    }
}
