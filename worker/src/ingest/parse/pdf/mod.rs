//! PDF text through lopdf, laid out from glyph geometry: the content stream
//! is run with its text state and every glyph placed by its width from the
//! font ([`content`], [`font`]); glyphs become words, lines, columns and
//! bands ([`layout`]); lines become headings, paragraphs, list items and
//! tables here. Headers and footers repeated on most pages are dropped,
//! hyphenated line ends are joined, and each block keeps its page number
//! for citations.

mod cmap;
mod content;
mod font;
mod layout;
mod metrics;

use std::collections::HashMap;

use lopdf::Object;
use parley_domain::document::{Block, Document};

use self::layout::Line;
use super::kind::ParseFailure;

/// Largest decompressed object stream accepted when loading.
const MAX_STREAM: usize = 64 << 20;

/// A page's lines with the page number.
struct Page {
    number: u32,
    lines: Vec<Line>,
    /// The page box's top and bottom in the frame of left-to-right lines.
    top: f64,
    bottom: f64,
}

pub fn parse_pdf(bytes: &[u8]) -> Result<Document, ParseFailure> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_STREAM),
        ..Default::default()
    };
    let doc = lopdf::Document::load_mem_with_options(bytes, options)
        .map_err(|e| ParseFailure::new("CORRUPT_DOCUMENT", format!("cannot read the PDF: {e}")))?;
    if doc.is_encrypted() {
        return Err(ParseFailure::new(
            "ENCRYPTED_DOCUMENT",
            "the PDF is protected by a password",
        ));
    }
    let page_ids = doc.get_pages();
    let page_count = page_ids.len() as u32;
    let mut fonts = content::Fonts::default();
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut too_large = false;
    for (&number, &page_id) in &page_ids {
        let bounds = content::page_box(&doc, page_id);
        let mut run = content::Interpreter::new(&doc, &mut fonts, bounds);
        if let Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) = run.run_page(page_id)
        {
            too_large = true;
        }
        pages.push(Page {
            number,
            lines: layout::lines(run.glyphs),
            top: -bounds[1].max(bounds[3]),
            bottom: -bounds[1].min(bounds[3]),
        });
    }
    if too_large && pages.iter().all(|p| p.lines.is_empty()) {
        return Err(ParseFailure::new(
            "TOO_LARGE",
            format!(
                "a page's content decompresses to more than {} MB",
                content::MAX_PAGE_CONTENT >> 20
            ),
        ));
    }
    drop_running_lines(&mut pages);
    let blocks = blocks(&pages);
    let title = metadata_title(&doc).or_else(|| first_heading(&blocks));
    Ok(Document {
        title,
        blocks,
        page_count: Some(page_count),
    })
}

/// The document's metadata title when it reads as a title (words, not a
/// file name, an accession number or a producer's placeholder).
// A PDF object of a third-party library: only strings are titles.
#[allow(clippy::wildcard_enum_match_arm)]
fn metadata_title(doc: &lopdf::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let (_, info) = doc.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = doc.dereference(title).ok()?;
    let text = match title {
        Object::String(bytes, _) => {
            lopdf::decode_text_string(&Object::String(bytes.clone(), lopdf::StringFormat::Literal)).ok()?
        }
        _ => return None,
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    reads_as_title(&text).then_some(text)
}

/// Whether a text is a plausible document title.
pub(super) fn reads_as_title(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || words.len() > 30 {
        return false;
    }
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let lower = text.to_lowercase();
    let placeholder = ["untitled", "microsoft word", "powerpoint", "document1", "title"]
        .iter()
        .any(|p| lower == *p || lower.starts_with(&format!("{p} -")) || lower.starts_with(&format!("{p}:")));
    let file_name = [
        ".doc", ".docx", ".pdf", ".indd", ".tex", ".dvi", ".rtf", ".xls", ".ppt", ".qxd",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext) || lower.contains(&format!("{ext} ")));
    // At least one real word of three letters or more.
    let word = words
        .iter()
        .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3 && !w.contains('_'));
    // One word of letters and digits is an identifier ("DOSAID2022", "FY22_v3").
    let identifier = words.len() == 1 && text.chars().any(|c| c.is_ascii_digit());
    letters >= 4
        && letters * 2 >= text.chars().filter(|c| !c.is_whitespace()).count()
        && word
        && !identifier
        && !placeholder
        && !file_name
}

fn first_heading(blocks: &[Block]) -> Option<String> {
    let mut best: Option<(u8, &str)> = None;
    for b in blocks.iter().take(40) {
        if let Block::Heading { level, text, page } = b
            && page.is_none_or(|p| p <= 2)
            && reads_as_title(text)
            && best.is_none_or(|(l, _)| *level < l)
        {
            best = Some((*level, text));
        }
    }
    best.map(|(_, t)| t.to_owned())
}

