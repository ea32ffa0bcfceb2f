//! A lead: a visitor's contact details, one per bot and email address (or
//! phone number when there is no email). Its stream id is derived from the
//! bot and that address, so two captures of the same visitor meet in one
//! stream. The same visitor's later details replace earlier ones; anyone
//! else giving the same address (it is no proof of identity) may only fill
//! in what is missing, never overwrite or move the lead to their conversation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain_events;
use crate::error::{DomainError, FieldError};
use crate::event::Aggregate;
use crate::widget::{BUILT_IN_FIELDS, LeadCapture, MAX_FIELD_CHARS};

pub const LEAD_CAPTURED: &str = "lead.captured";
pub const LEAD_UPDATED: &str = "lead.updated";
pub const LEAD_EVENTS: &[&str] = &[LEAD_CAPTURED, LEAD_UPDATED];

/// Where a lead came from.
pub const LEAD_SOURCES: &[&str] = &["before_chat", "handoff", "form", "api"];
/// Most custom fields one lead may carry.
pub const MAX_CUSTOM_FIELDS: usize = 20;

/// A visitor's contact details as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Custom fields of the bot's lead form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadCaptured {
    pub lead_id: Uuid,
    pub org_id: Uuid,
    pub bot_id: Uuid,
    #[serde(flatten)]
    pub details: LeadDetails,
    pub visitor_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    /// `before_chat`, `handoff`, `form` or `api`.
    pub source: String,
}

/// Later details merged in: the whole details after the merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadUpdated {
    pub lead_id: Uuid,
    #[serde(flatten)]
    pub details: LeadDetails,
    /// Names of what changed (`name`, `phone`, `fields.company`, `conversation_id`).
    pub changed: Vec<String>,
    pub visitor_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub source: String,
}

