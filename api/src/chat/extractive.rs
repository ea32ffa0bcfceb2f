//! The embedded answer provider: no model server, no network. It picks the
//! sentences of the best passages that share the most (rare) words with the
//! question, keeps them in reading order, and cites each passage it used.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use async_trait::async_trait;
use parley_domain::aggregates::source::QA_DOC_KEY;
use parley_domain::retrieval::Analyzer;
use parley_domain::retrieval::Embed;
use parley_domain::retrieval::index::dot;
use tokio::sync::mpsc;

use super::provider::{AnswerProvider, AnswerRequest, Generated, ProviderError};

/// Passages considered for an answer.
const PASSAGES: usize = 3;
/// Sentences in an answer, at most.
const MAX_SENTENCES: usize = 3;
/// Sentences compared with the question by the model, at most.
const EMBEDDED_SENTENCES: usize = 12;
/// Words in an answer, about.
const MAX_WORDS: usize = 90;
/// Words of a Q&A answer quoted whole, at most (longer ones are cut into
/// sentences like any text).
const MAX_QUOTED_WORDS: usize = 250;

pub struct Extractive {
    /// The question-side model instance, to compare sentences with the question.
    pub embedder: Arc<dyn Embed>,
}

#[derive(Debug)]
struct Sentence {
    passage: usize,
    position: usize,
    /// What the answer shows.
    text: String,
    /// Quoted whole and set apart: a list with its lead-in, a code block,
    /// a Q&A pair's answer.
    block: bool,
    /// Its analyzed terms (repeats kept), computed once; a Q&A answer's
    /// include its question's.
    terms: Vec<String>,
    score: f32,
}

/// What an answer can quote of a passage: a sentence, a table row with its
/// column names, or a block quoted whole.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    text: String,
    block: bool,
}

impl Unit {
    fn sentence(text: impl Into<String>) -> Self {
        Unit {
            text: text.into(),
            block: false,
        }
    }
}

/// The sentences of one line: split after `.`, `!` and `?`.
fn split_sentences(line: &str, out: &mut Vec<Unit>) {
    let mut current = String::new();
    let chars: Vec<char> = line.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        current.push(*c);
        let ends = matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if ends && current.split_whitespace().count() >= 3 {
            out.push(Unit::sentence(current.trim()));
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(Unit::sentence(current.trim()));
    }
}

/// A Markdown list item's text without its marker (`-`, `*`, `•`, `1.`,
/// `1)`), and the marker to show, or `None` when the line is no item.
fn list_item(line: &str) -> Option<(&str, String)> {
    let trimmed = line.trim_start();
    for bullet in ['-', '*', '•'] {
        if let Some(rest) = trimmed.strip_prefix(bullet)
            && rest.starts_with(char::is_whitespace)
        {
            return Some((rest.trim(), "-".into()));
        }
    }
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &trimmed[digits..];
        for mark in ['.', ')'] {
            if let Some(item) = rest.strip_prefix(mark)
                && item.starts_with(char::is_whitespace)
            {
                return Some((item.trim(), format!("{}.", &trimmed[..digits])));
            }
        }
    }
    None
}

/// The cells of a Markdown table row (`\|` is a bar inside a cell).
fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').filter(|i| !i.ends_with('\\')).unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => cells.push(std::mem::take(&mut cell)),
            _ => {
                if escaped && c != '|' {
                    cell.push('\\');
                }
                escaped = false;
                cell.push(c);
            }
        }
    }
    cells.push(cell);
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn is_separator_row(line: &str) -> bool {
    let cells = table_cells(line);
    !cells.is_empty()
        && cells
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
}

/// A table row as a line that reads without the table: each cell after its
/// column's name ("Quarter: Q3 2023; Net sales: 81,797").
fn table_row(header: Option<&[String]>, row: &[String]) -> String {
    let cells = row.iter().enumerate().filter(|(_, c)| !c.is_empty()).map(|(i, c)| {
        match header.and_then(|h| h.get(i)).filter(|h| !h.is_empty()) {
            Some(name) => format!("{name}: {c}"),
            None => c.clone(),
        }
    });
    cells.collect::<Vec<_>>().join("; ")
}

