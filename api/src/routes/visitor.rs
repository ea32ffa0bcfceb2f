//! The visitor API (`/api/v1/public`): what the widget uses, with a bot's
//! site key instead of a secret key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use parley_domain::aggregates::conversation::{AttachmentAdded, Conversation, ConversationCommand, Status};
use parley_domain::aggregates::lead::{Lead, LeadCommand, LeadDetails};
use parley_domain::store::content::{put_blob, sha256_hex};
use parley_domain::store::entities::{attachments, bots, conversations, messages};
use parley_domain::store::{Execute, StoreError};
use parley_domain::widget::WidgetSettings;
use parley_domain::{Actor, DomainError, ErrorCode, FieldError, Metadata, store::read};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::active_bot;
use crate::access::live;
use crate::chat::turn::{Ask, ask};
use crate::error::ApiError;
use crate::files::{Disposition, FileResponse, attachment_type, clean_file_name, file_response};
use crate::http::middleware::RequestId;
use crate::schemas::chat::ChatResponse;
use crate::schemas::conversation::{AttachmentInfo, Message, Rating, Source};
use crate::schemas::widget::{LeadCaptureSpec, Position};
use crate::security::SiteKeyAuth;
use crate::security::conversation_token::{new_conversation_token, open_conversation};
use crate::security::site_key::authorize;
use crate::state::AppState;
use crate::types::Text;

pub struct VisitorApi {
    pub state: Option<AppState>,
}

/// Whether a person can answer the bot's visitors now.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PublicAvailability {
    /// Within the opening hours, with a member online.
    pub person_available: bool,
    /// Within the bot's opening hours (always, without hours).
    pub within_hours: bool,
    /// When the hours open next (now when open); absent without hours.
    pub next_opening: Option<DateTime<Utc>>,
}

/// What the widget needs to show a bot: nothing else of its settings.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WidgetConfig {
    /// The bot.
    pub bot_id: Uuid,
    /// The bot's name.
    pub name: String,
    /// The chat window's title.
    pub title: String,
    /// An https image for the header.
    pub avatar_url: Option<String>,
    /// Theme colour, `#RRGGBB`.
    pub accent_color: String,
    /// Where the chat button sits.
    pub position: Position,
    /// The greeting.
    pub welcome_message: String,
    /// Suggested questions.
    pub quick_prompts: Vec<String>,
    /// Whether answers show their sources.
    pub show_sources: bool,
    /// Whether to ask the visitor to rate a conversation a person closed.
    pub satisfaction_survey: bool,
    /// Whether a person can answer now, and when next.
    pub availability: PublicAvailability,
    /// Whether answers stream.
    pub streaming: bool,
    /// The bot's language tag.
    pub language: String,
    /// When and what to ask for contact details.
    pub lead_capture: LeadCaptureSpec,
}

/// A message as the visitor sees it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VisitorMessage {
    /// The message.
    pub id: Uuid,
    /// `user` (the visitor), `assistant` (the bot) or `agent` (a person).
    pub role: String,
    /// The text; the bot's answers carry citation markers `[1]` matching `sources`.
    pub text: String,
    /// `complete` or `failed`.
    pub status: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// For the bot's answers: nothing relevant was found (a person may be offered).
    pub unanswered: bool,
    /// For the bot's answers: the cited passages (empty when the bot hides sources).
    pub sources: Vec<Source>,
    /// The latest rating of this answer.
    pub feedback: Option<Rating>,
    /// Files the visitor attached to it.
    pub attachments: Vec<AttachmentInfo>,
    /// For a person's reply: the name the widget shows (absent: "Support team").
    pub author: Option<String>,
}

fn visitor_message(m: messages::Model, files: &[attachments::Model], show_sources: bool) -> VisitorMessage {
    let attachments = files
        .iter()
        .filter(|a| a.message_id == m.id)
        .cloned()
        .map(AttachmentInfo::from)
        .collect();
    let message = Message::from(m);
    VisitorMessage {
        id: message.id,
        role: message.role,
        text: message.text,
        status: if message.status == "failed" {
            "failed"
        } else {
            "complete"
        }
        .into(),
        created_at: message.created_at,
        unanswered: message.unanswered,
        sources: if show_sources { message.sources } else { vec![] },
        feedback: message.feedback.map(|f| f.rating),
        attachments,
        author: message.author,
    }
}

