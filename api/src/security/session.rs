//! Sessions of people who signed in: a random token in a cookie
//! (`HttpOnly`, `SameSite=Lax`; `Secure` with the `__Host-` prefix when
//! Parley is served over https), of which the server keeps only the hash,
//! with an idle timeout and an absolute lifetime. Requests that change
//! anything must come from the same site and carry the session's CSRF
//! token (`X-CSRF-Token`).

use chrono::{DateTime, Duration, Utc};
use parley_domain::store::content::sha256_hex;
use parley_domain::store::entities::{people, sessions};
use parley_domain::store::people as people_store;
use parley_domain::{Actor, ErrorCode, Role};
use poem::Request;
use poem::http::Method;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::ApiError;
use crate::state::{AppState, Principal};

/// The cookie over plain http.
pub const COOKIE: &str = "parley_session";
/// The cookie over https: the prefix pins it to this host and path `/`.
pub const SECURE_COOKIE: &str = "__Host-parley_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Last-seen times are written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;

/// The session cookie set by `POST /api/v1/session` (`parley_session`, or
/// `__Host-parley_session` over https). Requests that change anything also
/// send the session's `X-CSRF-Token`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "parley_session", key_in = "cookie", rename = "Session")]
pub struct SessionCookie(pub ApiKey);

/// Whether cookies get `Secure` and the `__Host-` prefix.
pub(crate) fn secure(state: &AppState) -> bool {
    state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// The session token a request presents, if any.
pub(crate) fn token_of(req: &Request) -> Option<String> {
    let jar = req.cookie();
    [SECURE_COOKIE, COOKIE]
        .into_iter()
        .find_map(|name| jar.get(name).map(|c| c.value_str().to_owned()))
        .filter(|t| !t.is_empty())
}

/// The `Set-Cookie` value that holds a session for `max_age`.
pub(crate) fn set_cookie(state: &AppState, token: &str, max_age: Duration) -> String {
    if secure(state) {
        format!(
            "{SECURE_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax; Secure",
            max_age.num_seconds()
        )
    } else {
        format!(
            "{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            max_age.num_seconds()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(state: &AppState) -> String {
    set_cookie(state, "", Duration::zero())
}

/// Whether a browser request comes from Parley's own pages: no
/// `Sec-Fetch-Site` but `same-origin` or `none` (typed in the address bar),
/// and an `Origin`, when sent, equal to this host's.
pub(crate) fn same_site(req: &Request, state: &AppState) -> bool {
    if let Some(site) = req.header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = req.header("origin") else {
        return true;
    };
    if origin == "null" {
        return false;
    }
    let own_host = req.header("host").is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    let public = state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.trim_end_matches('/').eq_ignore_ascii_case(origin));
    own_host || public
}

fn changes_something(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

/// `403 CSRF_REJECTED` unless a request that changes something comes from
/// the same site with the session's CSRF token.
fn check_csrf(req: &Request, state: &AppState, session: &sessions::Model) -> Result<(), ApiError> {
    if !changes_something(req.method()) {
        return Ok(());
    }
    if !same_site(req, state) {
        return Err(ApiError::new(
            ErrorCode::CsrfRejected,
            "a request from another site cannot act with this session",
        ));
    }
    let presented = req.header(CSRF_HEADER).unwrap_or_default();
    let expected = session.csrf_token.as_bytes();
    let matches = presented.len() == expected.len()
        && presented
            .as_bytes()
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches {
        return Err(ApiError::new(
            ErrorCode::CsrfRejected,
            "the X-CSRF-Token header is missing or is not this session's",
        ));
    }
    Ok(())
}

/// A live session with its person and role in the session's organization.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: sessions::Model,
    pub person: people::Model,
    pub principal: Principal,
}

fn ended(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// The idle timeout and absolute lifetime of sessions.
pub(crate) fn lifetimes(state: &AppState) -> (Duration, Duration) {
    (
        Duration::minutes(i64::from(state.settings.session_idle_minutes)),
        Duration::hours(i64::from(state.settings.session_max_hours)),
    )
}

/// Resolves a session token. A session past its idle timeout or lifetime,
/// or of a person no longer a member, ends here.
pub(crate) async fn authenticate(state: &AppState, req: &Request, token: &str) -> Result<SignedIn, ApiError> {
    let Some(session) = people_store::session_by_token_hash(&state.store, &sha256_hex(token.as_bytes())).await? else {
        return Err(ended("the session has ended or never existed: sign in again"));
    };
    let now = parley_domain::store::now();
    let (idle, _) = lifetimes(state);
    if session.expires_at <= now || session.last_seen_at + idle <= now {
        people_store::end_session(&state.store, session.id).await?;
        return Err(ended("the session has expired: sign in again"));
    }
    let membership = people_store::membership(&state.store, session.org_id, session.person_id).await?;
    let person = people_store::person(&state.store, session.person_id).await?;
    let (Some(membership), Some(person)) = (membership, person) else {
        people_store::end_session(&state.store, session.id).await?;
        return Err(ended("you are no longer a member of this organization: sign in again"));
    };
    check_csrf(req, state, &session)?;
    if now - session.last_seen_at >= Duration::seconds(TOUCH_EVERY_SECS) {
        people_store::touch_session(&state.store, session.id, now).await?;
    }
    let role = membership.role.parse::<Role>().map_err(ApiError::internal)?;
    Ok(SignedIn {
        principal: Principal {
            org_id: session.org_id,
            role,
            actor: Actor::Member { id: person.id },
        },
        person,
        session,
    })
}

/// A new session token (`ps_` is the site keys'; sessions use `st_`).
pub(crate) fn new_token() -> String {
    parley_domain::ids::random_token("st_", 32)
}

/// The absolute end of a session started now.
pub(crate) fn expiry(state: &AppState, now: DateTime<Utc>) -> DateTime<Utc> {
    now + lifetimes(state).1
}

/// Operations for the signed-in person themself (a session, not a key).
pub struct SessionAuth(pub SignedIn);

impl<'a> ApiExtractor<'a> for SessionAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        SessionCookie::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        SessionCookie::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = request
            .data::<AppState>()
            .ok_or_else(|| poem::Error::from(ApiError::internal("application state missing")))?;
        let Some(token) = token_of(request) else {
            return Err(ended("not signed in: sign in with POST /api/v1/session").into());
        };
        Ok(SessionAuth(authenticate(state, request, &token).await?))
    }
}