domain_events! {
    pub enum LeadEvent {
        Captured(LeadCaptured) = LEAD_CAPTURED,
        Updated(LeadUpdated) = LEAD_UPDATED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadState {
    pub lead_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub bot_id: Option<Uuid>,
    pub details: LeadDetails,
    pub visitor_id: Option<String>,
    pub conversation_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub enum LeadCommand {
    Capture {
        org_id: Uuid,
        bot_id: Uuid,
        details: LeadDetails,
        visitor_id: Option<String>,
        conversation_id: Option<Uuid>,
        source: String,
    },
}

/// Whether an email address is acceptable: RFC 5322 syntax, and a domain
/// with a dot (mail to a bare host name does not reach a visitor).
pub fn valid_email(email: &str) -> bool {
    email.len() <= 254
        && email_address::EmailAddress::parse_with_options(
            email,
            email_address::Options {
                minimum_sub_domains: 2,
                allow_domain_literal: false,
                allow_display_text: false,
                ..email_address::Options::default()
            },
        )
        .is_ok_and(|e| !e.domain().ends_with('.'))
}

/// Whether a phone number is plausible: 7 to 15 digits, with an optional
/// leading `+` and the usual separators.
pub fn valid_phone(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let body = phone.strip_prefix('+').unwrap_or(phone);
    (7..=15).contains(&digits)
        && phone.len() <= 30
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
}

impl LeadDetails {
    /// The details checked against a bot's lead form: custom keys must be
    /// the form's, required fields present (when `require` holds), formats
    /// valid. Problems are added to `errors` (the caller may have found others
    /// in the same request); `None` when nothing was given or something is wrong.
    pub fn for_form(self, form: &LeadCapture, require: bool, errors: &mut Vec<FieldError>) -> Option<LeadDetails> {
        let problem = |field: String, message: &str| FieldError {
            field,
            message: message.to_owned(),
        };
        let before = errors.len();
        for key in self.fields.keys() {
            if BUILT_IN_FIELDS.contains(&key.as_str()) {
                errors.push(problem(
                    format!("fields.{key}"),
                    &format!("give `{key}` as a top-level field"),
                ));
            } else if !form.fields.iter().any(|f| f.key == *key) {
                errors.push(problem(
                    format!("fields.{key}"),
                    "is not a field of this bot's lead form",
                ));
            }
        }
        if require {
            for f in form.fields.iter().filter(|f| f.required) {
                let given = match f.key.as_str() {
                    "name" => self.name.as_deref(),
                    "email" => self.email.as_deref(),
                    "phone" => self.phone.as_deref(),
                    key => self.fields.get(key).map(String::as_str),
                };
                if given.is_none_or(|v| v.trim().is_empty()) {
                    let field = if BUILT_IN_FIELDS.contains(&f.key.as_str()) {
                        f.key.clone()
                    } else {
                        format!("fields.{}", f.key)
                    };
                    errors.push(problem(field, "is required by this bot's lead form"));
                }
            }
        }
        let empty = self.name.is_none() && self.email.is_none() && self.phone.is_none() && self.fields.is_empty();
        if empty {
            return None;
        }
        match self.normalized() {
            Ok(d) => (errors.len() == before).then_some(d),
            Err(DomainError::Validation(found)) => {
                errors.extend(found);
                None
            }
            Err(other) => {
                errors.push(problem("lead".into(), &other.to_string()));
                None
            }
        }
    }

    /// Trims values, drops empty ones, lowercases the email's domain and
    /// checks every field, reporting every problem.
    pub fn normalized(self) -> Result<LeadDetails, DomainError> {
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut errors = Vec::new();
        let mut fail = |field: String, message: &str| {
            errors.push(FieldError {
                field,
                message: message.into(),
            })
        };
        let name = clean(self.name);
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            fail("name".into(), "must be at most 200 characters");
        }
        let email = clean(self.email).map(|e| match e.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
            None => e,
        });
        if email.as_deref().is_some_and(|e| !valid_email(e)) {
            fail("email".into(), "is not a valid email address (e.g. ana@example.com)");
        }
        let phone = clean(self.phone);
        if phone.as_deref().is_some_and(|p| !valid_phone(p)) {
            fail(
                "phone".into(),
                "is not a valid phone number (7 to 15 digits, optionally starting with +)",
            );
        }
        let mut fields = BTreeMap::new();
        for (key, value) in self.fields {
            let value = value.trim().to_owned();
            if value.chars().count() > MAX_FIELD_CHARS {
                fail(format!("fields.{key}"), "must be at most 500 characters");
            }
            if !value.is_empty() {
                fields.insert(key, value);
            }
        }
        if fields.len() > MAX_CUSTOM_FIELDS {
            fail("fields".into(), "at most 20 custom fields");
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        Ok(LeadDetails {
            name,
            email,
            phone,
            fields,
        })
    }

    /// What identifies the visitor within a bot: the email (lowercase), else
    /// the phone's digits.
    pub fn identity(&self) -> Result<String, DomainError> {
        if let Some(email) = &self.email {
            return Ok(format!("email:{}", email.to_lowercase()));
        }
        self.phone
            .as_ref()
            .map(|p| {
                let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                format!("phone:{digits}")
            })
            .ok_or_else(|| DomainError::invalid("email", "an email address or a phone number is required"))
    }
}

/// The lead's stream id for a bot and an identity: the same visitor details
/// always lead to the same stream.
pub fn lead_id(bot_id: Uuid, identity: &str) -> Uuid {
    Uuid::new_v5(&bot_id, identity.as_bytes())
}

pub struct Lead;

impl Aggregate for Lead {
    const STREAM_TYPE: &'static str = "lead";
    type State = LeadState;
    type Event = LeadEvent;
    type Command = LeadCommand;

    fn apply(state: &mut LeadState, event: &LeadEvent) {
        match event {
            LeadEvent::Captured(e) => {
                state.lead_id = Some(e.lead_id);
                state.org_id = Some(e.org_id);
                state.bot_id = Some(e.bot_id);
                state.details = e.details.clone();
                state.visitor_id = e.visitor_id.clone();
                state.conversation_id = e.conversation_id;
            }
            LeadEvent::Updated(e) => {
                state.details = e.details.clone();
                state.visitor_id = e.visitor_id.clone();
                state.conversation_id = e.conversation_id;
            }
        }
    }

    fn decide(state: &LeadState, command: LeadCommand) -> Result<Vec<LeadEvent>, DomainError> {
        let LeadCommand::Capture {
            org_id,
            bot_id,
            details,
            visitor_id,
            conversation_id,
            source,
        } = command;
        let details = details.normalized()?;
        let identity = details.identity()?;
        let id = lead_id(bot_id, &identity);
        let Some(existing) = state.lead_id else {
            return Ok(vec![LeadEvent::Captured(LeadCaptured {
                lead_id: id,
                org_id,
                bot_id,
                details,
                visitor_id,
                conversation_id,
                source,
            })]);
        };
        if state.org_id != Some(org_id) || state.bot_id != Some(bot_id) || existing != id {
            return Err(DomainError::LeadNotFound);
        }
        // The same visitor's later details win; what was not given again is
        // kept. Someone else may only fill gaps.
        let same_visitor = visitor_id.is_some() && visitor_id == state.visitor_id;
        let before = &state.details;
        let mut merged = before.clone();
        let mut changed = Vec::new();
        for (field, new, old) in [
            ("name", &details.name, &mut merged.name),
            ("email", &details.email, &mut merged.email),
            ("phone", &details.phone, &mut merged.phone),
        ] {
            if new.is_some() && new != old && (same_visitor || old.is_none()) {
                *old = new.clone();
                changed.push(field.to_owned());
            }
        }
        for (key, value) in details.fields {
            let known = merged.fields.get(&key);
            if known != Some(&value) && (same_visitor || known.is_none()) {
                changed.push(format!("fields.{key}"));
                merged.fields.insert(key, value);
            }
        }
        // The lead stays its own visitor's; only they move it to their conversation.
        let conversation_id = if same_visitor {
            conversation_id.or(state.conversation_id)
        } else {
            state.conversation_id
        };
        if conversation_id != state.conversation_id {
            changed.push("conversation_id".into());
        }
        if changed.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![LeadEvent::Updated(LeadUpdated {
            lead_id: existing,
            details: merged,
            changed,
            visitor_id: state.visitor_id.clone(),
            conversation_id,
            source,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;

    #[test]
    fn details_are_checked_against_the_lead_form() {
        let mut form = LeadCapture::default();
        form.fields.push(crate::widget::LeadField {
            key: "company".into(),
            label: "Company".into(),
            kind: "text".into(),
            required: true,
        });
        let given = |email: Option<&str>, fields: &[(&str, &str)]| LeadDetails {
            name: Some(" Ana ".into()),
            email: email.map(Into::into),
            phone: None,
            fields: fields.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        };
        let mut errors = Vec::new();
        let ok = given(Some("ana@Example.COM"), &[("company", "Acme")]).for_form(&form, true, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let ok = ok.unwrap();
        assert_eq!(
            (ok.name.as_deref(), ok.email.as_deref()),
            (Some("Ana"), Some("ana@example.com"))
        );

        let mut errors = Vec::new();
        let refused = given(None, &[("email", "x@y.z"), ("shoe_size", "42")]).for_form(&form, true, &mut errors);
        assert!(refused.is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["fields.email", "fields.shoe_size", "email", "fields.company"]);

        // Not required (a lead form after the chat started): only formats count.
        let mut errors = Vec::new();
        assert!(
            given(Some("ana@example.com"), &[])
                .for_form(&form, false, &mut errors)
                .is_some()
        );
        assert!(errors.is_empty());
        let mut errors = Vec::new();
        assert!(
            given(Some("not an address"), &[])
                .for_form(&form, false, &mut errors)
                .is_none()
        );
        assert_eq!(errors[0].field, "email");
        let nothing = LeadDetails::default().for_form(&form, false, &mut Vec::new());
        assert!(nothing.is_none(), "nothing given is no lead");
    }

    fn capture(bot_id: Uuid, details: LeadDetails, conversation_id: Option<Uuid>) -> LeadCommand {
        capture_by(bot_id, details, conversation_id, "v_1")
    }

    fn capture_by(bot_id: Uuid, details: LeadDetails, conversation_id: Option<Uuid>, visitor: &str) -> LeadCommand {
        LeadCommand::Capture {
            org_id: Uuid::nil(),
            bot_id,
            details,
            visitor_id: Some(visitor.into()),
            conversation_id,
            source: "form".into(),
        }
    }

    #[test]
    fn another_visitor_with_the_same_address_only_fills_gaps() {
        let bot = Uuid::now_v7();
        let ana = LeadDetails {
            name: Some("Ana".into()),
            email: Some("ana@example.com".into()),
            ..Default::default()
        };
        let conversation = Uuid::now_v7();
        let events = Lead::decide(&LeadState::default(), capture(bot, ana, Some(conversation))).unwrap();
        let state = given(&events);
        let intruder = LeadDetails {
            name: Some("Mallory".into()),
            email: Some("ana@example.com".into()),
            phone: Some("+1 555 123 4567".into()),
            ..Default::default()
        };
        let more = Lead::decide(&state, capture_by(bot, intruder, Some(Uuid::now_v7()), "v_other")).unwrap();
        let LeadEvent::Updated(u) = &more[0] else {
            panic!("expected updated")
        };
        assert_eq!(u.details.name.as_deref(), Some("Ana"), "not overwritten");
        assert_eq!(u.details.phone.as_deref(), Some("+1 555 123 4567"), "a gap filled");
        assert_eq!(
            u.conversation_id,
            Some(conversation),
            "not moved to the other conversation"
        );
        assert_eq!(u.visitor_id.as_deref(), Some("v_1"));
        assert_eq!(u.changed, vec!["phone"]);
    }

    fn given(events: &[LeadEvent]) -> LeadState {
        let mut state = LeadState::default();
        for e in events {
            Lead::apply(&mut state, e);
        }
        state
    }

    #[test]
    fn emails_and_phones() {
        for ok in ["ana@example.com", "a.b+c@sub.example.co.uk", "ANA@Example.COM"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana example@x.com",
            "ana@@x.com",
            "",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_phone("+351 912 345 678"));
        assert!(valid_phone("(555) 123-4567"));
        assert!(!valid_phone("12345"));
        assert!(!valid_phone("call me"));
        assert!(!valid_phone("+1 555 123 4567 ext. 9"));
    }

    #[test]
    fn later_details_merge_into_the_same_lead() {
        let bot = Uuid::now_v7();
        let first = LeadDetails {
            name: Some("Ana".into()),
            email: Some("Ana@Example.com".into()),
            ..Default::default()
        };
        let events = Lead::decide(&LeadState::default(), capture(bot, first, None)).unwrap();
        let LeadEvent::Captured(c) = &events[0] else {
            panic!("expected captured")
        };
        assert_eq!(c.details.email.as_deref(), Some("Ana@example.com"));
        // The same address in another case is the same lead.
        let same = LeadDetails {
            email: Some("ana@EXAMPLE.com".into()),
            phone: Some("+351 912 345 678".into()),
            fields: [("company".to_owned(), "Acme".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            lead_id(bot, &same.clone().normalized().unwrap().identity().unwrap()),
            c.lead_id
        );
        let conversation = Uuid::now_v7();
        let state = given(&events);
        let more = Lead::decide(&state, capture(bot, same.clone(), Some(conversation))).unwrap();
        let LeadEvent::Updated(u) = &more[0] else {
            panic!("expected updated")
        };
        assert_eq!(u.details.name.as_deref(), Some("Ana"), "the name given before is kept");
        assert_eq!(u.details.phone.as_deref(), Some("+351 912 345 678"));
        assert_eq!(u.details.fields["company"], "Acme");
        assert!(u.changed.contains(&"conversation_id".to_owned()));
        let mut all = events.clone();
        all.extend(more);
        assert!(
            Lead::decide(&given(&all), capture(bot, same, Some(conversation)))
                .unwrap()
                .is_empty(),
            "nothing new, nothing recorded"
        );
        let stored = all[1].to_new_event();
        assert_eq!(
            LeadEvent::from_stored(LEAD_UPDATED, 1, &stored.payload).unwrap(),
            all[1]
        );
    }

    #[test]
    fn refuses_bad_details_and_no_contact() {
        let bot = Uuid::now_v7();
        let bad = LeadDetails {
            email: Some("not-an-email".into()),
            phone: Some("12".into()),
            ..Default::default()
        };
        let DomainError::Validation(errors) = Lead::decide(&LeadState::default(), capture(bot, bad, None)).unwrap_err()
        else {
            panic!("expected validation")
        };
        assert_eq!(errors.len(), 2);
        let nameless = LeadDetails {
            name: Some("Ana".into()),
            ..Default::default()
        };
        assert!(matches!(
            Lead::decide(&LeadState::default(), capture(bot, nameless, None)),
            Err(DomainError::Validation(_))
        ));
    }
}
