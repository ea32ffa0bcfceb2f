//! Counting what plans limit: chat messages per calendar month (taken
//! atomically, so concurrent requests never pass the quota together), bots
//! and sources per organization.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::store::Store;
use crate::store::entities::{bots, sources, usage_counters};
use crate::usage::period;

/// Counts one message against the month's quota; `false` (and nothing
/// counted) when the quota is used up.
pub async fn take_message(store: &Store, org_id: Uuid, at: DateTime<Utc>, quota: u64) -> Result<bool, DbErr> {
    if quota == 0 {
        return Ok(false);
    }
    let period = period(at);
    // The row exists from the month's first message on.
    let row = usage_counters::ActiveModel {
        org_id: Set(org_id),
        period: Set(period.clone()),
        messages: Set(0),
    };
    usage_counters::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([usage_counters::Column::OrgId, usage_counters::Column::Period])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    // One statement checks and counts: concurrent requests cannot both take the last one.
    let taken = usage_counters::Entity::update_many()
        .col_expr(
            usage_counters::Column::Messages,
            Expr::col(usage_counters::Column::Messages).add(1),
        )
        .filter(usage_counters::Column::OrgId.eq(org_id))
        .filter(usage_counters::Column::Period.eq(period))
        .filter(usage_counters::Column::Messages.lt(quota as i64))
        .exec(store.db())
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Messages counted in the month of `at`.
pub async fn messages_used(store: &Store, org_id: Uuid, at: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(usage_counters::Entity::find_by_id((org_id, period(at)))
        .one(store.db())
        .await?
        .map_or(0, |r| Ord::max(r.messages, 0) as u64))
}

/// Live bots of the organization.
pub async fn bots_used(store: &Store, org_id: Uuid) -> Result<u64, DbErr> {
    bots::Entity::find()
        .filter(bots::Column::OrgId.eq(org_id))
        .count(store.db())
        .await
}

/// Live sources of the organization, across its bots.
pub async fn sources_used(store: &Store, org_id: Uuid) -> Result<u64, DbErr> {
    sources::Entity::find()
        .filter(sources::Column::OrgId.eq(org_id))
        .filter(sources::Column::DeletedAt.is_null())
        .count(store.db())
        .await
}
