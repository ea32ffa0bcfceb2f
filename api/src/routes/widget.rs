//! `/api/v1/bots/{id}/widget-settings` and `/site-key`: how a bot's chat
//! widget looks, what it asks visitors, which websites may embed it, and
//! the public key it uses.

use parley_domain::aggregates::bot::{Bot as BotAggregate, BotCommand, new_site_key};
use parley_domain::store::Execute;
use parley_domain::widget::{LeadCapture, WidgetSettings};
use parley_domain::{DomainError, store::read};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::schemas::widget::{LeadCaptureSpec, Position};

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::security::{AdminAuth, AgentAuth};
use crate::state::AppState;
use crate::types::Text;

pub struct WidgetApi {
    pub state: Option<AppState>,
}

/// A bot's widget settings, with the key and snippet to embed it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WidgetSettingsInfo {
    /// Theme colour, `#RRGGBB`.
    pub accent_color: String,
    /// Where the chat button sits.
    pub position: Position,
    /// The chat window's title (the bot's name when absent).
    pub title: Option<String>,
    /// An https image shown in the header.
    pub avatar_url: Option<String>,
    /// The greeting (the bot's `welcome_message` when absent).
    pub welcome_message: Option<String>,
    /// Up to 6 suggested questions, shown as buttons.
    pub quick_prompts: Vec<String>,
    /// The lead form.
    pub lead_capture: LeadCaptureSpec,
    /// Origins whose pages may embed the widget and call the visitor API
    /// (`https://acme.example`, `https://*.acme.example`); empty: any origin.
    pub allowed_origins: Vec<String>,
    /// Whether answers show their sources.
    pub show_sources: bool,
    /// Whether visitors are asked to rate (1 to 5) a conversation a person closed.
    pub satisfaction_survey: bool,
    /// The bot's public site key (`ps_...`), used by the widget. Not a secret.
    pub site_key: Option<String>,
    /// The script tag to paste into a website.
    pub embed_snippet: Option<String>,
}

/// New widget settings; absent fields take their defaults.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct WidgetSettingsRequest {
    /// Theme colour, `#RRGGBB` (default `#3A82FF`).
    #[oai(validator(max_length = 7))]
    pub accent_color: Option<Text>,
    /// Where the chat button sits (default `bottom-right`).
    pub position: Option<Position>,
    /// The chat window's title, 1 to 60 characters.
    #[oai(validator(max_length = 60))]
    pub title: Option<Text>,
    /// An https image URL for the header.
    #[oai(validator(max_length = 2048))]
    pub avatar_url: Option<Text>,
    /// The greeting, 1 to 1,000 characters.
    #[oai(validator(max_length = 1000))]
    pub welcome_message: Option<Text>,
    /// Up to 6 suggested questions of 1 to 120 characters.
    #[oai(validator(max_items = 6))]
    pub quick_prompts: Option<Vec<Text>>,
    /// The lead form (default: name and email, asked at hand-off).
    pub lead_capture: Option<LeadCaptureSpec>,
    /// Origins allowed to embed the widget, at most 50 (default: any).
    #[oai(validator(max_items = 50))]
    pub allowed_origins: Option<Vec<Text>>,
    /// Whether answers show their sources (default true).
    pub show_sources: Option<bool>,
    /// Whether visitors are asked to rate a conversation a person closed (default true).
    pub satisfaction_survey: Option<bool>,
}

/// A new site key.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SiteKeyInfo {
    /// The bot's public site key; the previous one stops working at once.
    pub site_key: String,
    /// The script tag to paste into a website.
    pub embed_snippet: String,
}

fn snippet(base: &str, bot_id: Uuid, site_key: &str, accent: &str) -> String {
    format!(
        "<script src=\"{base}/widget.js\" data-bot-id=\"{bot_id}\" data-site-key=\"{site_key}\" \
         data-accent-color=\"{accent}\" async></script>"
    )
}

