//! The `people` read model: who can sign in, with their password's hash and
//! outstanding one-time link.

use async_trait::async_trait;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::person::{PERSON_EVENTS, PersonEvent};
use crate::event::RecordedEvent;
use crate::store::entities::people;

pub struct PeopleProjection;

#[async_trait]
impl Projection for PeopleProjection {
    fn name(&self) -> &'static str {
        "people"
    }

    fn handles(&self, event_type: &str) -> bool {
        PERSON_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let row = match decode::<PersonEvent>(event)? {
            PersonEvent::Registered(e) => {
                let row = people::ActiveModel {
                    id: Set(e.person_id),
                    email: Set(e.email),
                    display_name: Set(e.display_name),
                    password_changed_at: Set(e.password_hash.as_ref().map(|_| event.recorded_at)),
                    password_hash: Set(e.password_hash),
                    link_hash: Set(None),
                    link_expires_at: Set(None),
                    created_at: Set(event.recorded_at),
                };
                people::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            PersonEvent::Renamed(e) => people::ActiveModel {
                id: Unchanged(e.person_id),
                display_name: Set(e.display_name),
                ..Default::default()
            },
            PersonEvent::PasswordSet(e) => {
                let mut row = people::ActiveModel {
                    id: Unchanged(e.person_id),
                    password_hash: Set(Some(e.password_hash)),
                    password_changed_at: Set(Some(event.recorded_at)),
                    ..Default::default()
                };
                if e.by_link {
                    row.link_hash = Set(None);
                    row.link_expires_at = Set(None);
                }
                row
            }
            PersonEvent::PasswordLinkIssued(e) => people::ActiveModel {
                id: Unchanged(e.person_id),
                link_hash: Set(Some(e.token_hash)),
                link_expires_at: Set(Some(e.expires_at)),
                ..Default::default()
            },
            PersonEvent::SignInFailed(_) => return Ok(()),
        };
        people::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<people::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<people::Entity>(db, &[people::Column::Id]).await
    }
}
