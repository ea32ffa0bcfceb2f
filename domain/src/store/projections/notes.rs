//! The `conversation_notes` read model: the team's internal notes. Only the
//! secret API reads it; nothing visitors see does.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, conversations_row, decode, delete_all, rows_in_order};
use crate::aggregates::conversation::{ConversationEvent, NOTE_ADDED};
use crate::event::RecordedEvent;
use crate::store::entities::conversation_notes;

pub struct NotesProjection;

#[async_trait]
impl Projection for NotesProjection {
    fn name(&self) -> &'static str {
        "conversation_notes"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == NOTE_ADDED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let ConversationEvent::NoteAdded(e) = decode::<ConversationEvent>(event)? else {
            return Ok(());
        };
        let Some(conversation) = conversations_row(txn, event.stream_id).await? else {
            return Err(DbErr::Custom(format!("conversation {} has no row", event.stream_id)));
        };
        let row = conversation_notes::ActiveModel {
            id: Set(e.note_id),
            conversation_id: Set(e.conversation_id),
            org_id: Set(conversation.org_id),
            author_id: Set(e.author_id),
            text: Set(e.text),
            created_at: Set(event.recorded_at),
        };
        conversation_notes::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<conversation_notes::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<conversation_notes::Entity>(db, &[conversation_notes::Column::Id]).await
    }
}
