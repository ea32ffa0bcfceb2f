//! CMaps as PDF fonts carry them: a `/ToUnicode` map from character codes to
//! text, and an embedded `/Encoding` CMap from byte strings to codes of
//! 1 to 4 bytes (its code-space ranges). Ranges are kept as ranges, never
//! expanded, so a map of `<00000000> <FFFFFFFF>` costs one entry.

use std::collections::HashMap;

/// A token of the PostScript subset CMaps are written in.
#[derive(Debug, PartialEq)]
enum Token {
    Hex(Vec<u8>),
    Int(i64),
    Name(Vec<u8>),
    Keyword(Vec<u8>),
    ArrayStart,
    ArrayEnd,
    /// Strings, dictionaries and anything else the maps do not need.
    Other,
}

/// Stands in the operand list for an array, whose items are kept apart.
static ARRAY: Token = Token::ArrayEnd;

fn tokens(data: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    let delimiter = |c: u8| c.is_ascii_whitespace() || b"()<>[]{}/%".contains(&c);
    while i < data.len() {
        let c = data[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if data.get(i + 1) == Some(&b'<') => {
                out.push(Token::Other);
                i += 2;
            }
            b'>' if data.get(i + 1) == Some(&b'>') => {
                out.push(Token::Other);
                i += 2;
            }
            b'<' => {
                let mut digits = Vec::new();
                i += 1;
                while i < data.len() && data[i] != b'>' {
                    if let Some(d) = (data[i] as char).to_digit(16) {
                        digits.push(d as u8);
                    }
                    i += 1;
                }
                i += 1;
                if digits.len() % 2 == 1 {
                    digits.push(0);
                }
                out.push(Token::Hex(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()));
            }
            b'(' => {
                // A literal string (balanced parentheses, backslash escapes).
                let mut depth = 0usize;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token::Other);
            }
            b'[' => {
                out.push(Token::ArrayStart);
                i += 1;
            }
            b']' => {
                out.push(Token::ArrayEnd);
                i += 1;
            }
            b'/' => {
                let start = i + 1;
                i += 1;
                while i < data.len() && !delimiter(data[i]) {
                    i += 1;
                }
                out.push(Token::Name(data[start..i].to_vec()));
            }
            _ if delimiter(c) => {
                out.push(Token::Other);
                i += 1;
            }
            _ => {
                let start = i;
                while i < data.len() && !delimiter(data[i]) {
                    i += 1;
                }
                let word = &data[start..i];
                match std::str::from_utf8(word).ok().and_then(|w| w.parse::<i64>().ok()) {
                    Some(n) => out.push(Token::Int(n)),
                    None => out.push(Token::Keyword(word.to_vec())),
                }
            }
        }
    }
    out
}

/// What a range of codes maps to.
#[derive(Debug, Clone)]
enum Target {
    /// Text whose last UTF-16 unit grows with the code (`bfrange` with a string).
    Offset(Vec<u16>),
    /// One text per code (`bfrange` with an array).
    List(Vec<Vec<u16>>),
    /// A CID that grows with the code (`cidrange`).
    Cid(u32),
}

#[derive(Debug, Clone)]
struct Range {
    lo: u32,
    hi: u32,
    len: u8,
    target: Target,
}

/// A parsed CMap: code-space ranges, single mappings and range mappings.
#[derive(Debug, Default)]
pub(super) struct CMap {
    codespace: Vec<(Vec<u8>, Vec<u8>)>,
    chars: HashMap<(u8, u32), Vec<u16>>,
    cids: HashMap<(u8, u32), u32>,
    ranges: Vec<Range>,
}

fn code_of(bytes: &[u8]) -> Option<(u32, u8)> {
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    Some((
        bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)),
        bytes.len() as u8,
    ))
}

fn utf16(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .map(|p| {
            if p.len() == 2 {
                u16::from(p[0]) << 8 | u16::from(p[1])
            } else {
                u16::from(p[0])
            }
        })
        .collect()
}

