//! The `sources` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::source::{SOURCE_EVENTS, SourceEvent};
use crate::event::RecordedEvent;
use crate::store::entities::sources;

pub struct SourcesProjection;

/// A row update of a source that touches only the given columns.
fn source_update(id: uuid::Uuid, event: &RecordedEvent) -> sources::ActiveModel {
    sources::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(id),
        version: Set(event.stream_version),
        updated_at: Set(event.recorded_at),
        ..Default::default()
    }
}

#[async_trait]
impl Projection for SourcesProjection {
    fn name(&self) -> &'static str {
        "sources"
    }

    fn handles(&self, event_type: &str) -> bool {
        SOURCE_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let id = event.stream_id;
        let mut row = source_update(id, event);
        match decode::<SourceEvent>(event)? {
            SourceEvent::Added(e) => {
                let row = sources::ActiveModel {
                    id: Set(e.source_id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    kind: Set(e.spec.kind().to_owned()),
                    title: Set(e.spec.title()),
                    spec: Set(e.spec.summary()),
                    schedule: Set(e.schedule.as_str().to_owned()),
                    status: Set("queued".to_owned()),
                    error_code: Set(None),
                    error_message: Set(None),
                    run_id: Set(Some(e.run_id)),
                    pages: Set(0),
                    chunks: Set(0),
                    tokens: Set(0),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    last_indexed_at: Set(None),
                    next_refresh_at: Set(None),
                    deleted_at: Set(None),
                };
                sources::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            SourceEvent::RefreshRequested(e) => {
                row.status = Set("queued".into());
                row.run_id = Set(Some(e.run_id));
                row.error_code = Set(None);
                row.error_message = Set(None);
            }
            SourceEvent::Fetching(_) => row.status = Set("fetching".into()),
            SourceEvent::Fetched(_) => row.status = Set("parsing".into()),
            SourceEvent::Parsed(_) => row.status = Set("embedding".into()),
            SourceEvent::Indexed(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let schedule = current
                    .as_ref()
                    .and_then(|c| crate::aggregates::source::Schedule::parse(&c.schedule));
                row.status = Set("ready".into());
                row.pages = Set(e.pages.iter().filter(|p| p.status != "failed").count() as i64);
                row.chunks = Set(e.chunks as i64);
                row.tokens = Set(e.tokens as i64);
                row.last_indexed_at = Set(Some(event.recorded_at));
                row.next_refresh_at = Set(schedule.and_then(|s| s.next_after(event.recorded_at)));
            }
            SourceEvent::Failed(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let schedule = current
                    .as_ref()
                    .and_then(|c| crate::aggregates::source::Schedule::parse(&c.schedule));
                row.status = Set("failed".into());
                row.error_code = Set(Some(e.code));
                row.error_message = Set(Some(e.message));
                row.next_refresh_at = Set(schedule.and_then(|s| s.next_after(event.recorded_at)));
            }
            SourceEvent::ScheduleChanged(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let since = current.and_then(|c| c.last_indexed_at).unwrap_or(event.recorded_at);
                row.schedule = Set(e.schedule.as_str().into());
                row.next_refresh_at = Set(e.schedule.next_after(since));
            }
            SourceEvent::Deleted(_) => row.deleted_at = Set(Some(event.recorded_at)),
            // The source's version moves; its pages change in `source_pages`.
            SourceEvent::DocumentRenamed(_) => {}
            SourceEvent::Purged(_) => {
                sources::Entity::delete_by_id(id).exec(txn).await?;
                return Ok(());
            }
        }
        sources::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<sources::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<sources::Entity>(db, &[sources::Column::Id]).await
    }
}
