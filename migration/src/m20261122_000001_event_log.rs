//! The event log (append-only, enforced by the database) and the checkpoints
//! of projections and listeners.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("events")
                    .if_not_exists()
                    .col(
                        ColumnDef::new("position")
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid_uniq("event_id"))
                    .col(uuid("org_id"))
                    .col(string_len("stream_type", 32))
                    .col(uuid("stream_id"))
                    .col(big_integer("stream_version"))
                    .col(string_len("event_type", 64))
                    .col(integer("schema_version"))
                    .col(json_binary("payload"))
                    .col(json_binary("metadata"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_events_stream_version")
                    .table("events")
                    .col("stream_id")
                    .col("stream_version")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_events_org_position")
                    .table("events")
                    .col("org_id")
                    .col("position")
                    .to_owned(),
            )
            .await?;

        // The log is append-only: the database itself refuses updates and deletes.
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events \
                     BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events \
                     BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'events are append-only'; END; $$ LANGUAGE plpgsql;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events \
                     FOR EACH ROW EXECUTE FUNCTION events_append_only();",
                )
                .await?;
            }
            other @ (DbBackend::MySql | _) => {
                return Err(DbErr::Migration(format!("unsupported database backend {other:?}")));
            }
        }

        manager
            .create_table(
                Table::create()
                    .table("checkpoints")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(big_integer("position"))
                    .col(string_len_null("lease_owner", 64))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("checkpoints").to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP TRIGGER IF EXISTS events_append_only ON events")
                .await?;
        }
        manager.drop_table(Table::drop().table("events").to_owned()).await
    }
}
