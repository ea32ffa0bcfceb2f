//! The `leads` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::lead::{LEAD_EVENTS, LeadEvent};
use crate::event::RecordedEvent;
use crate::store::entities::leads;

pub struct LeadsProjection;

#[async_trait]
impl Projection for LeadsProjection {
    fn name(&self) -> &'static str {
        "leads"
    }

    fn handles(&self, event_type: &str) -> bool {
        LEAD_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<LeadEvent>(event)? {
            LeadEvent::Captured(e) => {
                let row = leads::ActiveModel {
                    id: Set(e.lead_id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    email: Set(e.details.email),
                    name: Set(e.details.name),
                    phone: Set(e.details.phone),
                    fields: Set(crate::event::to_payload(&e.details.fields)),
                    visitor_id: Set(e.visitor_id),
                    conversation_id: Set(e.conversation_id),
                    source: Set(e.source),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                };
                leads::Entity::insert(row).exec_without_returning(txn).await?;
            }
            LeadEvent::Updated(e) => {
                let row = leads::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.lead_id),
                    email: Set(e.details.email),
                    name: Set(e.details.name),
                    phone: Set(e.details.phone),
                    fields: Set(crate::event::to_payload(&e.details.fields)),
                    visitor_id: Set(e.visitor_id),
                    conversation_id: Set(e.conversation_id),
                    updated_at: Set(event.recorded_at),
                    ..Default::default()
                };
                leads::Entity::update(row).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<leads::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<leads::Entity>(db, &[leads::Column::Id]).await
    }
}
