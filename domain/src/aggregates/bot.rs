//! A bot: one chatbot with its persona and settings. Deleting a bot appends
//! `bot.deleted` (it stops being served at once); a purge job later removes
//! its derived data and appends `bot.purged`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain_events;
use crate::error::{DomainError, FieldError};
use crate::event::Aggregate;
use crate::widget::WidgetSettings;

pub const BOT_CREATED: &str = "bot.created";
pub const BOT_UPDATED: &str = "bot.updated";
pub const BOT_DELETED: &str = "bot.deleted";
pub const BOT_PURGED: &str = "bot.purged";
pub const BOT_WIDGET_UPDATED: &str = "bot.widget_updated";
pub const BOT_SITE_KEY_ROTATED: &str = "bot.site_key_rotated";
pub const BOT_EVENTS: &[&str] = &[
    BOT_CREATED,
    BOT_UPDATED,
    BOT_DELETED,
    BOT_PURGED,
    BOT_WIDGET_UPDATED,
    BOT_SITE_KEY_ROTATED,
];

pub const PROVIDERS: &[&str] = &["extractive", "openai"];

/// How answers are generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// `extractive` (offline default) or `openai` (any OpenAI-compatible endpoint).
    pub provider: String,
    /// Model name for the `openai` provider.
    pub model: Option<String>,
    pub temperature: f64,
    pub max_tokens: u32,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            provider: "extractive".into(),
            model: None,
            temperature: 0.2,
            max_tokens: 512,
        }
    }
}

/// Everything a bot is configured with. Events carry the whole of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotSettings {
    pub name: String,
    pub slug: String,
    pub website: Option<String>,
    /// The persona / system prompt.
    pub persona: String,
    pub language: String,
    pub welcome_message: String,
    pub model: ModelSettings,
    /// Whether chat answers stream by default.
    pub streaming: bool,
    pub active: bool,
    /// Visitor messages per minute the bot answers through the visitor API,
    /// all visitors together (`None`: no limit of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// Live chat without the bot: no AI answers; every conversation waits
    /// for a person.
    #[serde(default)]
    pub human_only: bool,
    /// The acknowledgement a visitor gets when a conversation with a
    /// human-only bot starts (`None`: the default one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reply: Option<String>,
    /// Opening hours, what the bot says when nobody can answer, and
    /// automatic assignment.
    #[serde(default)]
    pub handoff: crate::availability::HandoffSettings,
}

/// What a human-only bot says when a conversation starts, unless set.
pub const DEFAULT_AUTO_REPLY: &str = "Thanks for reaching out! We'll get back to you soon.";

impl BotSettings {
    /// The acknowledgement of a new conversation: only human-only bots give one.
    pub fn acknowledgement(&self) -> Option<&str> {
        self.human_only
            .then(|| self.auto_reply.as_deref().unwrap_or(DEFAULT_AUTO_REPLY))
    }
}

/// The fields of a new bot; all but the name have defaults.
#[derive(Debug, Clone, Default)]
pub struct BotDraft {
    pub name: String,
    pub slug: Option<String>,
    pub website: Option<String>,
    pub persona: Option<String>,
    pub language: Option<String>,
    pub welcome_message: Option<String>,
    pub model: ModelPatch,
    pub streaming: Option<bool>,
    pub active: Option<bool>,
    pub rate_limit_per_minute: Option<u32>,
    pub human_only: Option<bool>,
    pub auto_reply: Option<String>,
    pub handoff: Option<crate::availability::HandoffSettings>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    pub provider: Option<String>,
    pub model: Option<Option<String>>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
}

