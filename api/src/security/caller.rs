//! Who calls the secret API (an API key, or a member's session), and
//! whether their role allows the operation.
//!
//! A handler names the least role it needs in its signature
//! (`auth: AdminAuth`); the extractor authenticates the credential and
//! answers `403 FORBIDDEN` before the handler runs when the role falls
//! short. Each operation's description says the same (`Role: ...`), and the
//! role matrix test checks the two agree.

use std::marker::PhantomData;

use parley_domain::{ErrorCode, Role};
use poem::{Request, RequestBody};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::api_key::ApiKeyAuth;
use super::session::{self, SessionCookie};
use crate::error::ApiError;
use crate::state::{AppState, Principal};

/// The least role an operation needs.
pub trait Needs: Send + Sync {
    const ROLE: Role;
}

/// Agents, admins and owners.
pub struct AnyMember;
/// Admins and owners.
pub struct AdminOrOwner;
/// Owners only.
pub struct OwnerOnly;

impl Needs for AnyMember {
    const ROLE: Role = Role::Agent;
}
impl Needs for AdminOrOwner {
    const ROLE: Role = Role::Admin;
}
impl Needs for OwnerOnly {
    const ROLE: Role = Role::Owner;
}

/// An authenticated caller whose role allows `N::ROLE`.
pub struct Caller<N: Needs>(pub Principal, PhantomData<N>);

/// Operations every role may call.
pub type AgentAuth = Caller<AnyMember>;
/// Operations for admins and owners.
pub type AdminAuth = Caller<AdminOrOwner>;
/// Operations for owners.
pub type OwnerAuth = Caller<OwnerOnly>;

/// `403 FORBIDDEN` unless `principal`'s role allows `needed`.
pub(crate) fn allow(principal: &Principal, needed: Role) -> Result<(), ApiError> {
    if principal.role.allows(needed) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "this operation needs the {needed} role or higher; {} has the {} role",
            principal.describe(),
            principal.role
        ),
    ))
}

impl<'a, N: Needs> ApiExtractor<'a> for Caller<N> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        ApiKeyAuth::register(registry);
        SessionCookie::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = ApiKeyAuth::security_schemes();
        schemes.extend(SessionCookie::security_schemes());
        schemes
    }

    /// A key when the request has an `Authorization` header, else a
    /// session cookie when it has one; with neither, the key's "missing
    /// credentials" answer.
    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let by_cookie = match session::token_of(request) {
            Some(token) if !request.headers().contains_key(poem::http::header::AUTHORIZATION) => Some(token),
            _ => None,
        };
        let principal = match by_cookie {
            Some(token) => {
                let state = request
                    .data::<AppState>()
                    .ok_or_else(|| poem::Error::from(ApiError::internal("application state missing")))?;
                session::authenticate(state, request, &token).await?.principal
            }
            None => ApiKeyAuth::from_request(request, body, param_opts).await?.0,
        };
        allow(&principal, N::ROLE)?;
        Ok(Caller(principal, PhantomData))
    }
}
