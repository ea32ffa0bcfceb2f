//! Read models derived from the log. Each is rebuilt by replay and must give
//! the same rows: everything a row holds comes from events (times included).

use async_trait::async_trait;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use std::sync::Arc;

use crate::aggregates::api_key::{API_KEY_CREATED, API_KEY_REVOKED, ApiKeyEvent};
use crate::aggregates::bot::{BOT_EVENTS, BotEvent, BotSettings};
use crate::aggregates::conversation::{
    ADMIN_REPLIED, ANSWER_FAILED, ANSWERED, CONVERSATION_EVENTS, ConversationEvent, MESSAGE_RECEIVED,
};
use crate::aggregates::lead::{LEAD_EVENTS, LeadEvent};
use crate::aggregates::org::{ORG_EVENTS, OrgEvent};
use crate::aggregates::source::{PageRecord, SOURCE_EVENTS, SourceEvent};
use crate::aggregates::webhook::{WEBHOOK_EVENTS, WebhookEvent};
use crate::event::{DomainEvent, RecordedEvent};
use crate::store::entities::{
    api_keys, attachments, bots, conversation_tags, conversations, leads, messages, orgs, source_pages, sources,
    webhooks,
};

/// One read model.
#[async_trait]
pub trait Projection: Send + Sync {
    /// A stable name, used by `parley replay <name>` and its checkpoint.
    fn name(&self) -> &'static str;
    /// Whether events of this type change this read model.
    fn handles(&self, event_type: &str) -> bool;
    /// Applies one event inside the append's transaction.
    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr>;
    /// Deletes every row, before a replay.
    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr>;
    /// Every row, in primary-key order, as JSON (to compare live and replayed models).
    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr>;
}

/// Object-safe access to a connection for snapshots.
pub trait ConnectionTraitObject: Send + Sync {
    fn connection(&self) -> &sea_orm::DatabaseConnection;
}

impl ConnectionTraitObject for sea_orm::DatabaseConnection {
    fn connection(&self) -> &sea_orm::DatabaseConnection {
        self
    }
}

/// Every projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(OrgsProjection),
        Arc::new(ApiKeysProjection),
        Arc::new(BotsProjection),
        Arc::new(SourcesProjection),
        Arc::new(SourcePagesProjection),
        Arc::new(ConversationsProjection),
        Arc::new(MessagesProjection),
        Arc::new(ConversationTagsProjection),
        Arc::new(AttachmentsProjection),
        Arc::new(LeadsProjection),
        Arc::new(WebhooksProjection),
    ]
}

fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, DbErr> {
    E::from_stored(&event.event_type, event.schema_version, &event.payload).map_err(|e| DbErr::Custom(e.to_string()))
}

pub struct OrgsProjection;

