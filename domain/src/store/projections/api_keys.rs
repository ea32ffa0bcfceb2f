//! The `api_keys` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::api_key::{API_KEY_CREATED, API_KEY_REVOKED, ApiKeyEvent};
use crate::event::RecordedEvent;
use crate::store::entities::api_keys;

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
                    role: Set(e.role.as_str().to_owned()),
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
        delete_all::<api_keys::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<api_keys::Entity>(db, &[api_keys::Column::Id]).await
    }
}
