//! The OpenAPI operations: one file per resource, none importing another.

pub mod bots;
pub mod chat;
pub mod conversations;
pub mod events;
pub mod export;
pub mod insights;
pub mod keys;
pub mod leads;
pub mod members;
pub mod ops;
pub mod saved_replies;
pub mod session;
pub mod sources;
pub mod tags;
pub mod usage;
pub mod visitor;
pub mod webhooks;
pub mod widget;
pub mod workflow;

use poem_openapi::OpenApiService;

use crate::state::AppState;

pub type Apis = (
    // The people: signing in and the organization's members.
    (session::SessionApi, members::MembersApi),
    keys::KeysApi,
    bots::BotsApi,
    sources::SourcesApi,
    chat::ChatApi,
    (
        conversations::ConversationsApi,
        workflow::WorkflowApi,
        saved_replies::SavedRepliesApi,
    ),
    export::ExportApi,
    insights::InsightsApi,
    widget::WidgetApi,
    leads::LeadsApi,
    visitor::VisitorApi,
    webhooks::WebhooksApi,
    usage::UsageApi,
    events::EventsApi,
    ops::OpsApi,
);

/// The OpenAPI service. `state` is `None` only to print the spec.
pub fn service(state: Option<AppState>) -> OpenApiService<Apis, ()> {
    let apis = (
        (
            session::SessionApi { state: state.clone() },
            members::MembersApi { state: state.clone() },
        ),
        keys::KeysApi { state: state.clone() },
        bots::BotsApi { state: state.clone() },
        sources::SourcesApi { state: state.clone() },
        chat::ChatApi { state: state.clone() },
        (
            conversations::ConversationsApi { state: state.clone() },
            workflow::WorkflowApi { state: state.clone() },
            saved_replies::SavedRepliesApi { state: state.clone() },
        ),
        export::ExportApi { state: state.clone() },
        insights::InsightsApi { state: state.clone() },
        widget::WidgetApi { state: state.clone() },
        leads::LeadsApi { state: state.clone() },
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
