//! The `attachments` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, conversations_row, decode, delete_all, rows_in_order};
use crate::aggregates::conversation::ConversationEvent;
use crate::event::RecordedEvent;
use crate::store::entities::attachments;

pub struct AttachmentsProjection;

#[async_trait]
impl Projection for AttachmentsProjection {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == crate::aggregates::conversation::ATTACHMENT_ADDED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let ConversationEvent::AttachmentAdded(e) = decode::<ConversationEvent>(event)? else {
            return Ok(());
        };
        let Some(conversation) = conversations_row(txn, event.stream_id).await? else {
            return Err(DbErr::Custom(format!("conversation {} has no row", event.stream_id)));
        };
        let row = attachments::ActiveModel {
            id: Set(e.attachment_id),
            org_id: Set(conversation.org_id),
            bot_id: Set(conversation.bot_id),
            conversation_id: Set(event.stream_id),
            message_id: Set(e.message_id),
            file_name: Set(e.file_name),
            content_type: Set(e.content_type),
            size: Set(e.size),
            sha256: Set(e.sha256),
            created_at: Set(event.recorded_at),
        };
        attachments::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<attachments::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<attachments::Entity>(db, &[attachments::Column::Id]).await
    }
}
