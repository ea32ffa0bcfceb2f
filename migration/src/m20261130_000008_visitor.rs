//! The visitor side: a bot's public site key and widget settings, the
//! visitor token and conversation token of widget conversations, when a
//! conversation was first escalated, and files visitors attach.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        let add = |table: &'static str, column: ColumnDef| Table::alter().table(table).add_column(column).to_owned();
        manager
            .alter_table(add("bots", string_len_null("site_key", 64)))
            .await?;
        manager.alter_table(add("bots", json_binary_null("widget"))).await?;
        manager
            .alter_table(add("conversations", string_len_null("visitor_token", 128)))
            .await?;
        manager
            .alter_table(add("conversations", string_len_null("token_hash", 64)))
            .await?;
        manager
            .alter_table(add("conversations", timestamp_with_time_zone_null("escalated_at")))
            .await?;
        // Conversations escalated before this column existed, from the log
        // (what a replay would give).
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE conversations SET escalated_at = (SELECT MIN(e.recorded_at) FROM events e \
                 WHERE e.stream_id = conversations.id AND e.event_type = 'conversation.escalated')",
            )
            .await?;
        // One conversation per visitor token and bot (API conversations have none).
        manager
            .create_index(
                Index::create()
                    .name("ux_conversations_visitor_token")
                    .table("conversations")
                    .col("bot_id")
                    .col("visitor_token")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("attachments")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(uuid("conversation_id"))
                    .col(uuid("message_id"))
                    .col(string_len("file_name", 255))
                    .col(string_len("content_type", 100))
                    .col(big_integer("size"))
                    .col(string_len("sha256", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_attachments_conversation")
                    .table("attachments")
                    .col("conversation_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("attachments").to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_conversations_visitor_token")
                    .table("conversations")
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            ("conversations", "escalated_at"),
            ("conversations", "token_hash"),
            ("conversations", "visitor_token"),
            ("bots", "widget"),
            ("bots", "site_key"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
