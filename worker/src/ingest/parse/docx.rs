//! DOCX through docx-rs: headings (from the styles' names, so localized style
//! ids work), paragraphs, bulleted and numbered lists with their level, and
//! tables with merged cells repeated, header row first.

// A document tree of a third-party format: node kinds this parser does not
// read (bookmarks, comments, fields...) are skipped on purpose, including
// kinds a later version of the library adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::collections::HashMap;

use docx_rs as dx;
use parley_domain::document::{Block, Document};

use super::kind::ParseFailure;

/// Widest span of one merged cell accepted (bounds hostile tables).
const MAX_SPAN: u64 = 64;

struct Ctx<'a> {
    docx: &'a dx::Docx,
    heading_by_style: HashMap<String, usize>,
    counters: HashMap<(usize, usize), usize>,
    blocks: Vec<Block>,
}

/// Most bytes a Word document may expand to: a zip bomb stops here, before
/// the reader inflates it into memory.
const MAX_EXPANDED: u64 = 256 * 1024 * 1024;

/// Whether an XML part is well formed as far as the Word reader cares:
/// readable XML with every element closed, in order (text or a second root
/// after the end is let through). The Word reader can loop forever on some
/// malformed parts (found by fuzzing), so they are refused before it runs.
/// Returns the part's deepest element nesting, or `None` when it is not
/// well formed.
fn well_formed(xml: &[u8]) -> Option<usize> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(_)) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Ok(Event::End(_)) => depth = depth.checked_sub(1)?,
            Ok(Event::Eof) => return (depth == 0).then_some(deepest),
            Ok(_) => {}
            Err(_) => return None,
        }
        buf.clear();
    }
}

/// Deeper element nesting than this (about thirty tables inside each
/// other) is read as plain paragraphs instead of through the Word reader,
/// whose recursion follows the nesting and could overflow the stack.
const MAX_XML_DEPTH: usize = 128;

/// The document body's text, paragraph by paragraph (`w:p`), read as a flat
/// stream of XML events: nesting costs nothing.
fn flat_paragraphs(bytes: &[u8]) -> Result<Vec<Block>, ParseFailure> {
    use quick_xml::events::Event;
    use std::io::Read;
    let corrupt = |e: &dyn std::fmt::Display| {
        ParseFailure::new("CORRUPT_DOCUMENT", format!("cannot read the Word document: {e}"))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| corrupt(&e))?;
    let mut xml = Vec::new();
    archive
        .by_name("word/document.xml")
        .map_err(|e| corrupt(&e))?
        .take(MAX_EXPANDED)
        .read_to_end(&mut xml)
        .map_err(|e| corrupt(&e))?;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let (mut blocks, mut text, mut in_text) = (Vec::new(), String::new(), false);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => in_text = e.local_name().as_ref() == b"t",
            Ok(Event::Text(t)) if in_text => text.push_str(&t.unescape().map_err(|e| corrupt(&e))?),
            Ok(Event::Empty(e)) if matches!(e.local_name().as_ref(), b"tab" | b"br") => text.push(' '),
            Ok(Event::End(e)) => {
                in_text = false;
                if e.local_name().as_ref() == b"p" {
                    let line = one_line(&std::mem::take(&mut text));
                    if !line.is_empty() {
                        blocks.push(Block::Paragraph { text: line, page: None });
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(corrupt(&e)),
        }
        buf.clear();
    }
    Ok(blocks)
}

/// Inflates every part, counting, and refuses the document once the total
/// passes `limit` (declared sizes are not trusted) or an XML part is not
/// well formed. Returns the deepest element nesting of any part.
fn check_expanded_size(bytes: &[u8], limit: u64) -> Result<usize, ParseFailure> {
    use std::io::Read;
    let corrupt = |e: &dyn std::fmt::Display| {
        ParseFailure::new("CORRUPT_DOCUMENT", format!("cannot read the Word document: {e}"))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| corrupt(&e))?;
    let (mut total, mut deepest) = (0u64, 0usize);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| corrupt(&e))?;
        let name = entry.name().to_owned();
        let allowed = limit - total + 1;
        let xml = name.ends_with(".xml") || name.ends_with(".rels");
        if xml {
            let mut content = Vec::new();
            total += (&mut entry)
                .take(allowed)
                .read_to_end(&mut content)
                .map_err(|e| corrupt(&e))? as u64;
            if total <= limit {
                match well_formed(&content) {
                    Some(depth) => deepest = deepest.max(depth),
                    None => return Err(corrupt(&format!("the part `{name}` is not well-formed XML"))),
                }
            }
        } else {
            total += std::io::copy(&mut (&mut entry).take(allowed), &mut std::io::sink()).map_err(|e| corrupt(&e))?;
        }
        if total > limit {
            return Err(ParseFailure::new(
                "TOO_LARGE",
                format!("the Word document expands to more than {} MB", limit >> 20),
            ));
        }
    }
    Ok(deepest)
}

