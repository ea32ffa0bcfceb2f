//! `/api/v1/keys`: create, list, get and revoke secret API keys.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::api_key::{ApiKey, ApiKeyCommand, GeneratedKey};
use parley_domain::ids::new_id;
use parley_domain::store::{Execute, StoreError};
use parley_domain::{ErrorCode, Role, store::read};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::idempotency::{self, Idempotency};
use crate::schemas::role::RoleName;
use crate::security::AdminAuth;
use crate::state::AppState;
use crate::types::Text;

pub struct KeysApi {
    pub state: Option<AppState>,
}

/// A secret API key as lists show it: never the key itself.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyInfo {
    /// The key's id (not the key itself).
    pub id: Uuid,
    /// The name given at creation.
    pub name: String,
    /// The first characters of the key (`pk_1a2b3c`).
    pub prefix: String,
    /// The last 4 characters of the key.
    pub last4: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key last authenticated a request (updated at most every 30 seconds).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once the key is revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the key may do. Keys created before keys had roles are owners.
    pub role: RoleName,
}

/// A newly created key. `key` is shown this once and never again.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedApiKey {
    /// The key's public information.
    #[oai(flatten)]
    pub info: ApiKeyInfo,
    /// The secret key. Store it now: Parley keeps only its SHA-256. Absent
    /// when this answer replays an earlier request with the same Idempotency-Key.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct CreateApiKeyRequest {
    /// A name to recognise the key by, e.g. "CI" or "Zapier".
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// What the key may do (default `admin`); never more than the caller's
    /// own role.
    pub role: Option<RoleName>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyList {
    /// Every key, oldest first.
    pub data: Vec<ApiKeyInfo>,
}

#[derive(ApiResponse)]
pub enum CreateKeyResponse {
    /// The key was created.
    #[oai(status = 201)]
    Created(
        Json<CreatedApiKey>,
        #[oai(header = "Location")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum RevokeKeyResponse {
    /// The key is revoked (or already was).
    #[oai(status = 204)]
    Revoked,
}

fn info(row: read::ApiKeyRow) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.key.id,
        name: row.key.name,
        prefix: row.key.prefix,
        last4: row.key.last4,
        created_at: row.key.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.key.revoked_at,
        role: RoleName::stored(&row.key.role),
    }
}

async fn find(state: &AppState, org_id: Uuid, key_id: Uuid) -> Result<ApiKeyInfo, ApiError> {
    read::api_key(&state.store, org_id, key_id)
        .await?
        .map(info)
        .ok_or_else(|| ApiError::new(ErrorCode::ApiKeyNotFound, "API key not found"))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::ApiKeys")]
impl KeysApi {
    /// Create an API key
    ///
    /// Creates a secret key for your organization. The response holds the key
    /// itself; it is never shown again.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/keys", method = "post", operation_id = "create_api_key")]
    async fn create(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        /// Makes a retried request safe: see the API description.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateApiKeyRequest>,
    ) -> Result<CreateKeyResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let idem = Idempotency::from_header(idempotency_key.0, "create_api_key", &body.0)?;
        if let Some(key_id) = idempotency::prior(&idem, state, org_id).await? {
            return answer_again(state, org_id, key_id).await;
        }
        let key_id = new_id();
        let generated = GeneratedKey::generate();
        let executed = state
            .store
            .execute::<ApiKey>(Execute {
                org_id,
                stream_id: key_id,
                expected_version: Some(0),
                command: ApiKeyCommand::Create {
                    key_id,
                    org_id,
                    name: body.0.name.into_inner(),
                    key: (&generated).into(),
                    role: body.0.role.map_or(Role::Admin, Role::from),
                    granted_by: auth.0.role,
                },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: idempotency::record(&idem, key_id),
            })
            .await;
        match executed {
            Ok(_) => {}
            Err(StoreError::IdempotencyRace) => {
                return answer_again(state, org_id, idempotency::race_winner(&idem, state, org_id).await?).await;
            }
            Err(e) => return Err(e.into()),
        }
        let info = find(state, org_id, key_id).await?;
        Ok(CreateKeyResponse::Created(
            Json(CreatedApiKey {
                info,
                key: Some(generated.plaintext),
            }),
            format!("/api/v1/keys/{key_id}"),
            None,
        ))
    }

    /// List API keys
    ///
    /// Every key of your organization, revoked ones included, oldest first.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/keys", method = "get", operation_id = "list_api_keys")]
    async fn list(&self, auth: AdminAuth) -> Result<Json<ApiKeyList>, ApiError> {
        let state = live(&self.state)?;
        let rows = read::api_keys(&state.store, auth.0.org_id).await?;
        Ok(Json(ApiKeyList {
            data: rows.into_iter().map(info).collect(),
        }))
    }

    /// Get an API key
    ///
    /// One key of your organization, with its last use and revocation time.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/keys/:key_id", method = "get", operation_id = "get_api_key")]
    async fn get(&self, auth: AdminAuth, key_id: Path<Uuid>) -> Result<Json<ApiKeyInfo>, ApiError> {
        let state = live(&self.state)?;
        Ok(Json(find(state, auth.0.org_id, key_id.0).await?))
    }

    /// Revoke an API key
    ///
    /// The key stops working with the next request. Revoking twice is harmless.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/keys/:key_id", method = "delete", operation_id = "revoke_api_key")]
    async fn revoke(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        key_id: Path<Uuid>,
    ) -> Result<RevokeKeyResponse, ApiError> {
        let state = live(&self.state)?;
        state
            .store
            .execute::<ApiKey>(Execute {
                org_id: auth.0.org_id,
                stream_id: key_id.0,
                expected_version: None,
                command: ApiKeyCommand::Revoke {
                    org_id: auth.0.org_id,
                    revoked_by: auth.0.role,
                },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        Ok(RevokeKeyResponse::Revoked)
    }
}

/// The answer to a retried creation: the same key, without its secret.
async fn answer_again(state: &AppState, org_id: Uuid, key_id: Uuid) -> Result<CreateKeyResponse, ApiError> {
    let info = find(state, org_id, key_id).await?;
    Ok(CreateKeyResponse::Created(
        Json(CreatedApiKey { info, key: None }),
        format!("/api/v1/keys/{key_id}"),
        Some("true".to_owned()),
    ))
}