/// What an answer can quote of a passage, in reading order: sentences
/// (split after `.`, `!`, `?` and at line breaks), each table row with its
/// column names, and lists (with the sentence that leads into them) and
/// code blocks whole. Headings are skipped.
fn units(text: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Whether the previous line ended a paragraph (a list's lead-in must be
    // the line right above it).
    let mut lead_in: Option<usize> = None;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            let mut block = vec![trimmed.to_owned()];
            i += 1;
            while i < lines.len() {
                let l = lines[i].trim_end();
                block.push(l.to_owned());
                i += 1;
                if l.trim().starts_with("```") {
                    break;
                }
            }
            if !block.last().is_some_and(|l| l.trim().starts_with("```")) || block.len() == 1 {
                block.push("```".to_owned());
            }
            out.push(Unit {
                text: block.join("\n"),
                block: true,
            });
            lead_in = None;
            continue;
        }
        if trimmed.starts_with('|') {
            let mut rows: Vec<&str> = Vec::new();
            while i < lines.len() && lines[i].trim().starts_with('|') {
                rows.push(lines[i].trim());
                i += 1;
            }
            let header = (rows.len() > 1 && is_separator_row(rows[1])).then(|| table_cells(rows[0]));
            let body = if header.is_some() { &rows[2..] } else { &rows[..] };
            for row in body {
                let text = table_row(header.as_deref(), &table_cells(row));
                if !text.is_empty() {
                    out.push(Unit::sentence(text));
                }
            }
            lead_in = None;
            continue;
        }
        if list_item(line).is_some() {
            let mut items: Vec<String> = Vec::new();
            while i < lines.len() {
                let l = lines[i].trim_end();
                if let Some((item, marker)) = list_item(l) {
                    items.push(format!("{marker} {item}"));
                } else if let Some(last) = items.last_mut().filter(|_| l.starts_with("  ") && !l.trim().is_empty()) {
                    // A continuation of the item above.
                    last.push(' ');
                    last.push_str(l.trim());
                } else {
                    break;
                }
                i += 1;
            }
            let mut text = items.join("\n");
            if lead_in.is_some_and(|at| at + 1 == out.len())
                && let Some(lead) = out.pop_if(|u| u.text.ends_with(':'))
            {
                text = format!("{}\n\n{text}", lead.text);
            }
            out.push(Unit { text, block: true });
            lead_in = None;
            continue;
        }
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            lead_in = None;
            continue;
        }
        split_sentences(trimmed, &mut out);
        lead_in = Some(out.len() - 1);
    }
    out
}

/// A passage as the answer sees it.
#[derive(Debug, Clone, Copy)]
struct PassageText<'a> {
    text: &'a str,
    /// The question of a Q&A pair (its heading); `None` for other knowledge.
    question: Option<&'a str>,
}

