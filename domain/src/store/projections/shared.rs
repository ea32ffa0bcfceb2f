//! What every read model shares: the `Projection` trait, event decoding,
//! and the reset and snapshot of a projection that owns one table.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait, QueryOrder};
use serde_json::Value;

use crate::event::{DomainEvent, RecordedEvent};

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

pub(super) fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, DbErr> {
    E::from_stored(&event.event_type, event.schema_version, &event.payload).map_err(|e| DbErr::Custom(e.to_string()))
}

/// `reset` of a projection that owns one table: every row deleted.
pub(super) async fn delete_all<E: EntityTrait>(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    E::delete_many().exec(txn).await?;
    Ok(())
}

/// `snapshot` of a projection that owns one table: its rows as JSON, in the
/// given column order.
pub(super) async fn rows_in_order<E: EntityTrait>(
    db: &dyn ConnectionTraitObject,
    order: &[E::Column],
) -> Result<Vec<Value>, DbErr> {
    let mut query = E::find();
    for column in order {
        query = query.order_by_asc(*column);
    }
    query.into_json().all(db.connection()).await
}

/// A conversation's row, for read models that copy its fields.
pub(super) async fn conversations_row(
    txn: &DatabaseTransaction,
    id: uuid::Uuid,
) -> Result<Option<crate::store::entities::conversations::Model>, DbErr> {
    crate::store::entities::conversations::Entity::find_by_id(id)
        .one(txn)
        .await
}