#[async_trait]
impl Projection for OrgsProjection {
    fn name(&self) -> &'static str {
        "orgs"
    }

    fn handles(&self, event_type: &str) -> bool {
        ORG_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<OrgEvent>(event)? {
            OrgEvent::Created(e) => {
                let row = orgs::ActiveModel {
                    id: Set(e.org_id),
                    name: Set(e.name),
                    created_at: Set(event.recorded_at),
                    plan: Set(e.plan),
                };
                orgs::Entity::insert(row).exec_without_returning(txn).await?;
            }
            OrgEvent::PlanChanged(e) => {
                let row = orgs::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.org_id),
                    plan: Set(Some(e.plan)),
                    ..Default::default()
                };
                orgs::Entity::update(row).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        orgs::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        orgs::Entity::find()
            .order_by_asc(orgs::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct ApiKeysProjection;

#[async_trait]
impl Projection for ApiKeysProjection {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, API_KEY_CREATED | API_KEY_REVOKED)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<ApiKeyEvent>(event)? {
            ApiKeyEvent::Created(e) => {
                let row = api_keys::ActiveModel {
                    id: Set(e.key_id),
                    org_id: Set(e.org_id),
                    name: Set(e.name),
                    prefix: Set(e.prefix),
                    last4: Set(e.last4),
                    key_hash: Set(e.hash),
                    created_at: Set(event.recorded_at),
                    revoked_at: Set(None),
                };
                api_keys::Entity::insert(row).exec_without_returning(txn).await?;
            }
            ApiKeyEvent::Revoked(e) => {
                api_keys::Entity::update_many()
                    .col_expr(
                        api_keys::Column::RevokedAt,
                        sea_orm::sea_query::Expr::value(Some(event.recorded_at)),
                    )
                    .filter(api_keys::Column::Id.eq(e.key_id))
                    .exec(txn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        api_keys::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        api_keys::Entity::find()
            .order_by_asc(api_keys::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct BotsProjection;

fn bot_columns(row: &mut bots::ActiveModel, s: BotSettings) {
    row.name = Set(s.name);
    row.slug = Set(s.slug);
    row.website = Set(s.website);
    row.persona = Set(s.persona);
    row.language = Set(s.language);
    row.welcome_message = Set(s.welcome_message);
    row.model = Set(serde_json::to_value(&s.model).unwrap_or(Value::Null));
    row.streaming = Set(s.streaming);
    row.active = Set(s.active);
    row.rate_limit_per_minute = Set(s.rate_limit_per_minute.map(i64::from));
}

#[async_trait]
impl Projection for BotsProjection {
    fn name(&self) -> &'static str {
        "bots"
    }

    fn handles(&self, event_type: &str) -> bool {
        BOT_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<BotEvent>(event)? {
            BotEvent::Created(e) => {
                let mut row = bots::ActiveModel {
                    id: Set(e.bot_id),
                    org_id: Set(e.org_id),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(None),
                    site_key: Set(e.site_key),
                    widget: Set(None),
                    ..Default::default()
                };
                bot_columns(&mut row, e.settings);
                bots::Entity::insert(row).exec_without_returning(txn).await?;
            }
            BotEvent::Updated(e) => {
                let mut row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    ..Default::default()
                };
                bot_columns(&mut row, e.settings);
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::Deleted(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(Some(event.recorded_at)),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::Purged(e) => {
                bots::Entity::delete_by_id(e.bot_id).exec(txn).await?;
            }
            BotEvent::WidgetUpdated(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    widget: Set(Some(crate::event::to_payload(&e.widget))),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
            BotEvent::SiteKeyRotated(e) => {
                let row = bots::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.bot_id),
                    version: Set(event.stream_version),
                    updated_at: Set(event.recorded_at),
                    site_key: Set(Some(e.site_key)),
                    ..Default::default()
                };
                bots::Entity::update(row).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        bots::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        bots::Entity::find()
            .order_by_asc(bots::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct SourcesProjection;

/// A row update of a source that touches only the given columns.
fn source_update(id: uuid::Uuid, event: &RecordedEvent) -> sources::ActiveModel {
    sources::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(id),
        version: Set(event.stream_version),
        updated_at: Set(event.recorded_at),
        ..Default::default()
    }
}

#[async_trait]
impl Projection for SourcesProjection {
    fn name(&self) -> &'static str {
        "sources"
    }

    fn handles(&self, event_type: &str) -> bool {
        SOURCE_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let id = event.stream_id;
        let mut row = source_update(id, event);
        match decode::<SourceEvent>(event)? {
            SourceEvent::Added(e) => {
                let row = sources::ActiveModel {
                    id: Set(e.source_id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    kind: Set(e.spec.kind().to_owned()),
                    title: Set(e.spec.title()),
                    spec: Set(e.spec.summary()),
                    schedule: Set(e.schedule.as_str().to_owned()),
                    status: Set("queued".to_owned()),
                    error_code: Set(None),
                    error_message: Set(None),
                    run_id: Set(Some(e.run_id)),
                    pages: Set(0),
                    chunks: Set(0),
                    tokens: Set(0),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    last_indexed_at: Set(None),
                    next_refresh_at: Set(None),
                    deleted_at: Set(None),
                };
                sources::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            SourceEvent::RefreshRequested(e) => {
                row.status = Set("queued".into());
                row.run_id = Set(Some(e.run_id));
                row.error_code = Set(None);
                row.error_message = Set(None);
            }
            SourceEvent::Fetching(_) => row.status = Set("fetching".into()),
            SourceEvent::Fetched(_) => row.status = Set("parsing".into()),
            SourceEvent::Parsed(_) => row.status = Set("embedding".into()),
            SourceEvent::Indexed(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let schedule = current
                    .as_ref()
                    .and_then(|c| crate::aggregates::source::Schedule::parse(&c.schedule));
                row.status = Set("ready".into());
                row.pages = Set(e.pages.iter().filter(|p| p.status != "failed").count() as i64);
                row.chunks = Set(e.chunks as i64);
                row.tokens = Set(e.tokens as i64);
                row.last_indexed_at = Set(Some(event.recorded_at));
                row.next_refresh_at = Set(schedule.and_then(|s| s.next_after(event.recorded_at)));
            }
            SourceEvent::Failed(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let schedule = current
                    .as_ref()
                    .and_then(|c| crate::aggregates::source::Schedule::parse(&c.schedule));
                row.status = Set("failed".into());
                row.error_code = Set(Some(e.code));
                row.error_message = Set(Some(e.message));
                row.next_refresh_at = Set(schedule.and_then(|s| s.next_after(event.recorded_at)));
            }
            SourceEvent::ScheduleChanged(e) => {
                let current = sources::Entity::find_by_id(id).one(txn).await?;
                let since = current.and_then(|c| c.last_indexed_at).unwrap_or(event.recorded_at);
                row.schedule = Set(e.schedule.as_str().into());
                row.next_refresh_at = Set(e.schedule.next_after(since));
            }
            SourceEvent::Deleted(_) => row.deleted_at = Set(Some(event.recorded_at)),
            // The source's version moves; its pages change in `source_pages`.
            SourceEvent::DocumentRenamed(_) => {}
            SourceEvent::Purged(_) => {
                sources::Entity::delete_by_id(id).exec(txn).await?;
                return Ok(());
            }
        }
        sources::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        sources::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        sources::Entity::find()
            .order_by_asc(sources::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct SourcePagesProjection;

async fn upsert_pages(
    txn: &DatabaseTransaction,
    source_id: uuid::Uuid,
    pages: Vec<PageRecord>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::OnConflict;
    for p in pages {
        let row = source_pages::ActiveModel {
            source_id: Set(source_id),
            doc_key: Set(p.doc_key),
            url: Set(p.url),
            title: Set(p.title),
            status: Set(p.status),
            content_hash: Set(p.content_hash),
            chunks: Set(i64::from(p.chunks)),
            tokens: Set(i64::from(p.tokens)),
            page_count: Set(p.page_count.map(|n| n as i32)),
            error_code: Set(p.error_code),
            error_message: Set(p.error_message),
            updated_at: Set(at),
        };
        source_pages::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([source_pages::Column::SourceId, source_pages::Column::DocKey])
                    .update_columns([
                        source_pages::Column::Url,
                        source_pages::Column::Title,
                        source_pages::Column::Status,
                        source_pages::Column::ContentHash,
                        source_pages::Column::Chunks,
                        source_pages::Column::Tokens,
                        source_pages::Column::PageCount,
                        source_pages::Column::ErrorCode,
                        source_pages::Column::ErrorMessage,
                        source_pages::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for SourcePagesProjection {
    fn name(&self) -> &'static str {
        "source_pages"
    }

    fn handles(&self, event_type: &str) -> bool {
        use crate::aggregates::source::{SOURCE_DOCUMENT_RENAMED, SOURCE_FAILED, SOURCE_INDEXED, SOURCE_PURGED};
        matches!(
            event_type,
            SOURCE_INDEXED | SOURCE_FAILED | SOURCE_PURGED | SOURCE_DOCUMENT_RENAMED
        )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let source_id = event.stream_id;
        match decode::<SourceEvent>(event)? {
            SourceEvent::Indexed(e) => {
                upsert_pages(txn, source_id, e.pages, event.recorded_at).await?;
                if !e.removed.is_empty() {
                    source_pages::Entity::delete_many()
                        .filter(source_pages::Column::SourceId.eq(source_id))
                        .filter(source_pages::Column::DocKey.is_in(e.removed))
                        .exec(txn)
                        .await?;
                }
            }
            SourceEvent::Failed(e) => upsert_pages(txn, source_id, e.pages, event.recorded_at).await?,
            SourceEvent::DocumentRenamed(e) => {
                source_pages::Entity::update_many()
                    .col_expr(
                        source_pages::Column::Title,
                        sea_orm::sea_query::Expr::value(Some(e.title)),
                    )
                    .col_expr(
                        source_pages::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(event.recorded_at),
                    )
                    .filter(source_pages::Column::SourceId.eq(source_id))
                    .filter(source_pages::Column::DocKey.eq(e.doc_key))
                    .exec(txn)
                    .await?;
            }
            SourceEvent::Purged(_) => {
                source_pages::Entity::delete_many()
                    .filter(source_pages::Column::SourceId.eq(source_id))
                    .exec(txn)
                    .await?;
            }
            SourceEvent::Added(_)
            | SourceEvent::RefreshRequested(_)
            | SourceEvent::Fetching(_)
            | SourceEvent::Fetched(_)
            | SourceEvent::Parsed(_)
            | SourceEvent::ScheduleChanged(_)
            | SourceEvent::Deleted(_) => {}
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        source_pages::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        source_pages::Entity::find()
            .order_by_asc(source_pages::Column::SourceId)
            .order_by_asc(source_pages::Column::DocKey)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct ConversationsProjection;

#[async_trait]
impl Projection for ConversationsProjection {
    fn name(&self) -> &'static str {
        "conversations"
    }

    fn handles(&self, event_type: &str) -> bool {
        // Tags, feedback and attachments have read models of their own.
        CONVERSATION_EVENTS.contains(&event_type)
            && !matches!(
                event_type,
                crate::aggregates::conversation::TAGS_CHANGED
                    | crate::aggregates::conversation::FEEDBACK_RECEIVED
                    | crate::aggregates::conversation::ATTACHMENT_ADDED
            )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let id = event.stream_id;
        let decoded = match decode::<ConversationEvent>(event)? {
            ConversationEvent::Started(e) => {
                let row = conversations::ActiveModel {
                    id: Set(id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    visitor_token: Set(e.visitor_id.clone().filter(|_| e.channel == "widget")),
                    visitor_id: Set(e.visitor_id),
                    channel: Set(e.channel),
                    status: Set("open".into()),
                    messages: Set(0),
                    unanswered: Set(0),
                    created_at: Set(event.recorded_at),
                    last_message_at: Set(event.recorded_at),
                    token_hash: Set(e.token_hash),
                    escalated_at: Set(None),
                };
                conversations::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            // Not handled (see `handles`).
            ConversationEvent::TagsChanged(_)
            | ConversationEvent::FeedbackReceived(_)
            | ConversationEvent::AttachmentAdded(_) => return Ok(()),
            other @ (ConversationEvent::MessageReceived(_)
            | ConversationEvent::Answered(_)
            | ConversationEvent::AnswerFailed(_)
            | ConversationEvent::AdminReplied(_)
            | ConversationEvent::Escalated(_)
            | ConversationEvent::Closed(_)
            | ConversationEvent::Reopened(_)) => other,
        };
        let Some(current) = conversations::Entity::find_by_id(id).one(txn).await? else {
            return Err(DbErr::Custom(format!("conversation {id} has no row")));
        };
        let mut row: conversations::ActiveModel = current.clone().into();
        match &decoded {
            ConversationEvent::Escalated(_) => {
                row.status = Set("escalated".into());
                if current.escalated_at.is_none() {
                    row.escalated_at = Set(Some(event.recorded_at));
                }
            }
            ConversationEvent::Closed(_) => row.status = Set("closed".into()),
            ConversationEvent::Reopened(_) => row.status = Set("open".into()),
            ConversationEvent::Started(_)
            | ConversationEvent::TagsChanged(_)
            | ConversationEvent::FeedbackReceived(_)
            | ConversationEvent::AttachmentAdded(_) => unreachable!("handled before the row is read"),
            ConversationEvent::MessageReceived(_)
            | ConversationEvent::Answered(_)
            | ConversationEvent::AnswerFailed(_)
            | ConversationEvent::AdminReplied(_) => {
                let unanswered = matches!(&decoded, ConversationEvent::Answered(a) if a.unanswered);
                row.messages = Set(current.messages + 1);
                row.unanswered = Set(current.unanswered + i64::from(unanswered));
                row.last_message_at = Set(event.recorded_at);
            }
        }
        conversations::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        conversations::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        conversations::Entity::find()
            .order_by_asc(conversations::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct MessagesProjection;

#[async_trait]
impl Projection for MessagesProjection {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            MESSAGE_RECEIVED
                | ANSWERED
                | ANSWER_FAILED
                | ADMIN_REPLIED
                | crate::aggregates::conversation::FEEDBACK_RECEIVED
        )
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let Some(conversation) = conversations_row(txn, event.stream_id).await? else {
            return Err(DbErr::Custom(format!("conversation {} has no row", event.stream_id)));
        };
        let mut row = messages::ActiveModel {
            conversation_id: Set(event.stream_id),
            org_id: Set(conversation.org_id),
            bot_id: Set(conversation.bot_id),
            seq: Set(event.stream_version),
            system: Set(None),
            reply_to: Set(None),
            provider: Set(None),
            model: Set(None),
            unanswered: Set(false),
            sources: Set(Value::Array(vec![])),
            usage: Set(None),
            language: Set(None),
            metadata: Set(None),
            error_code: Set(None),
            error_message: Set(None),
            created_at: Set(event.recorded_at),
            feedback: Set(None),
            feedback_comment: Set(None),
            ..Default::default()
        };
        match decode::<ConversationEvent>(event)? {
            ConversationEvent::Started(_)
            | ConversationEvent::Escalated(_)
            | ConversationEvent::Closed(_)
            | ConversationEvent::Reopened(_)
            | ConversationEvent::TagsChanged(_)
            | ConversationEvent::AttachmentAdded(_) => return Ok(()),
            ConversationEvent::FeedbackReceived(e) => {
                let update = messages::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.message_id),
                    feedback: Set(Some(e.rating)),
                    feedback_comment: Set(e.comment),
                    ..Default::default()
                };
                messages::Entity::update(update).exec(txn).await?;
                return Ok(());
            }
            ConversationEvent::AdminReplied(e) => {
                row.id = Set(e.message_id);
                row.role = Set("agent".into());
                row.text = Set(e.text);
                row.status = Set("complete".into());
                row.provider = Set(Some("human".into()));
            }
            ConversationEvent::MessageReceived(e) => {
                row.id = Set(e.message_id);
                row.role = Set("user".into());
                row.text = Set(e.text);
                row.system = Set(e.system);
                row.status = Set("complete".into());
                row.language = Set(e.language);
                row.metadata = Set((!e.metadata.is_null()).then_some(e.metadata));
            }
            ConversationEvent::Answered(e) => {
                row.id = Set(e.message_id);
                row.role = Set("assistant".into());
                row.text = Set(e.text);
                row.status = Set(e.status);
                row.reply_to = Set(Some(e.reply_to));
                row.provider = Set(Some(e.provider));
                row.model = Set(e.model);
                row.unanswered = Set(e.unanswered);
                row.sources = Set(crate::event::to_payload(&e.sources));
                row.usage = Set(Some(crate::event::to_payload(&e.usage)));
            }
            ConversationEvent::AnswerFailed(e) => {
                row.id = Set(e.message_id);
                row.role = Set("assistant".into());
                row.text = Set(e.partial_text);
                row.status = Set("failed".into());
                row.reply_to = Set(Some(e.reply_to));
                row.provider = Set(Some(e.provider));
                row.error_code = Set(Some(e.code.as_str().to_owned()));
                row.error_message = Set(Some(e.reason));
            }
        }
        messages::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        messages::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        messages::Entity::find()
            .order_by_asc(messages::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

async fn conversations_row(txn: &DatabaseTransaction, id: uuid::Uuid) -> Result<Option<conversations::Model>, DbErr> {
    conversations::Entity::find_by_id(id).one(txn).await
}

pub struct ConversationTagsProjection;

#[async_trait]
impl Projection for ConversationTagsProjection {
    fn name(&self) -> &'static str {
        "conversation_tags"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == crate::aggregates::conversation::TAGS_CHANGED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let ConversationEvent::TagsChanged(e) = decode::<ConversationEvent>(event)? else {
            return Ok(());
        };
        conversation_tags::Entity::delete_many()
            .filter(conversation_tags::Column::ConversationId.eq(event.stream_id))
            .exec(txn)
            .await?;
        let rows: Vec<conversation_tags::ActiveModel> = e
            .tags
            .into_iter()
            .map(|tag| conversation_tags::ActiveModel {
                conversation_id: Set(event.stream_id),
                org_id: Set(event.org_id),
                tag: Set(tag),
            })
            .collect();
        if !rows.is_empty() {
            conversation_tags::Entity::insert_many(rows)
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        conversation_tags::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        conversation_tags::Entity::find()
            .order_by_asc(conversation_tags::Column::ConversationId)
            .order_by_asc(conversation_tags::Column::Tag)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct AttachmentsProjection;

#[async_trait]
impl Projection for AttachmentsProjection {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == crate::aggregates::conversation::ATTACHMENT_ADDED
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let ConversationEvent::AttachmentAdded(e) = decode::<ConversationEvent>(event)? else {
            return Ok(());
        };
        let Some(conversation) = conversations_row(txn, event.stream_id).await? else {
            return Err(DbErr::Custom(format!("conversation {} has no row", event.stream_id)));
        };
        let row = attachments::ActiveModel {
            id: Set(e.attachment_id),
            org_id: Set(conversation.org_id),
            bot_id: Set(conversation.bot_id),
            conversation_id: Set(event.stream_id),
            message_id: Set(e.message_id),
            file_name: Set(e.file_name),
            content_type: Set(e.content_type),
            size: Set(e.size),
            sha256: Set(e.sha256),
            created_at: Set(event.recorded_at),
        };
        attachments::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        attachments::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        attachments::Entity::find()
            .order_by_asc(attachments::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct LeadsProjection;

#[async_trait]
impl Projection for LeadsProjection {
    fn name(&self) -> &'static str {
        "leads"
    }

    fn handles(&self, event_type: &str) -> bool {
        LEAD_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        match decode::<LeadEvent>(event)? {
            LeadEvent::Captured(e) => {
                let row = leads::ActiveModel {
                    id: Set(e.lead_id),
                    org_id: Set(e.org_id),
                    bot_id: Set(e.bot_id),
                    email: Set(e.details.email),
                    name: Set(e.details.name),
                    phone: Set(e.details.phone),
                    fields: Set(crate::event::to_payload(&e.details.fields)),
                    visitor_id: Set(e.visitor_id),
                    conversation_id: Set(e.conversation_id),
                    source: Set(e.source),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                };
                leads::Entity::insert(row).exec_without_returning(txn).await?;
            }
            LeadEvent::Updated(e) => {
                let row = leads::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(e.lead_id),
                    email: Set(e.details.email),
                    name: Set(e.details.name),
                    phone: Set(e.details.phone),
                    fields: Set(crate::event::to_payload(&e.details.fields)),
                    visitor_id: Set(e.visitor_id),
                    conversation_id: Set(e.conversation_id),
                    updated_at: Set(event.recorded_at),
                    ..Default::default()
                };
                leads::Entity::update(row).exec(txn).await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        leads::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        leads::Entity::find()
            .order_by_asc(leads::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}

pub struct WebhooksProjection;

#[async_trait]
impl Projection for WebhooksProjection {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handles(&self, event_type: &str) -> bool {
        WEBHOOK_EVENTS.contains(&event_type)
    }

    async fn apply(&self, txn: &DatabaseTransaction, event: &RecordedEvent) -> Result<(), DbErr> {
        let touched = |id| webhooks::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id),
            version: Set(event.stream_version),
            updated_at: Set(event.recorded_at),
            ..Default::default()
        };
        let row = match decode::<WebhookEvent>(event)? {
            WebhookEvent::Created(e) => {
                let row = webhooks::ActiveModel {
                    id: Set(e.webhook_id),
                    org_id: Set(e.org_id),
                    url: Set(e.settings.url),
                    events: Set(crate::event::to_payload(&e.settings.events)),
                    description: Set(e.settings.description),
                    active: Set(e.settings.active),
                    disabled_code: Set(None),
                    disabled_reason: Set(None),
                    disabled_at: Set(None),
                    secret: Set(e.secret),
                    previous_secret: Set(None),
                    previous_until: Set(None),
                    version: Set(event.stream_version),
                    created_at: Set(event.recorded_at),
                    updated_at: Set(event.recorded_at),
                    deleted_at: Set(None),
                };
                webhooks::Entity::insert(row).exec_without_returning(txn).await?;
                return Ok(());
            }
            WebhookEvent::Updated(e) => {
                let mut row = touched(e.webhook_id);
                row.url = Set(e.settings.url);
                row.events = Set(crate::event::to_payload(&e.settings.events));
                row.description = Set(e.settings.description);
                row.active = Set(e.settings.active);
                if e.settings.active {
                    row.disabled_code = Set(None);
                    row.disabled_reason = Set(None);
                    row.disabled_at = Set(None);
                }
                row
            }
            WebhookEvent::SecretRotated(e) => {
                let mut row = touched(e.webhook_id);
                row.secret = Set(e.secret);
                row.previous_secret = Set(Some(e.previous_secret));
                row.previous_until = Set(Some(e.previous_until));
                row
            }
            WebhookEvent::Disabled(e) => {
                let mut row = touched(e.webhook_id);
                row.active = Set(false);
                row.disabled_code = Set(Some(e.code));
                row.disabled_reason = Set(Some(e.reason));
                row.disabled_at = Set(Some(event.recorded_at));
                row
            }
            WebhookEvent::Deleted(e) => {
                let mut row = touched(e.webhook_id);
                row.active = Set(false);
                row.deleted_at = Set(Some(event.recorded_at));
                row
            }
        };
        webhooks::Entity::update(row).exec(txn).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        webhooks::Entity::delete_many().exec(txn).await?;
        Ok(())
    }

    async fn snapshot(&self, db: &dyn ConnectionTraitObject) -> Result<Vec<Value>, DbErr> {
        webhooks::Entity::find()
            .order_by_asc(webhooks::Column::Id)
            .into_json()
            .all(db.connection())
            .await
    }
}
