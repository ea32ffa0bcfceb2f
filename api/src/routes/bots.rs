//! `/api/v1/bots`: list, create, get, update and delete bots.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::bot::{self as domain, Bot as BotAggregate, BotCommand, BotDraft, BotPatch, ModelPatch};
use parley_domain::ids::new_id;
use parley_domain::store::entities::bots;
use parley_domain::store::{Execute, StoreError};
use parley_domain::{DomainError, ErrorCode, Metadata, store::read};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::idempotency::{self, Idempotency};
use crate::security::{AdminAuth, AgentAuth};
use crate::state::{AppState, Principal};
use crate::types::Text;

pub struct BotsApi {
    pub state: Option<AppState>,
}

/// How answers are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Provider {
    /// Offline default: answers composed from the best passages of the knowledge base.
    Extractive,
    /// Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp).
    Openai,
}

impl Provider {
    fn as_str(self) -> &'static str {
        match self {
            Provider::Extractive => "extractive",
            Provider::Openai => "openai",
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelSettings {
    /// How answers are generated.
    pub provider: Provider,
    /// The model name for the `openai` provider.
    pub model: Option<String>,
    /// Sampling temperature, 0 to 2.
    pub temperature: f64,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
}

/// A chatbot.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Bot {
    /// The bot's id.
    pub id: Uuid,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Unique among your organization's bots; lowercase letters, digits and dashes.
    pub slug: String,
    /// The website the bot serves.
    pub website: Option<String>,
    /// The persona / system prompt.
    pub persona: String,
    /// Language tag of the bot's answers, e.g. `en` or `pt-BR`.
    pub language: String,
    /// The first message visitors see.
    pub welcome_message: String,
    /// How answers are generated.
    pub model: ModelSettings,
    /// Whether chat answers stream by default.
    pub streaming: bool,
    /// Inactive bots do not answer visitors.
    pub active: bool,
    /// Visitor messages per minute the bot answers through the widget's API,
    /// all visitors together; absent: only the per-visitor limits apply.
    pub rate_limit_per_minute: Option<u32>,
    /// Live chat only: no AI answers; every conversation waits for a person.
    pub human_only: bool,
    /// A human-only bot's acknowledgement when a conversation starts
    /// (absent: "Thanks for reaching out! We'll get back to you soon.").
    pub auto_reply: Option<String>,
    /// Opening hours, the offline message and automatic assignment.
    pub handoff: HandoffSettings,
    /// Increases with every change; send it as `If-Match` to update safely.
    pub version: i64,
    /// When the bot was created.
    pub created_at: DateTime<Utc>,
    /// When the bot last changed.
    pub updated_at: DateTime<Utc>,
}

/// One opening on one weekday, local time.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct OpeningSpan {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`.
    pub day: String,
    /// `HH:MM`.
    pub opens: String,
    /// `HH:MM`, after `opens` (split a span over midnight in two).
    pub closes: String,
}

/// Weekly opening hours.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct BusinessHours {
    /// An IANA time zone, such as `Europe/Lisbon`.
    pub time_zone: String,
    /// The openings, at most 28.
    #[oai(validator(max_items = 28))]
    pub spans: Vec<OpeningSpan>,
}

/// What happens when a visitor asks for a person.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct HandoffSettings {
    /// When people answer; absent: at any time.
    pub business_hours: Option<BusinessHours>,
    /// What the bot says when nobody can answer now (outside the hours, or
    /// nobody online), before "We are back ..." and the lead form; absent: a default.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub offline_message: Option<String>,
    /// Give each conversation handed to a person to an online member, in
    /// turn (the one with the fewest open conversations first).
    #[oai(default)]
    pub auto_assign: bool,
    /// Open conversations a member may have before automatic assignment
    /// passes them by; 0: no cap.
    #[oai(default, validator(maximum(value = "1000")))]
    pub max_open_per_member: u32,
}

impl From<HandoffSettings> for parley_domain::availability::HandoffSettings {
    fn from(h: HandoffSettings) -> Self {
        parley_domain::availability::HandoffSettings {
            business_hours: h.business_hours.map(|b| parley_domain::availability::BusinessHours {
                time_zone: b.time_zone,
                spans: b
                    .spans
                    .into_iter()
                    .map(|s| parley_domain::availability::OpeningSpan {
                        day: s.day,
                        opens: s.opens,
                        closes: s.closes,
                    })
                    .collect(),
            }),
            offline_message: h.offline_message,
            auto_assign: h.auto_assign,
            max_open_per_member: h.max_open_per_member,
        }
    }
}