impl CMap {
    pub(super) fn parse(data: &[u8]) -> CMap {
        let mut map = CMap::default();
        let toks = tokens(data);
        // Operands since the last keyword; arrays are flattened into `array`.
        let mut operands: Vec<&Token> = Vec::new();
        let mut arrays: Vec<Vec<Vec<u16>>> = Vec::new();
        let mut in_array: Option<Vec<Vec<u16>>> = None;
        for tok in &toks {
            match tok {
                Token::ArrayStart => in_array = Some(Vec::new()),
                Token::ArrayEnd => {
                    if let Some(items) = in_array.take() {
                        arrays.push(items);
                        operands.push(&ARRAY);
                    }
                }
                Token::Hex(bytes) if in_array.is_some() => {
                    if let Some(items) = in_array.as_mut() {
                        items.push(utf16(bytes));
                    }
                }
                Token::Keyword(k) => {
                    map.operator(k, &operands, &mut arrays);
                    operands.clear();
                    arrays.clear();
                }
                other @ (Token::Hex(_) | Token::Int(_) | Token::Name(_) | Token::Other) => operands.push(other),
            }
        }
        map.ranges.sort_by_key(|r| r.lo);
        map
    }

    fn operator(&mut self, keyword: &[u8], ops: &[&Token], arrays: &mut Vec<Vec<Vec<u16>>>) {
        match keyword {
            b"endcodespacerange" => {
                for pair in ops.chunks(2) {
                    if let [Token::Hex(lo), Token::Hex(hi)] = pair
                        && lo.len() == hi.len()
                        && (1..=4).contains(&lo.len())
                    {
                        self.codespace.push((lo.clone(), hi.clone()));
                    }
                }
            }
            b"endbfchar" => {
                for pair in ops.chunks(2) {
                    match pair {
                        [Token::Hex(src), Token::Hex(dst)] => {
                            if let Some(code) = code_of(src) {
                                self.chars.insert((code.1, code.0), utf16(dst));
                            }
                        }
                        [Token::Hex(src), Token::Name(name)] => {
                            if let (Some(code), Some(text)) =
                                (code_of(src), std::str::from_utf8(name).ok().and_then(glyph_text))
                            {
                                self.chars.insert((code.1, code.0), text.encode_utf16().collect());
                            }
                        }
                        _ => {}
                    }
                }
            }
            b"endbfrange" => {
                let mut arrays = std::mem::take(arrays).into_iter();
                for triple in ops.chunks(3) {
                    let [Token::Hex(lo), Token::Hex(hi), target] = triple else {
                        continue;
                    };
                    let (Some((lo, len)), Some((hi, _))) = (code_of(lo), code_of(hi)) else {
                        continue;
                    };
                    let target = match target {
                        Token::Hex(dst) => Target::Offset(utf16(dst)),
                        Token::ArrayEnd => match arrays.next() {
                            Some(list) => Target::List(list),
                            None => continue,
                        },
                        Token::Int(_) | Token::Name(_) | Token::Keyword(_) | Token::ArrayStart | Token::Other => {
                            continue;
                        }
                    };
                    if lo <= hi {
                        self.ranges.push(Range { lo, hi, len, target });
                    }
                }
            }
            b"endcidchar" => {
                for pair in ops.chunks(2) {
                    if let [Token::Hex(src), Token::Int(cid)] = pair
                        && let Some(code) = code_of(src)
                    {
                        self.cids.insert((code.1, code.0), u32::try_from(*cid).unwrap_or(0));
                    }
                }
            }
            b"endcidrange" => {
                for triple in ops.chunks(3) {
                    if let [Token::Hex(lo), Token::Hex(hi), Token::Int(cid)] = triple
                        && let (Some((lo, len)), Some((hi, _))) = (code_of(lo), code_of(hi))
                        && lo <= hi
                    {
                        let cid = u32::try_from(*cid).unwrap_or(0);
                        self.ranges.push(Range {
                            lo,
                            hi,
                            len,
                            target: Target::Cid(cid),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// Length of the code starting at `bytes[0]` by the code-space ranges,
    /// None when the map declares none.
    pub(super) fn code_len(&self, bytes: &[u8]) -> Option<usize> {
        if self.codespace.is_empty() {
            return None;
        }
        for n in 1..=4usize {
            if bytes.len() < n {
                break;
            }
            let fits = self
                .codespace
                .iter()
                .any(|(lo, hi)| lo.len() == n && (0..n).all(|i| lo[i] <= bytes[i] && bytes[i] <= hi[i]));
            if fits {
                return Some(n);
            }
        }
        // Not in any range: take the shortest declared length.
        self.codespace.iter().map(|(lo, _)| lo.len()).min()
    }

    fn range(&self, code: u32, len: u8) -> Option<&Range> {
        let end = self.ranges.partition_point(|r| r.lo <= code);
        self.ranges[..end]
            .iter()
            .rev()
            .take(64)
            .find(|r| r.hi >= code && r.len == len)
    }

    /// The text of a code, when the map has it.
    pub(super) fn text(&self, code: u32, len: u8) -> Option<String> {
        let units = if let Some(units) = self.chars.get(&(len, code)) {
            units.clone()
        } else {
            let r = self.range(code, len)?;
            let i = (code - r.lo) as usize;
            match &r.target {
                Target::Offset(base) => {
                    let mut units = base.clone();
                    if let Some(last) = units.last_mut() {
                        *last = last.wrapping_add(i as u16);
                    }
                    units
                }
                Target::List(list) => list.get(i)?.clone(),
                Target::Cid(_) => return None,
            }
        };
        let text: String = char::decode_utf16(units).filter_map(Result::ok).collect();
        Some(text)
    }

    /// The CID of a code (encoding CMaps).
    pub(super) fn cid(&self, code: u32, len: u8) -> Option<u32> {
        if let Some(cid) = self.cids.get(&(len, code)) {
            return Some(*cid);
        }
        let r = self.range(code, len)?;
        match r.target {
            Target::Cid(base) => Some(base.saturating_add(code - r.lo)),
            Target::Offset(_) | Target::List(_) => None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chars.is_empty() && self.ranges.is_empty() && self.cids.is_empty()
    }
}

/// The text of a glyph name: the Adobe Glyph List, `uniXXXX`, `uXXXX[XX]`,
/// ligatures written `f_f_i`, and suffixes such as `a.sc`.
pub(super) fn glyph_text(name: &str) -> Option<String> {
    if let Some(text) = pdf_encoding::glyphname_to_unicode(name) {
        return Some(text.to_owned());
    }
    let base = name.split('.').next().unwrap_or_default();
    if base.is_empty() {
        return None;
    }
    if base != name {
        return glyph_text(base);
    }
    if base.contains('_') {
        let parts: Option<String> = base.split('_').map(glyph_text).collect();
        return parts;
    }
    let hex = |digits: &str| u32::from_str_radix(digits, 16).ok().and_then(char::from_u32);
    if let Some(rest) = base.strip_prefix("uni")
        && rest.len() >= 4
        && rest.len() % 4 == 0
        && rest.chars().all(|c| c.is_ascii_hexdigit())
    {
        let text: Option<String> = (0..rest.len() / 4).map(|i| hex(&rest[i * 4..i * 4 + 4])).collect();
        return text;
    }
    if let Some(rest) = base.strip_prefix('u')
        && (4..=6).contains(&rest.len())
        && rest.chars().all(|c| c.is_ascii_hexdigit())
    {
        return hex(rest).map(String::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &[u8] = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def /CMapType 2 def
1 begincodespacerange <0000> <FFFF> endcodespacerange
3 beginbfchar <0003> <0020> <0011> <00660069> <0024> /eacute endbfchar
2 beginbfrange <0044> <0046> <0061> <0050> <0051> [<0078> <D835DC00>] endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end";

    #[test]
    fn to_unicode_chars_ranges_ligatures_and_surrogates() {
        let map = CMap::parse(MAP);
        assert_eq!(map.text(0x03, 2).as_deref(), Some(" "));
        assert_eq!(map.text(0x11, 2).as_deref(), Some("fi"));
        assert_eq!(map.text(0x24, 2).as_deref(), Some("é"));
        assert_eq!(map.text(0x45, 2).as_deref(), Some("b"));
        assert_eq!(map.text(0x46, 2).as_deref(), Some("c"));
        assert_eq!(map.text(0x50, 2).as_deref(), Some("x"));
        assert_eq!(map.text(0x51, 2).as_deref(), Some("\u{1D400}"));
        assert_eq!(map.text(0x47, 2), None);
        assert_eq!(map.code_len(&[0, 0x44]), Some(2));
    }

    #[test]
    fn encoding_cmap_with_mixed_code_lengths() {
        let map = CMap::parse(
            b"2 begincodespacerange <00> <80> <8140> <9FFC> endcodespacerange
             2 begincidrange <20> <7e> 1 <8140> <817e> 633 endcidrange",
        );
        assert_eq!(map.code_len(b"A"), Some(1));
        assert_eq!(map.code_len(&[0x81, 0x41]), Some(2));
        assert_eq!(map.cid(0x41, 1), Some(34));
        assert_eq!(map.cid(0x8141, 2), Some(634));
    }

    #[test]
    fn huge_ranges_are_not_expanded() {
        let map = CMap::parse(b"1 beginbfrange <00000000> <FFFFFFFF> <0041> endbfrange");
        assert_eq!(map.text(0, 4).as_deref(), Some("A"));
        assert_eq!(map.text(1, 4).as_deref(), Some("B"));
    }
}
