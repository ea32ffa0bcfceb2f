//! `Idempotency-Key` on create requests: a retry with the same key and body
//! answers like the first request and appends nothing; the same key with
//! another body is refused with 422.

use parley_domain::ErrorCode;
use parley_domain::store::IdempotencyRecord;
use poem_openapi::types::ToJSON;
use serde_json::Value;
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

    /// The remembered answer of an earlier request with this key, if any.
    pub async fn replayed(&self, state: &AppState, org_id: Uuid) -> Result<Option<Value>, ApiError> {
        let record = state.store.idempotency_record(org_id, &self.key).await?;
        match record {
            Some(r) if r.request_hash == self.request_hash => Ok(Some(r.response)),
            Some(_) => Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request body",
            )),
            None => Ok(None),
        }
    }

    pub fn record(&self, status_code: u16, response: Value) -> IdempotencyRecord {
        IdempotencyRecord {
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            status_code,
            response,
        }
    }
}
