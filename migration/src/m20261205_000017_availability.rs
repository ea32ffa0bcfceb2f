//! When people answer: bots' hand-off settings (opening hours, the offline
//! message, automatic assignment) and members' availability.

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
                    .add_column(json_binary("handoff").default(Expr::cust("'{}'")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("presence")
                    .if_not_exists()
                    .col(uuid("person_id").primary_key())
                    .col(string_len("status", 16))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("last_assigned_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("presence").to_owned()).await?;
        manager
            .alter_table(Table::alter().table("bots").drop_column("handoff").to_owned())
            .await
    }
}
