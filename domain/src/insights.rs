//! Insights over a bot's conversations: questions grouped when they are
//! near-duplicates, and the counts the insights endpoint reports.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::retrieval::index::dot;
use crate::store::Store;
use crate::store::entities::{conversations, messages};

/// Cosine similarity from which two questions are the same question asked
/// differently (MiniLM vectors; paraphrases score about 0.85 and above,
/// questions on the same topic asking different things about 0.6 to 0.75).
pub const SAME_QUESTION: f32 = 0.82;

/// A visitor's question in the range, with whether the bot could answer it.
#[derive(Debug, Clone)]
pub struct Asked {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub text: String,
    pub asked_at: DateTime<Utc>,
    /// The bot gave its fallback answer.
    pub unanswered: bool,
}

/// A question and the near-duplicates grouped with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Indexes into the questions, the most recent first.
    pub members: Vec<usize>,
}

/// A question's text reduced to what distinguishes it: lowercase words.
pub fn normalized(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Groups questions greedily: each joins the first group whose first
/// question is at least `threshold` similar (unit vectors), else starts a
/// group. Larger groups first; ties by the most recent question.
pub fn group(vectors: &[Vec<f32>], threshold: f32) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let home = groups.iter_mut().find(|g| {
            g.members
                .first()
                .is_some_and(|&lead| dot(&vectors[lead], v) >= threshold)
        });
        match home {
            Some(g) => g.members.push(i),
            None => groups.push(Group { members: vec![i] }),
        }
    }
    groups.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.members[0].cmp(&b.members[0]))
    });
    groups
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn near_duplicates_share_a_group_and_big_groups_come_first() {
        let vectors = vec![
            unit(&[1.0, 0.0, 0.0]),
            unit(&[0.0, 1.0, 0.0]),
            unit(&[0.98, 0.1, 0.0]),
            unit(&[0.97, 0.05, 0.1]),
            unit(&[0.0, 0.0, 1.0]),
            unit(&[0.1, 0.99, 0.0]),
        ];
        let groups = group(&vectors, SAME_QUESTION);
        assert_eq!(
            groups,
            vec![
                Group { members: vec![0, 2, 3] },
                Group { members: vec![1, 5] },
                Group { members: vec![4] },
            ]
        );
    }

    #[test]
    fn normalization_ignores_case_and_punctuation() {
        assert_eq!(normalized("How much is PRO?!"), "how much is pro");
        assert_eq!(normalized("  how much   is pro "), normalized("How much is Pro?"));
    }
}
