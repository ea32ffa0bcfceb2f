//! PDF text through lopdf, page by page, with the page numbers kept for
//! citations. Word-made PDFs often omit `/Type /Font` in font dictionaries,
//! which makes lopdf refuse them; the key is added before extraction.

// PDF objects of a third-party library: kinds a match does not read are
// skipped on purpose, including kinds a later version adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::collections::HashSet;

use lopdf::{Dictionary, Object, ObjectId};
use parley_domain::document::{Block, Document};

use super::ParseFailure;

/// Largest decompressed stream accepted (bounds memory on hostile files).
const MAX_STREAM: usize = 64 << 20;

type DictLoc = (ObjectId, Vec<Vec<u8>>);

fn dict_at<'a>(doc: &'a lopdf::Document, loc: &DictLoc) -> Option<&'a Dictionary> {
    let mut d = doc.get_dictionary(loc.0).ok()?;
    for key in &loc.1 {
        d = d.get(key).ok()?.as_dict().ok()?;
    }
    Some(d)
}

fn dict_at_mut<'a>(doc: &'a mut lopdf::Document, loc: &DictLoc) -> Option<&'a mut Dictionary> {
    let mut d = doc.get_dictionary_mut(loc.0).ok()?;
    for key in &loc.1 {
        d = d.get_mut(key).ok()?.as_dict_mut().ok()?;
    }
    Some(d)
}

fn child_dict(doc: &lopdf::Document, parent: &DictLoc, key: &[u8]) -> Option<DictLoc> {
    let entry = dict_at(doc, parent)?.get(key).ok()?;
    match doc.dereference(entry).ok()? {
        (Some(id), Object::Dictionary(_)) => Some((id, Vec::new())),
        (None, Object::Dictionary(_)) => {
            let mut path = parent.1.clone();
            path.push(key.to_vec());
            Some((parent.0, path))
        }
        _ => None,
    }
}

/// Adds `/Type /Font` to every font reachable from the pages' resources.
fn add_missing_font_types(doc: &mut lopdf::Document) {
    let page_ids: Vec<ObjectId> = doc.get_pages().into_values().collect();
    let mut visited = HashSet::new();
    let mut fonts = Vec::<DictLoc>::new();
    for page_id in page_ids {
        let mut node = Some(page_id);
        while let Some(id) = node {
            if !visited.insert(id) {
                break;
            }
            let here: DictLoc = (id, Vec::new());
            if let Some(font_res) = child_dict(doc, &here, b"Resources").and_then(|res| child_dict(doc, &res, b"Font"))
                && let Some(fd) = dict_at(doc, &font_res)
            {
                let names: Vec<Vec<u8>> = fd.iter().map(|(n, _)| n.clone()).collect();
                for name in names {
                    if let Some(f) = child_dict(doc, &font_res, &name) {
                        fonts.push(f);
                    }
                }
            }
            node = doc
                .get_dictionary(id)
                .ok()
                .and_then(|d| d.get(b"Parent").ok())
                .and_then(|p| p.as_reference().ok());
        }
    }
    for loc in fonts {
        if let Some(font) = dict_at_mut(doc, &loc)
            && !font.has_type(b"Font")
        {
            font.set("Type", Object::Name(b"Font".to_vec()));
        }
    }
}

fn is_leader(c: char) -> bool {
    matches!(c, '.' | ':' | '·' | '…')
}

/// Joins words hyphenated across lines, collapses dot leaders and runs of spaces.
fn clean_text(raw: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in raw.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let next_lower = line.chars().next().is_some_and(char::is_lowercase);
        if let Some(prev) = lines.last_mut() {
            let mut tail = prev.chars().rev();
            let hyphen = tail.next().is_some_and(|c| matches!(c, '-' | '\u{00AD}' | '\u{2010}'))
                && tail.next().is_some_and(char::is_alphabetic);
            if hyphen && next_lower {
                prev.pop();
                prev.push_str(line);
                continue;
            }
        }
        lines.push(line.to_owned());
    }
    lines
        .into_iter()
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            let mut out = String::with_capacity(line.len());
            let mut i = 0;
            while i < chars.len() {
                if is_leader(chars[i]) {
                    let (mut j, mut dots, mut end) = (i, 0, i);
                    while j < chars.len() && (is_leader(chars[j]) || chars[j] == ' ') {
                        if is_leader(chars[j]) {
                            dots += 1;
                            end = j + 1;
                        }
                        j += 1;
                    }
                    if dots >= 4 {
                        out.push(' ');
                    } else {
                        out.extend(&chars[i..end]);
                    }
                    i = end;
                    continue;
                }
                out.push(chars[i]);
                i += 1;
            }
            out.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Groups a page's lines into paragraphs: a line ending a sentence ends one.