/// A partial update. `website: Some(None)` clears the website.
#[derive(Debug, Clone, Default)]
pub struct BotPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub website: Option<Option<String>>,
    pub persona: Option<String>,
    pub language: Option<String>,
    pub welcome_message: Option<String>,
    pub model: ModelPatch,
    pub streaming: Option<bool>,
    pub active: Option<bool>,
    /// `Some(None)` removes the bot's own limit.
    pub rate_limit_per_minute: Option<Option<u32>>,
    pub human_only: Option<bool>,
    /// `Some(None)` restores the default acknowledgement.
    pub auto_reply: Option<Option<String>>,
    /// Replaces the hand-off settings as a whole.
    pub handoff: Option<crate::availability::HandoffSettings>,
}

/// A new public site key: `ps_` and 32 hex characters.
pub fn new_site_key() -> String {
    crate::ids::random_token("ps_", 16)
}

/// Whether a string has the shape of a site key.
pub fn looks_like_site_key(s: &str) -> bool {
    s.len() == 35 && s.starts_with("ps_") && s[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub const DEFAULT_PERSONA: &str =
    "You are a helpful customer-support assistant. Answer only from the knowledge base and cite your sources.";
pub const DEFAULT_WELCOME: &str = "Hi! How can I help you today?";

/// A slug made from a name: lowercase ASCII letters, digits and single dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_end_matches('-').chars().take(64).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() { "bot".to_owned() } else { slug }
}

fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

fn valid_language(tag: &str) -> bool {
    // BCP 47 shape: a 2-3 letter language, then optional 1-8 character subtags.
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    lang_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl BotSettings {
    /// Checks every field and reports every problem at once.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                errors.push(FieldError {
                    field: field.into(),
                    message: message.into(),
                });
            }
        };
        let name_len = self.name.chars().count();
        check(
            (1..=100).contains(&name_len) && !self.name.trim().is_empty(),
            "name",
            "must be 1 to 100 characters",
        );
        check(
            valid_slug(&self.slug),
            "slug",
            "must be 1 to 64 lowercase letters, digits and single dashes, not starting or ending with a dash",
        );
        if let Some(website) = &self.website {
            let ok = website.len() <= 2048
                && url::Url::parse(website)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            check(
                ok,
                "website",
                "must be an absolute http or https URL of at most 2048 characters",
            );
        }
        check(
            self.persona.chars().count() <= 8000,
            "persona",
            "must be at most 8000 characters",
        );
        check(
            valid_language(&self.language),
            "language",
            "must be a language tag such as `en` or `pt-BR`",
        );
        check(
            self.welcome_message.chars().count() <= 1000,
            "welcome_message",
            "must be at most 1000 characters",
        );
        check(
            PROVIDERS.contains(&self.model.provider.as_str()),
            "model.provider",
            "must be `extractive` or `openai`",
        );
        check(
            self.model.temperature.is_finite() && (0.0..=2.0).contains(&self.model.temperature),
            "model.temperature",
            "must be between 0 and 2",
        );
        check(
            (1..=32_000).contains(&self.model.max_tokens),
            "model.max_tokens",
            "must be between 1 and 32000",
        );
        if let Some(limit) = self.rate_limit_per_minute {
            check(
                (1..=100_000).contains(&limit),
                "rate_limit_per_minute",
                "must be between 1 and 100000",
            );
        }
        if let Some(text) = &self.auto_reply {
            check(
                !text.trim().is_empty() && text.chars().count() <= 1000,
                "auto_reply",
                "must be 1 to 1000 characters",
            );
        }
        if let Some(model) = &self.model.model {
            check(
                !model.trim().is_empty() && model.len() <= 200,
                "model.model",
                "must be 1 to 200 characters",
            );
        }
        if let Err(DomainError::Validation(more)) = self.handoff.validate() {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(errors))
        }
    }

    fn from_draft(draft: BotDraft) -> Self {
        let name = draft.name.trim().to_owned();
        let defaults = ModelSettings::default();
        BotSettings {
            slug: draft.slug.unwrap_or_else(|| slugify(&name)),
            name,
            website: draft.website,
            persona: draft.persona.unwrap_or_else(|| DEFAULT_PERSONA.to_owned()),
            language: draft.language.unwrap_or_else(|| "en".to_owned()),
            welcome_message: draft.welcome_message.unwrap_or_else(|| DEFAULT_WELCOME.to_owned()),
            model: ModelSettings {
                provider: draft.model.provider.unwrap_or(defaults.provider),
                model: draft.model.model.unwrap_or(defaults.model),
                temperature: draft.model.temperature.unwrap_or(defaults.temperature),
                max_tokens: draft.model.max_tokens.unwrap_or(defaults.max_tokens),
            },
            streaming: draft.streaming.unwrap_or(true),
            active: draft.active.unwrap_or(true),
            rate_limit_per_minute: draft.rate_limit_per_minute,
            human_only: draft.human_only.unwrap_or(false),
            auto_reply: draft.auto_reply,
            handoff: draft.handoff.unwrap_or_default(),
        }
    }

    /// The settings after a patch, and the names of the fields that changed.
    fn patched(&self, patch: BotPatch) -> (BotSettings, Vec<String>) {
        let mut next = self.clone();
        if let Some(v) = patch.name {
            next.name = v.trim().to_owned();
        }
        if let Some(v) = patch.slug {
            next.slug = v;
        }
        if let Some(v) = patch.website {
            next.website = v;
        }
        if let Some(v) = patch.persona {
            next.persona = v;
        }
        if let Some(v) = patch.language {
            next.language = v;
        }
        if let Some(v) = patch.welcome_message {
            next.welcome_message = v;
        }
        if let Some(v) = patch.model.provider {
            next.model.provider = v;
        }
        if let Some(v) = patch.model.model {
            next.model.model = v;
        }
        if let Some(v) = patch.model.temperature {
            next.model.temperature = v;
        }
        if let Some(v) = patch.model.max_tokens {
            next.model.max_tokens = v;
        }
        if let Some(v) = patch.streaming {
            next.streaming = v;
        }
        if let Some(v) = patch.active {
            next.active = v;
        }
        if let Some(v) = patch.rate_limit_per_minute {
            next.rate_limit_per_minute = v;
        }
        if let Some(v) = patch.human_only {
            next.human_only = v;
        }
        if let Some(v) = patch.auto_reply {
            next.auto_reply = v;
        }
        if let Some(v) = patch.handoff {
            next.handoff = v;
        }
        let mut changed = Vec::new();
        let mut note = |differs: bool, field: &str| {
            if differs {
                changed.push(field.to_owned());
            }
        };
        note(next.name != self.name, "name");
        note(next.slug != self.slug, "slug");
        note(next.website != self.website, "website");
        note(next.persona != self.persona, "persona");
        note(next.language != self.language, "language");
        note(next.welcome_message != self.welcome_message, "welcome_message");
        note(next.model != self.model, "model");
        note(next.streaming != self.streaming, "streaming");
        note(next.active != self.active, "active");
        note(
            next.rate_limit_per_minute != self.rate_limit_per_minute,
            "rate_limit_per_minute",
        );
        note(next.human_only != self.human_only, "human_only");
        note(next.auto_reply != self.auto_reply, "auto_reply");
        note(next.handoff != self.handoff, "handoff");
        (next, changed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotCreated {
    pub bot_id: Uuid,
    pub org_id: Uuid,
    pub settings: BotSettings,
    /// The public key the widget and the visitor API use (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_key: Option<String>,
}

/// The widget's settings after a change (the whole of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WidgetUpdated {
    pub bot_id: Uuid,
    pub widget: WidgetSettings,
}

/// A new public site key; the previous one stops working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteKeyRotated {
    pub bot_id: Uuid,
    pub site_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotUpdated {
    pub bot_id: Uuid,
    /// Names of the fields that changed.
    pub changed: Vec<String>,
    /// The whole settings after the change.
    pub settings: BotSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotDeleted {
    pub bot_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotPurged {
    pub bot_id: Uuid,
}

domain_events! {
    pub enum BotEvent {
        Created(BotCreated) = BOT_CREATED,
        Updated(BotUpdated) = BOT_UPDATED,
        Deleted(BotDeleted) = BOT_DELETED,
        Purged(BotPurged) = BOT_PURGED,
        WidgetUpdated(WidgetUpdated) = BOT_WIDGET_UPDATED,
        SiteKeyRotated(SiteKeyRotated) = BOT_SITE_KEY_ROTATED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotState {
    pub bot_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub settings: Option<BotSettings>,
    pub deleted: bool,
    pub purged: bool,
    /// `None`: the defaults.
    pub widget: Option<WidgetSettings>,
    pub site_key: Option<String>,
}

impl BotState {
    /// The bot's settings when it exists, belongs to `org_id` and is not deleted.
    fn live_for(&self, org_id: Uuid) -> Result<&BotSettings, DomainError> {
        match (&self.settings, self.org_id) {
            (Some(settings), Some(owner)) if owner == org_id && !self.deleted => Ok(settings),
            _ => Err(DomainError::BotNotFound),
        }
    }
}

#[derive(Debug, Clone)]
pub enum BotCommand {
    Create {
        bot_id: Uuid,
        org_id: Uuid,
        draft: BotDraft,
        site_key: String,
    },
    Update {
        org_id: Uuid,
        patch: BotPatch,
    },
    Delete {
        org_id: Uuid,
    },
    /// Issued by the purge job once derived data is gone.
    Purge,
    /// Replace the widget's settings.
    UpdateWidget {
        org_id: Uuid,
        widget: WidgetSettings,
    },
    /// Issue a new public site key.
    RotateSiteKey {
        org_id: Uuid,
        site_key: String,
    },
}

pub struct Bot;

impl Aggregate for Bot {
    const STREAM_TYPE: &'static str = "bot";
    type State = BotState;
    type Event = BotEvent;
    type Command = BotCommand;

    fn apply(state: &mut BotState, event: &BotEvent) {
        match event {
            BotEvent::Created(e) => {
                state.bot_id = Some(e.bot_id);
                state.org_id = Some(e.org_id);
                state.settings = Some(e.settings.clone());
                state.site_key = e.site_key.clone();
            }
            BotEvent::Updated(e) => state.settings = Some(e.settings.clone()),
            BotEvent::Deleted(_) => state.deleted = true,
            BotEvent::Purged(_) => state.purged = true,
            BotEvent::WidgetUpdated(e) => state.widget = Some(e.widget.clone()),
            BotEvent::SiteKeyRotated(e) => state.site_key = Some(e.site_key.clone()),
        }
    }

    fn decide(state: &BotState, command: BotCommand) -> Result<Vec<BotEvent>, DomainError> {
        match command {
            BotCommand::Create {
                bot_id,
                org_id,
                draft,
                site_key,
            } => {
                if state.settings.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                let settings = BotSettings::from_draft(draft);
                settings.validate()?;
                Ok(vec![BotEvent::Created(BotCreated {
                    bot_id,
                    org_id,
                    settings,
                    site_key: Some(site_key),
                })])
            }
            BotCommand::UpdateWidget { org_id, widget } => {
                state.live_for(org_id)?;
                let bot_id = state.bot_id.ok_or(DomainError::BotNotFound)?;
                let widget = widget.validated()?;
                if state.widget.as_ref() == Some(&widget) {
                    return Ok(vec![]);
                }
                Ok(vec![BotEvent::WidgetUpdated(WidgetUpdated { bot_id, widget })])
            }
            BotCommand::RotateSiteKey { org_id, site_key } => {
                state.live_for(org_id)?;
                let bot_id = state.bot_id.ok_or(DomainError::BotNotFound)?;
                Ok(vec![BotEvent::SiteKeyRotated(SiteKeyRotated { bot_id, site_key })])
            }
            BotCommand::Update { org_id, patch } => {
                let current = state.live_for(org_id)?;
                let (next, changed) = current.patched(patch);
                next.validate()?;
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                let bot_id = state.bot_id.ok_or(DomainError::BotNotFound)?;
                Ok(vec![BotEvent::Updated(BotUpdated {
                    bot_id,
                    changed,
                    settings: next,
                })])
            }
            BotCommand::Delete { org_id } => {
                state.live_for(org_id)?;
                let bot_id = state.bot_id.ok_or(DomainError::BotNotFound)?;
                Ok(vec![BotEvent::Deleted(BotDeleted { bot_id })])
            }
            BotCommand::Purge => match state.bot_id {
                Some(bot_id) if state.deleted && !state.purged => Ok(vec![BotEvent::Purged(BotPurged { bot_id })]),
                Some(_) if state.purged => Ok(vec![]),
                _ => Err(DomainError::BotNotFound),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DomainEvent, UpcastError};

    fn given(events: &[BotEvent]) -> BotState {
        let mut state = BotState::default();
        for e in events {
            Bot::apply(&mut state, e);
        }
        state
    }

    fn created(org: Uuid) -> (Uuid, BotEvent) {
        let bot_id = Uuid::now_v7();
        let draft = BotDraft {
            name: "Support Bot".into(),
            ..Default::default()
        };
        let events = Bot::decide(
            &BotState::default(),
            BotCommand::Create {
                bot_id,
                org_id: org,
                draft,
                site_key: new_site_key(),
            },
        )
        .unwrap();
        (bot_id, events.into_iter().next().unwrap())
    }

    #[test]
    fn create_fills_defaults_and_derives_the_slug() {
        let org = Uuid::now_v7();
        let (_, event) = created(org);
        let BotEvent::Created(c) = event else {
            panic!("expected created")
        };
        assert_eq!(c.settings.slug, "support-bot");
        assert_eq!(c.settings.language, "en");
        assert_eq!(c.settings.model.provider, "extractive");
        assert!(c.settings.streaming && c.settings.active);
    }

    #[test]
    fn create_reports_every_invalid_field() {
        let draft = BotDraft {
            name: "".into(),
            website: Some("ftp://x".into()),
            language: Some("english!".into()),
            model: ModelPatch {
                temperature: Some(3.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = Bot::decide(
            &BotState::default(),
            BotCommand::Create {
                bot_id: Uuid::now_v7(),
                org_id: Uuid::now_v7(),
                draft,
                site_key: new_site_key(),
            },
        )
        .unwrap_err();
        let DomainError::Validation(fields) = err else {
            panic!("expected validation")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["name", "website", "language", "model.temperature"]);
    }

    #[test]
    fn update_records_only_changed_fields_and_nothing_when_unchanged() {
        let org = Uuid::now_v7();
        let (_, c) = created(org);
        let state = given(&[c]);
        let patch = BotPatch {
            name: Some("Support Bot".into()),
            persona: Some("Be brief.".into()),
            ..Default::default()
        };
        let events = Bot::decide(&state, BotCommand::Update { org_id: org, patch }).unwrap();
        let [BotEvent::Updated(u)] = events.as_slice() else {
            panic!("expected one update")
        };
        assert_eq!(u.changed, ["persona"]);
        assert_eq!(u.settings.persona, "Be brief.");
        let same = BotPatch {
            name: Some("Support Bot".into()),
            ..Default::default()
        };
        assert!(
            Bot::decide(
                &state,
                BotCommand::Update {
                    org_id: org,
                    patch: same
                }
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn another_org_and_deleted_bots_are_not_found() {
        let org = Uuid::now_v7();
        let (bot_id, c) = created(org);
        let state = given(std::slice::from_ref(&c));
        assert_eq!(
            Bot::decide(&state, BotCommand::Delete { org_id: Uuid::now_v7() }).unwrap_err(),
            DomainError::BotNotFound
        );
        let deleted = given(&[c.clone(), BotEvent::Deleted(BotDeleted { bot_id })]);
        assert_eq!(
            Bot::decide(
                &deleted,
                BotCommand::Update {
                    org_id: org,
                    patch: BotPatch::default()
                }
            )
            .unwrap_err(),
            DomainError::BotNotFound
        );
        assert_eq!(
            Bot::decide(&deleted, BotCommand::Delete { org_id: org }).unwrap_err(),
            DomainError::BotNotFound
        );
    }

    #[test]
    fn purge_happens_once_and_only_after_delete() {
        let org = Uuid::now_v7();
        let (bot_id, c) = created(org);
        assert_eq!(
            Bot::decide(&given(std::slice::from_ref(&c)), BotCommand::Purge).unwrap_err(),
            DomainError::BotNotFound
        );
        let deleted = given(&[c.clone(), BotEvent::Deleted(BotDeleted { bot_id })]);
        assert_eq!(Bot::decide(&deleted, BotCommand::Purge).unwrap().len(), 1);
        let purged = given(&[
            c,
            BotEvent::Deleted(BotDeleted { bot_id }),
            BotEvent::Purged(BotPurged { bot_id }),
        ]);
        assert!(Bot::decide(&purged, BotCommand::Purge).unwrap().is_empty());
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("  Hello, World!! 2 "), "hello-world-2");
        assert_eq!(slugify("***"), "bot");
        assert!(valid_slug("a-b"));
        assert!(!valid_slug("a--b"));
        assert!(!valid_slug("-a"));
        assert!(valid_language("pt-BR"));
        assert!(!valid_language("p"));
    }

    #[test]
    fn widget_settings_and_site_keys() {
        let org = Uuid::now_v7();
        let (_, created) = created(org);
        let BotEvent::Created(c) = &created else {
            panic!("expected created")
        };
        assert!(c.site_key.as_deref().is_some_and(looks_like_site_key));
        let mut events = vec![created.clone()];
        let widget = WidgetSettings {
            accent_color: "#00aa00".into(),
            allowed_origins: vec!["https://Shop.example/".into()],
            ..WidgetSettings::default()
        };
        let update = |events: &[BotEvent], org_id: Uuid, widget: WidgetSettings| {
            Bot::decide(&given(events), BotCommand::UpdateWidget { org_id, widget })
        };
        let changed = update(&events, org, widget.clone()).unwrap();
        let BotEvent::WidgetUpdated(w) = &changed[0] else {
            panic!("expected widget_updated")
        };
        assert_eq!(w.widget.accent_color, "#00AA00");
        assert_eq!(w.widget.allowed_origins, vec!["https://shop.example"]);
        events.extend(changed);
        assert!(
            update(&events, org, widget.clone()).unwrap().is_empty(),
            "the same settings again record nothing"
        );
        assert_eq!(
            update(&events, Uuid::now_v7(), widget).unwrap_err(),
            DomainError::BotNotFound
        );
        let rotated = Bot::decide(
            &given(&events),
            BotCommand::RotateSiteKey {
                org_id: org,
                site_key: new_site_key(),
            },
        )
        .unwrap();
        events.extend(rotated);
        let state = given(&events);
        assert_ne!(state.site_key, c.site_key, "the old key is replaced");
        assert!(!looks_like_site_key("pk_0123"));
    }

    #[test]
    fn stored_events_round_trip() {
        let (_, c) = created(Uuid::now_v7());
        let stored = c.to_new_event();
        assert_eq!(stored.event_type, BOT_CREATED);
        assert_eq!(BotEvent::from_stored(BOT_CREATED, 1, &stored.payload).unwrap(), c);
        assert!(matches!(
            BotEvent::from_stored(BOT_CREATED, 9, &stored.payload),
            Err(UpcastError::UnknownVersion { .. })
        ));
        assert!(matches!(
            BotEvent::from_stored("bot.exploded", 1, &stored.payload),
            Err(UpcastError::UnknownType(_))
        ));
    }
}
