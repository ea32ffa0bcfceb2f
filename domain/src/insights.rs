//! Insights over a bot's conversations: questions grouped when they are
//! near-duplicates. What is read for them is in `store::insights`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::retrieval::index::dot;

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
