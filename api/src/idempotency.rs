//! `Idempotency-Key` on create requests: a retry with the same key and body
//! answers like the first request and appends nothing; the same key with
//! another body is refused with 422.

use parley_domain::ErrorCode;
use parley_domain::store::{IdempotencyRecord, StoreError};
use poem_openapi::types::ToJSON;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub struct Idempotency {
    key: String,
    request_hash: String,
}

impl Idempotency {
    /// Reads the header. `scope` separates operations that share a key space.
    pub fn from_header<B: ToJSON>(header: Option<String>, scope: &str, body: &B) -> Result<Option<Self>, ApiError> {
        let Some(key) = header else { return Ok(None) };
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        let canonical = serde_json::to_vec(&body.to_json()).map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        hasher.update(scope.as_bytes());
        hasher.update([0]);
        hasher.update(&canonical);
        Ok(Some(Idempotency {
            key: format!("{scope}:{key}"),
            request_hash: hex::encode(hasher.finalize()),
        }))
    }
}

/// The id of the resource an earlier request with the same key created, if any.
pub async fn prior(idem: &Option<Idempotency>, state: &AppState, org_id: Uuid) -> Result<Option<Uuid>, ApiError> {
    let Some(idem) = idem else { return Ok(None) };
    let record = state.store.idempotency_record(org_id, &idem.key).await?;
    match record {
        Some(r) if r.request_hash == idem.request_hash => r
            .response
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Uuid>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::internal("malformed idempotency record")),
        Some(_) => Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request body",
        )),
        None => Ok(None),
    }
}

/// What to store with the append that creates resource `id`.
pub fn record(idem: &Option<Idempotency>, id: Uuid) -> Option<IdempotencyRecord> {
    idem.as_ref().map(|i| IdempotencyRecord {
        key: i.key.clone(),
        request_hash: i.request_hash.clone(),
        status_code: 201,
        response: json!({ "id": id }),
    })
}

/// After an append lost the race for its key: the winner's resource.
pub async fn race_winner(idem: &Option<Idempotency>, state: &AppState, org_id: Uuid) -> Result<Uuid, ApiError> {
    prior(idem, state, org_id)
        .await?
        .ok_or_else(|| StoreError::IdempotencyRace.into())
}