/// Text of a line for recognizing repeats: lowercase, digits as `#`.
fn running_key(line: &Line) -> String {
    line.text()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            if c.is_ascii_digit() {
                '#'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn page_number_line(key: &str) -> bool {
    let k = key.trim_matches(|c: char| matches!(c, '-' | '–' | '—' | '|' | '.' | '(' | ')'));
    let k = k.strip_prefix("page").unwrap_or(k);
    let roman = !k.is_empty() && k.chars().all(|c| matches!(c, 'i' | 'v' | 'x' | 'l')) && k.len() <= 6;
    let digits = !k.is_empty()
        && k.split("of")
            .all(|part| !part.is_empty() && part.chars().all(|c| c == '#'));
    roman || digits
}

/// Lines in the top or bottom tenth of most pages (running headers,
/// footers, page numbers) are dropped.
fn drop_running_lines(pages: &mut [Page]) {
    const EDGE: usize = 3;
    let edges = |page: &Page| -> Vec<usize> {
        let lines = &page.lines;
        let margin = (page.bottom - page.top) * 0.1;
        let mut order: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].dir == 0).collect();
        order.sort_by(|a, b| lines[*a].y.total_cmp(&lines[*b].y));
        let mut picked: Vec<usize> = order
            .iter()
            .take(EDGE)
            .filter(|i| lines[**i].y < page.top + margin)
            .copied()
            .collect();
        picked.extend(
            order
                .iter()
                .rev()
                .take(EDGE)
                .filter(|i| lines[**i].y > page.bottom - margin),
        );
        picked.sort_unstable();
        picked.dedup();
        picked
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in pages.iter() {
        let mut seen: Vec<String> = edges(page).into_iter().map(|i| running_key(&page.lines[i])).collect();
        seen.sort();
        seen.dedup();
        for key in seen {
            *counts.entry(key).or_default() += 1;
        }
    }
    let threshold = (pages.len() / 2).max(3);
    for page in pages.iter_mut() {
        let drop: Vec<usize> = edges(page)
            .into_iter()
            .filter(|i| {
                let key = running_key(&page.lines[*i]);
                page_number_line(&key) || counts.get(&key).is_some_and(|n| *n >= threshold)
            })
            .collect();
        let mut k = 0;
        page.lines.retain(|_| {
            let keep = !drop.contains(&k);
            k += 1;
            keep
        });
    }
}

fn round_size(size: f64) -> i64 {
    (size * 2.0).round() as i64
}

/// The size most characters are set in.
fn body_size(pages: &[Page]) -> f64 {
    let mut weight: HashMap<i64, usize> = HashMap::new();
    for line in pages.iter().flat_map(|p| &p.lines) {
        *weight.entry(round_size(line.size)).or_default() += line.text().len();
    }
    weight
        .into_iter()
        .max_by_key(|(size, n)| (*n, -*size))
        .map_or(10.0, |(s, _)| s as f64 / 2.0)
}

const BULLETS: &[char] = &[
    '•', '●', '○', '▪', '■', '◦', '–', '-', '*', '·', '\u{f0b7}', '\u{f0a7}', '➢', '►', '✓', '□',
];

/// A list item's text without its marker, when the line starts one.
fn list_marker(text: &str) -> Option<&str> {
    let t = text.trim_start();
    let first = t.chars().next()?;
    if BULLETS.contains(&first) {
        let rest = t[first.len_utf8()..].trim_start();
        return (!rest.is_empty() && rest.len() < t.len()).then_some(rest);
    }
    // "1.", "2)", "a.", "iv)" followed by a space.
    let (marker, rest) = t.split_once(' ')?;
    let body = marker.strip_suffix(['.', ')'])?;
    let numbered = !body.is_empty() && body.len() <= 3 && body.chars().all(|c| c.is_ascii_digit());
    let lettered = body.len() == 1 && body.chars().all(|c| c.is_ascii_lowercase());
    (numbered || lettered).then_some(rest.trim_start())
}

fn join_line(text: &mut String, next: &str) {
    let mut tail = text.chars().rev();
    let hyphen = tail.next().is_some_and(|c| matches!(c, '-' | '\u{00AD}' | '\u{2010}'))
        && tail.next().is_some_and(char::is_alphabetic);
    if hyphen && next.chars().next().is_some_and(char::is_lowercase) {
        text.pop();
        text.push_str(next);
    } else {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(next);
    }
}

/// Collapses dot leaders (tables of contents) and runs of spaces.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dots = 0;
    for c in text.chars() {
        if matches!(c, '.' | '·' | '…') {
            dots += 1;
            continue;
        }
        if dots > 0 {
            if !(c == ' ' && dots >= 3) {
                if dots >= 4 {
                    out.push(' ');
                } else {
                    out.extend(std::iter::repeat_n('.', dots));
                }
                dots = 0;
            } else {
                continue;
            }
        }
        out.push(c);
    }
    if dots > 0 && dots < 4 {
        out.extend(std::iter::repeat_n('.', dots));
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines in reading order become blocks: a heading is a short line set
/// larger (or bold at body size) than the body; consecutive lines of two or
/// more cells form a table; the rest are paragraphs and list items, split
/// where the spacing between lines grows or the size changes.
fn blocks(pages: &[Page]) -> Vec<Block> {
    let body = body_size(pages);
    // Heading levels by size: the larger, the higher.
    let mut heading_sizes: Vec<i64> = pages
        .iter()
        .flat_map(|p| &p.lines)
        .filter(|l| l.size >= body * 1.15)
        .map(|l| round_size(l.size))
        .collect();
    heading_sizes.sort_unstable_by(|a, b| b.cmp(a));
    heading_sizes.dedup();
    let level_of = |line: &Line| -> u8 {
        let size = round_size(line.size);
        let rank = heading_sizes
            .iter()
            .position(|s| *s == size)
            .unwrap_or(heading_sizes.len());
        (rank as u8 + 1).min(if line.size >= body * 1.15 { 3 } else { 4 })
    };
    let mut out = Vec::new();
    for page in pages {
        let n = Some(page.number);
        let lines = &page.lines;
        let mut i = 0;
        while i < lines.len() {
            let line = &lines[i];
            let text = clean(&line.text());
            if text.is_empty() {
                i += 1;
                continue;
            }
            // A table: two or more lines of the same band with two or more cells.
            let table_end = {
                let mut j = i;
                while j < lines.len() && lines[j].band == line.band && lines[j].cells.len() >= 2 {
                    j += 1;
                }
                j
            };
            if table_end - i >= 2 {
                let rows: Vec<Vec<String>> = lines[i..table_end]
                    .iter()
                    .map(|l| l.cells.iter().map(|c| clean(&c.text)).collect())
                    .collect();
                out.push(Block::Table {
                    rows,
                    header: true,
                    page: n,
                });
                i = table_end;
                continue;
            }
            let words = text.split_whitespace().count();
            let letters = text.chars().filter(|c| c.is_alphabetic()).count();
            let larger = line.size >= body * 1.15;
            let bold_heading = line.bold && line.size >= body * 0.95 && words <= 12 && !text.ends_with(['.', ',', ';']);
            if (larger || bold_heading) && words <= 20 && letters >= 3 {
                // A heading may run over two lines of the same size.
                let mut heading = text;
                let mut j = i + 1;
                while j < lines.len()
                    && j < i + 3
                    && lines[j].band == line.band
                    && round_size(lines[j].size) == round_size(line.size)
                    && lines[j].bold == line.bold
                    && (lines[j].y - lines[j - 1].y).abs() < line.size * 1.8
                {
                    join_line(&mut heading, &clean(&lines[j].text()));
                    j += 1;
                }
                out.push(Block::Heading {
                    level: level_of(line),
                    text: heading,
                    page: n,
                });
                i = j;
                continue;
            }
            let list = list_marker(&text).map(str::to_owned);
            let mut para = list.clone().unwrap_or(text);
            let mut j = i + 1;
            let mut prev = line;
            while j < lines.len() {
                let next = &lines[j];
                let gap = next.y - prev.y;
                let same_band = next.band == prev.band;
                let similar = (next.size - prev.size).abs() <= prev.size * 0.1;
                let close = gap > 0.0 && gap < prev.size.max(next.size) * 1.7;
                let next_text = clean(&next.text());
                let starts_item = list_marker(&next_text).is_some();
                let starts_heading = next.size >= body * 1.15 || (next.bold && !prev.bold);
                if !same_band || !similar || !close || starts_item || starts_heading || next.cells.len() >= 2 {
                    break;
                }
                join_line(&mut para, &next_text);
                prev = next;
                j += 1;
            }
            out.push(match list {
                Some(_) => Block::ListItem {
                    depth: 0,
                    text: para,
                    page: n,
                },
                None => Block::Paragraph { text: para, page: n },
            });
            i = j;
        }
    }
    out
}

#[cfg(test)]
mod tests;
