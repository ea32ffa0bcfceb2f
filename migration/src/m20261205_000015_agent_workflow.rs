//! The agent workflow: who handles a conversation, who wrote an agent's
//! reply, internal notes, saved replies, and bots without AI answers (human
//! only).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("conversations")
                    .add_column(uuid_null("assignee_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("messages")
                    .add_column(uuid_null("author_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("messages")
                    .add_column(string_len_null("author_name", 200))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("bots")
                    .add_column(boolean("human_only").default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("bots")
                    .add_column(text_null("auto_reply"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("conversation_notes")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("conversation_id"))
                    .col(uuid("org_id"))
                    .col(uuid_null("author_id"))
                    .col(text("text"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversation_notes_conversation")
                    .table("conversation_notes")
                    .col("conversation_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("saved_replies")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(string_len("shortcut", 64))
                    .col(text("text"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_saved_replies_shortcut")
                    .table("saved_replies")
                    .col("org_id")
                    .col("shortcut")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["saved_replies", "conversation_notes"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        for (table, column) in [
            ("messages", "author_name"),
            ("messages", "author_id"),
            ("conversations", "assignee_id"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
