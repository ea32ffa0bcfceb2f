//! The one table of error codes. Every code is public API: it is never renamed,
//! and each carries the HTTP status the API answers with.

use serde::{Deserialize, Serialize};

/// The HTTP status a code is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpStatus {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnprocessableEntity,
    TooManyRequests,
    InternalServerError,
    BadGateway,
    ServiceUnavailable,
}

impl HttpStatus {
    pub fn as_u16(self) -> u16 {
        match self {
            HttpStatus::BadRequest => 400,
            HttpStatus::Unauthorized => 401,
            HttpStatus::Forbidden => 403,
            HttpStatus::NotFound => 404,
            HttpStatus::MethodNotAllowed => 405,
            HttpStatus::Conflict => 409,
            HttpStatus::PayloadTooLarge => 413,
            HttpStatus::UnsupportedMediaType => 415,
            HttpStatus::UnprocessableEntity => 422,
            HttpStatus::TooManyRequests => 429,
            HttpStatus::InternalServerError => 500,
            HttpStatus::BadGateway => 502,
            HttpStatus::ServiceUnavailable => 503,
        }
    }
}

/// Declares `ErrorCode` from one row per code: variant, status, name, meaning.
macro_rules! error_codes {
    ($($variant:ident => $status:ident, $name:literal, $meaning:literal;)*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(
                #[doc = $meaning]
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients see it (`BOT_NOT_FOUND`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// The status the API answers with.
            pub fn status(self) -> HttpStatus {
                match self {
                    $(ErrorCode::$variant => HttpStatus::$status,)*
                }
            }

            /// What the code means, for the error catalogue.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

// The one table of codes.
error_codes! {
    InvalidRequest => BadRequest, "INVALID_REQUEST", "The request is malformed: bad JSON, wrong types, unknown fields or bad parameters.";
    ValidationFailed => UnprocessableEntity, "VALIDATION_FAILED", "The request is well-formed but some values are not acceptable; `details` names them.";
    Unauthorized => Unauthorized, "UNAUTHORIZED", "The credential is missing, malformed, unknown or revoked.";
    Forbidden => Forbidden, "FORBIDDEN", "The credential is valid but not allowed here.";
    NotFound => NotFound, "NOT_FOUND", "No such route.";
    MethodNotAllowed => MethodNotAllowed, "METHOD_NOT_ALLOWED", "The route does not take this method; `Allow` lists those it takes.";
    BotNotFound => NotFound, "BOT_NOT_FOUND", "No such bot in your organization.";
    ApiKeyNotFound => NotFound, "API_KEY_NOT_FOUND", "No such API key in your organization.";
    SourceNotFound => NotFound, "SOURCE_NOT_FOUND", "No such source of this bot.";
    ConversationNotFound => NotFound, "CONVERSATION_NOT_FOUND", "No such conversation (or a wrong conversation token).";
    LeadNotFound => NotFound, "LEAD_NOT_FOUND", "No such lead in your organization.";
    AttachmentNotFound => NotFound, "ATTACHMENT_NOT_FOUND", "No such attachment in this conversation.";
    WebhookNotFound => NotFound, "WEBHOOK_NOT_FOUND", "No such webhook endpoint in your organization.";
    DeliveryNotFound => NotFound, "DELIVERY_NOT_FOUND", "No such delivery of this webhook endpoint.";
    DocumentNotFound => NotFound, "DOCUMENT_NOT_FOUND", "This source has no document with that key.";
    MessageNotFound => NotFound, "MESSAGE_NOT_FOUND", "No such answer of the bot in this conversation.";
    MemberNotFound => NotFound, "MEMBER_NOT_FOUND", "No such member of your organization.";
    SavedReplyNotFound => NotFound, "SAVED_REPLY_NOT_FOUND", "No such saved reply in your organization.";
    InvitationNotFound => NotFound, "INVITATION_NOT_FOUND", "No such open invitation in your organization.";
    LinkInvalid => NotFound, "LINK_INVALID", "The one-time link (invitation or password) is unknown, used, replaced or expired.";
    SignInFailed => Unauthorized, "SIGN_IN_FAILED", "The email or the password is wrong (the answer is the same for both).";
    CsrfRejected => Forbidden, "CSRF_REJECTED", "A session request that changes something came from another site or without its CSRF token.";
    OriginNotAllowed => Forbidden, "ORIGIN_NOT_ALLOWED", "The page is not among the bot's allowed origins.";
    ConversationExists => Conflict, "CONVERSATION_EXISTS", "This visitor already has a conversation with the bot.";
    Conflict => Conflict, "CONFLICT", "A concurrent change, or a unique value already taken; retry or choose another.";
    SourceBusy => Conflict, "SOURCE_BUSY", "The source is being indexed; try again when it is ready or failed.";
    BotSlugTaken => Conflict, "BOT_SLUG_TAKEN", "Another bot of your organization has this slug.";
    AlreadyMember => Conflict, "ALREADY_MEMBER", "This person is already a member of the organization.";
    LastOwner => Conflict, "LAST_OWNER", "An organization keeps at least one owner.";
    AlreadyAssigned => Conflict, "ALREADY_ASSIGNED", "Another member handles this conversation; assign it instead of claiming it.";
    IdempotencyKeyReused => UnprocessableEntity, "IDEMPOTENCY_KEY_REUSED", "The Idempotency-Key was used with a different request.";
    PayloadTooLarge => PayloadTooLarge, "PAYLOAD_TOO_LARGE", "The request body is too large.";
    UnsupportedMediaType => UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "The request body's content type is not taken here.";
    UrlNotAllowed => UnprocessableEntity, "URL_NOT_ALLOWED", "The URL points to a private, local or otherwise refused address.";
    SourceLimitReached => UnprocessableEntity, "SOURCE_LIMIT_REACHED", "The bot has as many sources as the plan allows.";
    RateLimited => TooManyRequests, "RATE_LIMITED", "Too many requests; `Retry-After` says when to try again.";
    QuotaExceeded => TooManyRequests, "QUOTA_EXCEEDED", "The plan's quota for this period is used up.";
    ProviderFailed => BadGateway, "PROVIDER_FAILED", "The answer provider (an upstream model server) failed or timed out.";
    ServiceUnavailable => ServiceUnavailable, "SERVICE_UNAVAILABLE", "A dependency (database, queue) is unavailable; try again later.";
    Internal => InternalServerError, "INTERNAL", "An unexpected error; the cause is logged under the request id.";
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        self.status().as_u16()
    }

    /// The catalogue of codes as Markdown (`docs/errors.md`), in the table's order.
    pub fn catalogue() -> String {
        let mut doc = String::from(
            "# Error codes\n\nEvery error response is `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`. \
             Codes are stable: they are never renamed. This file is generated from the one table of codes \
             (`domain/src/error.rs`); a unit test fails when it differs.\n\n| code | status | meaning |\n|---|---|---|\n",
        );
        for code in ErrorCode::ALL {
            doc.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.http_status(),
                code.meaning()
            ));
        }
        doc
    }

    /// The code with this name, if there is one.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == name)
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
    #[error("no such answer of the bot in this conversation")]
    MessageNotFound,
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
    /// The plan leaves no room: the reason says which quota and when it renews.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A member or key tried to grant or touch a role above its own.
    #[error("your role ({yours}) cannot grant or change the {role} role")]
    RoleTooHigh {
        role: crate::roles::Role,
        yours: crate::roles::Role,
    },
    #[error("no such member of this organization")]
    MemberNotFound,
    #[error("no such open invitation in this organization")]
    InvitationNotFound,
    #[error("no such person")]
    PersonNotFound,
    #[error("this person is already a member of the organization")]
    AlreadyMember,
    #[error("an organization keeps at least one owner: make another member an owner first")]
    LastOwner,
    #[error("this one-time link is unknown, used, replaced or expired")]
    LinkInvalid,
    #[error("another member handles this conversation; assign it instead of claiming it")]
    AlreadyAssigned,
    #[error("no such saved reply in this organization")]
    SavedReplyNotFound,
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
            DomainError::MessageNotFound => ErrorCode::MessageNotFound,
            DomainError::ConversationExists => ErrorCode::ConversationExists,
            DomainError::LeadNotFound => ErrorCode::LeadNotFound,
            DomainError::WebhookNotFound => ErrorCode::WebhookNotFound,
            DomainError::SourceBusy => ErrorCode::SourceBusy,
            DomainError::SlugTaken(_) => ErrorCode::BotSlugTaken,
            DomainError::VersionConflict { .. } => ErrorCode::Conflict,
            DomainError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            DomainError::RoleTooHigh { .. } => ErrorCode::Forbidden,
            DomainError::MemberNotFound | DomainError::PersonNotFound => ErrorCode::MemberNotFound,
            DomainError::InvitationNotFound => ErrorCode::InvitationNotFound,
            DomainError::AlreadyMember => ErrorCode::AlreadyMember,
            DomainError::LastOwner => ErrorCode::LastOwner,
            DomainError::LinkInvalid => ErrorCode::LinkInvalid,
            DomainError::AlreadyAssigned => ErrorCode::AlreadyAssigned,
            DomainError::SavedReplyNotFound => ErrorCode::SavedReplyNotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_catalogue_is_the_table() {
        let committed = include_str!("../../docs/errors.md");
        assert!(
            committed == ErrorCode::catalogue(),
            "docs/errors.md differs from the table of codes; it should read:\n{}",
            ErrorCode::catalogue()
        );
    }

    #[test]
    fn codes_are_unique_and_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
            assert_eq!(
                serde_json::from_value::<ErrorCode>(serde_json::json!(s)).unwrap(),
                *code
            );
            assert!((400..600).contains(&code.http_status()));
            assert!(code.meaning().ends_with('.'), "{s}");
        }
    }
}
