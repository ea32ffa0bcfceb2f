//! Reads of people, memberships and invitations, and the sessions table
//! (credentials, not events: only their tokens' hashes are kept).

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::store::Store;
use crate::store::entities::{invitations, memberships, orgs, people, sessions};

pub async fn person_by_email(store: &Store, normalized_email: &str) -> Result<Option<people::Model>, DbErr> {
    people::Entity::find()
        .filter(people::Column::Email.eq(normalized_email))
        .one(store.db())
        .await
}

pub async fn person(store: &Store, person_id: Uuid) -> Result<Option<people::Model>, DbErr> {
    people::Entity::find_by_id(person_id).one(store.db()).await
}

/// A person's membership of one organization.
pub async fn membership(store: &Store, org_id: Uuid, person_id: Uuid) -> Result<Option<memberships::Model>, DbErr> {
    memberships::Entity::find_by_id((org_id, person_id))
        .one(store.db())
        .await
}

/// The organizations a person belongs to, oldest membership first, with
/// each organization's row.
pub async fn organizations_of(store: &Store, person_id: Uuid) -> Result<Vec<(memberships::Model, orgs::Model)>, DbErr> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::PersonId.eq(person_id))
        .order_by_asc(memberships::Column::CreatedAt)
        .order_by_asc(memberships::Column::OrgId)
        .all(store.db())
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|m| m.org_id).collect();
    let orgs = orgs::Entity::find()
        .filter(orgs::Column::Id.is_in(ids))
        .all(store.db())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| {
            let org = orgs.iter().find(|o| o.id == m.org_id)?.clone();
            Some((m, org))
        })
        .collect())
}

/// Whether an organization has any member at all.
pub async fn has_members(store: &Store, org_id: Uuid) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    Ok(memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org_id))
        .count(store.db())
        .await?
        > 0)
}

/// An organization's members with their people, oldest first.
pub async fn members(store: &Store, org_id: Uuid) -> Result<Vec<(memberships::Model, people::Model)>, DbErr> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org_id))
        .order_by_asc(memberships::Column::CreatedAt)
        .order_by_asc(memberships::Column::PersonId)
        .all(store.db())
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|m| m.person_id).collect();
    let people = people::Entity::find()
        .filter(people::Column::Id.is_in(ids))
        .all(store.db())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| {
            let person = people.iter().find(|p| p.id == m.person_id)?.clone();
            Some((m, person))
        })
        .collect())
}

/// An organization's invitations that are neither accepted nor revoked
/// (expired ones included), newest first.
pub async fn open_invitations(store: &Store, org_id: Uuid) -> Result<Vec<invitations::Model>, DbErr> {
    invitations::Entity::find()
        .filter(invitations::Column::OrgId.eq(org_id))
        .filter(invitations::Column::AcceptedAt.is_null())
        .filter(invitations::Column::RevokedAt.is_null())
        .order_by_desc(invitations::Column::CreatedAt)
        .all(store.db())
        .await
}

pub async fn invitation(store: &Store, org_id: Uuid, id: Uuid) -> Result<Option<invitations::Model>, DbErr> {
    invitations::Entity::find_by_id(id)
        .filter(invitations::Column::OrgId.eq(org_id))
        .one(store.db())
        .await
}

pub async fn invitation_by_token_hash(store: &Store, hash: &str) -> Result<Option<invitations::Model>, DbErr> {
    invitations::Entity::find()
        .filter(invitations::Column::TokenHash.eq(hash))
        .one(store.db())
        .await
}

/// A person with a one-time password link whose token hashes to `hash`.
pub async fn person_by_link_hash(store: &Store, hash: &str) -> Result<Option<people::Model>, DbErr> {
    people::Entity::find()
        .filter(people::Column::LinkHash.eq(hash))
        .one(store.db())
        .await
}

/// A new session row.
pub struct NewSession {
    pub token_hash: String,
    pub person_id: Uuid,
    pub org_id: Uuid,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn create_session(store: &Store, new: NewSession) -> Result<sessions::Model, DbErr> {
    let now = crate::store::now();
    let row = sessions::ActiveModel {
        id: Set(crate::ids::new_id()),
        token_hash: Set(new.token_hash),
        person_id: Set(new.person_id),
        org_id: Set(new.org_id),
        csrf_token: Set(new.csrf_token),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(new.expires_at),
    };
    sessions::Entity::insert(row.clone())
        .exec_without_returning(store.db())
        .await?;
    sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(row.token_hash.unwrap()))
        .one(store.db())
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("session just created".into()))
}

pub async fn session_by_token_hash(store: &Store, hash: &str) -> Result<Option<sessions::Model>, DbErr> {
    sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(hash))
        .one(store.db())
        .await
}