fn paragraphs(lines: Vec<String>, page: u32) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for line in lines {
        let ends = line.ends_with(['.', '!', '?', ':']);
        current.push(line);
        if ends {
            blocks.push(Block::Paragraph {
                text: current.join(" "),
                page: Some(page),
            });
            current.clear();
        }
    }
    if !current.is_empty() {
        blocks.push(Block::Paragraph {
            text: current.join(" "),
            page: Some(page),
        });
    }
    blocks
}

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// A `TJ` offset below this (in thousandths of a text unit) is a word gap.
const GAP: f64 = -180.0;

/// One page's text from its content operators: strings decoded with their
/// font's encoding, a space for word gaps (`TJ` offsets and horizontal
/// moves), a line break for vertical moves. Returns None when the page's
/// content cannot be read this way.
fn page_text(doc: &lopdf::Document, page_id: ObjectId) -> Option<String> {
    let fonts = doc.get_page_fonts(page_id).ok()?;
    let encodings: std::collections::BTreeMap<Vec<u8>, lopdf::Encoding> = fonts
        .into_iter()
        .filter_map(|(name, font)| font.get_font_encoding(doc).ok().map(|e| (name, e)))
        .collect();
    let content = doc.get_and_decode_page_content(page_id).ok()?;
    let mut out = String::new();
    let mut encoding: Option<&lopdf::Encoding> = None;
    let mut line_y: Option<f64> = None;
    let space = |out: &mut String| {
        if !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
    };
    let newline = |out: &mut String| {
        while out.ends_with(' ') {
            out.pop();
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    };
    let show = |out: &mut String, encoding: Option<&lopdf::Encoding>, o: &Object| {
        if let (Some(enc), Object::String(bytes, _)) = (encoding, o)
            && let Ok(text) = lopdf::Document::decode_text(enc, bytes)
        {
            out.push_str(&text);
        }
    };
    for op in &content.operations {
        let args = &op.operands;
        match op.operator.as_str() {
            "Tf" => {
                encoding = args
                    .first()
                    .and_then(|n| n.as_name().ok())
                    .and_then(|n| encodings.get(n))
            }
            "Td" | "TD" => {
                let (tx, ty) = (
                    args.first().and_then(number).unwrap_or(0.0),
                    args.get(1).and_then(number).unwrap_or(0.0),
                );
                if ty.abs() > 0.01 {
                    newline(&mut out);
                    line_y = None;
                } else if tx > 0.0 {
                    space(&mut out);
                }
            }
            "Tm" => {
                let y = args.get(5).and_then(number);
                match (line_y, y) {
                    (Some(prev), Some(y)) if (prev - y).abs() > 0.5 => newline(&mut out),
                    (Some(_), Some(_)) => space(&mut out),
                    _ => newline(&mut out),
                }
                line_y = y;
            }
            "T*" => newline(&mut out),
            "Tj" => {
                if let Some(o) = args.first() {
                    show(&mut out, encoding, o);
                }
            }
            "'" | "\"" => {
                newline(&mut out);
                if let Some(o) = args.last() {
                    show(&mut out, encoding, o);
                }
            }
            "TJ" => {
                if let Some(Object::Array(items)) = args.first() {
                    for item in items {
                        match number(item) {
                            Some(n) if n < GAP => space(&mut out),
                            Some(_) => {}
                            None => show(&mut out, encoding, item),
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(out)
}

pub fn parse_pdf(bytes: &[u8]) -> Result<Document, ParseFailure> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_STREAM),
        ..Default::default()
    };
    let mut doc = lopdf::Document::load_mem_with_options(bytes, options)
        .map_err(|e| ParseFailure::new("CORRUPT_DOCUMENT", format!("cannot read the PDF: {e}")))?;
    if doc.is_encrypted() {
        return Err(ParseFailure::new(
            "ENCRYPTED_DOCUMENT",
            "the PDF is protected by a password",
        ));
    }
    add_missing_font_types(&mut doc);
    let pages = doc.get_pages();
    let page_count = pages.len() as u32;
    let mut blocks = Vec::new();
    for (&number, &page_id) in &pages {
        let raw = match page_text(&doc, page_id).filter(|t| t.chars().any(char::is_alphanumeric)) {
            Some(text) => text,
            None => doc.extract_text_chunks(&[number]).into_iter().flatten().collect(),
        };
        blocks.extend(paragraphs(clean_text(&raw), number));
    }
    let title = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|info| doc.dereference(info).ok())
        .and_then(|(_, o)| o.as_dict().ok().and_then(|d| d.get(b"Title").ok()).cloned())
        .and_then(|t| match t {
            Object::String(bytes, _) => {
                Some(lopdf::decode_text_string(&Object::String(bytes, lopdf::StringFormat::Literal)).ok()?)
            }
            _ => None,
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    Ok(Document {
        title,
        blocks,
        page_count: Some(page_count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenation_leaders_and_paragraphs() {
        let lines = clean_text("The regula-\ntion applies.\nContents . . . . . . . 4\nNext  line");
        assert_eq!(lines, ["The regulation applies.", "Contents 4", "Next line"]);
        let blocks = paragraphs(lines, 2);
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[0],
            Block::Paragraph {
                text: "The regulation applies.".into(),
                page: Some(2)
            }
        );
    }
}
