//! Queries on the read models, shared by the API and the workers. Every query
//! is scoped to one organization; another organization's rows are invisible.

use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::store::Store;
use crate::store::entities::{api_key_usage, api_keys, bots};

/// One page of a list, and the cursor of the next page when there is one.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Uuid>,
}

pub(crate) fn page<T>(mut items: Vec<T>, limit: u64, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let next_cursor = if items.len() as u64 > limit {
        items.truncate(limit as usize);
        items.last().map(&id)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// A live (not deleted) bot of the organization.
pub async fn bot(store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<Option<bots::Model>, DbErr> {
    bots::Entity::find_by_id(bot_id)
        .filter(bots::Column::OrgId.eq(org_id))
        .filter(bots::Column::DeletedAt.is_null())
        .one(store.db())
        .await
}

/// Live bots in creation order (ids are time-ordered), after `cursor`.
pub async fn bots(store: &Store, org_id: Uuid, cursor: Option<Uuid>, limit: u64) -> Result<Page<bots::Model>, DbErr> {
    let mut q = bots::Entity::find()
        .filter(bots::Column::OrgId.eq(org_id))
        .filter(bots::Column::DeletedAt.is_null());
    if let Some(after) = cursor {
        q = q.filter(bots::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(bots::Column::Id)
        .limit(limit + 1)
        .all(store.db())
        .await?;
    Ok(page(rows, limit, |b| b.id))
}

/// Slugs of live bots of the organization that start with `prefix`.
pub async fn slugs_like(store: &Store, org_id: Uuid, prefix: &str) -> Result<Vec<(Uuid, String)>, DbErr> {
    let rows = bots::Entity::find()
        .filter(bots::Column::OrgId.eq(org_id))
        .filter(bots::Column::DeletedAt.is_null())
        .filter(bots::Column::Slug.starts_with(prefix))
        .all(store.db())
        .await?;
    Ok(rows.into_iter().map(|b| (b.id, b.slug)).collect())
}

/// An API key and when it was last used.
pub struct ApiKeyRow {
    pub key: api_keys::Model,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn with_usage(store: &Store, keys: Vec<api_keys::Model>) -> Result<Vec<ApiKeyRow>, DbErr> {
    let ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    let usage = api_key_usage::Entity::find()
        .filter(api_key_usage::Column::KeyId.is_in(ids))
        .all(store.db())
        .await?;
    Ok(keys
        .into_iter()
        .map(|key| {
            let last_used_at = usage.iter().find(|u| u.key_id == key.id).map(|u| u.last_used_at);
            ApiKeyRow { key, last_used_at }
        })
        .collect())
}

pub async fn api_keys(store: &Store, org_id: Uuid) -> Result<Vec<ApiKeyRow>, DbErr> {
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::OrgId.eq(org_id))
        .order_by_asc(api_keys::Column::Id)
        .all(store.db())
        .await?;
    with_usage(store, keys).await
}

pub async fn api_key(store: &Store, org_id: Uuid, key_id: Uuid) -> Result<Option<ApiKeyRow>, DbErr> {
    let key = api_keys::Entity::find_by_id(key_id)
        .filter(api_keys::Column::OrgId.eq(org_id))
        .one(store.db())
        .await?;
    match key {
        Some(k) => Ok(with_usage(store, vec![k]).await?.pop()),
        None => Ok(None),
    }
}

/// The key with this hash, revoked or not.
pub async fn api_key_by_hash(store: &Store, hash: &str) -> Result<Option<api_keys::Model>, DbErr> {
    api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash))
        .one(store.db())
        .await
}

/// Ids of a bot's sources that are not deleted.
pub async fn live_source_ids(store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    use crate::store::entities::sources;
    sources::Entity::find()
        .select_only()
        .column(sources::Column::Id)
        .filter(sources::Column::OrgId.eq(org_id))
        .filter(sources::Column::BotId.eq(bot_id))
        .filter(sources::Column::DeletedAt.is_null())
        .into_tuple()
        .all(store.db())
        .await
}

/// A live source of a live bot of the organization.
pub async fn source(
    store: &Store,
    org_id: Uuid,
    bot_id: Uuid,
    source_id: Uuid,
) -> Result<Option<crate::store::entities::sources::Model>, DbErr> {
    use crate::store::entities::sources;
    sources::Entity::find_by_id(source_id)
        .filter(sources::Column::OrgId.eq(org_id))
        .filter(sources::Column::BotId.eq(bot_id))
        .filter(sources::Column::DeletedAt.is_null())
        .one(store.db())
        .await
}

/// A bot's live sources, oldest first, optionally of one status or kind.
pub async fn sources(
    store: &Store,
    org_id: Uuid,
    bot_id: Uuid,
    status: Option<&str>,
    kind: Option<&str>,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<Page<crate::store::entities::sources::Model>, DbErr> {
    use crate::store::entities::sources;
    let mut q = sources::Entity::find()
        .filter(sources::Column::OrgId.eq(org_id))
        .filter(sources::Column::BotId.eq(bot_id))
        .filter(sources::Column::DeletedAt.is_null());
    if let Some(status) = status {
        q = q.filter(sources::Column::Status.eq(status));
    }
    if let Some(kind) = kind {
        q = q.filter(sources::Column::Kind.eq(kind));
    }
    if let Some(after) = cursor {
        q = q.filter(sources::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(sources::Column::Id)
        .limit(limit + 1)
        .all(store.db())
        .await?;
    Ok(page(rows, limit, |s| s.id))
}

/// How many live sources a bot has.
pub async fn source_count(store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<u64, DbErr> {
    use crate::store::entities::sources;
    use sea_orm::PaginatorTrait;
    sources::Entity::find()
        .filter(sources::Column::OrgId.eq(org_id))
        .filter(sources::Column::BotId.eq(bot_id))
        .filter(sources::Column::DeletedAt.is_null())
        .count(store.db())
        .await
}

/// The pages of a source, by key.
pub async fn source_pages(
    store: &Store,
    source_id: Uuid,
) -> Result<Vec<crate::store::entities::source_pages::Model>, DbErr> {
    use crate::store::entities::source_pages;
    source_pages::Entity::find()
        .filter(source_pages::Column::SourceId.eq(source_id))
        .order_by_asc(source_pages::Column::DocKey)
        .all(store.db())
        .await
}

/// One page or document of a source.
pub async fn source_page(
    store: &Store,
    source_id: Uuid,
    doc_key: &str,
) -> Result<Option<crate::store::entities::source_pages::Model>, DbErr> {
    use crate::store::entities::source_pages;
    source_pages::Entity::find()
        .filter(source_pages::Column::SourceId.eq(source_id))
        .filter(source_pages::Column::DocKey.eq(doc_key))
        .one(store.db())
        .await
}

/// Sources whose schedule says they are due, as (org, source), oldest due first.
pub async fn due_sources(
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    use crate::store::entities::sources;
    sources::Entity::find()
        .select_only()
        .column(sources::Column::OrgId)
        .column(sources::Column::Id)
        .filter(sources::Column::DeletedAt.is_null())
        .filter(sources::Column::NextRefreshAt.lte(now))
        .filter(sources::Column::Status.is_in(["ready", "failed"]))
        .order_by_asc(sources::Column::NextRefreshAt)
        .limit(limit)
        .into_tuple()
        .all(store.db())
        .await
}

/// A conversation of the organization.
pub async fn conversation(
    store: &Store,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<Option<crate::store::entities::conversations::Model>, DbErr> {
    use crate::store::entities::conversations;
    conversations::Entity::find_by_id(conversation_id)
        .filter(conversations::Column::OrgId.eq(org_id))
        .one(store.db())
        .await
}

/// Which conversations to list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub bot_id: Option<Uuid>,
    pub status: Option<&'static str>,
    pub visitor_id: Option<String>,
    /// `Some(true)`: with at least one fallback answer; `Some(false)`: none.
    pub unanswered: Option<bool>,
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    pub tag: Option<String>,
    /// `Some(true)`: with a rated answer; `Some(false)`: none rated.
    pub has_feedback: Option<bool>,
    /// Only conversations nobody handles, or those of one member.
    pub assignee: Option<AssigneeFilter>,
}

/// Whose conversations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Nobody,
    Member(Uuid),
}

/// The organization's conversations, newest first (ids are time-ordered),
/// filtered, after `cursor`.
pub async fn conversations(
    store: &Store,
    org_id: Uuid,
    filter: &ConversationFilter,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<Vec<crate::store::entities::conversations::Model>, DbErr> {
    use crate::store::entities::conversations;
    let mut q = conversations::Entity::find().filter(conversations::Column::OrgId.eq(org_id));
    if let Some(bot_id) = filter.bot_id {
        q = q.filter(conversations::Column::BotId.eq(bot_id));
    }
    if let Some(status) = filter.status {
        q = q.filter(conversations::Column::Status.eq(status));
    }
    if let Some(visitor) = &filter.visitor_id {
        q = q.filter(conversations::Column::VisitorId.eq(visitor.clone()));
    }
    match filter.assignee {
        Some(AssigneeFilter::Nobody) => q = q.filter(conversations::Column::AssigneeId.is_null()),
        Some(AssigneeFilter::Member(id)) => q = q.filter(conversations::Column::AssigneeId.eq(id)),
        None => {}
    }
    match filter.unanswered {
        Some(true) => q = q.filter(conversations::Column::Unanswered.gt(0)),
        Some(false) => q = q.filter(conversations::Column::Unanswered.eq(0)),
        None => {}
    }
    if let Some(after) = filter.created_after {
        q = q.filter(conversations::Column::CreatedAt.gte(after));
    }
    if let Some(before) = filter.created_before {
        q = q.filter(conversations::Column::CreatedAt.lt(before));
    }
    if let Some(tag) = &filter.tag {
        use crate::store::entities::conversation_tags;
        use sea_orm::sea_query::Query;
        q = q.filter(
            conversations::Column::Id.in_subquery(
                Query::select()
                    .column(conversation_tags::Column::ConversationId)
                    .from(conversation_tags::Entity)
                    .and_where(conversation_tags::Column::OrgId.eq(org_id))
                    .and_where(conversation_tags::Column::Tag.eq(tag.clone()))
                    .to_owned(),
            ),
        );
    }
    if let Some(rated) = filter.has_feedback {
        use crate::store::entities::messages;
        use sea_orm::sea_query::Query;
        let with_feedback = Query::select()
            .column(messages::Column::ConversationId)
            .from(messages::Entity)
            .and_where(messages::Column::OrgId.eq(org_id))
            .and_where(messages::Column::Feedback.is_not_null())
            .to_owned();
        q = if rated {
            q.filter(conversations::Column::Id.in_subquery(with_feedback))
        } else {
            q.filter(conversations::Column::Id.not_in_subquery(with_feedback))
        };
    }
    if let Some(cursor) = cursor {
        q = q.filter(conversations::Column::Id.lt(cursor));
    }
    q.order_by_desc(conversations::Column::Id)
        .limit(limit)
        .all(store.db())
        .await
}

/// The tags of some conversations, by conversation.
pub async fn tags_of(
    store: &Store,
    conversation_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, DbErr> {
    use crate::store::entities::conversation_tags;
    let mut out: std::collections::HashMap<Uuid, Vec<String>> = std::collections::HashMap::new();
    for batch in conversation_ids.chunks(500) {
        let rows = conversation_tags::Entity::find()
            .filter(conversation_tags::Column::ConversationId.is_in(batch.to_vec()))
            .order_by_asc(conversation_tags::Column::Tag)
            .all(store.db())
            .await?;
        for r in rows {
            out.entry(r.conversation_id).or_default().push(r.tag);
        }
    }
    Ok(out)
}

/// One message of a conversation.
pub async fn message(
    store: &Store,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<Option<crate::store::entities::messages::Model>, DbErr> {
    use crate::store::entities::messages;
    messages::Entity::find_by_id(message_id)
        .filter(messages::Column::ConversationId.eq(conversation_id))
        .one(store.db())
        .await
}

/// A conversation's messages in order.
pub async fn messages(
    store: &Store,
    conversation_id: Uuid,
) -> Result<Vec<crate::store::entities::messages::Model>, DbErr> {
    use crate::store::entities::messages;
    messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation_id))
        .order_by_asc(messages::Column::Seq)
        .all(store.db())
        .await
}

/// The messages of several conversations in one query: each conversation's
/// in order, conversations in no particular order.
pub async fn messages_of(
    store: &Store,
    conversation_ids: &[Uuid],
) -> Result<Vec<crate::store::entities::messages::Model>, DbErr> {
    use crate::store::entities::messages;
    if conversation_ids.is_empty() {
        return Ok(vec![]);
    }
    messages::Entity::find()
        .filter(messages::Column::ConversationId.is_in(conversation_ids.iter().copied()))
        .order_by_asc(messages::Column::ConversationId)
        .order_by_asc(messages::Column::Seq)
        .all(store.db())
        .await
}

/// Answers of a bot rated up and down.
pub async fn feedback_counts(store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<(u64, u64), DbErr> {
    use crate::store::entities::messages;
    use sea_orm::PaginatorTrait;
    let count = |rating: &'static str| {
        messages::Entity::find()
            .filter(messages::Column::OrgId.eq(org_id))
            .filter(messages::Column::BotId.eq(bot_id))
            .filter(messages::Column::Feedback.eq(rating))
            .count(store.db())
    };
    Ok((count("up").await?, count("down").await?))
}

/// A live, active bot by id alone: for the public (visitor) endpoints, which
/// the bot's site key authorizes, not an organization's key.
pub async fn live_bot_by_id(store: &Store, bot_id: Uuid) -> Result<Option<bots::Model>, DbErr> {
    bots::Entity::find_by_id(bot_id)
        .filter(bots::Column::DeletedAt.is_null())
        .filter(bots::Column::Active.eq(true))
        .one(store.db())
        .await
}

/// A bot's widget settings (the defaults until they are changed).
pub fn widget_of(bot: &bots::Model) -> crate::widget::WidgetSettings {
    bot.widget
        .as_ref()
        .and_then(|w| serde_json::from_value(w.clone()).ok())
        .unwrap_or_default()
}

/// A conversation of a bot (visitor endpoints check the bot, not an org).
pub async fn conversation_of_bot(
    store: &Store,
    bot_id: Uuid,
    conversation_id: Uuid,
) -> Result<Option<crate::store::entities::conversations::Model>, DbErr> {
    use crate::store::entities::conversations;
    conversations::Entity::find_by_id(conversation_id)
        .filter(conversations::Column::BotId.eq(bot_id))
        .one(store.db())
        .await
}

/// The widget conversation a visitor token started with a bot.
pub async fn conversation_by_visitor_token(
    store: &Store,
    bot_id: Uuid,
    visitor_token: &str,
) -> Result<Option<crate::store::entities::conversations::Model>, DbErr> {
    use crate::store::entities::conversations;
    conversations::Entity::find()
        .filter(conversations::Column::BotId.eq(bot_id))
        .filter(conversations::Column::VisitorToken.eq(visitor_token))
        .one(store.db())
        .await
}

/// A conversation's messages in order, only those stored strictly after
/// `after` when given.
pub async fn messages_after(
    store: &Store,
    conversation_id: Uuid,
    after: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<crate::store::entities::messages::Model>, DbErr> {
    use crate::store::entities::messages;
    let mut q = messages::Entity::find().filter(messages::Column::ConversationId.eq(conversation_id));
    if let Some(after) = after {
        q = q.filter(messages::Column::CreatedAt.gt(after));
    }
    q.order_by_asc(messages::Column::Seq).all(store.db()).await
}

/// The attachments of a conversation, oldest first.
pub async fn attachments_of(
    store: &Store,
    conversation_id: Uuid,
) -> Result<Vec<crate::store::entities::attachments::Model>, DbErr> {
    use crate::store::entities::attachments;
    attachments::Entity::find()
        .filter(attachments::Column::ConversationId.eq(conversation_id))
        .order_by_asc(attachments::Column::Id)
        .all(store.db())
        .await
}

/// One attachment of a conversation.
pub async fn attachment(
    store: &Store,
    conversation_id: Uuid,
    attachment_id: Uuid,
) -> Result<Option<crate::store::entities::attachments::Model>, DbErr> {
    use crate::store::entities::attachments;
    attachments::Entity::find_by_id(attachment_id)
        .filter(attachments::Column::ConversationId.eq(conversation_id))
        .one(store.db())
        .await
}

/// Which leads to list.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub bot_id: Option<Uuid>,
    pub email: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The organization's leads, newest first (by first capture), after `cursor`
/// (the previous page's last lead).
pub async fn leads(
    store: &Store,
    org_id: Uuid,
    filter: &LeadFilter,
    after: Option<&crate::store::entities::leads::Model>,
    limit: u64,
) -> Result<Page<crate::store::entities::leads::Model>, DbErr> {
    use crate::store::entities::leads;
    use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
    let mut q = leads::Entity::find().filter(leads::Column::OrgId.eq(org_id));
    if let Some(bot_id) = filter.bot_id {
        q = q.filter(leads::Column::BotId.eq(bot_id));
    }
    if let Some(email) = &filter.email {
        q = q.filter(Expr::expr(Func::lower(Expr::col(leads::Column::Email))).eq(email.to_lowercase()));
    }
    if let Some(conversation_id) = filter.conversation_id {
        q = q.filter(leads::Column::ConversationId.eq(conversation_id));
    }
    if let Some(after) = filter.created_after {
        q = q.filter(leads::Column::CreatedAt.gte(after));
    }
    if let Some(before) = filter.created_before {
        q = q.filter(leads::Column::CreatedAt.lt(before));
    }
    // Lead ids are not time-ordered (they come from the address), so pages
    // follow (created_at, id), after the last lead of the previous page.
    if let Some(last) = after {
        q = q.filter(
            Condition::any().add(leads::Column::CreatedAt.lt(last.created_at)).add(
                Condition::all()
                    .add(leads::Column::CreatedAt.eq(last.created_at))
                    .add(leads::Column::Id.lt(last.id)),
            ),
        );
    }
    let rows = q
        .order_by_desc(leads::Column::CreatedAt)
        .order_by_desc(leads::Column::Id)
        .limit(limit + 1)
        .all(store.db())
        .await?;
    Ok(page(rows, limit, |l| l.id))
}

/// One lead of the organization.
pub async fn lead(
    store: &Store,
    org_id: Uuid,
    lead_id: Uuid,
) -> Result<Option<crate::store::entities::leads::Model>, DbErr> {
    use crate::store::entities::leads;
    leads::Entity::find_by_id(lead_id)
        .filter(leads::Column::OrgId.eq(org_id))
        .one(store.db())
        .await
}

/// An organization.
pub async fn org(store: &Store, org_id: Uuid) -> Result<Option<crate::store::entities::orgs::Model>, DbErr> {
    crate::store::entities::orgs::Entity::find_by_id(org_id)
        .one(store.db())
        .await
}

/// A conversation's internal notes, oldest first.
pub async fn conversation_notes(
    store: &Store,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<Vec<crate::store::entities::conversation_notes::Model>, DbErr> {
    use crate::store::entities::conversation_notes;
    conversation_notes::Entity::find()
        .filter(conversation_notes::Column::OrgId.eq(org_id))
        .filter(conversation_notes::Column::ConversationId.eq(conversation_id))
        .order_by_asc(conversation_notes::Column::Id)
        .all(store.db())
        .await
}