pub async fn touch_session(store: &Store, id: Uuid, at: DateTime<Utc>) -> Result<(), DbErr> {
    let row = sessions::ActiveModel {
        id: Unchanged(id),
        last_seen_at: Set(at),
        ..Default::default()
    };
    sessions::Entity::update(row).exec(store.db()).await?;
    Ok(())
}

pub async fn switch_session(store: &Store, id: Uuid, org_id: Uuid) -> Result<(), DbErr> {
    let row = sessions::ActiveModel {
        id: Unchanged(id),
        org_id: Set(org_id),
        ..Default::default()
    };
    sessions::Entity::update(row).exec(store.db()).await?;
    Ok(())
}

pub async fn end_session(store: &Store, id: Uuid) -> Result<(), DbErr> {
    sessions::Entity::delete_by_id(id).exec(store.db()).await?;
    Ok(())
}

/// Ends a person's sessions (in one organization, or everywhere), but
/// `keep` (the session asking); answers how many ended.
pub async fn end_sessions_of(
    store: &Store,
    person_id: Uuid,
    org_id: Option<Uuid>,
    keep: Option<Uuid>,
) -> Result<u64, DbErr> {
    let mut query = sessions::Entity::delete_many().filter(sessions::Column::PersonId.eq(person_id));
    if let Some(org_id) = org_id {
        query = query.filter(sessions::Column::OrgId.eq(org_id));
    }
    if let Some(keep) = keep {
        query = query.filter(sessions::Column::Id.ne(keep));
    }
    Ok(query.exec(store.db()).await?.rows_affected)
}

/// Deletes sessions past their end; answers how many.
pub async fn purge_sessions(store: &Store, now: DateTime<Utc>, idle_since: DateTime<Utc>) -> Result<u64, DbErr> {
    use sea_orm::Condition;
    Ok(sessions::Entity::delete_many()
        .filter(
            Condition::any()
                .add(sessions::Column::ExpiresAt.lte(now))
                .add(sessions::Column::LastSeenAt.lte(idle_since)),
        )
        .exec(store.db())
        .await?
        .rows_affected)
}

/// Records a member's availability (and heartbeat).
pub async fn set_presence(store: &Store, person_id: Uuid, status: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
    use crate::store::entities::presence;
    use sea_orm::sea_query::OnConflict;
    let row = presence::ActiveModel {
        person_id: Set(person_id),
        status: Set(status.to_owned()),
        updated_at: Set(at),
        last_assigned_at: Set(None),
    };
    presence::Entity::insert(row)
        .on_conflict(
            OnConflict::column(presence::Column::PersonId)
                .update_columns([presence::Column::Status, presence::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok(())
}

/// The availability rows of these people.
pub async fn presence_of(
    store: &Store,
    people: Vec<Uuid>,
) -> Result<Vec<crate::store::entities::presence::Model>, DbErr> {
    use crate::store::entities::presence;
    presence::Entity::find()
        .filter(presence::Column::PersonId.is_in(people))
        .all(store.db())
        .await
}

/// Members of an organization who are online now (a fresh heartbeat).
pub async fn online_members(store: &Store, org_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Uuid>, DbErr> {
    let ids: Vec<Uuid> = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org_id))
        .all(store.db())
        .await?
        .into_iter()
        .map(|m| m.person_id)
        .collect();
    Ok(presence_of(store, ids)
        .await?
        .into_iter()
        .filter(|p| crate::availability::effective_availability(&p.status, p.updated_at, now) == "online")
        .map(|p| p.person_id)
        .collect())
}

/// The online member to give a conversation next: among those with fewer
/// than `cap` conversations handed to a person and assigned to them (0: no
/// cap), the one with the fewest, then the one whose last automatic
/// assignment is oldest (round robin). Their turn is recorded.
pub async fn next_assignee(store: &Store, org_id: Uuid, cap: u32, now: DateTime<Utc>) -> Result<Option<Uuid>, DbErr> {
    use crate::store::entities::{conversations, presence};
    use sea_orm::PaginatorTrait;
    let online = online_members(store, org_id, now).await?;
    let mut candidates = Vec::new();
    for member in online {
        let open = conversations::Entity::find()
            .filter(conversations::Column::OrgId.eq(org_id))
            .filter(conversations::Column::AssigneeId.eq(member))
            .filter(conversations::Column::Status.eq("escalated"))
            .count(store.db())
            .await?;
        if cap > 0 && open >= u64::from(cap) {
            continue;
        }
        let last = presence::Entity::find_by_id(member)
            .one(store.db())
            .await?
            .and_then(|p| p.last_assigned_at);
        candidates.push((open, last, member));
    }
    candidates.sort();
    let Some((_, _, chosen)) = candidates.first().copied() else {
        return Ok(None);
    };
    let turn = presence::ActiveModel {
        person_id: Unchanged(chosen),
        last_assigned_at: Set(Some(now)),
        ..Default::default()
    };
    presence::Entity::update(turn).exec(store.db()).await?;
    Ok(Some(chosen))
}
