//! A parsed document: blocks in reading order, each with its page when known.
//! Every parser (HTML, PDF, DOCX, TXT, Markdown) produces this shape; the
//! chunker consumes it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Block {
    /// A heading of level 1 (title) to 6.
    Heading {
        level: u8,
        text: String,
        page: Option<u32>,
    },
    Paragraph {
        text: String,
        page: Option<u32>,
    },
    ListItem {
        depth: u8,
        text: String,
        page: Option<u32>,
    },
    /// A table: the first row is the header when `header` is true.
    Table {
        rows: Vec<Vec<String>>,
        header: bool,
        page: Option<u32>,
    },
    /// Preformatted text (code).
    Code {
        text: String,
        page: Option<u32>,
    },
}

impl Block {
    pub fn page(&self) -> Option<u32> {
        match self {
            Block::Heading { page, .. }
            | Block::Paragraph { page, .. }
            | Block::ListItem { page, .. }
            | Block::Table { page, .. }
            | Block::Code { page, .. } => *page,
        }
    }

    /// The block as Markdown.
    pub fn to_markdown(&self) -> String {
        match self {
            Block::Heading { level, text, .. } => format!("{} {}", "#".repeat(usize::from((*level).clamp(1, 6))), text),
            Block::Paragraph { text, .. } => text.clone(),
            Block::ListItem { depth, text, .. } => format!("{}- {}", "  ".repeat(usize::from(*depth)), text),
            Block::Table { rows, header, .. } => table_markdown(rows, *header),
            Block::Code { text, .. } => format!("```\n{text}\n```"),
        }
    }
}

/// Rows as a pipe table; a separator follows the header row.
pub fn table_markdown(rows: &[Vec<String>], header: bool) -> String {
    let mut out = Vec::with_capacity(rows.len() + 1);
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        out.push(format!("| {} |", cells.join(" | ")));
        if i == 0 && header {
            out.push(format!("|{}|", vec!["---"; row.len().max(1)].join("|")));
        }
    }
    out.join("\n")
}

/// A whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    /// Pages of a paged format (PDF, DOCX when known).
    pub page_count: Option<u32>,
}

/// Fewest documents a site must have before repeated text counts as boilerplate.
const BOILERPLATE_MIN_DOCS: usize = 4;

