//! A bot's chat widget: how it looks, what it asks visitors, and which
//! websites may embed it. Part of the bot's stream (`bot.widget_updated`).

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, FieldError};

pub const POSITIONS: &[&str] = &["bottom-right", "bottom-left"];
/// When the widget asks for contact details.
pub const LEAD_MODES: &[&str] = &["never", "before_chat", "on_handoff"];
pub const FIELD_TYPES: &[&str] = &["text", "email", "phone"];
/// Lead fields stored in their own columns; any other key is a custom field.
pub const BUILT_IN_FIELDS: &[&str] = &["name", "email", "phone"];

pub const MAX_QUICK_PROMPTS: usize = 6;
pub const MAX_LEAD_FIELDS: usize = 10;
pub const MAX_ALLOWED_ORIGINS: usize = 50;
/// Longest value of a lead field, in characters.
pub const MAX_FIELD_CHARS: usize = 500;

/// One field of the lead form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadField {
    /// `name`, `email`, `phone`, or a custom key (`company`).
    pub key: String,
    pub label: String,
    /// `text`, `email` or `phone`.
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadCapture {
    /// `never`, `before_chat` or `on_handoff`.
    pub mode: String,
    pub fields: Vec<LeadField>,
}

impl Default for LeadCapture {
    fn default() -> Self {
        LeadCapture {
            mode: "on_handoff".into(),
            fields: vec![
                LeadField {
                    key: "name".into(),
                    label: "Name".into(),
                    kind: "text".into(),
                    required: false,
                },
                LeadField {
                    key: "email".into(),
                    label: "Email".into(),
                    kind: "email".into(),
                    required: true,
                },
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetSettings {
    /// `#RRGGBB`.
    pub accent_color: String,
    /// `bottom-right` or `bottom-left`.
    pub position: String,
    /// The chat window's title; the bot's name when absent.
    pub title: Option<String>,
    pub avatar_url: Option<String>,
    /// The greeting; the bot's welcome message when absent.
    pub welcome_message: Option<String>,
    pub quick_prompts: Vec<String>,
    pub lead_capture: LeadCapture,
    /// Origins (`https://acme.example`, `https://*.acme.example`) whose pages
    /// may use the widget and the visitor API. Empty: any origin.
    pub allowed_origins: Vec<String>,
    pub show_sources: bool,
    /// Whether visitors are asked to rate a conversation a person closed.
    #[serde(default = "asked")]
    pub satisfaction_survey: bool,
}

fn asked() -> bool {
    true
}

impl Default for WidgetSettings {
    fn default() -> Self {
        WidgetSettings {
            accent_color: "#3A82FF".into(),
            position: "bottom-right".into(),
            title: None,
            avatar_url: None,
            welcome_message: None,
            quick_prompts: vec![],
            lead_capture: LeadCapture::default(),
            allowed_origins: vec![],
            show_sources: true,
            satisfaction_survey: true,
        }
    }
}

fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_key(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An origin as browsers send it: `scheme://host[:port]`, no path. A
/// leading `*.` in the host allows every subdomain.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (wildcard, host) = match rest.strip_prefix("*.") {
        Some(h) => (true, h),
        None => (false, rest),
    };
    let parsed = url::Url::parse(&format!("{scheme}://{host}")).ok()?;
    let host_str = parsed.host_str()?;
    let mut out = format!("{scheme}://{}{host_str}", if wildcard { "*." } else { "" });
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    Some(out)
}

/// Whether a browser origin matches one of the allowed ones (empty list: any).
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = normalize_origin(origin) else {
        return false;
    };
    allowed.iter().any(|a| match a.split_once("://*.") {
        Some((scheme, suffix)) => origin
            .strip_prefix(&format!("{scheme}://"))
            .is_some_and(|host| host.ends_with(&format!(".{suffix}"))),
        None => *a == origin,
    })
}

impl WidgetSettings {
    /// Normalizes origins and checks every field, reporting every problem.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: String, message: &str| {
            if !ok {
                errors.push(FieldError {
                    field,
                    message: message.into(),
                });
            }
        };
        check(
            is_hex_color(&self.accent_color),
            "accent_color".into(),
            "must be a colour such as #3A82FF",
        );
        check(
            POSITIONS.contains(&self.position.as_str()),
            "position".into(),
            "must be `bottom-right` or `bottom-left`",
        );
        if let Some(title) = &self.title {
            check(
                (1..=60).contains(&title.trim().chars().count()),
                "title".into(),
                "must be 1 to 60 characters",
            );
        }
        if let Some(url) = &self.avatar_url {
            let ok = url.len() <= 2048
                && url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
            check(
                ok,
                "avatar_url".into(),
                "must be an absolute https URL of at most 2048 characters",
            );
        }
        if let Some(welcome) = &self.welcome_message {
            check(
                (1..=1000).contains(&welcome.trim().chars().count()),
                "welcome_message".into(),
                "must be 1 to 1000 characters",
            );
        }
        check(
            self.quick_prompts.len() <= MAX_QUICK_PROMPTS,
            "quick_prompts".into(),
            "at most 6 quick prompts",
        );
        for (i, prompt) in self.quick_prompts.iter().enumerate() {
            check(
                (1..=120).contains(&prompt.trim().chars().count()),
                format!("quick_prompts[{i}]"),
                "must be 1 to 120 characters",
            );
        }
        check(
            LEAD_MODES.contains(&self.lead_capture.mode.as_str()),
            "lead_capture.mode".into(),
            "must be `never`, `before_chat` or `on_handoff`",
        );
        check(
            self.lead_capture.fields.len() <= MAX_LEAD_FIELDS,
            "lead_capture.fields".into(),
            "at most 10 fields",
        );
        let mut keys = std::collections::HashSet::new();
        for (i, f) in self.lead_capture.fields.iter().enumerate() {
            check(
                is_key(&f.key),
                format!("lead_capture.fields[{i}].key"),
                "must be 1 to 40 lowercase letters, digits or `_`, starting with a letter",
            );
            check(
                keys.insert(f.key.clone()),
                format!("lead_capture.fields[{i}].key"),
                "is used twice",
            );
            check(
                (1..=60).contains(&f.label.trim().chars().count()),
                format!("lead_capture.fields[{i}].label"),
                "must be 1 to 60 characters",
            );
            check(
                FIELD_TYPES.contains(&f.kind.as_str()),
                format!("lead_capture.fields[{i}].type"),
                "must be `text`, `email` or `phone`",
            );
            let fixed_type = match f.key.as_str() {
                "email" => Some("email"),
                "phone" => Some("phone"),
                _ => None,
            };
            if let Some(t) = fixed_type {
                check(
                    f.kind == t,
                    format!("lead_capture.fields[{i}].type"),
                    "must match the built-in field (`email` is an email, `phone` a phone)",
                );
            }
        }
        if self.lead_capture.mode != "never" {
            check(
                self.lead_capture
                    .fields
                    .iter()
                    .any(|f| f.key == "email" || f.key == "phone"),
                "lead_capture.fields".into(),
                "must include `email` or `phone` to reach the visitor",
            );
        }
        check(
            self.allowed_origins.len() <= MAX_ALLOWED_ORIGINS,
            "allowed_origins".into(),
            "at most 50 origins",
        );
        let mut origins = Vec::new();
        for (i, o) in self.allowed_origins.iter().enumerate() {
            match normalize_origin(o) {
                Some(n) => {
                    if !origins.contains(&n) {
                        origins.push(n);
                    }
                }
                None => check(
                    false,
                    format!("allowed_origins[{i}]"),
                    "must be an origin such as https://acme.example or https://*.acme.example (no path)",
                ),
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        self.allowed_origins = origins;
        self.accent_color = self.accent_color.to_ascii_uppercase();
        self.title = self.title.map(|t| t.trim().to_owned());
        self.welcome_message = self.welcome_message.map(|t| t.trim().to_owned());
        self.quick_prompts = self.quick_prompts.into_iter().map(|p| p.trim().to_owned()).collect();
        for f in &mut self.lead_capture.fields {
            f.label = f.label.trim().to_owned();
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_matched() {
        assert_eq!(
            normalize_origin("https://Acme.Example/").as_deref(),
            Some("https://acme.example")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8000").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            normalize_origin("https://acme.example:443").as_deref(),
            Some("https://acme.example")
        );
        assert_eq!(normalize_origin("https://acme.example/path"), None);
        assert_eq!(normalize_origin("ftp://acme.example"), None);
        assert_eq!(normalize_origin("acme.example"), None);
        let allowed = vec!["https://acme.example".to_owned(), "https://*.shop.example".to_owned()];
        assert!(origin_allowed(&allowed, "https://acme.example"));
        assert!(!origin_allowed(&allowed, "http://acme.example"));
        assert!(!origin_allowed(&allowed, "https://evil.example"));
        assert!(origin_allowed(&allowed, "https://eu.shop.example"));
        assert!(!origin_allowed(&allowed, "https://shop.example.evil.example"));
        assert!(!origin_allowed(&allowed, "https://evilshop.example"));
        assert!(!origin_allowed(&allowed, "null"));
        assert!(origin_allowed(&[], "https://anything.example"));
    }

    #[test]
    fn validation_reports_every_field() {
        let bad = WidgetSettings {
            accent_color: "blue".into(),
            position: "top".into(),
            avatar_url: Some("http://x.example/a.png".into()),
            quick_prompts: vec!["".into()],
            lead_capture: LeadCapture {
                mode: "before_chat".into(),
                fields: vec![LeadField {
                    key: "Company".into(),
                    label: "Company".into(),
                    kind: "text".into(),
                    required: false,
                }],
            },
            allowed_origins: vec!["https://a.example/x".into()],
            ..WidgetSettings::default()
        };
        let DomainError::Validation(errors) = bad.validated().unwrap_err() else {
            panic!("expected validation errors")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "accent_color",
            "position",
            "avatar_url",
            "quick_prompts[0]",
            "lead_capture.fields[0].key",
            "lead_capture.fields",
            "allowed_origins[0]",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let good = WidgetSettings {
            accent_color: "#3a82ff".into(),
            allowed_origins: vec!["https://Acme.example/".into(), "https://acme.example".into()],
            ..WidgetSettings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(good.accent_color, "#3A82FF");
        assert_eq!(good.allowed_origins, vec!["https://acme.example"]);
    }
}