/// A conversation's messages as the visitor sees them (those after `after`).
async fn visitor_messages(
    state: &AppState,
    bot: &bots::Model,
    conversation_id: Uuid,
    after: Option<DateTime<Utc>>,
) -> Result<Vec<VisitorMessage>, ApiError> {
    let rows = read::messages_after(&state.store, conversation_id, after).await?;
    let files = read::attachments_of(&state.store, conversation_id).await?;
    let show = read::widget_of(bot).show_sources;
    Ok(rows.into_iter().map(|m| visitor_message(m, &files, show)).collect())
}

/// A new conversation: the visitor's token, an optional first message and
/// contact details.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct StartConversation {
    /// Required: the visitor's own random identifier (16 to 128 letters,
    /// digits, `-` or `_`), kept by the widget; one conversation per token.
    pub visitor_token: Option<Text>,
    /// The first message (1 to 10,000 characters); the bot's answer comes back with it.
    pub message: Option<Text>,
    /// The visitor's name.
    pub name: Option<Text>,
    /// The visitor's email address.
    pub email: Option<Text>,
    /// The visitor's phone number.
    pub phone: Option<Text>,
    /// Custom fields of the bot's lead form.
    pub fields: Option<BTreeMap<String, Text>>,
    /// The visitor's language tag, e.g. `en` or `pt-BR`.
    #[oai(validator(min_length = 2, max_length = 35))]
    pub language: Option<Text>,
}

/// A conversation the visitor started.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StartedConversation {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The conversation token: send it as `X-Parley-Conversation-Token` to
    /// read and continue the conversation. Shown once.
    pub token: String,
    /// `open`, or `escalated` when the first message asked for a person.
    pub status: String,
    /// The first message and the bot's answer (empty without a first message).
    pub messages: Vec<VisitorMessage>,
    /// A human-only bot's acknowledgement ("Thanks for reaching out! We'll
    /// get back to you soon."), to show the visitor; absent for bots that answer.
    pub auto_reply: Option<String>,
    /// The lead the contact details were recorded as.
    pub lead_id: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum StartResponse {
    /// The conversation started.
    #[oai(status = 201)]
    Created(Json<StartedConversation>),
}

/// A conversation as the visitor sees it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VisitorConversation {
    /// The conversation.
    pub conversation_id: Uuid,
    /// `open`, `escalated` (a person will reply) or `closed`.
    pub status: String,
    /// Messages in order (with `after`, only newer ones).
    pub messages: Vec<VisitorMessage>,
    /// The visitor's rating of the conversation (1 to 5), once given.
    pub satisfaction: Option<i32>,
    /// Who of the team is typing a reply now ("Support team" for a reply
    /// sent with a key); absent when nobody is.
    pub agent_typing: Option<String>,
}

#[derive(ApiResponse)]
pub enum VisitorTyping {
    /// The team sees the visitor typing for a few seconds.
    #[oai(status = 204)]
    Shown,
}

/// The visitor's rating of a conversation a person closed.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct SatisfactionRequest {
    /// 1 (bad) to 5 (great).
    #[oai(validator(minimum(value = "1"), maximum(value = "5")))]
    pub score: u8,
    /// What went well or not, at most 2,000 characters.
    #[oai(validator(max_length = 2000))]
    pub comment: Option<Text>,
}

/// A visitor's message.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct VisitorMessageRequest {
    /// The message, 1 to 10,000 characters.
    pub text: Option<Text>,
    /// Stream the answer as server-sent events (default: the bot's setting).
    pub stream: Option<bool>,
}

/// A rating of one of the bot's answers.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct VisitorFeedback {
    /// `up` or `down`.
    pub rating: Rating,
    /// Why, up to 2,000 characters.
    pub comment: Option<Text>,
}

/// Contact details the visitor leaves.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct VisitorLeadRequest {
    /// The visitor's name.
    pub name: Option<Text>,
    /// The visitor's email address (this or `phone` is required).
    pub email: Option<Text>,
    /// The visitor's phone number.
    pub phone: Option<Text>,
    /// Custom fields of the bot's lead form.
    pub fields: Option<BTreeMap<String, Text>>,
}

