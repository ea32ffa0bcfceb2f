//! Read models derived from the log. Each is rebuilt by replay and must give
//! the same rows: everything a row holds comes from events (times included).

pub mod api_keys;
pub mod attachments;
pub mod bots;
pub mod conversation_tags;
pub mod conversations;
pub mod leads;
pub mod members;
pub mod messages;
pub mod notes;
pub mod orgs;
pub mod people;
pub mod saved_replies;
mod shared;
pub mod source_pages;
pub mod sources;
pub mod webhooks;

use std::sync::Arc;

pub use shared::{ConnectionTraitObject, Projection};

/// Every projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(orgs::OrgsProjection),
        Arc::new(people::PeopleProjection),
        Arc::new(members::MembersProjection),
        Arc::new(api_keys::ApiKeysProjection),
        Arc::new(bots::BotsProjection),
        Arc::new(sources::SourcesProjection),
        Arc::new(source_pages::SourcePagesProjection),
        Arc::new(conversations::ConversationsProjection),
        Arc::new(messages::MessagesProjection),
        Arc::new(notes::NotesProjection),
        Arc::new(conversation_tags::ConversationTagsProjection),
        Arc::new(attachments::AttachmentsProjection),
        Arc::new(leads::LeadsProjection),
        Arc::new(webhooks::WebhooksProjection),
        Arc::new(saved_replies::SavedRepliesProjection),
    ]
}
