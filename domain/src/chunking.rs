//! Heading-aware chunking sized in model tokens, with overlap. Each chunk keeps
//! its heading path ("A > B") and the page it starts on; tables stay whole
//! with their header when they fit, and are split by rows (header repeated)
//! when they do not.

use crate::document::{Block, Document, table_markdown};

/// Counts model tokens (word pieces) of a text, without special tokens.
pub trait TokenCounter: Send + Sync {
    fn count(&self, text: &str) -> usize;
}

/// Whitespace words: a stand-in for tests of other logic.
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// Most tokens in one chunk, heading path included. The model reads at
    /// most 256 word pieces, two of which are special tokens.
    pub max_tokens: usize,
    /// Tokens of the previous chunk repeated at the start of the next one
    /// within a section.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 240,
            overlap_tokens: 40,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub ordinal: u32,
    /// The document's title, which gives every chunk its document.
    pub title: Option<String>,
    /// Headings above the chunk, outermost first, joined with " > ".
    pub heading_path: String,
    pub text: String,
    /// Tokens of `embedding_text()`.
    pub tokens: u32,
    pub page: Option<u32>,
}

impl Chunk {
    /// What is embedded: the document's title and the heading path give the
    /// passage its context ("Microsoft's gross margin" is found in
    /// Microsoft's filing, not in every filing's margin table).
    pub fn embedding_text(&self) -> String {
        embedding_text(&context(self.title.as_deref(), &self.heading_path), &self.text)
    }
}

/// The title and the heading path, the title left out when the path
/// already starts with it.
pub fn context(title: Option<&str>, heading_path: &str) -> String {
    let title = title.map(str::trim).filter(|t| !t.is_empty());
    match title {
        Some(t) if !heading_path.to_lowercase().starts_with(&t.to_lowercase()) => {
            if heading_path.is_empty() {
                t.to_owned()
            } else {
                format!("{t} > {heading_path}")
            }
        }
        Some(_) | None => heading_path.to_owned(),
    }
}

/// What is embedded for a chunk: its context, then its text.
pub fn embedding_text(context: &str, text: &str) -> String {
    if context.is_empty() {
        text.to_owned()
    } else {
        format!("{context}\n\n{text}")
    }
}

/// One piece of a chunk, with its token count.
struct Piece {
    text: String,
    tokens: usize,
    prose: bool,
    /// Continues the previous piece's paragraph (joined with a space).
    glue: bool,
}

struct Builder<'a> {
    counter: &'a dyn TokenCounter,
    title: Option<String>,
    config: ChunkConfig,
    chunks: Vec<Chunk>,
    heading_path: String,
    path_tokens: usize,
    pieces: Vec<Piece>,
    page: Option<u32>,
}

