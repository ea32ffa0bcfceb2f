//! Leads: visitors' contact details, one row per bot and email (or phone).

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
                    .table("leads")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("bot_id"))
                    .col(string_len_null("email", 254))
                    .col(string_len_null("name", 200))
                    .col(string_len_null("phone", 30))
                    .col(json_binary("fields"))
                    .col(string_len_null("visitor_id", 255))
                    .col(uuid_null("conversation_id"))
                    .col(string_len("source", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_leads_org_bot")
                    .table("leads")
                    .col("org_id")
                    .col("bot_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("leads").to_owned()).await
    }
}
