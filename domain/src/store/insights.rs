//! What the insights endpoint reads: the questions visitors asked, and the
//! counts over a bot's conversations in a range.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::insights::Asked;
use crate::store::Store;
use crate::store::entities::{conversations, messages};

/// The visitor questions of a bot in `[from, to)`, the most recent first (at
/// most `limit`), each with whether its answer was the fallback.
pub async fn questions(
    store: &Store,
    org_id: Uuid,
    bot_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Asked>, DbErr> {
    let asked = messages::Entity::find()
        .filter(messages::Column::OrgId.eq(org_id))
        .filter(messages::Column::BotId.eq(bot_id))
        .filter(messages::Column::Role.eq("user"))
        .filter(messages::Column::CreatedAt.gte(from))
        .filter(messages::Column::CreatedAt.lt(to))
        .order_by_desc(messages::Column::CreatedAt)
        .limit(limit)
        .all(store.db())
        .await?;
    let mut unanswered = std::collections::HashSet::new();
    for ids in asked.chunks(500) {
        let rows: Vec<Option<Uuid>> = messages::Entity::find()
            .select_only()
            .column(messages::Column::ReplyTo)
            .filter(messages::Column::ReplyTo.is_in(ids.iter().map(|m| m.id)))
            .filter(messages::Column::Unanswered.eq(true))
            .into_tuple()
            .all(store.db())
            .await?;
        unanswered.extend(rows.into_iter().flatten());
    }
    Ok(asked
        .into_iter()
        .map(|m| Asked {
            unanswered: unanswered.contains(&m.id),
            message_id: m.id,
            conversation_id: m.conversation_id,
            text: m.text,
            asked_at: m.created_at,
        })
        .collect())
}

/// Counts over a bot's conversations in a range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Conversations started in the range.
    pub conversations: u64,
    /// Of those, handed to a person (at any time).
    pub escalated: u64,
    /// Visitor messages in the range.
    pub questions: u64,
    /// The bot's answers in the range, and how many were the fallback.
    pub answers: u64,
    pub unanswered: u64,
    /// Ratings of answers given in the range.
    pub rated_up: u64,
    pub rated_down: u64,
}

pub async fn counts(
    store: &Store,
    org_id: Uuid,
    bot_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Counts, DbErr> {
    let started = || {
        conversations::Entity::find()
            .filter(conversations::Column::OrgId.eq(org_id))
            .filter(conversations::Column::BotId.eq(bot_id))
            .filter(conversations::Column::CreatedAt.gte(from))
            .filter(conversations::Column::CreatedAt.lt(to))
    };
    let in_range = || {
        messages::Entity::find()
            .filter(messages::Column::OrgId.eq(org_id))
            .filter(messages::Column::BotId.eq(bot_id))
            .filter(messages::Column::CreatedAt.gte(from))
            .filter(messages::Column::CreatedAt.lt(to))
    };
    let db = store.db();
    Ok(Counts {
        conversations: started().count(db).await?,
        escalated: started()
            .filter(conversations::Column::EscalatedAt.is_not_null())
            .count(db)
            .await?,
        questions: in_range().filter(messages::Column::Role.eq("user")).count(db).await?,
        answers: in_range()
            .filter(messages::Column::Role.eq("assistant"))
            .count(db)
            .await?,
        unanswered: in_range()
            .filter(messages::Column::Role.eq("assistant"))
            .filter(messages::Column::Unanswered.eq(true))
            .count(db)
            .await?,
        rated_up: in_range().filter(messages::Column::Feedback.eq("up")).count(db).await?,
        rated_down: in_range()
            .filter(messages::Column::Feedback.eq("down"))
            .count(db)
            .await?,
    })
}

/// Visitors' ratings (1 to 5) of a bot's conversations, given in a range:
/// overall, and per member rated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Satisfaction {
    pub ratings: u64,
    pub sum: u64,
    /// `(member, ratings, sum of scores)`, most ratings first; `None`: no member.
    pub by_member: Vec<(Option<Uuid>, u64, u64)>,
}

pub async fn satisfaction(
    store: &Store,
    org_id: Uuid,
    bot_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Satisfaction, DbErr> {
    let rows = conversations::Entity::find()
        .filter(conversations::Column::OrgId.eq(org_id))
        .filter(conversations::Column::BotId.eq(bot_id))
        .filter(conversations::Column::RatedAt.gte(from))
        .filter(conversations::Column::RatedAt.lt(to))
        .all(store.db())
        .await?;
    let mut out = Satisfaction::default();
    let mut members: std::collections::BTreeMap<Option<Uuid>, (u64, u64)> = std::collections::BTreeMap::new();
    for row in rows {
        let Some(score) = row.satisfaction.and_then(|s| u64::try_from(s).ok()) else {
            continue;
        };
        out.ratings += 1;
        out.sum += score;
        let entry = members.entry(row.satisfaction_member_id).or_default();
        entry.0 += 1;
        entry.1 += score;
    }
    out.by_member = members.into_iter().map(|(m, (n, sum))| (m, n, sum)).collect();
    out.by_member.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}
