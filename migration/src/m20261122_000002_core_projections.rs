//! Read models of organizations, API keys and bots, the idempotency records of
//! create requests, and API key usage.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("orgs")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string_len("name", 200))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(string_len("name", 200))
                    .col(string_len("prefix", 16))
                    .col(string_len("last4", 4))
                    .col(string_len_uniq("key_hash", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_org")
                    .table("api_keys")
                    .col("org_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_key_usage")
                    .if_not_exists()
                    .col(uuid("key_id").primary_key())
                    .col(timestamp_with_time_zone("last_used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("bots")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(string_len("name", 200))
                    .col(string_len("slug", 64))
                    .col(text_null("website"))
                    .col(text("persona"))
                    .col(string_len("language", 35))
                    .col(text("welcome_message"))
                    .col(json_binary("model"))
                    .col(boolean("streaming"))
                    .col(boolean("active"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bots_org")
                    .table("bots")
                    .col("org_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        // A slug is unique among an organization's live bots; both engines support partial indexes.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_bots_org_slug ON bots (org_id, slug) WHERE deleted_at IS NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("idempotency_keys")
                    .if_not_exists()
                    .col(uuid("org_id"))
                    .col(string_len("key", 255))
                    .col(string_len("request_hash", 64))
                    .col(integer("status_code"))
                    .col(json_binary("response"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("org_id").col("key"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["idempotency_keys", "bots", "api_key_usage", "api_keys", "orgs"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