impl Builder<'_> {
    fn budget(&self) -> usize {
        self.config.max_tokens.saturating_sub(self.path_tokens + 2).max(16)
    }

    fn used(&self) -> usize {
        self.pieces.iter().map(|p| p.tokens).sum()
    }

    fn flush(&mut self, keep_overlap: bool) {
        if self.pieces.iter().all(|p| p.text.trim().is_empty()) {
            self.pieces.clear();
            return;
        }
        let mut text = String::new();
        for (i, p) in self.pieces.iter().enumerate() {
            if i > 0 {
                text.push_str(if p.glue { " " } else { "\n\n" });
            }
            text.push_str(&p.text);
        }
        let tokens = self.counter.count(&embedding_text(
            &context(self.title.as_deref(), &self.heading_path),
            &text,
        ));
        self.chunks.push(Chunk {
            ordinal: self.chunks.len() as u32,
            title: self.title.clone(),
            heading_path: self.heading_path.clone(),
            text,
            tokens: tokens as u32,
            page: self.page,
        });
        let overlap = if keep_overlap { self.overlap_tail() } else { None };
        self.pieces.clear();
        self.page = None;
        if let Some(tail) = overlap {
            self.pieces.push(tail);
        }
    }

    /// The last sentences of the current chunk's prose, up to the overlap size.
    fn overlap_tail(&self) -> Option<Piece> {
        let mut taken: Vec<String> = Vec::new();
        let mut tokens = 0;
        'pieces: for piece in self.pieces.iter().rev() {
            if !piece.prose {
                break;
            }
            for sentence in sentences(&piece.text).into_iter().rev() {
                let n = self.counter.count(&sentence);
                if tokens + n > self.config.overlap_tokens {
                    break 'pieces;
                }
                tokens += n;
                taken.push(sentence);
            }
            if !piece.glue {
                break;
            }
        }
        if taken.is_empty() || tokens >= self.used() {
            return None;
        }
        taken.reverse();
        Some(Piece {
            text: taken.join(" "),
            tokens,
            prose: true,
            glue: false,
        })
    }

    fn push(&mut self, mut piece: Piece, page: Option<u32>) {
        if !self.pieces.is_empty() && self.used() + piece.tokens > self.budget() {
            self.flush(true);
            if self.used() + piece.tokens > self.budget() {
                // No room for the overlap beside this piece.
                self.pieces.clear();
            }
        }
        if self.pieces.is_empty() {
            piece.glue = false;
        }
        if self.page.is_none() {
            self.page = page;
        }
        self.pieces.push(piece);
    }

    fn add_prose(&mut self, text: &str, page: Option<u32>) {
        let tokens = self.counter.count(text);
        if tokens <= self.budget() {
            self.push(
                Piece {
                    text: text.to_owned(),
                    tokens,
                    prose: true,
                    glue: false,
                },
                page,
            );
            return;
        }
        // Too long for one chunk: sentence by sentence, and words for a runaway sentence.
        let mut first = true;
        for sentence in sentences(text) {
            let n = self.counter.count(&sentence);
            let parts = if n > self.budget() {
                split_words(&sentence, self.budget(), self.counter)
            } else {
                vec![sentence]
            };
            for part in parts {
                let tokens = self.counter.count(&part);
                self.push(
                    Piece {
                        text: part,
                        tokens,
                        prose: true,
                        glue: !first,
                    },
                    page,
                );
                first = false;
            }
        }
    }

    fn add_table(&mut self, rows: &[Vec<String>], header: bool, page: Option<u32>) {
        let whole = table_markdown(rows, header);
        let tokens = self.counter.count(&whole);
        if tokens <= self.budget() {
            // Kept whole, in a chunk of its own when it does not fit beside the text before it.
            self.push(
                Piece {
                    text: whole,
                    tokens,
                    prose: false,
                    glue: false,
                },
                page,
            );
            return;
        }
        let (head, body) = if header && !rows.is_empty() {
            (Some(&rows[0]), &rows[1..])
        } else {
            (None, rows)
        };
        let mut group: Vec<Vec<String>> = Vec::new();
        for row in body {
            let mut candidate: Vec<Vec<String>> = head.into_iter().cloned().collect();
            candidate.extend(group.iter().cloned());
            candidate.push(row.clone());
            if self.counter.count(&table_markdown(&candidate, head.is_some())) > self.budget() && !group.is_empty() {
                self.push_rows(head, std::mem::take(&mut group), page);
            }
            group.push(row.clone());
        }
        if !group.is_empty() {
            self.push_rows(head, group, page);
        }
    }

    /// Some rows of a split table, under its header, as a chunk of their own.
    fn push_rows(&mut self, head: Option<&Vec<String>>, mut group: Vec<Vec<String>>, page: Option<u32>) {
        let mut rows: Vec<Vec<String>> = head.into_iter().cloned().collect();
        rows.append(&mut group);
        let text = table_markdown(&rows, head.is_some());
        let tokens = self.counter.count(&text);
        self.flush(false);
        self.push(
            Piece {
                text,
                tokens,
                prose: false,
                glue: false,
            },
            page,
        );
    }
}

/// Splits prose after `.`, `!` or `?` followed by white space.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|n| n.is_whitespace()) {
            out.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

fn split_words(text: &str, budget: usize, counter: &dyn TokenCounter) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut tokens = 0;
    for word in text.split_whitespace() {
        let n = counter.count(word).max(1);
        if tokens + n > budget && !current.is_empty() {
            parts.push(current.join(" "));
            current.clear();
            tokens = 0;
        }
        current.push(word);
        tokens += n;
    }
    if !current.is_empty() {
        parts.push(current.join(" "));
    }
    parts
}

