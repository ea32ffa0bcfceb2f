//! The security scheme of the secret API: `Authorization: Bearer pk_<64 hex>`.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::ApiError;
use crate::state::{AppState, Principal};

/// A secret API key of your organization (`pk_` followed by 64 hex characters).
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "pk_<64 hex>",
    checker = "check_api_key",
    rename = "ApiKey"
)]
pub struct ApiKeyAuth(pub Principal);

async fn check_api_key(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::internal("application state missing")))?;
    state.authenticate(&bearer.token).await.map_err(poem::Error::from)
}
