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
