//! The `bots` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::bot::{BOT_EVENTS, BotEvent, BotSettings};
use crate::event::RecordedEvent;
use crate::store::entities::bots;

pub struct BotsProjection;

fn bot_columns(row: &mut bots::ActiveModel, s: BotSettings) {
    row.name = Set(s.name);
    row.slug = Set(s.slug);
    row.website = Set(s.website);
    row.persona = Set(s.persona);
    row.language = Set(s.language);
    row.welcome_message = Set(s.welcome_message);
    row.model = Set(serde_json::to_value(&s.model).unwrap_or(Value::Null));
    row.streaming = Set(s.streaming);
    row.active = Set(s.active);
    row.rate_limit_per_minute = Set(s.rate_limit_per_minute.map(i64::from));
    row.human_only = Set(s.human_only);
    row.auto_reply = Set(s.auto_reply);
    row.handoff = Set(serde_json::to_value(&s.handoff).unwrap_or(Value::Null));
}

#[async_trait]
impl Projection for BotsProjection {
    fn name(&self) -> &'static str {
        "bots"
    }

    fn handles(&self, event_type: &str) -> bool {
        BOT_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<BotEvent>(event)? {
            BotEvent::Created(e) => {
                let mut row = bots::ActiveModel {
                    id: Set(e.bot_id),
                    org_id: Set(e.org_id),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(None),
                    site_key: Set(e.site_key),
                    widget: Set(None),
                    ..Default::default()
                };
                bot_columns(&mut row, e.settings);
                bots::Entity::insert(row).exec_without_returning(txn).await?;
            }
            BotEvent::Updated(e) => {
                let mut row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    ..Default::default()
                };
                bot_columns(&mut row, e.settings);
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::Deleted(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(Some(event.recorded_at)),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::Purged(e) => {
                bots::Entity::delete_by_id(e.bot_id).exec(txn).await?;
            }
            BotEvent::WidgetUpdated(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    widget: Set(Some(crate::event::to_payload(&e.widget))),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::SiteKeyRotated(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    site_key: Set(Some(e.site_key)),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<bots::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<bots::Entity>(db, &[bots::Column::Id]).await
    }
}