impl From<parley_domain::availability::HandoffSettings> for HandoffSettings {
    fn from(h: parley_domain::availability::HandoffSettings) -> Self {
        HandoffSettings {
            business_hours: h.business_hours.map(|b| BusinessHours {
                time_zone: b.time_zone,
                spans: b
                    .spans
                    .into_iter()
                    .map(|s| OpeningSpan {
                        day: s.day,
                        opens: s.opens,
                        closes: s.closes,
                    })
                    .collect(),
            }),
            offline_message: h.offline_message,
            auto_assign: h.auto_assign,
            max_open_per_member: h.max_open_per_member,
        }
    }
}

/// Changes to the model settings; absent fields keep their value.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ModelSettingsPatch {
    /// How answers are generated.
    pub provider: Option<Provider>,
    /// Model name for the `openai` provider; `null` clears it.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub model: MaybeUndefined<Text>,
    /// Sampling temperature, 0 to 2.
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: Option<f64>,
    /// Longest answer, in tokens, 1 to 32000.
    #[oai(validator(minimum(value = "1"), maximum(value = "32000")))]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct CreateBotRequest {
    /// Display name, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// Derived from the name when absent (made unique with a number).
    #[oai(validator(min_length = 1, max_length = 64))]
    pub slug: Option<Text>,
    /// The website the bot serves (http or https).
    #[oai(validator(max_length = 2048))]
    pub website: Option<Text>,
    /// The persona / system prompt; a sensible default when absent.
    #[oai(validator(max_length = 8000))]
    pub persona: Option<Text>,
    /// Language tag of the answers; default `en`.
    #[oai(validator(min_length = 2, max_length = 35))]
    pub language: Option<Text>,
    /// The first message visitors see.
    #[oai(validator(max_length = 1000))]
    pub welcome_message: Option<Text>,
    /// Model settings; default: the offline `extractive` provider.
    pub model: Option<ModelSettingsPatch>,
    /// Whether answers stream by default; default `true`.
    pub streaming: Option<bool>,
    /// Whether the bot answers visitors; default `true`.
    pub active: Option<bool>,
    /// Visitor messages per minute the bot answers, all visitors together, 1 to 100000.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub rate_limit_per_minute: Option<u32>,
    /// Live chat only: no AI answers, every conversation waits for a person; default `false`.
    pub human_only: Option<bool>,
    /// A human-only bot's acknowledgement when a conversation starts, 1 to 1000 characters.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub auto_reply: Option<Text>,
    /// Opening hours, the offline message and automatic assignment.
    pub handoff: Option<HandoffSettings>,
}

