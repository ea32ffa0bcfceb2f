//! Conversations and their messages (projections of conversation streams),
//! and `chunk_sets`: one row per source with chunks, whose generation changes
//! whenever the source's chunks do, so search processes know what to reload.

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
                    .table("chunk_sets")
                    .if_not_exists()
                    .col(uuid("source_id").primary_key())
                    .col(uuid("bot_id"))
                    .col(big_integer("generation"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_chunk_sets_bot")
                    .table("chunk_sets")
                    .col("bot_id")
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO chunk_sets (source_id, bot_id, generation) \
                 SELECT DISTINCT source_id, bot_id, 1 FROM chunks",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("conversations")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(string_len_null("visitor_id", 255))
                    .col(string_len("channel", 16))
                    .col(string_len("status", 16))
                    .col(big_integer("messages"))
                    .col(big_integer("unanswered"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("last_message_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_bot")
                    .table("conversations")
                    .col("org_id")
                    .col("bot_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("messages")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("conversation_id"))
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(big_integer("seq"))
                    .col(string_len("role", 16))
                    .col(text("text"))
                    .col(text_null("system"))
                    .col(string_len("status", 16))
                    .col(uuid_null("reply_to"))
                    .col(string_len_null("provider", 32))
                    .col(string_len_null("model", 200))
                    .col(boolean("unanswered"))
                    .col(json_binary("sources"))
                    .col(json_binary_null("usage"))
                    .col(string_len_null("language", 35))
                    .col(json_binary_null("metadata"))
                    .col(string_len_null("error_code", 64))
                    .col(text_null("error_message"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_messages_conversation")
                    .table("messages")
                    .col("conversation_id")
                    .col("seq")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["messages", "conversations", "chunk_sets"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
