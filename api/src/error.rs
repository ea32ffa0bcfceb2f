//! The one error shape of the API, `{"error": {"code", "message", "details"}}`,
//! and the one place where errors become status codes. Internal causes are
//! logged with the request id; clients only see "internal error".

use parley_domain::{DomainError, ErrorCode, HttpStatus, StoreError};
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// One problem with one part of the request.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorDetail {
    /// The field or parameter concerned, when there is one (`model.temperature`).
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorInfo {
    /// Stable machine-readable code, e.g. `BOT_NOT_FOUND`. Never renamed.
    pub code: String,
    /// Human-readable explanation, safe to show.
    pub message: String,
    /// Per-field problems, when there are several (validation).
    pub details: Vec<ErrorDetail>,
    /// The request id (`X-Request-Id`) to quote when reporting a problem.
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorInfo,
}

/// Every error status the API answers with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed (bad JSON, wrong types, unknown fields, bad parameters).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed, unknown or revoked API key.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The credential is valid but not allowed here.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource in your organization.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource changed concurrently, or a unique value is taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body has an unsupported content type.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The request is well-formed but its values are not acceptable.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many requests; see `Retry-After`.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<String>),
    /// An unexpected error; the cause is logged under the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The answer provider (an upstream model server) failed or timed out.
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
    /// A dependency (database, queue) is unavailable; try again later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_details(code, message, vec![])
    }

    pub fn with_details(code: ErrorCode, message: impl Into<String>, details: Vec<ErrorDetail>) -> Self {
        let body = Json(ErrorBody {
            error: ErrorInfo {
                code: code.as_str().to_owned(),
                message: message.into(),
                details,
                request_id: None,
            },
        });
        match code.status() {
            HttpStatus::BadRequest => ApiError::BadRequest(body),
            HttpStatus::Unauthorized => ApiError::Unauthorized(body),
            HttpStatus::Forbidden => ApiError::Forbidden(body),
            // A 405 the handlers raise themselves never happens; poem answers those.
            HttpStatus::NotFound | HttpStatus::MethodNotAllowed => ApiError::NotFound(body),
            HttpStatus::Conflict => ApiError::Conflict(body),
            HttpStatus::PayloadTooLarge => ApiError::PayloadTooLarge(body),
            HttpStatus::UnsupportedMediaType => ApiError::UnsupportedMediaType(body),
            HttpStatus::UnprocessableEntity => ApiError::Unprocessable(body),
            HttpStatus::TooManyRequests => ApiError::TooManyRequests(body, None),
            HttpStatus::InternalServerError => ApiError::Internal(body),
            HttpStatus::BadGateway => ApiError::BadGateway(body),
            HttpStatus::ServiceUnavailable => ApiError::Unavailable(body),
        }
    }

    /// A 429 that says when to try again (`Retry-After`, seconds).
    pub fn with_retry_after(self, secs: u64) -> Self {
        if let ApiError::TooManyRequests(body, _) = self {
            return ApiError::TooManyRequests(body, Some(secs.to_string()));
        }
        self
    }

    /// An unexpected failure: logged in full, answered without internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn body(&self) -> &ErrorBody {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::UnsupportedMediaType(b)
            | ApiError::Unprocessable(b)
            | ApiError::TooManyRequests(b, _)
            | ApiError::Internal(b)
            | ApiError::BadGateway(b)
            | ApiError::Unavailable(b) => &b.0,
        }
    }

    pub fn code(&self) -> &str {
        &self.body().error.code
    }

    /// The code as the table has it.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::from_name(self.code()).unwrap_or(ErrorCode::Internal)
    }
}

/// `400 INVALID_REQUEST` about one field.
pub fn bad_request(message: &str, field: &str, detail: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::InvalidRequest,
        message,
        vec![ErrorDetail {
            field: Some(field.to_owned()),
            message: detail.to_owned(),
        }],
    )
}

