//! The embedded answer provider: no model server, no network. It picks the
//! sentences of the best passages that share the most (rare) words with the
//! question, keeps them in reading order, and cites each passage it used.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use async_trait::async_trait;
use parley_domain::retrieval::Analyzer;
use parley_domain::retrieval::index::dot;
use parley_worker::ingest::embed::Embedder;
use tokio::sync::mpsc;

use super::{AnswerProvider, AnswerRequest, Generated, ProviderError};

/// Passages considered for an answer.
const PASSAGES: usize = 3;
/// Sentences in an answer, at most.
const MAX_SENTENCES: usize = 3;
/// Sentences compared with the question by the model, at most.
const EMBEDDED_SENTENCES: usize = 12;
/// Words in an answer, about.
const MAX_WORDS: usize = 90;

pub struct Extractive {
    /// The question-side model instance, to compare sentences with the question.
    pub embedder: Arc<Embedder>,
}

#[derive(Debug)]
struct Sentence {
    passage: usize,
    position: usize,
    text: String,
    /// Its analyzed terms (repeats kept), computed once.
    terms: Vec<String>,
    score: f32,
}

/// Sentences of a passage: split after `.`, `!`, `?` and at line breaks;
/// Markdown list markers are dropped, headings and table rows skipped.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // Headings and table rows are not sentences.
        if line.starts_with('#') || line.starts_with('|') {
            continue;
        }
        let line = line.trim_start_matches(['-', '*', '•']).trim();
        if line.is_empty() {
            continue;
        }
        let mut current = String::new();
        let chars: Vec<char> = line.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            current.push(*c);
            let ends = matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            if ends && current.split_whitespace().count() >= 3 {
                out.push(current.trim().to_owned());
                current.clear();
            }
        }
        if !current.trim().is_empty() {
            out.push(current.trim().to_owned());
        }
    }
    out
}

/// The candidate sentences of the best passages, in reading order.
fn candidates(passages: &[&str], analyzer: &Analyzer) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (p, text) in passages.iter().take(PASSAGES).enumerate() {
        for (position, s) in sentences(text).into_iter().enumerate() {
            out.push(Sentence {
                passage: p,
                position,
                terms: analyzer.terms(&s),
                text: s,
                score: 0.0,
            });
        }
    }
    out
}