fn info(w: WidgetSettings, bot_id: Uuid, site_key: Option<String>, base: &str) -> WidgetSettingsInfo {
    WidgetSettingsInfo {
        embed_snippet: site_key.as_deref().map(|k| snippet(base, bot_id, k, &w.accent_color)),
        lead_capture: LeadCaptureSpec::from(&w.lead_capture),
        position: Position::parse(&w.position),
        accent_color: w.accent_color,
        title: w.title,
        avatar_url: w.avatar_url,
        welcome_message: w.welcome_message,
        quick_prompts: w.quick_prompts,
        allowed_origins: w.allowed_origins,
        show_sources: w.show_sources,
        satisfaction_survey: w.satisfaction_survey,
        site_key,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Widget")]
impl WidgetApi {
    /// Get a bot's widget settings
    ///
    /// The widget's look, lead form and allowed origins, with the bot's
    /// public site key and the script tag to embed it.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/bots/:bot_id/widget-settings",
        method = "get",
        operation_id = "get_widget_settings"
    )]
    async fn get(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        req: &poem::Request,
    ) -> Result<Json<WidgetSettingsInfo>, ApiError> {
        let state = live(&self.state)?;
        let bot = read::bot(&state.store, auth.0.org_id, bot_id.0)
            .await?
            .ok_or(DomainError::BotNotFound)?;
        let base = state.public_base(req.header("host"));
        Ok(Json(info(read::widget_of(&bot), bot.id, bot.site_key, &base)))
    }

    /// Replace a bot's widget settings
    ///
    /// Every field is checked (colours, https avatar URLs, origins without
    /// paths, lengths); all problems are reported at once with `422`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/widget-settings",
        method = "put",
        operation_id = "set_widget_settings"
    )]
    async fn put(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        req: &poem::Request,
        body: Json<WidgetSettingsRequest>,
    ) -> Result<Json<WidgetSettingsInfo>, ApiError> {
        let state = live(&self.state)?;
        let body = body.0;
        let defaults = WidgetSettings::default();
        let widget = WidgetSettings {
            accent_color: body.accent_color.map_or(defaults.accent_color, Text::into_inner),
            position: body.position.map_or(defaults.position, |p| p.as_str().to_owned()),
            title: body.title.map(Text::into_inner),
            avatar_url: body.avatar_url.map(Text::into_inner),
            welcome_message: body.welcome_message.map(Text::into_inner),
            quick_prompts: body
                .quick_prompts
                .map(|p| p.into_iter().map(Text::into_inner).collect())
                .unwrap_or_default(),
            lead_capture: body.lead_capture.map_or(defaults.lead_capture, LeadCapture::from),
            allowed_origins: body
                .allowed_origins
                .map(|o| o.into_iter().map(Text::into_inner).collect())
                .unwrap_or_default(),
            show_sources: body.show_sources.unwrap_or(defaults.show_sources),
            satisfaction_survey: body.satisfaction_survey.unwrap_or(defaults.satisfaction_survey),
        };
        let org_id = auth.0.org_id;
        let executed = state
            .store
            .execute::<BotAggregate>(Execute {
                org_id,
                stream_id: bot_id.0,
                expected_version: None,
                command: BotCommand::UpdateWidget { org_id, widget },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        let base = state.public_base(req.header("host"));
        let widget = executed.state.widget.unwrap_or_default();
        Ok(Json(info(widget, bot_id.0, executed.state.site_key, &base)))
    }

    /// Issue a new site key
    ///
    /// The widget's public key; rotate it when it is used where it should
    /// not be. The previous key stops working at once, so update the script
    /// tag on your website.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots/:bot_id/site-key", method = "post", operation_id = "rotate_site_key")]
    async fn rotate(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        req: &poem::Request,
    ) -> Result<Json<SiteKeyInfo>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let site_key = new_site_key();
        let executed = state
            .store
            .execute::<BotAggregate>(Execute {
                org_id,
                stream_id: bot_id.0,
                expected_version: None,
                command: BotCommand::RotateSiteKey {
                    org_id,
                    site_key: site_key.clone(),
                },
                metadata: auth.0.metadata(&request_id.0.0),
                idempotency: None,
            })
            .await?;
        let accent = executed.state.widget.unwrap_or_default().accent_color;
        let base = state.public_base(req.header("host"));
        Ok(Json(SiteKeyInfo {
            embed_snippet: snippet(&base, bot_id.0, &site_key, &accent),
            site_key,
        }))
    }
}
