//! Operator commands that work on the store directly.

use parley_domain::aggregates::api_key::{ApiKey, ApiKeyCommand, GeneratedKey};
use parley_domain::aggregates::org::{Org, OrgCommand};
use parley_domain::ids::new_id;
use parley_domain::store::{Execute, Store, StoreError};
use parley_domain::{Actor, Metadata, Role};
use uuid::Uuid;

/// A new organization and its first secret key (shown once).
pub struct NewOrg {
    pub org_id: Uuid,
    pub key_id: Uuid,
    pub api_key: String,
}

/// Creates an organization on the default plan with a first API key named "initial".
pub async fn create_org(store: &Store, name: &str) -> Result<NewOrg, StoreError> {
    create_org_on(store, name, None).await
}

/// Creates an organization on a plan (`None`: the default plan) with a first
/// API key named "initial". The plan name is checked by the caller.
pub async fn create_org_on(store: &Store, name: &str, plan: Option<&str>) -> Result<NewOrg, StoreError> {
    let org_id = new_id();
    let correlation = format!("cli-{}", Uuid::new_v4());
    store
        .execute::<Org>(Execute {
            org_id,
            stream_id: org_id,
            expected_version: Some(0),
            command: OrgCommand::Create {
                org_id,
                name: name.to_owned(),
                plan: plan.map(str::to_owned),
            },
            metadata: Metadata::new(Actor::Cli, Some(correlation.clone())),
            idempotency: None,
        })
        .await?;
    let key_id = new_id();
    let generated = GeneratedKey::generate();
    store
        .execute::<ApiKey>(Execute {
            org_id,
            stream_id: key_id,
            expected_version: Some(0),
            command: ApiKeyCommand::Create {
                key_id,
                org_id,
                name: "initial".into(),
                key: (&generated).into(),
                role: Role::Owner,
                granted_by: Role::Owner,
            },
            metadata: Metadata::new(Actor::Cli, Some(correlation)),
            idempotency: None,
        })
        .await?;
    Ok(NewOrg {
        org_id,
        key_id,
        api_key: generated.plaintext,
    })
}

/// Puts an organization on another plan (the name is checked by the caller).
pub async fn set_plan(store: &Store, org_id: Uuid, plan: &str) -> Result<(), StoreError> {
    store
        .execute::<Org>(Execute {
            org_id,
            stream_id: org_id,
            expected_version: None,
            command: OrgCommand::ChangePlan { plan: plan.to_owned() },
            metadata: Metadata::new(Actor::Cli, Some(format!("cli-{}", Uuid::new_v4()))),
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// An organization's first owner: the person, and the one-time link that
/// sets their password (none when a password was given).
pub struct NewOwner {
    pub person_id: Uuid,
    pub link: Option<crate::people::OneTimeLink>,
}

fn cli_metadata() -> Metadata {
    Metadata::new(Actor::Cli, Some(format!("cli-{}", Uuid::new_v4())))
}

fn refused(e: crate::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{} ({})", e.body().error.message, e.code())
}

/// Makes the person with `email` an owner of the organization, registering
/// them if needed. With a password it is set (if the person has none);
/// without, a one-time link to set it is made (valid 7 days).
pub async fn add_owner(
    store: &Store,
    base: &str,
    org_id: Uuid,
    email: &str,
    password: Option<&str>,
) -> anyhow::Result<NewOwner> {
    let normalized = parley_domain::aggregates::person::normalize_email(email).map_err(|e| refused(e.into()))?;
    let hash = match password {
        Some(p) => Some(
            crate::people::new_password_hash(p, &normalized)
                .await
                .map_err(refused)?,
        ),
        None => None,
    };
    let (person_id, _) = crate::people::ensure_person(store, &normalized, None, hash.clone(), cli_metadata())
        .await
        .map_err(refused)?;
    let person = parley_domain::store::people::person(store, person_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the person was not stored"))?;
    crate::people::add_member(store, org_id, person_id, Role::Owner, cli_metadata())
        .await
        .map_err(refused)?;
    let link = match (hash, person.password_hash.is_some()) {
        (_, true) => None,
        (Some(hash), false) => {
            crate::people::set_password(store, person_id, hash, cli_metadata())
                .await
                .map_err(refused)?;
            None
        }
        (None, false) => Some(
            crate::people::issue_password_link(
                store,
                base,
                person_id,
                chrono::Duration::days(crate::people::OWNER_LINK_DAYS),
                cli_metadata(),
            )
            .await
            .map_err(refused)?,
        ),
    };
    Ok(NewOwner { person_id, link })
}

/// A one-time link (valid 24 hours) that sets the password of the person
/// with `email`; earlier links stop working.
pub async fn reset_password(store: &Store, base: &str, email: &str) -> anyhow::Result<crate::people::OneTimeLink> {
    let normalized = parley_domain::aggregates::person::normalize_email(email).map_err(|e| refused(e.into()))?;
    let person = parley_domain::store::people::person_by_email(store, &normalized)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no person has the email {normalized}"))?;
    crate::people::issue_password_link(
        store,
        base,
        person.id,
        chrono::Duration::hours(crate::people::RESET_LINK_HOURS),
        cli_metadata(),
    )
    .await
    .map_err(refused)
}
