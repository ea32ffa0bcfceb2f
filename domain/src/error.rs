//! The one table of error codes. Every code is public API: it is never renamed,
//! and each carries the HTTP status the API answers with.

use serde::Serialize;

/// A stable, machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    BotNotFound,
    ApiKeyNotFound,
    SourceNotFound,
    ConversationNotFound,
    LeadNotFound,
    AttachmentNotFound,
    WebhookNotFound,
    DeliveryNotFound,
    DocumentNotFound,
    OriginNotAllowed,
    ConversationExists,
    Conflict,
    SourceBusy,
    BotSlugTaken,
    IdempotencyKeyReused,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlNotAllowed,
    SourceLimitReached,
    RateLimited,
    QuotaExceeded,
    ProviderFailed,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidRequest,
        ErrorCode::ValidationFailed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BotNotFound,
        ErrorCode::ApiKeyNotFound,
        ErrorCode::SourceNotFound,
        ErrorCode::ConversationNotFound,
        ErrorCode::LeadNotFound,
        ErrorCode::AttachmentNotFound,
        ErrorCode::WebhookNotFound,
        ErrorCode::DeliveryNotFound,
        ErrorCode::DocumentNotFound,
        ErrorCode::OriginNotAllowed,
        ErrorCode::ConversationExists,
        ErrorCode::Conflict,
        ErrorCode::SourceBusy,
        ErrorCode::BotSlugTaken,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UrlNotAllowed,
        ErrorCode::SourceLimitReached,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::ProviderFailed,
        ErrorCode::ServiceUnavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::BotNotFound => "BOT_NOT_FOUND",
            ErrorCode::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            ErrorCode::SourceNotFound => "SOURCE_NOT_FOUND",
            ErrorCode::ConversationNotFound => "CONVERSATION_NOT_FOUND",
            ErrorCode::LeadNotFound => "LEAD_NOT_FOUND",
            ErrorCode::AttachmentNotFound => "ATTACHMENT_NOT_FOUND",
            ErrorCode::WebhookNotFound => "WEBHOOK_NOT_FOUND",
            ErrorCode::DeliveryNotFound => "DELIVERY_NOT_FOUND",
            ErrorCode::DocumentNotFound => "DOCUMENT_NOT_FOUND",
            ErrorCode::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            ErrorCode::ConversationExists => "CONVERSATION_EXISTS",
            ErrorCode::ProviderFailed => "PROVIDER_FAILED",
            ErrorCode::SourceBusy => "SOURCE_BUSY",
            ErrorCode::UrlNotAllowed => "URL_NOT_ALLOWED",
            ErrorCode::SourceLimitReached => "SOURCE_LIMIT_REACHED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::BotSlugTaken => "BOT_SLUG_TAKEN",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::NotFound
            | ErrorCode::BotNotFound
            | ErrorCode::ApiKeyNotFound
            | ErrorCode::SourceNotFound
            | ErrorCode::ConversationNotFound
            | ErrorCode::LeadNotFound
            | ErrorCode::AttachmentNotFound
            | ErrorCode::WebhookNotFound
            | ErrorCode::DeliveryNotFound
            | ErrorCode::DocumentNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::BotSlugTaken | ErrorCode::SourceBusy | ErrorCode::ConversationExists => {
                409
            }
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ValidationFailed
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::UrlNotAllowed
            | ErrorCode::SourceLimitReached => 422,
            ErrorCode::RateLimited | ErrorCode::QuotaExceeded => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ProviderFailed => 502,
            ErrorCode::ServiceUnavailable => 503,
        }
    }
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// What a decider refuses. Pure: no I/O failure lives here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error("bot not found")]
    BotNotFound,
    #[error("API key not found")]
    ApiKeyNotFound,
    #[error("source not found")]
    SourceNotFound,
    #[error("this source has no document with that key")]
    DocumentNotFound,
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("this visitor already has a conversation with the bot")]
    ConversationExists,
    #[error("lead not found")]
    LeadNotFound,
    #[error("webhook endpoint not found")]
    WebhookNotFound,
    #[error("the source is being indexed; try again when it is ready or failed")]
    SourceBusy,
    #[error("the slug `{0}` is already used by another bot of this organization")]
    SlugTaken(String),
    #[error("version conflict: expected version {expected}, current version is {actual}")]
    VersionConflict { expected: i64, actual: i64 },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::Validation(_) => ErrorCode::ValidationFailed,
            DomainError::BotNotFound => ErrorCode::BotNotFound,
            DomainError::ApiKeyNotFound => ErrorCode::ApiKeyNotFound,
            DomainError::SourceNotFound => ErrorCode::SourceNotFound,
            DomainError::DocumentNotFound => ErrorCode::DocumentNotFound,
            DomainError::ConversationNotFound => ErrorCode::ConversationNotFound,
            DomainError::ConversationExists => ErrorCode::ConversationExists,
            DomainError::LeadNotFound => ErrorCode::LeadNotFound,
            DomainError::WebhookNotFound => ErrorCode::WebhookNotFound,
            DomainError::SourceBusy => ErrorCode::SourceBusy,
            DomainError::SlugTaken(_) => ErrorCode::BotSlugTaken,
            DomainError::VersionConflict { .. } => ErrorCode::Conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
            assert!((400..600).contains(&code.http_status()));
        }
    }
}
