//! Usage counters: messages per organization and calendar month (UTC), for
//! the plan's monthly quota. Operational data, like rate-limit counts: not
//! derived from events.

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
                    .table("usage_counters")
                    .if_not_exists()
                    .col(uuid("org_id"))
                    .col(string_len("period", 7))
                    .col(big_integer("messages"))
                    .primary_key(Index::create().col("org_id").col("period"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("usage_counters").to_owned())
            .await
    }
}
