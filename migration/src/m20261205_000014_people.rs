//! People, their memberships of organizations, invitations, and sessions.

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
                    .table("people")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string_len_uniq("email", 254))
                    .col(string_len("display_name", 200))
                    .col(text_null("password_hash"))
                    .col(string_len_null("link_hash", 64))
                    .col(timestamp_with_time_zone_null("link_expires_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("password_changed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("memberships")
                    .if_not_exists()
                    .col(uuid("org_id"))
                    .col(uuid("person_id"))
                    .col(string_len("role", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("org_id").col("person_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_memberships_person")
                    .table("memberships")
                    .col("person_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("invitations")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(uuid("org_id"))
                    .col(string_len("email", 254))
                    .col(string_len("role", 16))
                    .col(string_len_uniq("token_hash", 64))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("accepted_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_invitations_org")
                    .table("invitations")
                    .col("org_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sessions")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string_len_uniq("token_hash", 64))
                    .col(uuid("person_id"))
                    .col(uuid("org_id"))
                    .col(string_len("csrf_token", 80))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("last_seen_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_person")
                    .table("sessions")
                    .col("person_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["sessions", "invitations", "memberships", "people"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