/// The JSON error response for a status that poem or poem-openapi produced
/// on its own (unknown route, unparsable body, missing credentials...).
fn framework_error(status: StatusCode, message: String) -> Response {
    let code = match status.as_u16() {
        400 => ErrorCode::InvalidRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::ValidationFailed,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::ServiceUnavailable,
        s if s >= 500 => return ApiError::internal(message).into_response(),
        _ => ErrorCode::InvalidRequest,
    };
    let message = if code == ErrorCode::NotFound {
        "no such route".to_owned()
    } else if code == ErrorCode::MethodNotAllowed {
        "method not allowed on this route".to_owned()
    } else if code == ErrorCode::Unauthorized && (message.is_empty() || message.contains("authorization error")) {
        "missing or malformed `Authorization: Bearer <API key>` header".to_owned()
    } else {
        message
    };
    let body = ErrorBody {
        error: ErrorInfo {
            code: code.as_str().to_owned(),
            message,
            details: vec![],
            request_id: None,
        },
    };
    let mut response = Json(body).into_response();
    response.set_status(status);
    response
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let code = e.code();
        match e {
            DomainError::Validation(fields) => {
                let message = fields
                    .iter()
                    .map(|f| format!("`{}` {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let details = fields
                    .into_iter()
                    .map(|f| ErrorDetail {
                        field: Some(f.field),
                        message: f.message,
                    })
                    .collect();
                ApiError::with_details(code, message, details)
            }
            other @ (DomainError::BotNotFound
            | DomainError::ApiKeyNotFound
            | DomainError::SourceNotFound
            | DomainError::DocumentNotFound
            | DomainError::ConversationNotFound
            | DomainError::MessageNotFound
            | DomainError::ConversationExists
            | DomainError::LeadNotFound
            | DomainError::WebhookNotFound
            | DomainError::SourceBusy
            | DomainError::SlugTaken(_)
            | DomainError::VersionConflict { .. }
            | DomainError::QuotaExceeded(_)
            | DomainError::RoleTooHigh { .. }
            | DomainError::MemberNotFound
            | DomainError::InvitationNotFound
            | DomainError::PersonNotFound
            | DomainError::AlreadyMember
            | DomainError::LastOwner
            | DomainError::LinkInvalid
            | DomainError::AlreadyAssigned
            | DomainError::SavedReplyNotFound) => ApiError::new(code, other.to_string()),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        StoreError::Db(e).into()
    }
}

impl From<parley_domain::retrieval::RetrievalError> for ApiError {
    fn from(e: parley_domain::retrieval::RetrievalError) -> Self {
        use parley_domain::retrieval::RetrievalError;
        match e {
            RetrievalError::Store(e) => e.into(),
            RetrievalError::Model(cause) => {
                tracing::error!(error = %cause, "query embedding failed");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the embedding model is not available; see the server log",
                )
            }
            RetrievalError::Stopped(cause) => ApiError::internal(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::Conflict { .. } => ApiError::new(
                ErrorCode::Conflict,
                "the resource was changed by a concurrent request; retry",
            ),
            StoreError::IdempotencyRace => ApiError::new(
                ErrorCode::Conflict,
                "a request with the same Idempotency-Key is being processed; retry",
            ),
            StoreError::Unique { projection, message } => {
                tracing::info!(projection, message, "unique constraint refused a change");
                ApiError::new(ErrorCode::Conflict, "a unique value of this resource is already taken")
            }
            StoreError::Db(ref db) if e.is_transient() => {
                tracing::error!(error = %db, "database unavailable");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable; try again later",
                )
            }
            StoreError::Db(_) | StoreError::Upcast(_) => ApiError::internal(e),
        }
    }
}

/// Middleware turning every error, including the framework's own plain-text
/// ones, into the JSON error shape with the request id. A `405` gets the
/// methods its path takes (`allowed`, from the spec) in `Allow`.
pub async fn json_errors<E: Endpoint>(
    next: E,
    req: Request,
    allowed: fn(&str) -> Option<&'static str>,
) -> poem::Result<Response> {
    let request_id = req.data::<crate::http::middleware::RequestId>().map(|r| r.0.clone());
    let public = req.uri().path().starts_with("/api/v1/public/");
    // NUL is no text: no path or parameter may carry one.
    let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    if target.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00")) {
        let resp =
            ApiError::new(ErrorCode::InvalidRequest, "the address must not contain NUL characters").into_response();
        return Ok(with_request_id(resp, request_id).await);
    }
    // Kept for the `Allow` header of a 405 (cheap: the URI shares its bytes).
    let uri = req.uri().clone();
    let mut response = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => {
            let message = err.to_string();
            let operation = err.data::<poem_openapi::OperationId>().copied();
            let resp = err.into_response();
            let is_json = resp
                .headers()
                .get(poem::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let mut resp = if is_json {
                resp
            } else if public && resp.status() == StatusCode::UNAUTHORIZED {
                ApiError::new(ErrorCode::Unauthorized, "missing `X-Parley-Site-Key` header").into_response()
            } else {
                framework_error(resp.status(), message)
            };
            if let Some(operation) = operation {
                resp.set_data(operation);
            }
            resp
        }
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(poem::http::header::ALLOW)
        && let Some(methods) = allowed(uri.path())
    {
        response
            .headers_mut()
            .insert(poem::http::header::ALLOW, poem::http::HeaderValue::from_static(methods));
    }
    Ok(with_request_id(response, request_id).await)
}

/// Adds the request id into JSON error bodies.
async fn with_request_id(resp: Response, request_id: Option<String>) -> Response {
    let Some(request_id) = request_id else {
        return resp;
    };
    if resp.status().as_u16() < 400 {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = body.into_bytes().await else {
        return Response::from_parts(parts, poem::Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) => {
            if let Some(error) = value.get_mut("error").and_then(|e| e.as_object_mut()) {
                error.insert("request_id".into(), serde_json::Value::String(request_id));
            }
            poem::Body::from_vec(serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec()))
        }
        Err(_) => poem::Body::from_bytes(bytes),
    };
    let mut resp = Response::from_parts(parts, body);
    resp.headers_mut().remove(poem::http::header::CONTENT_LENGTH);
    resp
}
