//! The `memberships` and `invitations` read models: who belongs to which
//! organization with which role, and who is invited.

use async_trait::async_trait;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use super::shared::{ConnectionTraitObject, Projection, decode, rows_in_order};
use crate::aggregates::org::{
    INVITATION_CREATED, INVITATION_REVOKED, MEMBER_ADDED, MEMBER_REMOVED, MEMBER_ROLE_CHANGED, OrgEvent,
};
use crate::event::RecordedEvent;
use crate::store::entities::{invitations, memberships};

pub struct MembersProjection;

#[async_trait]
impl Projection for MembersProjection {
    fn name(&self) -> &'static str {
        "members"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            MEMBER_ADDED | MEMBER_ROLE_CHANGED | MEMBER_REMOVED | INVITATION_CREATED | INVITATION_REVOKED
        )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<OrgEvent>(event)? {
            OrgEvent::MemberAdded(e) => {
                let row = memberships::ActiveModel {
                    org_id: Set(e.org_id),
                    person_id: Set(e.person_id),
                    role: Set(e.role.as_str().to_owned()),
                    created_at: Set(event.recorded_at),
                };
                memberships::Entity::insert(row).exec_without_returning(txn).await?;
                if let Some(id) = e.invitation_id {
                    let row = invitations::ActiveModel {
                        id: Unchanged(id),
                        accepted_at: Set(Some(event.recorded_at)),
                        ..Default::default()
                    };
                    invitations::Entity::update(row).exec(txn).await?;
                }
            }
            OrgEvent::MemberRoleChanged(e) => {
                let row = memberships::ActiveModel {
                    org_id: Unchanged(e.org_id),
                    person_id: Unchanged(e.person_id),
                    role: Set(e.role.as_str().to_owned()),
                    ..Default::default()
                };
                memberships::Entity::update(row).exec(txn).await?;
            }
            OrgEvent::MemberRemoved(e) => {
                memberships::Entity::delete_many()
                    .filter(memberships::Column::OrgId.eq(e.org_id))
                    .filter(memberships::Column::PersonId.eq(e.person_id))
                    .exec(txn)
                    .await?;
            }
            OrgEvent::InvitationCreated(e) => {
                let row = invitations::ActiveModel {
                    id: Set(e.invitation_id),
                    org_id: Set(e.org_id),
                    email: Set(e.email),
                    role: Set(e.role.as_str().to_owned()),
                    token_hash: Set(e.token_hash),
                    expires_at: Set(e.expires_at),
                    created_at: Set(event.recorded_at),
                    accepted_at: Set(None),
                    revoked_at: Set(None),
                };
                invitations::Entity::insert(row).exec_without_returning(txn).await?;
            }
            OrgEvent::InvitationRevoked(e) => {
                let row = invitations::ActiveModel {
                    id: Unchanged(e.invitation_id),
                    revoked_at: Set(Some(event.recorded_at)),
                    ..Default::default()
                };
                invitations::Entity::update(row).exec(txn).await?;
            }
            OrgEvent::Created(_) | OrgEvent::PlanChanged(_) => {}
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        memberships::Entity::delete_many().exec(txn).await?;
        invitations::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        let mut rows =
            rows_in_order::<memberships::Entity>(db, &[memberships::Column::OrgId, memberships::Column::PersonId])
                .await?;
        rows.extend(rows_in_order::<invitations::Entity>(db, &[invitations::Column::Id]).await?);
        Ok(rows)
    }
}
