//! The `source_pages` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::source::{PageRecord, SourceEvent};
use crate::event::RecordedEvent;
use crate::store::entities::source_pages;

pub struct SourcePagesProjection;

async fn upsert_pages(
    txn: &DatabaseTransaction,
    source_id: uuid::Uuid,
    pages: Vec<PageRecord>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::OnConflict;
    for p in pages {
        let row = source_pages::ActiveModel {
            source_id: Set(source_id),
            doc_key: Set(p.doc_key),
            url: Set(p.url),
            title: Set(p.title),
            status: Set(p.status),
            content_hash: Set(p.content_hash),
            chunks: Set(i64::from(p.chunks)),
            tokens: Set(i64::from(p.tokens)),
            page_count: Set(p.page_count.map(|n| n as i32)),
            error_code: Set(p.error_code),
            error_message: Set(p.error_message),
            updated_at: Set(at),
        };
        source_pages::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([source_pages::Column::SourceId, source_pages::Column::DocKey])
                    .update_columns([
                        source_pages::Column::Url,
                        source_pages::Column::Title,
                        source_pages::Column::Status,
                        source_pages::Column::ContentHash,
                        source_pages::Column::Chunks,
                        source_pages::Column::Tokens,
                        source_pages::Column::PageCount,
                        source_pages::Column::ErrorCode,
                        source_pages::Column::ErrorMessage,
                        source_pages::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for SourcePagesProjection {
    fn name(&self) -> &'static str {
        "source_pages"
    }

    fn handles(&self, event_type: &str) -> bool {
        use crate::aggregates::source::{SOURCE_DOCUMENT_RENAMED, SOURCE_FAILED, SOURCE_INDEXED, SOURCE_PURGED};
        matches!(
            event_type,
            SOURCE_INDEXED | SOURCE_FAILED | SOURCE_PURGED | SOURCE_DOCUMENT_RENAMED
        )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let source_id = event.stream_id;
        match decode::<SourceEvent>(event)? {
            SourceEvent::Indexed(e) => {
                upsert_pages(txn, source_id, e.pages, event.recorded_at).await?;
                if !e.removed.is_empty() {
                    source_pages::Entity::delete_many()
                        .filter(source_pages::Column::SourceId.eq(source_id))
                        .filter(source_pages::Column::DocKey.is_in(e.removed))
                        .exec(txn)
                        .await?;
                }
            }
            SourceEvent::Failed(e) => upsert_pages(txn, source_id, e.pages, event.recorded_at).await?,
            SourceEvent::DocumentRenamed(e) => {
                source_pages::Entity::update_many()
                    .col_expr(
                        source_pages::Column::Title,
                        sea_orm::sea_query::Expr::value(Some(e.title)),
                    )
                    .col_expr(
                        source_pages::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(event.recorded_at),
                    )
                    .filter(source_pages::Column::SourceId.eq(source_id))
                    .filter(source_pages::Column::DocKey.eq(e.doc_key))
                    .exec(txn)
                    .await?;
            }
            SourceEvent::Purged(_) => {
                source_pages::Entity::delete_many()
                    .filter(source_pages::Column::SourceId.eq(source_id))
                    .exec(txn)
                    .await?;
            }
            SourceEvent::Added(_)
            | SourceEvent::RefreshRequested(_)
            | SourceEvent::Fetching(_)
            | SourceEvent::Fetched(_)
            | SourceEvent::Parsed(_)
            | SourceEvent::ScheduleChanged(_)
            | SourceEvent::Deleted(_) => {}
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<source_pages::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<source_pages::Entity>(db, &[source_pages::Column::SourceId, source_pages::Column::DocKey]).await
    }
}
