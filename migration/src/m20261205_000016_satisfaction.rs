//! Visitors' ratings of conversations a person closed: the score, its
//! comment, the member rated, and when.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            integer_null("satisfaction"),
            text_null("satisfaction_comment"),
            uuid_null("satisfaction_member_id"),
            timestamp_with_time_zone_null("rated_at"),
        ] {
            manager
                .alter_table(Table::alter().table("conversations").add_column(column).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            "satisfaction",
            "satisfaction_comment",
            "satisfaction_member_id",
            "rated_at",
        ] {
            manager
                .alter_table(Table::alter().table("conversations").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