/// The contact details as the visitor gave them (never what was stored
/// before: an email address proves nothing about who gives it).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VisitorLead {
    /// The lead.
    pub lead_id: Uuid,
    /// Name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Custom fields.
    pub fields: BTreeMap<String, String>,
}

#[derive(ApiResponse)]
pub enum LeadResponse {
    /// The details are recorded (a new lead, or merged into the lead of the same address).
    #[oai(status = 201)]
    Recorded(Json<VisitorLead>),
}

/// A file to attach.
#[derive(Debug, Multipart)]
pub struct AttachmentUpload {
    /// An image (PNG, JPEG, GIF, WebP), a PDF or a text file; the type is read from the content.
    pub file: Upload,
}

#[derive(ApiResponse)]
pub enum AttachmentResponse {
    /// The file is attached.
    #[oai(status = 201)]
    Created(Json<AttachmentInfo>),
}

fn invalid(errors: Vec<FieldError>) -> ApiError {
    DomainError::Validation(errors).into()
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_message(text: &str, errors: &mut Vec<FieldError>, field: &str) {
    if let Some(problem) = parley_domain::aggregates::conversation::message_problem(text) {
        errors.push(field_error(field, problem));
    }
}

/// Contact details as the request gives them, checked against the bot's lead form.
fn lead_details(
    widget: &WidgetSettings,
    name: Option<Text>,
    email: Option<Text>,
    phone: Option<Text>,
    fields: Option<BTreeMap<String, Text>>,
    require: bool,
    errors: &mut Vec<FieldError>,
) -> Option<LeadDetails> {
    let given = LeadDetails {
        name: name.map(Text::into_inner),
        email: email.map(Text::into_inner),
        phone: phone.map(Text::into_inner),
        fields: fields
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_inner()))
            .collect(),
    };
    given.for_form(&widget.lead_capture, require, errors)
}

/// Records contact details as the visitor's lead (merging into an earlier
/// one of the same address as the lead's rules allow); answers with what
/// was given, never with what was stored before.
async fn capture_lead(
    state: &AppState,
    bot: &bots::Model,
    conversation: &conversations::Model,
    details: LeadDetails,
    source: &str,
    recorded: &Metadata,
) -> Result<VisitorLead, ApiError> {
    let identity = details.identity()?;
    let lead_id = parley_domain::aggregates::lead::lead_id(bot.id, &identity);
    let shown = VisitorLead {
        lead_id,
        name: details.name.clone(),
        email: details.email.clone(),
        phone: details.phone.clone(),
        fields: details.fields.clone(),
    };
    state
        .store
        .execute::<Lead>(Execute {
            org_id: bot.org_id,
            stream_id: lead_id,
            expected_version: None,
            command: LeadCommand::Capture {
                org_id: bot.org_id,
                bot_id: bot.id,
                details,
                visitor_id: conversation.visitor_id.clone(),
                conversation_id: Some(conversation.id),
                source: source.into(),
            },
            metadata: recorded.clone(),
            idempotency: None,
        })
        .await?;
    Ok(shown)
}

/// Runs a command on a visitor's conversation, recorded as the visitor's.
async fn visitor_command(
    state: &AppState,
    bot: &bots::Model,
    conversation: &conversations::Model,
    command: ConversationCommand,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    state
        .store
        .execute::<Conversation>(Execute {
            org_id: bot.org_id,
            stream_id: conversation.id,
            expected_version: None,
            command,
            metadata: visitor_metadata(conversation.visitor_id.as_deref(), request_id),
            idempotency: None,
        })
        .await?;
    Ok(())
}

fn visitor_metadata(conversation_visitor: Option<&str>, request_id: &RequestId) -> Metadata {
    Metadata::new(
        Actor::Visitor {
            id: conversation_visitor.unwrap_or("anonymous").to_owned(),
        },
        Some(request_id.0.clone()),
    )
}