/// Fields to change; absent fields keep their value.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct UpdateBotRequest {
    /// Display name, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    /// Unique among your organization's bots.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub slug: Option<Text>,
    /// `null` clears the website.
    #[oai(validator(max_length = 2048))]
    pub website: MaybeUndefined<Text>,
    /// The persona / system prompt.
    #[oai(validator(max_length = 8000))]
    pub persona: Option<Text>,
    /// Language tag of the answers, e.g. `en` or `pt-BR`.
    #[oai(validator(min_length = 2, max_length = 35))]
    pub language: Option<Text>,
    /// The first message visitors see.
    #[oai(validator(max_length = 1000))]
    pub welcome_message: Option<Text>,
    /// Model settings to change.
    pub model: Option<ModelSettingsPatch>,
    /// Whether answers stream by default.
    pub streaming: Option<bool>,
    /// Whether the bot answers visitors.
    pub active: Option<bool>,
    /// Visitor messages per minute the bot answers, 1 to 100000; `null` removes the limit.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub rate_limit_per_minute: MaybeUndefined<u32>,
    /// Live chat only: no AI answers, every conversation waits for a person.
    pub human_only: Option<bool>,
    /// A human-only bot's acknowledgement when a conversation starts; `null` restores the default.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub auto_reply: MaybeUndefined<Text>,
    /// Replaces the hand-off settings as a whole.
    pub handoff: Option<HandoffSettings>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BotList {
    /// One page of bots, oldest first.
    pub data: Vec<Bot>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum CreateBotResponse {
    /// The bot was created.
    #[oai(status = 201)]
    Created(
        Json<Bot>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Location")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum BotResponse {
    /// The bot.
    #[oai(status = 200)]
    Ok(Json<Bot>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum DeleteBotResponse {
    /// The bot is deleted: it stops being served at once; its data is purged in the background.
    #[oai(status = 204)]
    Deleted,
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match: "3"` (or `W/"3"`, or `3`) → 3; `*` → no condition.
fn parse_if_match(value: Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = value else { return Ok(None) };
    let v = raw.trim();
    if v == "*" {
        return Ok(None);
    }
    v.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "If-Match must be a bot version such as \"3\"",
            )
        })
}

impl From<bots::Model> for Bot {
    fn from(m: bots::Model) -> Self {
        let model: domain::ModelSettings = serde_json::from_value(m.model).unwrap_or_default();
        Bot {
            id: m.id,
            name: m.name,
            slug: m.slug,
            website: m.website,
            persona: m.persona,
            language: m.language,
            welcome_message: m.welcome_message,
            model: ModelSettings {
                provider: if model.provider == "openai" {
                    Provider::Openai
                } else {
                    Provider::Extractive
                },
                model: model.model,
                temperature: model.temperature,
                max_tokens: model.max_tokens,
            },
            streaming: m.streaming,
            active: m.active,
            rate_limit_per_minute: m.rate_limit_per_minute.and_then(|v| u32::try_from(v).ok()),
            human_only: m.human_only,
            auto_reply: m.auto_reply,
            handoff: serde_json::from_value::<parley_domain::availability::HandoffSettings>(m.handoff)
                .unwrap_or_default()
                .into(),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn text(value: Option<Text>) -> Option<String> {
    value.map(Text::into_inner)
}

/// Absent: keep; `null`: clear; a value: set.
fn maybe_text(value: MaybeUndefined<Text>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v.into_inner())),
    }
}

fn model_patch(p: Option<ModelSettingsPatch>) -> ModelPatch {
    let Some(p) = p else {
        return ModelPatch::default();
    };
    ModelPatch {
        provider: p.provider.map(|x| x.as_str().to_owned()),
        model: maybe_text(p.model),
        temperature: p.temperature,
        max_tokens: p.max_tokens,
    }
}

async fn find(state: &AppState, org_id: Uuid, bot_id: Uuid) -> Result<Bot, ApiError> {
    read::bot(&state.store, org_id, bot_id)
        .await?
        .map(Bot::from)
        .ok_or_else(|| DomainError::BotNotFound.into())
}

/// A free slug: `wanted` itself, or `wanted-2`, `wanted-3`...
async fn free_slug(state: &AppState, org_id: Uuid, wanted: &str) -> Result<String, ApiError> {
    let taken: Vec<String> = read::slugs_like(&state.store, org_id, wanted)
        .await?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    if !taken.iter().any(|s| s == wanted) {
        return Ok(wanted.to_owned());
    }
    let base: String = wanted.chars().take(58).collect();
    let n = (2..).find(|n| !taken.contains(&format!("{base}-{n}"))).unwrap_or(2);
    Ok(format!("{base}-{n}"))
}

async fn ensure_slug_free(state: &AppState, org_id: Uuid, slug: &str, except: Option<Uuid>) -> Result<(), ApiError> {
    let taken = read::slugs_like(&state.store, org_id, slug).await?;
    if taken.iter().any(|(id, s)| s == slug && Some(*id) != except) {
        return Err(DomainError::SlugTaken(slug.to_owned()).into());
    }
    Ok(())
}

/// Store errors of bot commands; a unique index refusal is a taken slug.
fn bot_error(e: StoreError, slug: Option<&str>) -> ApiError {
    match e {
        StoreError::Unique { projection: "bots", .. } => {
            DomainError::SlugTaken(slug.unwrap_or_default().to_owned()).into()
        }
        other @ (StoreError::Conflict { .. }
        | StoreError::IdempotencyRace
        | StoreError::Unique { .. }
        | StoreError::Domain(_)
        | StoreError::Db(_)
        | StoreError::Upcast(_)) => other.into(),
    }
}

fn metadata(principal: &Principal, request_id: &RequestId) -> Metadata {
    principal.metadata(&request_id.0)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Bots")]
impl BotsApi {
    /// List bots
    ///
    /// Your organization's bots, oldest first, a page at a time.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots", method = "get", operation_id = "list_bots")]
    async fn list(
        &self,
        auth: AgentAuth,
        /// Page size, 1 to 100.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u64>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<Uuid>>,
    ) -> Result<Json<BotList>, ApiError> {
        let state = live(&self.state)?;
        let page = read::bots(&state.store, auth.0.org_id, cursor.0, limit.0).await?;
        Ok(Json(BotList {
            data: page.items.into_iter().map(Bot::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Create a bot
    ///
    /// Creates a bot with its persona and settings; absent fields get defaults.
    /// Answers `201` with the bot and its `ETag`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots", method = "post", operation_id = "create_bot")]
    async fn create(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        /// Makes a retried request safe: see the API description.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateBotRequest>,
    ) -> Result<CreateBotResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let idem = Idempotency::from_header(idempotency_key.0, "create_bot", &body.0)?;
        if let Some(bot_id) = idempotency::prior(&idem, state, org_id).await? {
            return answer_again(state, org_id, bot_id).await;
        }
        state.room_for(org_id, parley_domain::usage::Quota::Bots).await?;
        let req = body.0;
        let slug = match text(req.slug) {
            Some(slug) => {
                ensure_slug_free(state, org_id, &slug, None).await?;
                slug
            }
            None => free_slug(state, org_id, &domain::slugify(req.name.as_ref())).await?,
        };
        let bot_id = new_id();
        let draft = BotDraft {
            name: req.name.into_inner(),
            slug: Some(slug.clone()),
            website: text(req.website),
            persona: text(req.persona),
            language: text(req.language),
            welcome_message: text(req.welcome_message),
            model: model_patch(req.model),
            streaming: req.streaming,
            active: req.active,
            rate_limit_per_minute: req.rate_limit_per_minute,
            human_only: req.human_only,
            auto_reply: text(req.auto_reply),
            handoff: req.handoff.map(Into::into),
        };
        let executed = state
            .store
            .execute::<BotAggregate>(Execute {
                org_id,
                stream_id: bot_id,
                expected_version: Some(0),
                command: BotCommand::Create {
                    bot_id,
                    org_id,
                    draft,
                    site_key: domain::new_site_key(),
                },
                metadata: metadata(&auth.0, &request_id),
                idempotency: idempotency::record(&idem, bot_id),
            })
            .await;
        match executed {
            Ok(_) => {}
            Err(StoreError::IdempotencyRace) => {
                return answer_again(state, org_id, idempotency::race_winner(&idem, state, org_id).await?).await;
            }
            Err(e) => return Err(bot_error(e, Some(&slug))),
        }
        let bot = find(state, org_id, bot_id).await?;
        Ok(CreateBotResponse::Created(
            Json(bot.clone()),
            etag(bot.version),
            format!("/api/v1/bots/{bot_id}"),
            None,
        ))
    }

    /// Get a bot
    ///
    /// One bot of your organization, with its current version as `ETag`.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots/:bot_id", method = "get", operation_id = "get_bot")]
    async fn get(&self, auth: AgentAuth, bot_id: Path<Uuid>) -> Result<BotResponse, ApiError> {
        let state = live(&self.state)?;
        let bot = find(state, auth.0.org_id, bot_id.0).await?;
        Ok(BotResponse::Ok(Json(bot.clone()), etag(bot.version)))
    }

    /// Update a bot
    ///
    /// Changes only the fields sent. With `If-Match: "<version>"` the change
    /// applies only if nobody changed the bot since; otherwise `409 CONFLICT`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots/:bot_id", method = "patch", operation_id = "update_bot")]
    async fn update(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        /// The version the bot must still be at, as its ETag (`"3"`).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<UpdateBotRequest>,
    ) -> Result<BotResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let expected_version = parse_if_match(if_match.0)?;
        let req = body.0;
        let slug = text(req.slug);
        if let Some(slug) = &slug {
            ensure_slug_free(state, org_id, slug, Some(bot_id.0)).await?;
        }
        let patch = BotPatch {
            name: text(req.name),
            slug: slug.clone(),
            website: maybe_text(req.website),
            persona: text(req.persona),
            language: text(req.language),
            welcome_message: text(req.welcome_message),
            model: model_patch(req.model),
            streaming: req.streaming,
            active: req.active,
            rate_limit_per_minute: match req.rate_limit_per_minute {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
            human_only: req.human_only,
            auto_reply: maybe_text(req.auto_reply),
            handoff: req.handoff.map(Into::into),
        };
        state
            .store
            .execute::<BotAggregate>(Execute {
                org_id,
                stream_id: bot_id.0,
                expected_version,
                command: BotCommand::Update { org_id, patch },
                metadata: metadata(&auth.0, &request_id),
                idempotency: None,
            })
            .await
            .map_err(|e| bot_error(e, slug.as_deref()))?;
        let bot = find(state, org_id, bot_id.0).await?;
        Ok(BotResponse::Ok(Json(bot.clone()), etag(bot.version)))
    }

    /// Delete a bot
    ///
    /// The bot stops being served at once. Its derived data is purged by a
    /// background job (event `bot.purged`).
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots/:bot_id", method = "delete", operation_id = "delete_bot")]
    async fn delete(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        /// The version the bot must still be at, as its ETag (`"3"`).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<DeleteBotResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        state
            .store
            .execute::<BotAggregate>(Execute {
                org_id,
                stream_id: bot_id.0,
                expected_version: parse_if_match(if_match.0)?,
                command: BotCommand::Delete { org_id },
                metadata: metadata(&auth.0, &request_id),
                idempotency: None,
            })
            .await?;
        Ok(DeleteBotResponse::Deleted)
    }
}

fn default_limit() -> u64 {
    20
}

/// The answer to a retried creation: the bot as it is now.
async fn answer_again(state: &AppState, org_id: Uuid, bot_id: Uuid) -> Result<CreateBotResponse, ApiError> {
    let bot = find(state, org_id, bot_id).await?;
    Ok(CreateBotResponse::Created(
        Json(bot.clone()),
        etag(bot.version),
        format!("/api/v1/bots/{bot_id}"),
        Some("true".to_owned()),
    ))
}
