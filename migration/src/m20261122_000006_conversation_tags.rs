//! Conversation tags, a projection of `conversation.tags_changed`.

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
                    .table("conversation_tags")
                    .if_not_exists()
                    .col(uuid("conversation_id"))
                    .col(uuid("org_id"))
                    .col(string_len("tag", 50))
                    .primary_key(Index::create().col("conversation_id").col("tag"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversation_tags_org_tag")
                    .table("conversation_tags")
                    .col("org_id")
                    .col("tag")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("conversation_tags").to_owned())
            .await
    }
}