/// Composes the answer text: sentences grouped by passage, each group
/// followed by its citation marker. Returns the text and the cited passages
/// in marker order.
///
/// `context` is the visitor's previous message: a follow-up ("and how much is
/// it?") leans on it. `similarity`, when the model is at hand, is each
/// sentence's cosine with the question, which finds the answer when it
/// shares no words with the question.
fn compose(
    question: &str,
    context: Option<&str>,
    mut candidates: Vec<Sentence>,
    similarity: Option<&[f32]>,
    analyzer: &Analyzer,
) -> (String, Vec<usize>) {
    if candidates.is_empty() {
        return (String::new(), vec![]);
    }
    let own: HashSet<String> = analyzer.terms(question).into_iter().collect();
    let mut question_terms = own.clone();
    question_terms.extend(context.map(|c| analyzer.terms(c)).unwrap_or_default());
    // Rarer words (in these passages) say more about the question.
    let mut df: HashMap<String, usize> = HashMap::new();
    let sentence_terms: Vec<HashSet<String>> = candidates.iter().map(|s| s.terms.iter().cloned().collect()).collect();
    for terms in &sentence_terms {
        for t in terms {
            *df.entry(t.clone()).or_default() += 1;
        }
    }
    let n = candidates.len() as f32;
    let lexical: Vec<f32> = sentence_terms
        .iter()
        .map(|terms| {
            let overlap: f32 = terms
                .intersection(&question_terms)
                .map(|t| (1.0 + n / df[t] as f32).ln() * if own.contains(t) { 1.0 } else { 0.5 })
                .sum();
            overlap / (terms.len().max(4) as f32).sqrt()
        })
        .collect();
    let max_lexical = lexical.iter().copied().fold(0.0, f32::max);
    for (i, s) in candidates.iter_mut().enumerate() {
        let lex = if max_lexical > 0.0 {
            lexical[i] / max_lexical
        } else {
            0.0
        };
        // Better passages and earlier sentences win ties.
        let prior = 0.05 / (1.0 + s.passage as f32) + 0.02 / (1.0 + s.position as f32);
        s.score = match similarity {
            Some(sim) => 0.6 * sim.get(i).copied().unwrap_or(0.0) + 0.4 * lex + prior,
            None => lex + prior,
        };
    }
    let mut ranked: Vec<usize> = (0..candidates.len()).collect();
    ranked.sort_by(|a, b| candidates[*b].score.total_cmp(&candidates[*a].score));

    let mut chosen: Vec<usize> = Vec::new();
    if similarity.is_none() && max_lexical == 0.0 {
        // Nothing to go on but the retrieval: the best passage's opening.
        chosen = (0..candidates.len())
            .filter(|i| candidates[*i].passage == 0)
            .take(2)
            .collect();
    } else {
        // The best sentence, then only sentences that cover a word of the
        // question the chosen ones do not: short answers that still address
        // every part of the question. Words of asking ("how", "do", "it")
        // are no part to address: a sentence sharing only those is about
        // something else.
        let mut covered: HashSet<&String> = HashSet::new();
        let mut words = 0;
        for i in ranked {
            let new: Vec<&String> = sentence_terms[i]
                .intersection(&own)
                .filter(|t| !covered.contains(t) && (chosen.is_empty() || !analyzer.is_asking(t)))
                .collect();
            if !chosen.is_empty() && new.is_empty() {
                continue;
            }
            let w = candidates[i].text.split_whitespace().count();
            if !chosen.is_empty() && words + w > MAX_WORDS {
                continue;
            }
            covered.extend(new);
            chosen.push(i);
            words += w;
            if chosen.len() == MAX_SENTENCES || words >= MAX_WORDS {
                break;
            }
        }
    }
    chosen.sort_by_key(|i| (candidates[*i].passage, candidates[*i].position));

    let mut cited: Vec<usize> = Vec::new();
    let mut text = String::new();
    for (k, i) in chosen.iter().enumerate() {
        let s = &candidates[*i];
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&s.text);
        let last_of_group = chosen
            .get(k + 1)
            .is_none_or(|next| candidates[*next].passage != s.passage);
        if last_of_group {
            let marker = match cited.iter().position(|p| *p == s.passage) {
                Some(at) => at + 1,
                None => {
                    cited.push(s.passage);
                    cited.len()
                }
            };
            text.push_str(&format!(" [{marker}]"));
        }
    }
    (text, cited)
}

/// Cosine of each sentence with the question, from the local model; `None`
/// when it is not available. The question alone: its intent ("how much")
/// picks the sentence, while the previous message's words (in the lexical
/// score) pick what it is about.
async fn similarities(
    embedder: &Arc<Embedder>,
    question: &str,
    sentences: &[Sentence],
    picked: &[usize],
) -> Option<Vec<f32>> {
    let mut texts = vec![question.to_owned()];
    texts.extend(picked.iter().map(|i| sentences[*i].text.clone()));
    let vectors = match embedder.embed(texts).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "sentence embeddings unavailable; answering from shared words only");
            return None;
        }
    };
    let query = &vectors[0];
    let mut out = vec![0.0; sentences.len()];
    for (i, v) in picked.iter().zip(&vectors[1..]) {
        out[*i] = dot(v, query);
    }
    Some(out)
}

/// The sentences worth embedding (embedding is most of an answer's time):
/// those sharing the most question words, then the best passage's first.
fn shortlist(question: &str, context: Option<&str>, sentences: &[Sentence], analyzer: &Analyzer) -> Vec<usize> {
    let mut terms: HashSet<String> = analyzer.terms(question).into_iter().collect();
    terms.extend(context.map(|c| analyzer.terms(c)).unwrap_or_default());
    let mut ranked: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shared = s.terms.iter().filter(|t| terms.contains(*t)).count();
            (i, shared)
        })
        .collect();
    ranked.sort_by_key(|(i, shared)| {
        (
            std::cmp::Reverse(*shared),
            sentences[*i].passage,
            sentences[*i].position,
        )
    });
    ranked.into_iter().take(EMBEDDED_SENTENCES).map(|(i, _)| i).collect()
}