/// Chunks a document.
pub fn chunk(doc: &Document, counter: &dyn TokenCounter, config: ChunkConfig) -> Vec<Chunk> {
    let title = doc
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let mut b = Builder {
        counter,
        title: title.clone(),
        config,
        chunks: Vec::new(),
        heading_path: String::new(),
        path_tokens: counter.count(&context(title.as_deref(), "")),
        pieces: Vec::new(),
        page: None,
    };
    let mut headings: Vec<(u8, String)> = Vec::new();
    for block in &doc.blocks {
        match block {
            Block::Heading { level, text, .. } => {
                b.flush(false);
                while headings.last().is_some_and(|(l, _)| *l >= *level) {
                    headings.pop();
                }
                headings.push((*level, text.trim().to_owned()));
                b.heading_path = headings.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(" > ");
                b.path_tokens = counter.count(&context(title.as_deref(), &b.heading_path));
            }
            Block::Paragraph { text, page } | Block::Code { text, page } => b.add_prose(text, *page),
            Block::ListItem { .. } => b.add_prose(&block.to_markdown(), block.page()),
            Block::Table { rows, header, page } => b.add_table(rows, *header, *page),
        }
    }
    b.flush(false);
    b.chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse_markdown;

    fn cfg(max: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
        }
    }

    #[test]
    fn chunks_follow_headings_and_keep_their_path() {
        let doc = parse_markdown(
            "# Guide\n\nIntro text.\n\n## Billing\n\nPay monthly.\n\n### Refunds\n\nWithin 30 days.\n\n## Support\n\nMail us.",
        );
        let chunks = chunk(&doc, &WordCounter, cfg(100, 10));
        let paths: Vec<_> = chunks.iter().map(|c| c.heading_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Guide",
                "Guide > Billing",
                "Guide > Billing > Refunds",
                "Guide > Support"
            ]
        );
        assert_eq!(chunks[2].text, "Within 30 days.");
        assert_eq!(
            chunks[2].embedding_text(),
            "Guide > Billing > Refunds\n\nWithin 30 days."
        );
        assert_eq!(chunks[2].tokens, 8);
        assert!(chunks.iter().enumerate().all(|(i, c)| c.ordinal as usize == i));
    }

    #[test]
    fn every_chunk_carries_its_documents_title() {
        let mut doc = parse_markdown("## Gross margin\n\nGross margin was 42 percent.\n\nMore text follows here.");
        doc.title = Some("Microsoft 10-K 2023".into());
        let chunks = chunk(&doc, &WordCounter, cfg(100, 10));
        assert_eq!(
            chunks[0].embedding_text(),
            "Microsoft 10-K 2023 > Gross margin\n\nGross margin was 42 percent.\n\nMore text follows here."
        );
        assert_eq!(chunks[0].tokens, 15);
        // A title that is the first heading is not said twice.
        assert_eq!(context(Some("Guide"), "Guide > Billing"), "Guide > Billing");
        assert_eq!(context(Some("Guide"), ""), "Guide");
        assert_eq!(context(None, "A > B"), "A > B");
    }

    #[test]
    fn long_prose_is_split_within_budget_with_overlap() {
        let sentences: Vec<String> = (0..40).map(|i| format!("Sentence number {i} is here.")).collect();
        let doc = parse_markdown(&format!("# T\n\n{}", sentences.join(" ")));
        let chunks = chunk(&doc, &WordCounter, cfg(30, 10));
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.tokens as usize <= 30, "{} tokens: {}", c.tokens, c.text);
        }
        // The next chunk starts with the end of the previous one.
        for pair in chunks.windows(2) {
            let overlap = (1..=pair[1].text.len())
                .rev()
                .filter(|n| pair[1].text.is_char_boundary(*n))
                .map(|n| &pair[1].text[..n])
                .find(|prefix| pair[0].text.ends_with(prefix))
                .unwrap_or("");
            assert!(
                !overlap.is_empty(),
                "no overlap: {:?} / {:?}",
                pair[0].text,
                pair[1].text
            );
            assert!(WordCounter.count(overlap) <= 10, "overlap too long: {overlap:?}");
        }
        // Every sentence is somewhere.
        let all = chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" ");
        assert!(sentences.iter().all(|s| all.contains(s.as_str())));
    }

    #[test]
    fn tables_stay_whole_or_split_by_rows_with_their_header() {
        let small = parse_markdown("# P\n\n| Plan | Price |\n|---|---|\n| Pro | 20 |\n| Team | 50 |");
        let chunks = chunk(&small, &WordCounter, cfg(100, 10));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.starts_with("| Plan | Price |"));
        let rows: String = (0..30).map(|i| format!("| Item {i} | {i} euros |\n")).collect();
        let big = parse_markdown(&format!("# P\n\n| Item | Price |\n|---|---|\n{rows}"));
        let chunks = chunk(&big, &WordCounter, cfg(40, 10));
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(c.text.starts_with("| Item | Price |\n|---|---|"), "{}", c.text);
            assert!(c.tokens <= 40);
        }
    }

    #[test]
    fn a_runaway_sentence_is_split_by_words_and_pages_are_kept() {
        let doc = Document {
            title: None,
            blocks: vec![
                Block::Paragraph {
                    text: "word ".repeat(100),
                    page: Some(3),
                },
                Block::Paragraph {
                    text: "Last.".into(),
                    page: Some(4),
                },
            ],
            page_count: Some(4),
        };
        let chunks = chunk(&doc, &WordCounter, cfg(30, 5));
        assert!(chunks.iter().all(|c| c.tokens <= 30));
        assert_eq!(chunks[0].page, Some(3));
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.text.split_whitespace().filter(|w| *w == "word").count())
                .sum::<usize>(),
            100
        );
    }
}
