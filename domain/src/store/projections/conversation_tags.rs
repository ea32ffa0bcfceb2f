//! The `conversation_tags` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::conversation::ConversationEvent;
use crate::event::RecordedEvent;
use crate::store::entities::conversation_tags;

pub struct ConversationTagsProjection;

#[async_trait]
impl Projection for ConversationTagsProjection {
    fn name(&self) -> &'static str {
        "conversation_tags"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == crate::aggregates::conversation::TAGS_CHANGED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let ConversationEvent::TagsChanged(e) = decode::<ConversationEvent>(event)? else {
            return Ok(());
        };
        conversation_tags::Entity::delete_many()
            .filter(conversation_tags::Column::ConversationId.eq(event.stream_id))
            .exec(txn)
            .await?;
        let rows: Vec<conversation_tags::ActiveModel> = e
            .tags
            .into_iter()
            .map(|tag| conversation_tags::ActiveModel {
                conversation_id: Set(event.stream_id),
                org_id: Set(event.org_id),
                tag: Set(tag),
            })
            .collect();
        if !rows.is_empty() {
            conversation_tags::Entity::insert_many(rows)
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<conversation_tags::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<conversation_tags::Entity>(
            db,
            &[
                conversation_tags::Column::ConversationId,
                conversation_tags::Column::Tag,
            ],
        )
        .await
    }
}