#[async_trait]
impl AnswerProvider for Extractive {
    fn name(&self) -> &'static str {
        "extractive"
    }

    async fn answer(&self, req: &AnswerRequest, out: &mpsc::Sender<String>) -> Result<Generated, ProviderError> {
        let passages: Vec<&str> = req.passages.iter().map(|p| p.text.as_str()).collect();
        let context = req
            .history
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.text.as_str());
        let sentences = candidates(&passages, &req.analyzer);
        let picked = shortlist(&req.question, context, &sentences, &req.analyzer);
        let similarity = similarities(&self.embedder, &req.question, &sentences, &picked).await;
        let (text, cited) = compose(&req.question, context, sentences, similarity.as_deref(), &req.analyzer);
        // Streamed word by word, as a model would.
        let mut sent = String::new();
        for piece in text.split_inclusive(' ') {
            sent.push_str(piece);
            // A closed receiver means the client left; the answer is still kept.
            let _ = out.send(piece.to_owned()).await;
        }
        Ok(Generated {
            completion_tokens: text.split_whitespace().count() as u32,
            prompt_tokens: 0,
            text: sent,
            cited,
            model: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICING: &str = "## Plans\nThe Basic plan costs 10 euros per month. \
        The Pro plan costs 25 euros per month and adds priority support. \
        All plans include unlimited bots.";
    const SHIPPING: &str = "We ship worldwide. Orders leave our warehouse within two days.";

    #[test]
    fn splits_sentences_and_drops_markdown_markers() {
        assert_eq!(
            sentences("# Title\n- First item is here.\n| a | b |\nOne. Two words here. Done!"),
            vec!["First item is here.", "One. Two words here.", "Done!"]
        );
    }

    #[test]
    fn picks_the_sentence_that_answers_and_cites_its_passage() {
        let a = Analyzer::default();
        let (text, cited) = compose(
            "How much is the Pro plan?",
            None,
            candidates(&[PRICING, SHIPPING], &a),
            None,
            &a,
        );
        assert!(text.contains("The Pro plan costs 25 euros"), "{text}");
        assert!(text.ends_with("[1]"), "{text}");
        assert!(!text.contains("warehouse"), "{text}");
        assert_eq!(cited, vec![0]);
    }

    #[test]
    fn numbers_citations_in_order_of_use() {
        let a = Analyzer::default();
        let (text, cited) = compose(
            "How much is the Pro plan, and when do orders leave the warehouse?",
            None,
            candidates(&[PRICING, SHIPPING], &a),
            None,
            &a,
        );
        assert_eq!(cited, vec![0, 1], "{text}");
        assert!(text.contains("[1]") && text.contains("[2]"), "{text}");
        let first = text.find("[1]").unwrap();
        let second = text.find("[2]").unwrap();
        assert!(first < second);
    }

    #[test]
    fn a_follow_up_leans_on_the_previous_question() {
        let a = Analyzer::default();
        let (text, _) = compose(
            "and how much is it?",
            Some("Tell me about the Pro plan"),
            candidates(&[PRICING], &a),
            None,
            &a,
        );
        assert!(text.contains("The Pro plan costs 25 euros"), "{text}");
        assert!(!text.contains("Basic"), "{text}");
    }

    #[test]
    fn unrelated_passages_are_not_stitched_in() {
        let a = Analyzer::default();
        let shipping =
            "Do you deliver to Germany?\n\nYes, we deliver to every EU country. Shipping to Germany costs 9 euros.";
        let password = "How do I reset my password?\n\nClick Forgot password on the login page.";
        let (text, cited) = compose(
            "do you deliver to Germany? how much does it cost",
            None,
            candidates(&[shipping, password], &a),
            None,
            &a,
        );
        assert!(text.contains("9 euros"), "{text}");
        assert!(!text.contains("password"), "{text}");
        assert_eq!(cited, vec![0]);
    }

    #[test]
    fn a_paraphrase_gets_the_best_passage_opening() {
        let a = Analyzer::default();
        let (text, cited) = compose("delivery abroad?", None, candidates(&[SHIPPING, PRICING], &a), None, &a);
        assert!(text.starts_with("We ship worldwide."), "{text}");
        assert_eq!(cited, vec![0]);
    }
}
