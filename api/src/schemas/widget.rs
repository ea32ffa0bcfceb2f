//! The widget's settings as the API shows them: position and lead form.

use parley_domain::widget::{LeadCapture, LeadField};
use poem_openapi::{Enum, Object};

use crate::types::Text;

/// Where the chat button sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "kebab-case")]
pub enum Position {
    /// Bottom right corner.
    BottomRight,
    /// Bottom left corner.
    BottomLeft,
}

impl Position {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Position::BottomRight => "bottom-right",
            Position::BottomLeft => "bottom-left",
        }
    }

    pub(crate) fn parse(s: &str) -> Position {
        if s == "bottom-left" {
            Position::BottomLeft
        } else {
            Position::BottomRight
        }
    }
}

/// When the widget asks for contact details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum LeadMode {
    /// Never.
    Never,
    /// Before the first message.
    BeforeChat,
    /// When the bot cannot answer or a person takes over ("leave your email and we will reply").
    OnHandoff,
}

impl LeadMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeadMode::Never => "never",
            LeadMode::BeforeChat => "before_chat",
            LeadMode::OnHandoff => "on_handoff",
        }
    }

    fn parse(s: &str) -> LeadMode {
        match s {
            "never" => LeadMode::Never,
            "before_chat" => LeadMode::BeforeChat,
            _ => LeadMode::OnHandoff,
        }
    }
}

/// The kind of a lead form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum FieldType {
    /// Free text.
    Text,
    /// An email address (validated).
    Email,
    /// A phone number (validated).
    Phone,
}

impl FieldType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
        }
    }

    fn parse(s: &str) -> FieldType {
        match s {
            "email" => FieldType::Email,
            "phone" => FieldType::Phone,
            _ => FieldType::Text,
        }
    }
}

/// One field of the lead form.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct LeadFieldSpec {
    /// `name`, `email`, `phone`, or a custom key (1 to 40 lowercase letters, digits, `_`).
    #[oai(validator(min_length = 1, max_length = 40))]
    pub key: Text,
    /// What the form shows, 1 to 60 characters.
    #[oai(validator(min_length = 1, max_length = 60))]
    pub label: Text,
    /// `text`, `email` or `phone` (`email` and `phone` keys must have their own type).
    #[oai(rename = "type")]
    pub kind: FieldType,
    /// Whether the visitor must fill it in.
    #[oai(default)]
    pub required: bool,
}

/// What the widget asks visitors, and when.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct LeadCaptureSpec {
    /// `never`, `before_chat` or `on_handoff`.
    pub mode: LeadMode,
    /// The form's fields, at most 10; unless the mode is `never`, `email` or `phone` must be one of them.
    #[oai(validator(max_items = 10))]
    pub fields: Vec<LeadFieldSpec>,
}

impl From<&LeadCapture> for LeadCaptureSpec {
    fn from(l: &LeadCapture) -> Self {
        LeadCaptureSpec {
            mode: LeadMode::parse(&l.mode),
            fields: l
                .fields
                .iter()
                .map(|f| LeadFieldSpec {
                    key: Text(f.key.clone()),
                    label: Text(f.label.clone()),
                    kind: FieldType::parse(&f.kind),
                    required: f.required,
                })
                .collect(),
        }
    }
}

impl From<LeadCaptureSpec> for LeadCapture {
    fn from(l: LeadCaptureSpec) -> Self {
        LeadCapture {
            mode: l.mode.as_str().into(),
            fields: l
                .fields
                .into_iter()
                .map(|f| LeadField {
                    key: f.key.into_inner(),
                    label: f.label.into_inner(),
                    kind: f.kind.as_str().into(),
                    required: f.required,
                })
                .collect(),
        }
    }
}