fn valid_visitor_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[OpenApi(prefix_path = "/api/v1/public", tag = "ApiTags::Visitor")]
impl VisitorApi {
    /// Get the widget's configuration
    ///
    /// What the widget needs to show the bot: title, colours, greeting,
    /// quick prompts, the lead form, and whether a person can answer now.
    /// Nothing else of the bot's settings.
    #[oai(path = "/bots/:bot_id/config", method = "get", operation_id = "visitor_config")]
    async fn config(&self, auth: SiteKeyAuth, bot_id: Path<Uuid>) -> Result<Json<WidgetConfig>, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let widget = read::widget_of(&bot);
        let capture = LeadCaptureSpec::from(&widget.lead_capture);
        let handoff: parley_domain::availability::HandoffSettings =
            serde_json::from_value(bot.handoff.clone()).unwrap_or_default();
        let available = crate::people::availability(state, bot.org_id, &handoff).await?;
        Ok(Json(WidgetConfig {
            availability: PublicAvailability {
                person_available: available.person_available(),
                within_hours: available.within_hours,
                next_opening: available.next_opening,
            },
            bot_id: bot.id,
            title: widget.title.clone().unwrap_or_else(|| bot.name.clone()),
            name: bot.name,
            avatar_url: widget.avatar_url,
            position: Position::parse(&widget.position),
            accent_color: widget.accent_color,
            welcome_message: widget.welcome_message.unwrap_or(bot.welcome_message),
            quick_prompts: widget.quick_prompts,
            show_sources: widget.show_sources,
            satisfaction_survey: widget.satisfaction_survey,
            streaming: bot.streaming,
            language: bot.language,
            lead_capture: capture,
        }))
    }

    /// Start a conversation
    ///
    /// Takes the visitor's token (one conversation per token: `409
    /// CONVERSATION_EXISTS` for a second), contact details (recorded as a
    /// lead; required ones per the bot's lead form when it asks before the
    /// chat) and an optional first message, which the bot answers. Answers
    /// `201` with the conversation token, shown once. Missing or invalid
    /// fields, a bad email and a message over 10,000 characters are `422`
    /// naming the field.
    #[oai(
        path = "/bots/:bot_id/conversations",
        method = "post",
        operation_id = "visitor_start_conversation"
    )]
    async fn start(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        body: Json<StartConversation>,
    ) -> Result<StartResponse, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let widget = read::widget_of(&bot);
        let req = body.0;
        let mut errors = Vec::new();
        let visitor_token = req.visitor_token.map(Text::into_inner);
        match &visitor_token {
            None => errors.push(field_error("visitor_token", "is required")),
            Some(t) if !valid_visitor_token(t) => errors.push(field_error(
                "visitor_token",
                "must be 16 to 128 letters, digits, `-` or `_`",
            )),
            Some(_) => {}
        }
        let message = req.message.map(Text::into_inner);
        if let Some(m) = &message {
            check_message(m, &mut errors, "message");
        }
        let require = widget.lead_capture.mode == "before_chat";
        let details = lead_details(
            &widget,
            req.name,
            req.email,
            req.phone,
            req.fields,
            require,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let visitor_token = visitor_token.unwrap_or_default();
        let exists = read::conversation_by_visitor_token(&state.store, bot.id, &visitor_token).await?;
        let taken = || {
            ApiError::new(
                ErrorCode::ConversationExists,
                "this visitor token already has a conversation with the bot: continue it with its \
                 conversation token, or start over with a new visitor token",
            )
        };
        if exists.is_some() {
            return Err(taken());
        }
        let settings = active_bot(state, bot.org_id, bot.id).await?;
        let auto_reply = settings.acknowledgement().map(str::to_owned);
        // A first message the plan cannot answer leaves no conversation behind.
        if message.is_some() {
            state.room_for_message(bot.org_id).await?;
        }
        let token = new_conversation_token();
        let conversation_id = Uuid::now_v7();
        let recorded = visitor_metadata(Some(&visitor_token), &request_id);
        let started = state
            .store
            .execute::<Conversation>(Execute {
                org_id: bot.org_id,
                stream_id: conversation_id,
                expected_version: Some(0),
                command: ConversationCommand::Start {
                    conversation_id,
                    org_id: bot.org_id,
                    bot_id: bot.id,
                    visitor_id: Some(visitor_token.clone()),
                    channel: "widget".into(),
                    token_hash: Some(sha256_hex(token.as_bytes())),
                },
                metadata: recorded.clone(),
                idempotency: None,
            })
            .await;
        match started {
            Ok(_) => {}
            // Another request with the same token won the race.
            Err(StoreError::Unique {
                projection: "conversations",
                ..
            }) => return Err(taken()),
            Err(e) => return Err(e.into()),
        }
        let row = read::conversation_of_bot(&state.store, bot.id, conversation_id)
            .await?
            .ok_or_else(|| ApiError::internal("the new conversation has no row"))?;
        let lead_id = match details {
            Some(details) => Some(
                capture_lead(state, &bot, &row, details, "before_chat", &recorded)
                    .await?
                    .lead_id,
            ),
            None => None,
        };
        if let Some(message) = message {
            let answered = ask(
                state,
                Ask {
                    org_id: bot.org_id,
                    bot_id: bot.id,
                    bot: settings,
                    conversation_id,
                    visitor_id: Some(visitor_token.clone()),
                    channel: "widget",
                    stream: false,
                    stream_owner: format!("visitor:{visitor_token}"),
                    question: message,
                    system: None,
                    extra_history: vec![],
                    language: req.language.map(Text::into_inner),
                    metadata: serde_json::Value::Null,
                    recorded,
                },
            )
            .await;
            // A failed answer is stored with the conversation; the visitor sees it there.
            if let Err(e) = answered
                && e.code() == ErrorCode::QuotaExceeded.as_str()
            {
                return Err(e);
            }
        }
        let status = read::conversation_of_bot(&state.store, bot.id, conversation_id)
            .await?
            .map_or_else(|| "open".to_owned(), |c| c.status);
        Ok(StartResponse::Created(Json(StartedConversation {
            conversation_id,
            token,
            status,
            messages: visitor_messages(state, &bot, conversation_id, None).await?,
            lead_id,
            auto_reply,
        })))
    }

    /// Read a conversation
    ///
    /// Its status and messages: all of them, or only those stored after
    /// `after` (to poll for a person's replies).
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/messages",
        method = "get",
        operation_id = "visitor_messages"
    )]
    async fn messages(
        &self,
        auth: SiteKeyAuth,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        /// Only messages stored strictly after this time (RFC 3339 / ISO 8601).
        after: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<VisitorConversation>, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        Ok(Json(VisitorConversation {
            conversation_id: row.id,
            satisfaction: row.satisfaction,
            status: row.status,
            messages: visitor_messages(state, &bot, row.id, after.0).await?,
            agent_typing: state
                .typing
                .typing(row.id, "agent")
                .map(|name| name.unwrap_or_else(|| "Support team".to_owned())),
        }))
    }

    /// Send a message
    ///
    /// The bot answers it, as server-sent events when `stream` is true (the
    /// same events as `chat`) or as JSON. A message in a closed conversation
    /// reopens it; while a person has the conversation the bot stays quiet
    /// and the message waits for them.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/messages",
        method = "post",
        operation_id = "visitor_send_message"
    )]
    async fn send(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        body: Json<VisitorMessageRequest>,
    ) -> Result<ChatResponse, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        let mut errors = Vec::new();
        let text = body.0.text.map(Text::into_inner);
        match &text {
            None => errors.push(field_error("text", "is required")),
            Some(t) => check_message(t, &mut errors, "text"),
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let settings = active_bot(state, bot.org_id, bot.id).await?;
        let show_sources = read::widget_of(&bot).show_sources;
        let visitor = row.visitor_id.clone().unwrap_or_else(|| row.id.to_string());
        let response = ask(
            state,
            Ask {
                org_id: bot.org_id,
                bot_id: bot.id,
                stream: body.0.stream.unwrap_or(settings.streaming),
                bot: settings,
                conversation_id: row.id,
                visitor_id: row.visitor_id.clone(),
                channel: "widget",
                stream_owner: format!("visitor:{visitor}"),
                question: text.unwrap_or_default(),
                system: None,
                extra_history: vec![],
                language: None,
                metadata: serde_json::Value::Null,
                recorded: visitor_metadata(row.visitor_id.as_deref(), &request_id),
            },
        )
        .await?;
        Ok(if show_sources {
            response
        } else {
            response.without_sources()
        })
    }

    /// Ask for a person
    ///
    /// Hands the conversation to a person: the bot stops answering by
    /// itself until it is closed. Asking twice changes nothing.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/escalate",
        method = "post",
        operation_id = "visitor_escalate"
    )]
    async fn escalate(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
    ) -> Result<Json<VisitorConversation>, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        visitor_command(
            state,
            &bot,
            &row,
            ConversationCommand::Escalate {
                reason: "visitor_request".into(),
            },
            &request_id,
        )
        .await?;
        Ok(Json(VisitorConversation {
            conversation_id: row.id,
            status: Status::Escalated.as_str().into(),
            messages: visitor_messages(state, &bot, row.id, None).await?,
            satisfaction: row.satisfaction,
            agent_typing: None,
        }))
    }

    /// Show that the visitor is typing
    ///
    /// The team's live streams get a `typing` event; send it again while
    /// typing (every few seconds). A signal, not an event: it is not stored.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/typing",
        method = "post",
        operation_id = "visitor_typing"
    )]
    async fn typing(
        &self,
        auth: SiteKeyAuth,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
    ) -> Result<VisitorTyping, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        state
            .typing
            .signal(crate::typing::TypingSignal {
                org_id: bot.org_id,
                conversation_id: row.id,
                who: "visitor".into(),
                name: None,
            })
            .await;
        Ok(VisitorTyping::Shown)
    }

    /// Rate the conversation
    ///
    /// Once a person has closed the conversation, the visitor may rate it
    /// from 1 to 5 with a comment; a later rating replaces an earlier one.
    /// `422` when the conversation is not closed, or the bot does not ask
    /// for ratings (`satisfaction_survey` in its widget settings).
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/satisfaction",
        method = "post",
        operation_id = "visitor_rate_conversation"
    )]
    async fn rate_conversation(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        body: Json<SatisfactionRequest>,
    ) -> Result<Json<VisitorConversation>, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        let command = ConversationCommand::Rate {
            score: body.0.score,
            comment: body.0.comment.map(Text::into_inner),
            asked: read::widget_of(&bot).satisfaction_survey,
        };
        visitor_command(state, &bot, &row, command, &request_id).await?;
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        Ok(Json(VisitorConversation {
            conversation_id: row.id,
            satisfaction: row.satisfaction,
            status: row.status,
            messages: vec![],
            agent_typing: None,
        }))
    }

    /// Rate an answer
    ///
    /// Thumbs up or down, with an optional comment, on one of the bot's
    /// answers; a later rating replaces an earlier one.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/messages/:message_id/feedback",
        method = "post",
        operation_id = "visitor_rate_answer"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn feedback(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        message_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        body: Json<VisitorFeedback>,
    ) -> Result<Json<VisitorMessage>, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        visitor_command(
            state,
            &bot,
            &row,
            ConversationCommand::Feedback {
                message_id: message_id.0,
                up: body.0.rating == Rating::Up,
                comment: body.0.comment.map(Text::into_inner),
                by: "visitor".into(),
            },
            &request_id,
        )
        .await?;
        let message = read::message(&state.store, row.id, message_id.0)
            .await?
            .ok_or_else(|| ApiError::internal("the rated message is missing"))?;
        let show = read::widget_of(&bot).show_sources;
        Ok(Json(visitor_message(message, &[], show)))
    }

    /// Leave contact details
    ///
    /// Records the visitor's name, email, phone and the lead form's custom
    /// fields as a lead linked to this conversation (`201`, answering with
    /// what was given). The same email (or phone) with the same bot is the
    /// same lead: this visitor's later details replace earlier ones; another
    /// visitor's may only fill in what is missing.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/lead",
        method = "post",
        operation_id = "visitor_submit_lead"
    )]
    async fn lead(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        body: Json<VisitorLeadRequest>,
    ) -> Result<LeadResponse, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        let widget = read::widget_of(&bot);
        let req = body.0;
        let mut errors = Vec::new();
        let details = lead_details(&widget, req.name, req.email, req.phone, req.fields, true, &mut errors);
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let details = details.unwrap_or_default();
        let source = if row.escalated_at.is_some() || row.unanswered > 0 {
            "handoff"
        } else {
            "form"
        };
        let recorded = visitor_metadata(row.visitor_id.as_deref(), &request_id);
        let lead = capture_lead(state, &bot, &row, details, source, &recorded).await?;
        Ok(LeadResponse::Recorded(Json(lead)))
    }

    /// Attach a file to a message
    ///
    /// An image (PNG, JPEG, GIF, WebP), a PDF or a text file (multipart
    /// field `file`) attached to one of the visitor's own messages, at most
    /// 5 per message and 20 per conversation. The type is read from the content: anything else is
    /// `415`; a file over the size limit is `413`.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/messages/:message_id/attachments",
        method = "post",
        operation_id = "visitor_attach_file"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn attach(
        &self,
        auth: SiteKeyAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        message_id: Path<Uuid>,
        /// The conversation token.
        #[oai(name = "X-Parley-Conversation-Token")]
        token: Header<Option<String>>,
        body: AttachmentUpload,
    ) -> Result<AttachmentResponse, ApiError> {
        let state = live(&self.state)?;
        let bot = auth.0;
        debug_assert_eq!(bot.id, bot_id.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.0.as_deref()).await?;
        let limit = state.settings.max_attachment_bytes;
        if body.file.size() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than {limit} bytes"),
            ));
        }
        // Refused before anything is stored.
        let (current, _) = state.store.load::<Conversation>(row.id).await?;
        current.room_for_attachment(message_id.0)?;
        let file_name = clean_file_name(body.file.file_name());
        let bytes = body
            .file
            .into_vec()
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("cannot read the upload: {e}")))?;
        if bytes.is_empty() {
            return Err(DomainError::invalid("file", "is empty").into());
        }
        let content_type = attachment_type(&bytes).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "only images (PNG, JPEG, GIF, WebP), PDF and text files can be attached",
            )
        })?;
        let sha256 = put_blob(&state.store, bot.org_id, &bytes).await?;
        let attachment_id = Uuid::now_v7();
        visitor_command(
            state,
            &bot,
            &row,
            ConversationCommand::Attach(AttachmentAdded {
                conversation_id: row.id,
                attachment_id,
                message_id: message_id.0,
                file_name,
                content_type: content_type.into(),
                size: bytes.len() as i64,
                sha256,
            }),
            &request_id,
        )
        .await?;
        let stored = read::attachment(&state.store, row.id, attachment_id)
            .await?
            .ok_or_else(|| ApiError::internal("the new attachment has no row"))?;
        Ok(AttachmentResponse::Created(Json(stored.into())))
    }

    /// Download an attachment
    ///
    /// The file, shown by the browser (`disposition=inline`) or saved
    /// (`attachment`, the default). For links, the site key and the
    /// conversation token may be given as `site_key` and `token` instead of headers.
    #[oai(
        path = "/bots/:bot_id/conversations/:conversation_id/attachments/:attachment_id",
        method = "get",
        operation_id = "visitor_download_attachment"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn download(
        &self,
        req: &Request,
        bot_id: Path<Uuid>,
        conversation_id: Path<Uuid>,
        attachment_id: Path<Uuid>,
        /// The bot's site key (or `site_key`).
        #[oai(name = "X-Parley-Site-Key")]
        key_header: Header<Option<String>>,
        /// The conversation token (or `token`).
        #[oai(name = "X-Parley-Conversation-Token")]
        token_header: Header<Option<String>>,
        /// The bot's site key, for links.
        site_key: Query<Option<String>>,
        /// The conversation token, for links.
        token: Query<Option<String>>,
        /// `inline` or `attachment` (default).
        disposition: Query<Option<Disposition>>,
    ) -> Result<FileResponse, ApiError> {
        let state = live(&self.state)?;
        let Some(key) = key_header.0.or(site_key.0) else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the site key is missing (X-Parley-Site-Key or site_key)",
            ));
        };
        let bot = authorize(state, req, bot_id.0, &key).await?;
        let token = token_header.0.or(token.0);
        let row = open_conversation(state, &bot, conversation_id.0, token.as_deref()).await?;
        let attachment = read::attachment(&state.store, row.id, attachment_id.0)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::AttachmentNotFound, "attachment not found"))?;
        file_response(state, attachment, disposition.0.unwrap_or(Disposition::Attachment)).await
    }
}
