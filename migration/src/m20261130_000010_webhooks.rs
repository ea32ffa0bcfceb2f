//! Webhooks: the endpoints (a projection of webhook streams), their
//! deliveries and attempts, and each endpoint's health. Deliveries and
//! attempts are operational records, like a job queue's, not events.

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
                    .table("webhooks")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(string_len("url", 2048))
                    .col(json_binary("events"))
                    .col(text_null("description"))
                    .col(boolean("active"))
                    .col(string_len_null("disabled_code", 16))
                    .col(text_null("disabled_reason"))
                    .col(timestamp_with_time_zone_null("disabled_at"))
                    .col(string_len("secret", 80))
                    .col(string_len_null("previous_secret", 80))
                    .col(timestamp_with_time_zone_null("previous_until"))
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
                    .name("ix_webhooks_org")
                    .table("webhooks")
                    .col("org_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(uuid("webhook_id"))
                    .col(uuid("event_id"))
                    .col(string_len("event_type", 64))
                    // `event:<id>`, `redeliver:<id>` or `ping:<id>`: one delivery per event and endpoint.
                    .col(string_len("dedup_key", 80))
                    .col(text("payload"))
                    // pending, sending, retrying, delivered, failed, cancelled
                    .col(string_len("status", 16))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .col(timestamp_with_time_zone_null("enqueued_at"))
                    .col(integer_null("last_status"))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_deliveries_dedup")
                    .table("webhook_deliveries")
                    .col("webhook_id")
                    .col("dedup_key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_due")
                    .table("webhook_deliveries")
                    .col("status")
                    .col("next_attempt_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("delivery_id"))
                    .col(uuid("webhook_id"))
                    .col(integer("attempt"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(integer_null("status_code"))
                    .col(big_integer("latency_ms"))
                    .col(text_null("response_body"))
                    .col(text_null("error"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_delivery")
                    .table("webhook_attempts")
                    .col("delivery_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_health")
                    .if_not_exists()
                    .col(uuid("webhook_id").primary_key())
                    .col(timestamp_with_time_zone_null("failing_since"))
                    .col(timestamp_with_time_zone_null("last_success_at"))
                    .col(timestamp_with_time_zone_null("last_failure_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_health", "webhook_attempts", "webhook_deliveries", "webhooks"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
