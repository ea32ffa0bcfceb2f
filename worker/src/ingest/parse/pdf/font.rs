//! What the layout needs of a PDF font: how its byte strings split into
//! codes, the text of each code (`/ToUnicode` first, then the encoding and
//! its `/Differences`), and each glyph's advance width (`/Widths`, a CID
//! font's `/W` and `/DW`, the standard 14 fonts' metrics, Type 3's
//! `/FontMatrix`).

// PDF objects of a third-party library: kinds a match does not read are
// skipped on purpose, including kinds a later version adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::collections::HashMap;

use lopdf::{Dictionary, Document, Object};
use pdf_encoding::Encoding as Base;

use super::cmap::{CMap, glyph_text};
use super::metrics;

/// Largest font program or CMap stream decoded (bounds memory on hostile files).
const MAX_FONT_STREAM: usize = 8 << 20;

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
}

fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.get(key).ok().map(|o| deref(doc, o))
}

fn stream_data(doc: &Document, o: &Object) -> Option<Vec<u8>> {
    let stream = deref(doc, o).as_stream().ok()?;
    stream
        .decompressed_content_with_limit(MAX_FONT_STREAM)
        .ok()
        .or_else(|| {
            // An unfiltered stream.
            (stream.dict.get(b"Filter").is_err() && stream.content.len() <= MAX_FONT_STREAM)
                .then(|| stream.content.clone())
        })
}

/// How a string's bytes split into codes.
enum Codes {
    One,
    Two,
    Map(CMap),
}