pub fn parse_docx(bytes: &[u8]) -> Result<Document, ParseFailure> {
    if check_expanded_size(bytes, MAX_EXPANDED)? > MAX_XML_DEPTH {
        return Ok(Document {
            title: None,
            blocks: flat_paragraphs(bytes)?,
            page_count: None,
        });
    }
    let options = dx::ReadDocxOptions::default().with_image_previews(false);
    let docx = dx::read_docx_with_options(bytes, options)
        .map_err(|e| ParseFailure::new("CORRUPT_DOCUMENT", format!("cannot read the Word document: {e}")))?;
    let mut ctx = Ctx {
        docx: &docx,
        heading_by_style: docx.styles.create_heading_style_map(),
        counters: HashMap::new(),
        blocks: Vec::new(),
    };
    for child in &docx.document.children {
        match child {
            dx::DocumentChild::Paragraph(p) => ctx.paragraph(p),
            dx::DocumentChild::Table(t) => ctx.table(t),
            dx::DocumentChild::StructuredDataTag(s) => ctx.sdt(s),
            _ => {}
        }
    }
    let title = ctx.blocks.iter().find_map(|b| match b {
        Block::Heading { text, .. } => Some(text.clone()),
        Block::Paragraph { .. } | Block::ListItem { .. } | Block::Table { .. } | Block::Code { .. } => None,
    });
    Ok(Document {
        title,
        blocks: ctx.blocks,
        page_count: None,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Ctx<'_> {
    fn paragraph(&mut self, p: &dx::Paragraph) {
        let raw = paragraph_text(p);
        if raw.trim().is_empty() {
            return;
        }
        if let Some(level) = self.heading_level(p) {
            self.blocks.push(Block::Heading {
                level: level.clamp(1, 6) as u8,
                text: one_line(&raw),
                page: None,
            });
        } else if let Some((num_id, ilvl)) = self.numbering(p) {
            let text = if self.is_bullet(num_id, ilvl) {
                one_line(&raw)
            } else {
                self.counters.retain(|&(n, l), _| n != num_id || l <= ilvl);
                let c = self.counters.entry((num_id, ilvl)).or_insert(0);
                *c += 1;
                format!("{c}. {}", one_line(&raw))
            };
            self.blocks.push(Block::ListItem {
                depth: ilvl.min(8) as u8,
                text,
                page: None,
            });
        } else {
            for line in raw.lines().map(one_line).filter(|l| !l.is_empty()) {
                self.blocks.push(Block::Paragraph { text: line, page: None });
            }
        }
    }

    fn heading_level(&self, p: &dx::Paragraph) -> Option<usize> {
        if let Some(style) = &p.property.style {
            let id = style.val.as_str();
            if let Some(&n) = self.heading_by_style.get(id) {
                return Some(n);
            }
            if let Some(st) = self.docx.styles.find_style_by_id(id) {
                if st.name.starts_with("Title") {
                    return Some(1);
                }
                if let Some(o) = &st.paragraph_property.outline_lvl
                    && o.v < 9
                {
                    return Some(o.v + 1);
                }
            }
            if id == "Title" {
                return Some(1);
            }
            if let Some(n) = id.strip_prefix("Heading").and_then(|r| r.parse::<usize>().ok()) {
                return Some(n);
            }
        }
        p.property.outline_lvl.as_ref().filter(|o| o.v < 9).map(|o| o.v + 1)
    }

    fn numbering(&self, p: &dx::Paragraph) -> Option<(usize, usize)> {
        let own = p.property.numbering_property.as_ref();
        let styled = p
            .property
            .style
            .as_ref()
            .and_then(|s| self.docx.styles.find_style_by_id(&s.val))
            .and_then(|st| st.paragraph_property.numbering_property.as_ref());
        let num_id = own
            .and_then(|n| n.id.as_ref())
            .or_else(|| styled.and_then(|n| n.id.as_ref()))?
            .id;
        if num_id == 0 {
            return None;
        }
        let level = own
            .and_then(|n| n.level.as_ref())
            .or_else(|| styled.and_then(|n| n.level.as_ref()))
            .map_or(0, |l| l.val);
        Some((num_id, level))
    }

    fn is_bullet(&self, num_id: usize, level: usize) -> bool {
        let nums = &self.docx.numberings;
        let Some(num) = nums.numberings.iter().find(|n| n.id == num_id) else {
            return true;
        };
        let lvl = num
            .level_overrides
            .iter()
            .find(|o| o.level == level)
            .and_then(|o| o.override_level.as_ref())
            .or_else(|| {
                nums.abstract_nums
                    .iter()
                    .find(|a| a.id == num.abstract_num_id)
                    .and_then(|a| a.levels.iter().find(|l| l.level == level))
            });
        lvl.is_none_or(|l| l.format.val == "bullet")
    }

    fn table(&mut self, t: &dx::Table) {
        let rows = table_rows(t, 0);
        if rows.iter().any(|r| r.iter().any(|c| !c.is_empty())) {
            self.blocks.push(Block::Table {
                rows,
                header: true,
                page: None,
            });
        }
    }

    fn sdt(&mut self, sdt: &dx::StructuredDataTag) {
        let mut loose = String::new();
        for c in &sdt.children {
            match c {
                dx::StructuredDataTagChild::Paragraph(p) => self.paragraph(p),
                dx::StructuredDataTagChild::Table(t) => self.table(t),
                dx::StructuredDataTagChild::StructuredDataTag(inner) => self.sdt(inner),
                dx::StructuredDataTagChild::Run(r) => push_run(r, &mut loose),
                _ => {}
            }
        }
        let loose = one_line(&loose);
        if !loose.is_empty() {
            self.blocks.push(Block::Paragraph {
                text: loose,
                page: None,
            });
        }
    }
}

fn table_rows(t: &dx::Table, depth: usize) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for child in &t.rows {
        let dx::TableChild::TableRow(row) = child;
        let rp = serde_json::to_value(&row.property).unwrap_or_default();
        let before = rp.get("gridBefore").and_then(|v| v.as_u64()).unwrap_or(0).min(MAX_SPAN) as usize;
        let mut cells = vec![String::new(); before];
        for rc in &row.cells {
            let dx::TableRowChild::TableCell(cell) = rc;
            let cp = serde_json::to_value(&cell.property).unwrap_or_default();
            let span = cp
                .get("gridSpan")
                .and_then(|v| v.as_u64())
                .unwrap_or(1)
                .clamp(1, MAX_SPAN) as usize;
            let text = if cp.get("verticalMerge").and_then(|v| v.as_str()) == Some("continue") {
                rows.last()
                    .and_then(|prev| prev.get(cells.len()))
                    .cloned()
                    .unwrap_or_default()
            } else {
                cell_text(cell, depth)
            };
            for _ in 0..span {
                cells.push(text.clone());
            }
        }
        rows.push(cells);
    }
    rows
}

fn cell_text(cell: &dx::TableCell, depth: usize) -> String {
    let mut parts = Vec::new();
    for c in &cell.children {
        match c {
            dx::TableCellContent::Paragraph(p) => parts.push(paragraph_text(p)),
            // Nested tables are flattened into the cell; deep nesting is cut off.
            dx::TableCellContent::Table(t) if depth < 8 => {
                for row in table_rows(t, depth + 1) {
                    parts.extend(row);
                }
            }
            dx::TableCellContent::StructuredDataTag(s) => parts.push(sdt_text(s)),
            _ => {}
        }
    }
    one_line(&parts.join(" "))
}

fn sdt_text(sdt: &dx::StructuredDataTag) -> String {
    let mut s = String::new();
    for c in &sdt.children {
        match c {
            dx::StructuredDataTagChild::Run(r) => push_run(r, &mut s),
            dx::StructuredDataTagChild::Paragraph(p) => {
                s.push(' ');
                s.push_str(&paragraph_text(p));
            }
            _ => {}
        }
    }
    s
}

fn paragraph_text(p: &dx::Paragraph) -> String {
    let mut s = String::new();
    push_children(&p.children, &mut s);
    s
}

fn push_children(children: &[dx::ParagraphChild], s: &mut String) {
    for child in children {
        match child {
            dx::ParagraphChild::Run(run) => push_run(run, s),
            dx::ParagraphChild::Hyperlink(link) => push_children(&link.children, s),
            dx::ParagraphChild::Insert(ins) => {
                for c in &ins.children {
                    if let dx::InsertChild::Run(r) = c {
                        push_run(r, s);
                    }
                }
            }
            dx::ParagraphChild::StructuredDataTag(sdt) => s.push_str(&sdt_text(sdt)),
            _ => {}
        }
    }
}

fn push_run(run: &dx::Run, s: &mut String) {
    for c in &run.children {
        match c {
            dx::RunChild::Text(t) => s.push_str(&t.text),
            dx::RunChild::Tab(_) | dx::RunChild::PTab(_) => s.push('\t'),
            dx::RunChild::Break(_) | dx::RunChild::CarriageReturn(_) => s.push('\n'),
            dx::RunChild::Drawing(d) => {
                if let Some(dx::DrawingData::TextBox(tb)) = &d.data {
                    for c in &tb.children {
                        if let dx::TextBoxContentChild::Paragraph(p) = c {
                            s.push(' ');
                            push_children(&p.children, s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod xml_tests {
    use super::well_formed;

    #[test]
    fn malformed_parts_are_found() {
        assert_eq!(
            well_formed(br#"<?xml version="1.0"?><a x="1"><b/><c>t</c></a>"#),
            Some(2)
        );
        assert!(well_formed(b"<a><b></a></b>").is_none());
        assert!(well_formed(b"<a><b>").is_none());
        assert!(well_formed(b"<a></a></a>").is_none());
        assert!(well_formed(br#"<w:rPr><w:i:name w:val="x"/><w"#).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_bomb_is_refused_before_it_is_inflated() {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("word/document.xml", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..3 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
        let bytes = out.into_inner();
        assert!(
            bytes.len() < 64 * 1024,
            "3 MB of zeros compress to {} bytes",
            bytes.len()
        );
        let err = check_expanded_size(&bytes, 2 << 20).unwrap_err();
        assert_eq!(err.code, "TOO_LARGE");
        assert!(check_expanded_size(&bytes, 4 << 20).is_ok());
        assert_eq!(
            check_expanded_size(b"not a zip", 4 << 20).unwrap_err().code,
            "CORRUPT_DOCUMENT"
        );
    }

    /// Thousands of tables nested inside each other: the text comes out,
    /// read flat, and nothing recurses along the nesting.
    #[test]
    fn deeply_nested_tables_give_their_text() {
        use std::io::Write;
        let n = 5000;
        let cell_open = "<w:tbl><w:tr><w:tc>";
        let cell_close = "</w:tc></w:tr></w:tbl>";
        let body = format!(
            "<w:p><w:r><w:t>Before the tables.</w:t></w:r></w:p>{}<w:p><w:r><w:t>Deep &amp; inside.</w:t></w:r></w:p>{}",
            cell_open.repeat(n),
            cell_close.repeat(n)
        );
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("word/document.xml", options).unwrap();
        zip.write_all(xml.as_bytes()).unwrap();
        zip.finish().unwrap();
        let bytes = out.into_inner();
        let doc = crate::ingest::parse::test_support::on_small_stack(move || parse_docx(&bytes)).unwrap();
        let texts = crate::ingest::parse::test_support::paragraphs(&doc);
        assert_eq!(texts, vec!["Before the tables.", "Deep & inside."]);
    }
}
