//! `/api/v1/bots/{id}/insights`: what visitors ask, what the bot could not
//! answer (near-duplicate questions grouped), ratings and hand-offs.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use parley_domain::ErrorCode;
use parley_domain::insights::{self, SAME_QUESTION};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::{live, live_bot};
use crate::error::ApiError;
use crate::schemas::conversation::FeedbackSummary;
use crate::security::AgentAuth;
use crate::state::AppState;

pub struct InsightsApi {
    pub state: Option<AppState>,
}

/// The most recent questions analysed for grouping.
const ANALYZED: u64 = 1000;
/// Examples and conversations shown per group.
const SHOWN: usize = 5;

/// A question and its near-duplicates.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QuestionGroup {
    /// The most recent wording.
    pub question: String,
    /// How often it was asked (all wordings).
    pub count: u64,
    /// How often the bot could not answer it.
    pub unanswered: u64,
    /// When it was last asked.
    pub last_asked_at: DateTime<Utc>,
    /// Other wordings, up to 5.
    pub variants: Vec<String>,
    /// Conversations it was asked in, the most recent first (up to 5).
    pub conversation_ids: Vec<Uuid>,
}

/// A bot's insights over a time range.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Insights {
    /// The bot.
    pub bot_id: Uuid,
    /// Start of the range (inclusive).
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// Conversations started in the range.
    pub conversations: u64,
    /// Of those, how many were handed to a person.
    pub escalated_conversations: u64,
    /// `escalated_conversations / conversations`; absent without conversations.
    pub escalation_rate: Option<f64>,
    /// Visitor messages in the range.
    pub questions: u64,
    /// The bot's answers in the range.
    pub answers: u64,
    /// Answers that were the fallback ("I don't know").
    pub unanswered_answers: u64,
    /// Ratings of answers given in the range.
    pub feedback: FeedbackSummary,
    /// The questions asked most, near-duplicates grouped.
    pub top_questions: Vec<QuestionGroup>,
    /// Questions the bot could not answer, near-duplicates grouped: what to add to its knowledge.
    pub unanswered_questions: Vec<QuestionGroup>,
    /// Questions analysed for the groups (the most recent 1,000 of the range).
    pub questions_analyzed: u64,
    /// Visitors' ratings (1 to 5) of conversations a person closed, given in the range.
    pub satisfaction: SatisfactionSummary,
}

/// Ratings of conversations, overall and per member.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SatisfactionSummary {
    /// Ratings given.
    pub ratings: u64,
    /// Their mean, 1 to 5; absent without ratings.
    pub average: Option<f64>,
    /// Per member rated (who had the conversation, else who last replied), most rated first.
    pub by_member: Vec<MemberSatisfaction>,
}

/// One member's ratings.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberSatisfaction {
    /// The member (person id); absent for conversations no member replied to.
    pub member_id: Option<Uuid>,
    /// Ratings given.
    pub ratings: u64,
    /// Their mean, 1 to 5.
    pub average: f64,
}

/// Questions (the most recent first) by wording: the distinct normalized
/// wordings in order, and the questions of each.
struct Wordings {
    distinct: Vec<String>,
    of_wording: HashMap<String, Vec<usize>>,
}

impl Wordings {
    fn of(asked: &[&insights::Asked]) -> Wordings {
        let mut distinct: Vec<String> = Vec::new();
        let mut of_wording: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, q) in asked.iter().enumerate() {
            let key = insights::normalized(&q.text);
            let entry = of_wording.entry(key.clone()).or_default();
            if entry.is_empty() {
                distinct.push(key);
            }
            entry.push(i);
        }
        Wordings { distinct, of_wording }
    }

    /// The text standing for each distinct wording: its most recent question's.
    fn representatives<'a>(&'a self, asked: &[&'a insights::Asked]) -> impl Iterator<Item = &'a str> {
        self.distinct
            .iter()
            .map(move |key| asked[self.of_wording[key][0]].text.as_str())
    }
}

/// The meaning of each text, embedded in one call.
async fn meanings<'a>(
    state: &AppState,
    texts: impl Iterator<Item = &'a str>,
) -> Result<HashMap<&'a str, Vec<f32>>, ApiError> {
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = texts.filter(|text| seen.insert(*text)).collect();
    if distinct.is_empty() {
        return Ok(HashMap::new());
    }
    let vectors = state
        .chat
        .embed(distinct.iter().map(|t| (*t).to_owned()).collect())
        .await?;
    Ok(distinct.into_iter().zip(vectors).collect())
}

