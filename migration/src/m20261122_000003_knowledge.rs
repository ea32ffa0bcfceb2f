//! Knowledge sources: their read models (`sources`, `source_pages`), the
//! stored content they are indexed from (`blobs`, `source_documents`) and the
//! search index (`chunks`). Content and chunks are derived data, written by
//! workers and rebuilt from stored content; they are not projections of events.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("sources")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(string_len("kind", 16))
                    .col(string_len("title", 500))
                    .col(json_binary("spec"))
                    .col(string_len("schedule", 16))
                    .col(string_len("status", 16))
                    .col(string_len_null("error_code", 64))
                    .col(text_null("error_message"))
                    .col(uuid_null("run_id"))
                    .col(big_integer("pages"))
                    .col(big_integer("chunks"))
                    .col(big_integer("tokens"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("last_indexed_at"))
                    .col(timestamp_with_time_zone_null("next_refresh_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sources_bot")
                    .table("sources")
                    .col("org_id")
                    .col("bot_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("source_pages")
                    .if_not_exists()
                    .col(uuid("source_id"))
                    .col(string_len("doc_key", 2048))
                    .col(text_null("url"))
                    .col(text_null("title"))
                    .col(string_len("status", 16))
                    .col(string_len_null("content_hash", 64))
                    .col(big_integer("chunks"))
                    .col(big_integer("tokens"))
                    .col(integer_null("page_count"))
                    .col(string_len_null("error_code", 64))
                    .col(text_null("error_message"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("source_id").col("doc_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("blobs")
                    .if_not_exists()
                    .col(string_len("hash", 64).primary_key())
                    .col(uuid("org_id"))
                    .col(big_integer("size"))
                    .col(blob("bytes"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("source_documents")
                    .if_not_exists()
                    .col(uuid("source_id"))
                    .col(string_len("doc_key", 2048))
                    .col(uuid("run_id"))
                    .col(text_null("url"))
                    .col(text_null("title"))
                    .col(string_len("content_type", 255))
                    .col(string_len_null("raw_hash", 64))
                    .col(text_null("text"))
                    .col(string_len_null("text_hash", 64))
                    .col(json_binary_null("pages"))
                    .col(string_len_null("indexed_hash", 64))
                    .col(string_len_null("error_code", 64))
                    .col(text_null("error_message"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("source_id").col("doc_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("chunks")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(uuid("source_id"))
                    .col(string_len("doc_key", 2048))
                    .col(integer("ordinal"))
                    .col(text("heading_path"))
                    .col(text("text"))
                    .col(integer("tokens"))
                    .col(integer_null("page"))
                    .col(text_null("url"))
                    .col(text_null("title"))
                    .col(blob("embedding"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_chunks_bot")
                    .table("chunks")
                    .col("bot_id")
                    .col("source_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_chunks_doc")
                    .table("chunks")
                    .col("source_id")
                    .col("doc_key")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["chunks", "source_documents", "blobs", "source_pages", "sources"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
