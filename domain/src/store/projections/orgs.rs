//! The `orgs` read model.

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, delete_all, rows_in_order};
use crate::aggregates::org::{ORG_CREATED, ORG_PLAN_CHANGED, OrgEvent};
use crate::event::RecordedEvent;
use crate::store::entities::orgs;

pub struct OrgsProjection;

#[async_trait]
impl Projection for OrgsProjection {
    fn name(&self) -> &'static str {
        "orgs"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, ORG_CREATED | ORG_PLAN_CHANGED)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<OrgEvent>(event)? {
            OrgEvent::Created(e) => {
                let row = orgs::ActiveModel {
                    id: Set(e.org_id),
                    name: Set(e.name),
                    created_at: Set(event.recorded_at),
                    plan: Set(e.plan),
                };
                orgs::Entity::insert(row).exec_without_returning(txn).await?;
            }
            OrgEvent::PlanChanged(e) => {
                let row = orgs::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.org_id),
                    plan: Set(Some(e.plan)),
                    ..Default::default()
                };
                orgs::Entity::update(row).exec(txn).await?;
            }
            // Members and invitations are the `members` read model's.
            OrgEvent::MemberAdded(_)
            | OrgEvent::MemberRoleChanged(_)
            | OrgEvent::MemberRemoved(_)
            | OrgEvent::InvitationCreated(_)
            | OrgEvent::InvitationRevoked(_) => {}
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        delete_all::<orgs::Entity>(txn).await
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        rows_in_order::<orgs::Entity>(db, &[orgs::Column::Id]).await
    }
}
