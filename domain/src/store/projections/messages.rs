//! The `messages` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, conversations_row, decode, delete_all, rows_in_order};
use crate::aggregates::conversation::{ADMIN_REPLIED, ANSWER_FAILED, ANSWERED, ConversationEvent, MESSAGE_RECEIVED};
use crate::event::RecordedEvent;
use crate::store::entities::messages;

pub struct MessagesProjection;

#[async_trait]
impl Projection for MessagesProjection {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            MESSAGE_RECEIVED
                | ANSWERED
                | ANSWER_FAILED
                | ADMIN_REPLIED
                | crate::aggregates::conversation::FEEDBACK_RECEIVED
        )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let Some(conversation) = conversations_row(txn, event.stream_id).await? else {
            return Err(DbErr::Custom(format!("conversation {} has no row", event.stream_id)));
        };
        let mut row = messages::ActiveModel {
            conversation_id: Set(event.stream_id),
            org_id: Set(conversation.org_id),
            bot_id: Set(conversation.bot_id),
            seq: Set(event.stream_version),
            system: Set(None),
            reply_to: Set(None),
            provider: Set(None),
            model: Set(None),
            unanswered: Set(false),
            sources: Set(Value::Array(vec![])),
            usage: Set(None),
            language: Set(None),
            metadata: Set(None),
            error_code: Set(None),
            error_message: Set(None),
            created_at: Set(event.recorded_at),
            feedback: Set(None),
            feedback_comment: Set(None),
            author_id: Set(None),
            author_name: Set(None),
            ..Default::default()
        };
        match decode::<ConversationEvent>(event)? {
            ConversationEvent::Started(_)
            | ConversationEvent::Escalated(_)
            | ConversationEvent::Closed(_)
            | ConversationEvent::Reopened(_)
            | ConversationEvent::TagsChanged(_)
            | ConversationEvent::AttachmentAdded(_)
            | ConversationEvent::Assigned(_)
            | ConversationEvent::Unassigned(_)
            | ConversationEvent::NoteAdded(_)
            | ConversationEvent::HandedBack(_)
            | ConversationEvent::Rated(_) => return Ok(()),
            ConversationEvent::FeedbackReceived(e) => {
                let update = messages::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.message_id),
                    feedback: Set(Some(e.rating)),
                    feedback_comment: Set(e.comment),
                    ..Default::default()
                };
                messages::Entity::update(update).exec(txn).await?;
                return Ok(());
            }
            ConversationEvent::AdminReplied(e) => {
                row.id = Set(e.message_id);
                row.role = Set("agent".into());
                row.text = Set(e.text);
                row.status = Set("complete".into());
                row.provider = Set(Some("human".into()));
                row.author_id = Set(e.author_id);
                row.author_name = Set(e.author_name);
            }
            ConversationEvent::MessageReceived(e) => {
                row.id = Set(e.message_id);
                row.role = Set("user".into());
                row.text = Set(e.text);
                row.system = Set(e.system);
                row.status = Set("complete".into());
                row.language = Set(e.language);
                row.metadata = Set((!e.metadata.is_null()).then_some(e.metadata));
            }
            ConversationEvent::Answered(e) => {
                row.id = Set(e.message_id);
                row.role = Set("assistant".into());
                row.text = Set(e.text);
                row.status = Set(e.status);
                row.reply_to = Set(Some(e.reply_to));
                row.provider = Set(Some(e.provider));
                row.model = Set(e.model);
                row.unanswered = Set(e.unanswered);
                row.sources = Set(crate::event::to_payload(&e.sources));
                row.usage = Set(Some(crate::event::to_payload(&e.usage)));
            }
            ConversationEvent::AnswerFailed(e) => {
                row.id = Set(e.message_id);
                row.role = Set("assistant".into());
                row.text = Set(e.partial_text);
                row.status = Set("failed".into());
                row.reply_to = Set(Some(e.reply_to));
                row.provider = Set(Some(e.provider));
                row.error_code = Set(Some(e.code.as_str().to_owned()));
                row.error_message = Set(Some(e.reason));
            }
        }
        messages::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<messages::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<messages::Entity>(db, &[messages::Column::Id]).await
    }
}