/// Glyph widths in units of the font's glyph space.
enum Widths {
    /// `/Widths` from `/FirstChar`, with `/MissingWidth` for the rest.
    Simple { first: u32, list: Vec<f64>, missing: f64 },
    /// A standard 14 font's metrics by character, in thousandths.
    Standard(&'static [(char, u16)]),
    /// Every glyph equally wide (Courier).
    Fixed(f64),
    /// A CID font's `/W` by CID, with `/DW` for the rest.
    Cid {
        single: HashMap<u32, f64>,
        ranges: Vec<(u32, u32, f64)>,
        default: f64,
    },
}

/// One code of a shown string.
pub(super) struct Code {
    /// Text of the glyph: empty when the font does not say.
    pub text: String,
    /// Advance in text-space units per unit of font size.
    pub width: f64,
    /// A one-byte code 32, which word spacing (`Tw`) applies to.
    pub word_space: bool,
}

pub(super) struct Font {
    codes: Codes,
    to_unicode: Option<CMap>,
    /// Text of each one-byte code from the encoding (simple fonts).
    simple: Option<Vec<Option<String>>>,
    /// The codes are UTF-16 units (a predefined `UCS2` or `UTF16` CMap).
    unicode_codes: bool,
    widths: Widths,
    /// Glyph units per text-space unit (1/1000, or Type 3's `/FontMatrix`).
    scale: f64,
    pub(super) vertical: bool,
    pub(super) bold: bool,
}

fn base_table(name: &[u8]) -> Option<Base> {
    match name {
        b"WinAnsiEncoding" => Some(Base::WinAnsiEncoding),
        b"MacRomanEncoding" => Some(Base::MacRomanEncoding),
        b"StandardEncoding" => Some(Base::AdobeStandard),
        b"MacExpertEncoding" => Some(Base::AdobeExpert),
        _ => None,
    }
}

fn standard_metrics(base_font: &str) -> Option<Widths> {
    let name = base_font
        .split('+')
        .next_back()
        .unwrap_or(base_font)
        .to_ascii_lowercase();
    let bold = name.contains("bold") || name.contains("black") || name.contains("heavy");
    let italic = name.contains("italic") || name.contains("oblique");
    if name.contains("courier") {
        return Some(Widths::Fixed(600.0));
    }
    if name.contains("helvetica") || name.contains("arial") {
        return Some(Widths::Standard(if bold {
            metrics::HELVETICA_BOLD
        } else {
            metrics::HELVETICA
        }));
    }
    if name.contains("times") {
        return Some(Widths::Standard(match (bold, italic) {
            (true, true) => metrics::TIMES_BOLDITALIC,
            (true, false) => metrics::TIMES_BOLD,
            (false, true) => metrics::TIMES_ITALIC,
            (false, false) => metrics::TIMES_ROMAN,
        }));
    }
    None
}

fn cid_widths(doc: &Document, w: Option<&Object>, default: f64) -> Widths {
    let mut single = HashMap::new();
    let mut ranges = Vec::new();
    if let Some(Ok(items)) = w.map(|o| deref(doc, o).as_array()) {
        let mut i = 0;
        while i < items.len() {
            let Some(first) = number(deref(doc, &items[i])) else {
                break;
            };
            let first = first.max(0.0) as u32;
            match items.get(i + 1).map(|o| deref(doc, o)) {
                Some(Object::Array(list)) => {
                    for (k, w) in list.iter().enumerate().take(1 << 16) {
                        if let Some(w) = number(deref(doc, w)) {
                            single.insert(first.saturating_add(k as u32), w);
                        }
                    }
                    i += 2;
                }
                Some(last) => {
                    let (Some(last), Some(w)) = (number(last), items.get(i + 2).and_then(|o| number(deref(doc, o))))
                    else {
                        break;
                    };
                    ranges.push((first, last.max(0.0) as u32, w));
                    i += 3;
                }
                None => break,
            }
        }
    }
    Widths::Cid {
        single,
        ranges,
        default,
    }
}

impl Font {
    pub(super) fn load(doc: &Document, dict: &Dictionary) -> Font {
        let subtype = get(doc, dict, b"Subtype")
            .and_then(|o| o.as_name().ok())
            .unwrap_or_default();
        let base_font = get(doc, dict, b"BaseFont")
            .and_then(|o| o.as_name().ok())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let lower = base_font.to_ascii_lowercase();
        let bold = ["bold", "black", "heavy", "semibold", "demi"]
            .iter()
            .any(|w| lower.contains(w));
        let to_unicode = get(doc, dict, b"ToUnicode")
            .and_then(|o| stream_data(doc, o))
            .map(|data| CMap::parse(&data))
            .filter(|m| !m.is_empty());
        if subtype == b"Type0" {
            let descendant = get(doc, dict, b"DescendantFonts")
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(|o| deref(doc, o).as_dict().ok());
            let encoding = get(doc, dict, b"Encoding");
            let unicode_codes = matches!(encoding, Some(Object::Name(n))
                if n.windows(4).any(|w| w == b"UCS2") || n.windows(5).any(|w| w == b"UTF16"));
            let (codes, vertical) = match encoding {
                Some(Object::Name(name)) => (Codes::Two, name.ends_with(b"-V")),
                Some(o @ Object::Stream(_)) => {
                    let map = stream_data(doc, o).map(|d| CMap::parse(&d)).unwrap_or_default();
                    let vertical = o
                        .as_stream()
                        .ok()
                        .and_then(|s| s.dict.get(b"WMode").ok().and_then(number))
                        .is_some_and(|m| m == 1.0);
                    (Codes::Map(map), vertical)
                }
                _ => (Codes::Two, false),
            };
            let default = descendant
                .and_then(|d| get(doc, d, b"DW"))
                .and_then(number)
                .unwrap_or(1000.0);
            let widths = cid_widths(doc, descendant.and_then(|d| get(doc, d, b"W")), default);
            return Font {
                codes,
                to_unicode,
                simple: None,
                unicode_codes,
                widths,
                scale: 0.001,
                vertical,
                bold,
            };
        }
        let descriptor = get(doc, dict, b"FontDescriptor").and_then(|o| o.as_dict().ok());
        let missing = descriptor
            .and_then(|d| get(doc, d, b"MissingWidth"))
            .and_then(number)
            .unwrap_or(0.0);
        let widths = match get(doc, dict, b"Widths").and_then(|o| o.as_array().ok()) {
            Some(list) => Widths::Simple {
                first: get(doc, dict, b"FirstChar").and_then(number).unwrap_or(0.0).max(0.0) as u32,
                list: list.iter().map(|w| number(deref(doc, w)).unwrap_or(missing)).collect(),
                missing,
            },
            None => standard_metrics(&base_font).unwrap_or(Widths::Fixed(if missing > 0.0 {
                missing
            } else {
                descriptor
                    .and_then(|d| get(doc, d, b"AvgWidth"))
                    .and_then(number)
                    .filter(|w| *w > 0.0)
                    .unwrap_or(500.0)
            })),
        };
        let scale = if subtype == b"Type3" {
            get(doc, dict, b"FontMatrix")
                .and_then(|o| o.as_array().ok())
                .and_then(|m| m.first())
                .and_then(number)
                .map(f64::abs)
                .filter(|s| *s > 0.0)
                .unwrap_or(0.001)
        } else {
            0.001
        };
        // The encoding: a base table and its differences. Symbolic fonts with
        // no encoding use their built-in one, which is most often Standard.
        let encoding = get(doc, dict, b"Encoding");
        let (base, differences) = match encoding {
            Some(Object::Name(name)) => (base_table(name), None),
            Some(Object::Dictionary(d)) => (
                get(doc, d, b"BaseEncoding")
                    .and_then(|o| o.as_name().ok())
                    .and_then(base_table),
                get(doc, d, b"Differences").and_then(|o| o.as_array().ok()),
            ),
            _ => (None, None),
        };
        let base = base.unwrap_or(if base_font.contains("Symbol") {
            Base::AdobeSymbol
        } else if base_font.contains("Dingbats") {
            Base::AdobeZdingbat
        } else {
            Base::AdobeStandard
        });
        let mut simple: Vec<Option<String>> = (0..=255u8)
            .map(|b| base.forward_map().and_then(|m| m.get(b)).map(String::from))
            .collect();
        if let Some(diffs) = differences {
            let mut code = 0usize;
            for item in diffs {
                match deref(doc, item) {
                    Object::Integer(n) => code = usize::try_from(*n).unwrap_or(0),
                    Object::Name(name) => {
                        if code < 256 {
                            simple[code] = std::str::from_utf8(name).ok().and_then(glyph_text);
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
        Font {
            codes: Codes::One,
            to_unicode,
            simple: Some(simple),
            unicode_codes: false,
            widths,
            scale,
            vertical: false,
            bold,
        }
    }

    fn width(&self, code: u32, len: u8, text: &str) -> f64 {
        let units = match &self.widths {
            Widths::Simple { first, list, missing } => code
                .checked_sub(*first)
                .and_then(|i| list.get(i as usize))
                .copied()
                .unwrap_or(*missing),
            Widths::Standard(table) => text
                .chars()
                .next()
                .and_then(|c| {
                    table
                        .binary_search_by_key(&c, |e| e.0)
                        .ok()
                        .map(|i| f64::from(table[i].1))
                })
                .unwrap_or(500.0),
            Widths::Fixed(w) => *w,
            Widths::Cid {
                single,
                ranges,
                default,
            } => {
                let cid = match &self.codes {
                    Codes::Map(map) => map.cid(code, len).unwrap_or(code),
                    Codes::One | Codes::Two => code,
                };
                single
                    .get(&cid)
                    .copied()
                    .or_else(|| ranges.iter().find(|r| r.0 <= cid && cid <= r.1).map(|r| r.2))
                    .unwrap_or(*default)
            }
        };
        units * self.scale
    }

    /// The codes of a shown string, in order.
    pub(super) fn codes(&self, bytes: &[u8]) -> Vec<Code> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let n = match &self.codes {
                Codes::One => 1,
                Codes::Two => 2,
                Codes::Map(map) => map.code_len(&bytes[i..]).unwrap_or(2),
            }
            .min(bytes.len() - i);
            let code = bytes[i..i + n].iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
            let len = n as u8;
            let mut text = self
                .to_unicode
                .as_ref()
                .and_then(|m| m.text(code, len))
                .filter(|t| !t.is_empty() && !t.chars().all(|c| c == '\u{FFFD}'))
                .unwrap_or_default();
            if text.is_empty()
                && let Some(table) = &self.simple
            {
                text = table
                    .get(code as usize)
                    .cloned()
                    .flatten()
                    .or_else(|| (32..127).contains(&code).then(|| char::from(code as u8).to_string()))
                    .unwrap_or_default();
            }
            if text.is_empty() && self.unicode_codes {
                text = char::from_u32(code).map(String::from).unwrap_or_default();
            }
            let width = self.width(code, len, &text);
            out.push(Code {
                width,
                word_space: n == 1 && code == 32,
                text,
            });
            i += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names() {
        assert_eq!(glyph_text("A").as_deref(), Some("A"));
        assert_eq!(glyph_text("eacute").as_deref(), Some("é"));
        assert_eq!(glyph_text("uni00410042").as_deref(), Some("AB"));
        assert_eq!(glyph_text("u1F600").as_deref(), Some("😀"));
        assert_eq!(glyph_text("f_i").as_deref(), Some("fi"));
        assert_eq!(glyph_text("a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_text("g123"), None);
    }
}
