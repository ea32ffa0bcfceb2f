//! The OpenAPI operations, one `OpenApi` struct per tag.

pub mod bots;
pub mod chat;
pub mod events;
pub mod export;
pub mod insights;
pub mod keys;
pub mod leads;
pub mod ops;
pub mod sources;
pub mod usage;
pub mod visitor;
pub mod webhooks;
pub mod widget;

use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

#[derive(Tags)]
pub enum ApiTags {
    /// Secret API keys of your organization.
    ApiKeys,
    /// Chatbots: persona, language, model and behaviour settings.
    Bots,
    /// A bot's knowledge: URLs, sites, texts, Q&A pairs and documents, and their indexing status.
    Sources,
    /// Answers (streamed or whole), the retrieval debug search, and conversations.
    Chat,
    /// A bot's chat widget: its look, lead form, allowed origins and site key.
    Widget,
    /// Contact details visitors left.
    Leads,
    /// Signed deliveries of your organization's events to your endpoints.
    Webhooks,
    /// The public API the widget uses, with a bot's site key instead of a secret key.
    Visitor,
    /// Use against the plan's quotas.
    Usage,
    /// The event feed: everything that happened in your organization, in order.
    Events,
    /// Health, readiness and metrics.
    Operations,
}

pub type Apis = (
    keys::KeysApi,
    bots::BotsApi,
    sources::SourcesApi,
    chat::ChatApi,
    chat::HandoffApi,
    export::ExportApi,
    insights::InsightsApi,
    widget::WidgetApi,
    leads::LeadsApi,
    visitor::AttachmentsApi,
    visitor::VisitorApi,
    webhooks::WebhooksApi,
    usage::UsageApi,
    events::EventsApi,
    ops::OpsApi,
);

/// The OpenAPI service. `state` is `None` only to print the spec.
pub fn service(state: Option<AppState>) -> OpenApiService<Apis, ()> {
    let apis = (
        keys::KeysApi { state: state.clone() },
        bots::BotsApi { state: state.clone() },
        sources::SourcesApi { state: state.clone() },
        chat::ChatApi { state: state.clone() },
        chat::HandoffApi { state: state.clone() },
        export::ExportApi { state: state.clone() },
        insights::InsightsApi { state: state.clone() },
        widget::WidgetApi { state: state.clone() },
        leads::LeadsApi { state: state.clone() },
        visitor::AttachmentsApi { state: state.clone() },
        visitor::VisitorApi { state: state.clone() },
        webhooks::WebhooksApi { state: state.clone() },
        usage::UsageApi { state: state.clone() },
        events::EventsApi { state: state.clone() },
        ops::OpsApi { state },
    );
    OpenApiService::new(apis, "Parley API", env!("CARGO_PKG_VERSION"))
        .description(include_str!("../../../docs/api-intro.md"))
        .license("AGPL-3.0-only")
}

/// The state of a live server. Handlers are never called on a spec-only service.
pub(crate) fn live(state: &Option<AppState>) -> Result<&AppState, crate::error::ApiError> {
    state
        .as_ref()
        .ok_or_else(|| crate::error::ApiError::internal("handler called without application state"))
}

/// `404 BOT_NOT_FOUND` unless the bot is a live bot of the organization.
pub(crate) async fn live_bot(
    state: &AppState,
    org_id: uuid::Uuid,
    bot_id: uuid::Uuid,
) -> Result<(), crate::error::ApiError> {
    match parley_domain::read::bot(&state.store, org_id, bot_id)
        .await
        .map_err(parley_domain::StoreError::Db)?
    {
        Some(_) => Ok(()),
        None => Err(parley_domain::DomainError::BotNotFound.into()),
    }
}