/// Groups questions whose wordings are the same or whose meaning is nearly so.
fn grouped(
    asked: &[&insights::Asked],
    wordings: &Wordings,
    meaning: &HashMap<&str, Vec<f32>>,
    limit: usize,
) -> Vec<QuestionGroup> {
    let Wordings { distinct, of_wording } = wordings;
    let vectors: Vec<Vec<f32>> = wordings
        .representatives(asked)
        .map(|text| meaning[text].clone())
        .collect();
    let mut groups: Vec<Vec<usize>> = insights::group(&vectors, SAME_QUESTION)
        .into_iter()
        .map(|g| {
            let mut members: Vec<usize> = g
                .members
                .iter()
                .flat_map(|&d| of_wording[&distinct[d]].iter().copied())
                .collect();
            members.sort_unstable();
            members
        })
        .collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
        .into_iter()
        .take(limit)
        .map(|members| {
            let lead = asked[members[0]];
            let lead_wording = insights::normalized(&lead.text);
            let mut variants: Vec<String> = Vec::new();
            let mut shown_wordings: Vec<String> = Vec::new();
            let mut conversation_ids: Vec<Uuid> = Vec::new();
            for &m in &members {
                let q = asked[m];
                if variants.len() < SHOWN && q.text != lead.text {
                    let wording = insights::normalized(&q.text);
                    if wording != lead_wording && !shown_wordings.contains(&wording) {
                        variants.push(q.text.clone());
                        shown_wordings.push(wording);
                    }
                }
                if conversation_ids.len() < SHOWN && !conversation_ids.contains(&q.conversation_id) {
                    conversation_ids.push(q.conversation_id);
                }
            }
            QuestionGroup {
                question: lead.text.clone(),
                count: members.len() as u64,
                unanswered: members.iter().filter(|&&m| asked[m].unanswered).count() as u64,
                last_asked_at: lead.asked_at,
                variants,
                conversation_ids,
            }
        })
        .collect()
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Bots")]
impl InsightsApi {
    /// Insights of a bot
    ///
    /// Over `[from, to)` (default: the last 30 days): conversations and how
    /// many went to a person, answers and fallbacks, ratings, the questions
    /// asked most and those the bot could not answer, with near-duplicate
    /// wordings grouped by meaning.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots/:bot_id/insights", method = "get", operation_id = "bot_insights")]
    async fn insights(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        /// Start of the range (RFC 3339); default 30 days before `to`.
        from: Query<Option<DateTime<Utc>>>,
        /// End of the range (RFC 3339); default now.
        to: Query<Option<DateTime<Utc>>>,
        /// Groups per list, 1 to 50 (default 10).
        #[oai(validator(minimum(value = "1"), maximum(value = "50")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<Insights>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        live_bot(state, org_id, bot_id.0).await?;
        let to = to.0.unwrap_or_else(Utc::now);
        let from = from.0.unwrap_or(to - TimeDelta::days(30));
        if to <= from {
            return Err(ApiError::new(ErrorCode::InvalidRequest, "`to` must be after `from`"));
        }
        let limit = limit.0.unwrap_or(10) as usize;
        let counts = parley_domain::store::insights::counts(&state.store, org_id, bot_id.0, from, to).await?;
        let rated = parley_domain::store::insights::satisfaction(&state.store, org_id, bot_id.0, from, to).await?;
        let asked =
            parley_domain::store::insights::questions(&state.store, org_id, bot_id.0, from, to, ANALYZED).await?;
        let all: Vec<&insights::Asked> = asked.iter().collect();
        let unanswered: Vec<&insights::Asked> = asked.iter().filter(|q| q.unanswered).collect();
        // Unanswered questions are among all: their wordings are embedded once.
        let (all_wordings, unanswered_wordings) = (Wordings::of(&all), Wordings::of(&unanswered));
        let meaning = meanings(
            state,
            all_wordings
                .representatives(&all)
                .chain(unanswered_wordings.representatives(&unanswered)),
        )
        .await?;
        let top_questions = grouped(&all, &all_wordings, &meaning, limit);
        let unanswered_questions = grouped(&unanswered, &unanswered_wordings, &meaning, limit);
        Ok(Json(Insights {
            bot_id: bot_id.0,
            from,
            to,
            conversations: counts.conversations,
            escalated_conversations: counts.escalated,
            escalation_rate: ratio(counts.escalated, counts.conversations),
            questions: counts.questions,
            answers: counts.answers,
            unanswered_answers: counts.unanswered,
            feedback: FeedbackSummary {
                up: counts.rated_up,
                down: counts.rated_down,
                ratio: ratio(counts.rated_up, counts.rated_up + counts.rated_down),
            },
            top_questions,
            unanswered_questions,
            questions_analyzed: asked.len() as u64,
            satisfaction: SatisfactionSummary {
                ratings: rated.ratings,
                average: (rated.ratings > 0).then(|| rated.sum as f64 / rated.ratings as f64),
                by_member: rated
                    .by_member
                    .into_iter()
                    .map(|(member_id, ratings, sum)| MemberSatisfaction {
                        member_id,
                        ratings,
                        average: sum as f64 / ratings.max(1) as f64,
                    })
                    .collect(),
            },
        }))
    }
}
