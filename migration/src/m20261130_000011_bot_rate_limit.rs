//! A bot's own rate limit: messages per minute it answers, all visitors together.

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
                    .table("bots")
                    .add_column(big_integer_null("rate_limit_per_minute"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("bots")
                    .drop_column("rate_limit_per_minute")
                    .to_owned(),
            )
            .await
    }
}