/// The candidate sentences of the best passages, in reading order. A Q&A
/// pair's answer is one candidate, quoted whole.
fn candidates(passages: &[PassageText<'_>], analyzer: &Analyzer) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (p, passage) in passages.iter().take(PASSAGES).enumerate() {
        if let Some(question) = passage.question {
            let answer: Vec<&str> = passage
                .text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            let answer = answer.join("\n").trim().to_owned();
            if !answer.is_empty() && answer.split_whitespace().count() <= MAX_QUOTED_WORDS {
                out.push(Sentence {
                    passage: p,
                    position: 0,
                    terms: analyzer.terms(&format!("{question}\n{answer}")),
                    text: answer,
                    block: true,
                    score: 0.0,
                });
                continue;
            }
        }
        for (position, unit) in units(passage.text).into_iter().enumerate() {
            out.push(Sentence {
                passage: p,
                position,
                terms: analyzer.terms(&unit.text),
                text: unit.text,
                block: unit.block,
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
        let after_block = k > 0 && candidates[chosen[k - 1]].block;
        if !text.is_empty() {
            text.push_str(if s.block || after_block { "\n\n" } else { " " });
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
            // After a code block's closing fence the marker goes on a line of its own.
            let gap = if s.text.ends_with("```") { "\n" } else { " " };
            text.push_str(&format!("{gap}[{marker}]"));
        }
    }
    (text, cited)
}

/// Cosine of each sentence with the question, from the local model; `None`
/// when it is not available. The question alone: its intent ("how much")
/// picks the sentence, while the previous message's words (in the lexical
/// score) pick what it is about.
async fn similarities(
    embedder: &Arc<dyn Embed>,
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
        let passages: Vec<PassageText<'_>> = req
            .passages
            .iter()
            .map(|p| PassageText {
                text: p.text.as_str(),
                question: (p.doc_key == QA_DOC_KEY && !p.heading_path.is_empty()).then_some(p.heading_path.as_str()),
            })
            .collect();
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

    fn plain<'a>(texts: &[&'a str]) -> Vec<PassageText<'a>> {
        texts.iter().map(|text| PassageText { text, question: None }).collect()
    }

    fn texts(text: &str) -> Vec<String> {
        units(text).into_iter().map(|u| u.text).collect()
    }

    #[test]
    fn splits_sentences_skips_headings_and_keeps_lists_whole() {
        assert_eq!(
            texts("# Title\nOne. Two words here. Done!\n\n- First item is here.\n- Second"),
            vec!["One. Two words here.", "Done!", "- First item is here.\n- Second"]
        );
        // A list keeps the sentence that leads into it, and its numbers.
        let steps = units("To reset your password:\n1. Open Settings.\n2) Click Reset.\n   It takes a minute.\nDone.");
        assert_eq!(
            steps,
            vec![
                Unit {
                    text: "To reset your password:\n\n1. Open Settings.\n2. Click Reset. It takes a minute.".into(),
                    block: true
                },
                Unit::sentence("Done.")
            ]
        );
        // A lead-in must be right above the list.
        assert_eq!(texts("Options:\n\n- a\n- b")[0], "Options:");
    }

    #[test]
    fn code_blocks_whole_and_table_rows_with_their_column_names() {
        let u = units("Run this:\n\n```sh\ncargo build\n\ncargo test\n```\nThen wait.");
        assert_eq!(u[1].text, "```sh\ncargo build\n\ncargo test\n```");
        assert!(u[1].block);
        assert_eq!(u[2].text, "Then wait.");
        let table = "| Quarter | Net sales |\n|---|---|\n| Q3 2023 | 81,797 |\n| Q3 2022 \\| restated | |";
        assert_eq!(
            texts(table),
            vec!["Quarter: Q3 2023; Net sales: 81,797", "Quarter: Q3 2022 | restated"]
        );
        // No header row: the cells alone.
        assert_eq!(texts("| a | b |\n| c | d |"), vec!["a; b", "c; d"]);
    }

    #[test]
    fn a_matching_qa_pair_is_answered_whole() {
        let a = Analyzer::default();
        let answer = "Yes. Orders to Germany arrive in 3 to 5 days.\n\nShipping costs 9 euros; \
            it is free from 50 euros.";
        let passages = [
            PassageText {
                text: answer,
                question: Some("Do you deliver to Germany?"),
            },
            PassageText {
                text: "Click Forgot password on the login page.",
                question: Some("How do I reset my password?"),
            },
        ];
        let (text, cited) = compose(
            "do you ship to germany and what does it cost",
            None,
            candidates(&passages, &a),
            None,
            &a,
        );
        assert_eq!(text, format!("{answer} [1]"));
        assert_eq!(cited, vec![0]);
    }

    #[test]
    fn steps_are_quoted_whole() {
        let a = Analyzer::default();
        let guide = "## Password\nTo reset your password:\n1. Open the login page.\n2. Click Forgot password.\n\
            3. Follow the link in the email.\nPasswords must have 12 characters.";
        let (text, _) = compose(
            "how do I reset my password",
            None,
            candidates(&plain(&[guide, SHIPPING]), &a),
            None,
            &a,
        );
        assert!(
            text.starts_with(
                "To reset your password:\n\n1. Open the login page.\n2. Click Forgot password.\n3. Follow"
            ),
            "{text}"
        );
        assert!(!text.contains("warehouse"), "{text}");
    }

    #[test]
    fn picks_the_sentence_that_answers_and_cites_its_passage() {
        let a = Analyzer::default();
        let (text, cited) = compose(
            "How much is the Pro plan?",
            None,
            candidates(&plain(&[PRICING, SHIPPING]), &a),
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
            candidates(&plain(&[PRICING, SHIPPING]), &a),
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
            candidates(&plain(&[PRICING]), &a),
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
            candidates(&plain(&[shipping, password]), &a),
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
        let (text, cited) = compose(
            "delivery abroad?",
            None,
            candidates(&plain(&[SHIPPING, PRICING]), &a),
            None,
            &a,
        );
        assert!(text.starts_with("We ship worldwide."), "{text}");
        assert_eq!(cited, vec![0]);
    }
}
