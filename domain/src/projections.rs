//! Read models derived from the log. Each is rebuilt by replay and must give
//! the same rows: everything a row holds comes from events (times included).

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use std::sync::Arc;

use crate::aggregates::api_key::{API_KEY_CREATED, API_KEY_REVOKED, ApiKeyEvent};
use crate::aggregates::bot::{BOT_CREATED, BOT_DELETED, BOT_PURGED, BOT_UPDATED, BotEvent, BotSettings};
use crate::aggregates::org::{ORG_CREATED, OrgEvent};
use crate::event::{DomainEvent, RecordedEvent};
use crate::store::entities::{api_keys, bots, orgs};

/// One read model.
#[async_trait]
pub trait Projection: Send + Sync {
    /// A stable name, used by `parley replay <name>` and its checkpoint.
    fn name(&self) -> &'static str;
    /// Whether events of this type change this read model.
    fn handles(&self, event_type: &str) -> bool;
    /// Applies one event inside the append's transaction.
    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr>;
    /// Deletes every row, before a replay.
    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr>;
    /// Every row, in primary-key order, as JSON (to compare live and replayed models).
    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr>;
}

/// Object-safe access to a connection for snapshots.
pub trait ConnectionTraitObject: Send + Sync {
    fn connection(&self) -> &sea_orm::DatabaseConnection;
}

impl ConnectionTraitObject for sea_orm::DatabaseConnection {
    fn connection(&self) -> &sea_orm::DatabaseConnection {
        self
    }
}

/// Every projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(OrgsProjection),
        Arc::new(ApiKeysProjection),
        Arc::new(BotsProjection),
    ]
}

fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, DbErr> {
    E::from_stored(&event.event_type, event.schema_version, &event.payload).map_err(|e| DbErr::Custom(e.to_string()))
}

pub struct OrgsProjection;

#[async_trait]
impl Projection for OrgsProjection {
    fn name(&self) -> &'static str {
        "orgs"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == ORG_CREATED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<OrgEvent>(event)? {
            OrgEvent::Created(e) => {
                let row = orgs::ActiveModel {
                    id: Set(e.org_id),
                    name: Set(e.name),
                    created_at: Set(event.recorded_at),
                };
                orgs::Entity::insert(row).exec_without_returning(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        orgs::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        orgs::Entity::find()
            .order_by_asc(orgs::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct ApiKeysProjection;

#[async_trait]
impl Projection for ApiKeysProjection {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, API_KEY_CREATED | API_KEY_REVOKED)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<ApiKeyEvent>(event)? {
            ApiKeyEvent::Created(e) => {
                let row = api_keys::ActiveModel {
                    id: Set(e.key_id),
                    org_id: Set(e.org_id),
                    name: Set(e.name),
                    prefix: Set(e.prefix),
                    last4: Set(e.last4),
                    key_hash: Set(e.hash),
                    created_at: Set(event.recorded_at),
                    revoked_at: Set(None),
                };
                api_keys::Entity::insert(row).exec_without_returning(txn).await?;
            }
            ApiKeyEvent::Revoked(e) => {
                api_keys::Entity::update_many()
                    .col_expr(
                        api_keys::Column::RevokedAt,
                        sea_orm::sea_query::Expr::value(Some(event.recorded_at)),
                    )
                    .filter(api_keys::Column::Id.eq(e.key_id))
                    .exec(txn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        api_keys::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        api_keys::Entity::find()
            .order_by_asc(api_keys::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

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
}

#[async_trait]
impl Projection for BotsProjection {
    fn name(&self) -> &'static str {
        "bots"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, BOT_CREATED | BOT_UPDATED | BOT_DELETED | BOT_PURGED)
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
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        bots::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        bots::Entity::find()
            .order_by_asc(bots::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}
