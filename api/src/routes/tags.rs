//! The tags that group the operations in the spec and in Swagger UI.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Signing in and out with an email and a password; your own account.
    Session,
    /// The people of your organization, their roles, and invitations.
    Members,
    /// Secret API keys of your organization.
    ApiKeys,
    /// Chatbots: persona, language, model and behaviour settings.
    Bots,
    /// A bot's knowledge: URLs, sites, texts, Q&A pairs and documents, and their indexing status.
    Sources,
    /// Answers (streamed or whole) and the retrieval debug search.
    Chat,
    /// Conversations: reading and exporting them, the hand-off to a person, tags, ratings and visitors' files.
    Conversations,
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
