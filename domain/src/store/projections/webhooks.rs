//! The `webhooks` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::webhook::{WEBHOOK_EVENTS, WebhookEvent};
use crate::event::RecordedEvent;
use crate::store::entities::webhooks;

pub struct WebhooksProjection;

#[async_trait]
impl Projection for WebhooksProjection {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handles(&self, event_type: &str) -> bool {
        WEBHOOK_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let touched = |id| webhooks::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id),
            version: Set(event.stream_version),
            updated_at: Set(event.recorded_at),
            ..Default::default()
        };
        let row = match decode::<WebhookEvent>(event)? {
            WebhookEvent::Created(e) => {
                let row = webhooks::ActiveModel {
                    id: Set(e.webhook_id),
                    org_id: Set(e.org_id),
                    url: Set(e.settings.url),
                    events: Set(crate::event::to_payload(&e.settings.events)),
                    description: Set(e.settings.description),
                    active: Set(e.settings.active),
                    disabled_code: Set(None),
                    disabled_reason: Set(None),
                    disabled_at: Set(None),
                    secret: Set(e.secret),
                    previous_secret: Set(None),
                    previous_until: Set(None),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(None),
                };
                webhooks::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            WebhookEvent::Updated(e) => {
                let mut row = touched(e.webhook_id);
                row.url = Set(e.settings.url);
                row.events = Set(crate::event::to_payload(&e.settings.events));
                row.description = Set(e.settings.description);
                row.active = Set(e.settings.active);
                if e.settings.active {
                    row.disabled_code = Set(None);
                    row.disabled_reason = Set(None);
                    row.disabled_at = Set(None);
                }
                row
            }
            WebhookEvent::SecretRotated(e) => {
                let mut row = touched(e.webhook_id);
                row.secret = Set(e.secret);
                row.previous_secret = Set(Some(e.previous_secret));
                row.previous_until = Set(Some(e.previous_until));
                row
            }
            WebhookEvent::Disabled(e) => {
                let mut row = touched(e.webhook_id);
                row.active = Set(false);
                row.disabled_code = Set(Some(e.code));
                row.disabled_reason = Set(Some(e.reason));
                row.disabled_at = Set(Some(event.recorded_at));
                row
            }
            WebhookEvent::Deleted(e) => {
                let mut row = touched(e.webhook_id);
                row.active = Set(false);
                row.deleted_at = Set(Some(event.recorded_at));
                row
            }
        };
        webhooks::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<webhooks::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<webhooks::Entity>(db, &[webhooks::Column::Id]).await
    }
}