/// Paragraphs and list items that appear, word for word, in at least half
/// of a site's documents (and in three or more): footers, cookie notices,
/// "share this page" lines that survived the HTML cleanup. Headings and
/// tables are never counted.
pub fn repeated_text(docs: &[Document]) -> std::collections::HashSet<String> {
    use std::collections::{HashMap, HashSet};
    if docs.len() < BOILERPLATE_MIN_DOCS {
        return HashSet::new();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for doc in docs {
        let mut in_doc: HashSet<String> = HashSet::new();
        for block in &doc.blocks {
            if let Some(key) = block.boilerplate_key() {
                in_doc.insert(key);
            }
        }
        for key in in_doc {
            *seen.entry(key).or_default() += 1;
        }
    }
    let threshold = (docs.len() / 2).max(3);
    seen.into_iter()
        .filter(|(_, n)| *n >= threshold)
        .map(|(k, _)| k)
        .collect()
}

impl Block {
    /// The normalized text by which repeated blocks are recognized.
    fn boilerplate_key(&self) -> Option<String> {
        match self {
            Block::Paragraph { text, .. } | Block::ListItem { text, .. } => {
                let key = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                (!key.is_empty()).then_some(key)
            }
            Block::Heading { .. } | Block::Table { .. } | Block::Code { .. } => None,
        }
    }
}

impl Document {
    /// The document without the given repeated text.
    pub fn without_repeated(mut self, repeated: &std::collections::HashSet<String>) -> Document {
        if !repeated.is_empty() {
            self.blocks
                .retain(|b| b.boilerplate_key().is_none_or(|k| !repeated.contains(&k)));
        }
        self
    }

    pub fn to_markdown(&self) -> String {
        self.blocks
            .iter()
            .map(Block::to_markdown)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Whether the document holds any words at all.
    pub fn has_text(&self) -> bool {
        self.blocks.iter().any(|b| match b {
            Block::Table { rows, .. } => rows.iter().flatten().any(|c| c.chars().any(char::is_alphanumeric)),
            Block::Heading { text, .. }
            | Block::Paragraph { text, .. }
            | Block::ListItem { text, .. }
            | Block::Code { text, .. } => text.chars().any(char::is_alphanumeric),
        })
    }
}

/// Markdown (and plain text) to blocks: ATX headings, list items, fenced code,
/// pipe tables, and paragraphs separated by blank lines.
pub fn parse_markdown(text: &str) -> Document {
    let mut blocks = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut table_header = false;
    let mut code: Option<Vec<&str>> = None;
    let flush_paragraph = |paragraph: &mut Vec<&str>, blocks: &mut Vec<Block>| {
        if !paragraph.is_empty() {
            let text = paragraph.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            if !text.trim().is_empty() {
                blocks.push(Block::Paragraph { text, page: None });
            }
            paragraph.clear();
        }
    };
    let flush_table = |table: &mut Vec<Vec<String>>, header: &mut bool, blocks: &mut Vec<Block>| {
        if !table.is_empty() {
            blocks.push(Block::Table {
                rows: std::mem::take(table),
                header: *header,
                page: None,
            });
            *header = false;
        }
    };
    for line in text.lines() {
        if let Some(lines) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.push(Block::Code {
                    text: lines.join("\n"),
                    page: None,
                });
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            flush_paragraph(&mut paragraph, &mut blocks);
            flush_table(&mut table, &mut table_header, &mut blocks);
            code = Some(Vec::new());
            continue;
        }
        if trimmed.starts_with('|') && trimmed.ends_with('|') && trimmed.len() > 1 {
            flush_paragraph(&mut paragraph, &mut blocks);
            let inner = &trimmed[1..trimmed.len() - 1];
            if inner.chars().all(|c| matches!(c, '-' | ':' | '|' | ' ')) && inner.contains('-') {
                table_header = table.len() == 1;
                continue;
            }
            table.push(inner.split('|').map(|c| c.trim().to_owned()).collect());
            continue;
        }
        flush_table(&mut table, &mut table_header, &mut blocks);
        if trimmed.is_empty() {
            flush_paragraph(&mut paragraph, &mut blocks);
            continue;
        }
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            flush_paragraph(&mut paragraph, &mut blocks);
            let text = trimmed[hashes..].trim().trim_end_matches('#').trim().to_owned();
            blocks.push(Block::Heading {
                level: hashes as u8,
                text,
                page: None,
            });
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let bullet = ["- ", "* ", "+ "]
            .iter()
            .find(|b| trimmed.starts_with(**b))
            .map(|b| b.len())
            .or_else(|| {
                let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
                (digits > 0 && trimmed[digits..].starts_with(". ")).then_some(digits + 2)
            });
        if let Some(skip) = bullet {
            flush_paragraph(&mut paragraph, &mut blocks);
            blocks.push(Block::ListItem {
                depth: (indent / 2).min(8) as u8,
                text: trimmed[skip..].trim().to_owned(),
                page: None,
            });
            continue;
        }
        paragraph.push(line);
    }
    if let Some(lines) = code {
        blocks.push(Block::Code {
            text: lines.join("\n"),
            page: None,
        });
    }
    flush_paragraph(&mut paragraph, &mut blocks);
    flush_table(&mut table, &mut table_header, &mut blocks);
    let title = blocks.iter().find_map(|b| match b {
        Block::Heading { text, .. } => Some(text.clone()),
        Block::Paragraph { .. } | Block::ListItem { .. } | Block::Table { .. } | Block::Code { .. } => None,
    });
    Document {
        title,
        blocks,
        page_count: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str, footer: &str) -> Document {
        Document {
            title: None,
            blocks: vec![
                Block::Heading {
                    level: 1,
                    text: "Docs".into(),
                    page: None,
                },
                Block::Paragraph {
                    text: body.into(),
                    page: None,
                },
                Block::Paragraph {
                    text: footer.into(),
                    page: None,
                },
            ],
            page_count: None,
        }
    }

    #[test]
    fn text_on_most_pages_of_a_site_is_boilerplate() {
        let footer = "© 2026 Acme  Inc. All rights reserved.";
        let docs: Vec<Document> = (0..6)
            .map(|i| {
                page(
                    &format!("Page {i} explains topic {i}."),
                    if i < 4 { footer } else { "Other" },
                )
            })
            .collect();
        let repeated = repeated_text(&docs);
        assert_eq!(repeated.len(), 1, "{repeated:?}");
        let cleaned = docs[0].clone().without_repeated(&repeated);
        assert_eq!(cleaned.blocks.len(), 2, "the heading stays, the footer goes");
        assert!(cleaned.to_markdown().contains("Page 0 explains"));
        // Too few documents to tell boilerplate from content.
        assert!(repeated_text(&docs[..3]).is_empty());
    }

    #[test]
    fn markdown_blocks() {
        let doc = parse_markdown(
            "# Plans\n\nWe offer two\nplans.\n\n## Pro\n\n- fast\n  - faster\n1. first\n\n| Plan | Price |\n|---|---|\n| Pro | 20 |\n\n```\ncode here\n```\n",
        );
        assert_eq!(doc.title.as_deref(), Some("Plans"));
        assert_eq!(
            doc.blocks,
            vec![
                Block::Heading {
                    level: 1,
                    text: "Plans".into(),
                    page: None
                },
                Block::Paragraph {
                    text: "We offer two plans.".into(),
                    page: None
                },
                Block::Heading {
                    level: 2,
                    text: "Pro".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 0,
                    text: "fast".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 1,
                    text: "faster".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 0,
                    text: "first".into(),
                    page: None
                },
                Block::Table {
                    rows: vec![vec!["Plan".into(), "Price".into()], vec!["Pro".into(), "20".into()]],
                    header: true,
                    page: None
                },
                Block::Code {
                    text: "code here".into(),
                    page: None
                },
            ]
        );
        assert!(doc.has_text());
        assert!(doc.to_markdown().contains("| Plan | Price |\n|---|---|\n| Pro | 20 |"));
        assert!(!parse_markdown("  \n\n").has_text());
    }
}
