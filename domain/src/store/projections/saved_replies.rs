//! The `saved_replies` read model; its unique index on (organization,
//! shortcut) refuses a shortcut taken twice.

use async_trait::async_trait;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::saved_reply::{SAVED_REPLY_EVENTS, SavedReplyEvent};
use crate::event::RecordedEvent;
use crate::store::entities::saved_replies;

pub struct SavedRepliesProjection;

#[async_trait]
impl Projection for SavedRepliesProjection {
    fn name(&self) -> &'static str {
        "saved_replies"
    }

    fn handles(&self, event_type: &str) -> bool {
        SAVED_REPLY_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<SavedReplyEvent>(event)? {
            SavedReplyEvent::Created(e) => {
                let row = saved_replies::ActiveModel {
                    id: Set(e.saved_reply_id),
                    org_id: Set(e.org_id),
                    shortcut: Set(e.shortcut),
                    text: Set(e.text),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                };
                saved_replies::Entity::insert(row).exec_without_returning(txn).await?;
            }
            SavedReplyEvent::Updated(e) => {
                let row = saved_replies::ActiveModel {
                    id: Unchanged(e.saved_reply_id),
                    shortcut: Set(e.shortcut),
                    text: Set(e.text),
                    updated_at: Set(event.recorded_at),
                    ..Default::default()
                };
                saved_replies::Entity::update(row).exec(txn).await?;
            }
            SavedReplyEvent::Deleted(e) => {
                saved_replies::Entity::delete_by_id(e.saved_reply_id).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<saved_replies::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<saved_replies::Entity>(db, &[saved_replies::Column::Id]).await
    }
}
