//! Runs a page's content stream and records where each glyph lands: the
//! graphics state (`q`, `Q`, `cm`), the text state (`Tf`, `Tc`, `Tw`, `Tz`,
//! `TL`, `Ts`), the text and line matrices, every show operator (`Tj`, `TJ`,
//! `'`, `"`) and form XObjects (`Do`). Each glyph advances by its width from
//! the font, so word gaps come from geometry, not from how the producer
//! happened to split its strings.

// PDF objects of a third-party library: kinds a match does not read are
// skipped on purpose, including kinds a later version adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::font::Font;

/// Limits of one page: decoded content bytes (forms included), operators
/// run, and glyphs kept. A page past them keeps what it had.
pub(super) const MAX_PAGE_CONTENT: usize = 64 << 20;
const MAX_OPERATIONS: usize = 4_000_000;
const MAX_GLYPHS: usize = 1_000_000;
/// Forms inside forms deeper than this are not run.
const MAX_FORM_DEPTH: usize = 12;

type Matrix = [f64; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn apply(m: &Matrix, x: f64, y: f64) -> (f64, f64) {
    (x * m[0] + y * m[2] + m[4], x * m[1] + y * m[3] + m[5])
}

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

fn matrix(args: &[Object]) -> Option<Matrix> {
    if args.len() < 6 {
        return None;
    }
    let mut m = [0.0; 6];
    for (slot, a) in m.iter_mut().zip(args) {
        *slot = number(a)?;
    }
    m.iter().all(|v| v.is_finite()).then_some(m)
}

/// One glyph placed on the page, in the frame of its writing direction:
/// `x0..x1` along the baseline, `y` the baseline's distance down the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Glyph {
    pub ch: char,
    pub x0: f64,
    pub x1: f64,
    pub y: f64,
    /// Font size on the page.
    pub size: f64,
    /// Writing direction: 0 left to right, 1 upwards, 2 upside down, 3 downwards.
    pub dir: u8,
    pub bold: bool,
    /// A space the producer drew (a word break).
    pub space: bool,
}

#[derive(Clone)]
struct State {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
    rise: f64,
}

impl Default for State {
    fn default() -> Self {
        State {
            ctm: IDENTITY,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        }
    }
}

/// Fonts already read, by object id, shared by all pages of a document.
#[derive(Default)]
pub(super) struct Fonts {
    by_id: HashMap<ObjectId, Rc<Font>>,
}

pub(super) struct Interpreter<'a> {
    doc: &'a Document,
    fonts: &'a mut Fonts,
    pub glyphs: Vec<Glyph>,
    budget_bytes: usize,
    operations: usize,
    /// Forms being run (a form that draws itself is not run again).
    forms: Vec<ObjectId>,
    /// The page's visible box, for dropping text drawn far outside it.
    bounds: [f64; 4],
}

fn unit(dir: u8) -> (f64, f64) {
    match dir {
        0 => (1.0, 0.0),
        1 => (0.0, 1.0),
        2 => (-1.0, 0.0),
        _ => (0.0, -1.0),
    }
}

impl<'a> Interpreter<'a> {
    pub(super) fn new(doc: &'a Document, fonts: &'a mut Fonts, bounds: [f64; 4]) -> Self {
        Interpreter {
            doc,
            fonts,
            glyphs: Vec::new(),
            budget_bytes: MAX_PAGE_CONTENT,
            operations: 0,
            forms: Vec::new(),
            bounds,
        }
    }

    /// Runs a page: its content and the resources it names.
    pub(super) fn run_page(&mut self, page_id: ObjectId) -> Result<(), lopdf::Error> {
        let content = self.doc.get_page_content_with_limit(page_id, self.budget_bytes)?;
        self.budget_bytes = self.budget_bytes.saturating_sub(content.len());
        let resources = page_resources(self.doc, page_id);
        self.run(&content, resources, State::default());
        Ok(())
    }

    fn font(&mut self, resources: Option<&Dictionary>, name: &[u8]) -> Option<Rc<Font>> {
        let fonts = resources.and_then(|r| r.get(b"Font").ok()).map(|o| self.deref(o))?;
        let entry = fonts.as_dict().ok()?.get(name).ok()?;
        if let Object::Reference(id) = entry {
            if let Some(font) = self.fonts.by_id.get(id) {
                return Some(font.clone());
            }
            let font = Rc::new(Font::load(self.doc, self.doc.get_dictionary(*id).ok()?));
            self.fonts.by_id.insert(*id, font.clone());
            return Some(font);
        }
        Some(Rc::new(Font::load(self.doc, entry.as_dict().ok()?)))
    }

    fn deref<'o>(&self, o: &'o Object) -> &'o Object
    where
        'a: 'o,
    {
        self.doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
    }

    fn run(&mut self, content: &[u8], resources: Option<&Dictionary>, start: State) {
        let mut stack: Vec<State> = Vec::new();
        let mut gs = start;
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        for op in lopdf::content::Content::decode_iter(content) {
            let Ok(op) = op else { break };
            self.operations += 1;
            if self.operations > MAX_OPERATIONS || self.glyphs.len() > MAX_GLYPHS {
                break;
            }
            let args = &op.operands;
            let num = |i: usize| args.get(i).and_then(number).filter(|v| v.is_finite());
            match op.operator.as_str() {
                "q" if stack.len() < 256 => stack.push(gs.clone()),
                "Q" => {
                    if let Some(saved) = stack.pop() {
                        gs = saved;
                    }
                }
                "cm" => {
                    if let Some(m) = matrix(args) {
                        gs.ctm = mul(&m, &gs.ctm);
                    }
                }
                "BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                "Tf" => {
                    gs.font = args
                        .first()
                        .and_then(|n| n.as_name().ok())
                        .and_then(|n| self.font(resources, n));
                    gs.size = num(1).unwrap_or(0.0);
                }
                "Tc" => gs.char_spacing = num(0).unwrap_or(0.0),
                "Tw" => gs.word_spacing = num(0).unwrap_or(0.0),
                "Tz" => gs.scale = num(0).unwrap_or(100.0) / 100.0,
                "TL" => gs.leading = num(0).unwrap_or(0.0),
                "Ts" => gs.rise = num(0).unwrap_or(0.0),
                "Td" | "TD" => {
                    let (tx, ty) = (num(0).unwrap_or(0.0), num(1).unwrap_or(0.0));
                    if op.operator == "TD" {
                        gs.leading = -ty;
                    }
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, tx, ty], &tlm);
                    tm = tlm;
                }
                "Tm" => {
                    if let Some(m) = matrix(args) {
                        tlm = m;
                        tm = m;
                    }
                }
                "T*" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                    tm = tlm;
                }
                "Tj" => {
                    if let Some(Object::String(bytes, _)) = args.first() {
                        self.show(&gs, &mut tm, bytes);
                    }
                }
                "'" | "\"" => {
                    if op.operator == "\"" {
                        gs.word_spacing = num(0).unwrap_or(gs.word_spacing);
                        gs.char_spacing = num(1).unwrap_or(gs.char_spacing);
                    }
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                    tm = tlm;
                    if let Some(Object::String(bytes, _)) = args.last() {
                        self.show(&gs, &mut tm, bytes);
                    }
                }
                "TJ" => {
                    if let Some(Object::Array(items)) = args.first() {
                        for item in items {
                            match item {
                                Object::String(bytes, _) => self.show(&gs, &mut tm, bytes),
                                other => {
                                    if let Some(n) = number(other).filter(|n| n.is_finite()) {
                                        let font_vertical = gs.font.as_ref().is_some_and(|f| f.vertical);
                                        let shift = -n / 1000.0 * gs.size;
                                        tm = if font_vertical {
                                            mul(&[1.0, 0.0, 0.0, 1.0, 0.0, shift], &tm)
                                        } else {
                                            mul(&[1.0, 0.0, 0.0, 1.0, shift * gs.scale, 0.0], &tm)
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = args.first().and_then(|n| n.as_name().ok()) {
                        self.form(resources, name, &gs);
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs a form XObject with the current state.
    fn form(&mut self, resources: Option<&Dictionary>, name: &[u8], gs: &State) {
        if self.forms.len() >= MAX_FORM_DEPTH {
            return;
        }
        let Some(xobjects) = resources.and_then(|r| r.get(b"XObject").ok()).map(|o| self.deref(o)) else {
            return;
        };
        let Some(Object::Reference(id)) = xobjects.as_dict().ok().and_then(|d| d.get(name).ok()) else {
            return;
        };
        let id = *id;
        if self.forms.contains(&id) {
            return;
        }
        let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) else {
            return;
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return;
        }
        let content = match stream.dict.get(b"Filter") {
            Ok(_) => match stream.decompressed_content_with_limit(self.budget_bytes) {
                Ok(c) => c,
                Err(_) => return,
            },
            Err(_) if stream.content.len() <= self.budget_bytes => stream.content.clone(),
            Err(_) => return,
        };
        self.budget_bytes = self.budget_bytes.saturating_sub(content.len());
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .map(|o| self.deref(o))
            .and_then(|o| o.as_dict().ok());
        let mut state = gs.clone();
        if let Some(m) = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|o| o.as_array().ok())
            .and_then(|a| matrix(a))
        {
            state.ctm = mul(&m, &state.ctm);
        }
        self.forms.push(id);
        self.run(&content, own.or(resources), state);
        self.forms.pop();
    }

    /// Places each glyph of a shown string and advances the text matrix.
    fn show(&mut self, gs: &State, tm: &mut Matrix, bytes: &[u8]) {
        let Some(font) = gs.font.clone() else { return };
        let m = mul(tm, &gs.ctm);
        // Device size of the font: the length of the text space's unit up vector.
        let size = gs.size * (m[2] * m[2] + m[3] * m[3]).sqrt();
        let mut advance = 0.0;
        for code in font.codes(bytes) {
            let glyph_advance = code.width * gs.size;
            let (start, end) = if font.vertical {
                (
                    apply(&m, 0.0, gs.rise - advance),
                    apply(&m, 0.0, gs.rise - advance - gs.size),
                )
            } else {
                (
                    apply(&m, advance, gs.rise),
                    apply(&m, advance + glyph_advance * gs.scale, gs.rise),
                )
            };
            let spacing = gs.char_spacing + if code.word_space { gs.word_spacing } else { 0.0 };
            advance += if font.vertical {
                gs.size + spacing
            } else {
                (glyph_advance + spacing) * gs.scale
            };
            if code.text.is_empty() || size <= 0.0 || !size.is_finite() {
                continue;
            }
            let (ox, oy) = start;
            let [x0, y0, x1, y1] = self.bounds;
            let margin = (x1 - x0).abs().max((y1 - y0).abs()) * 0.05;
            if ox < x0.min(x1) - margin
                || ox > x0.max(x1) + margin
                || oy < y0.min(y1) - margin
                || oy > y0.max(y1) + margin
            {
                continue;
            }
            let (dx, dy) = (end.0 - start.0, end.1 - start.1);
            let (bx, by) = if font.vertical { (-m[2], -m[3]) } else { (m[0], m[1]) };
            let angle = if dx.abs() + dy.abs() > 1e-9 {
                dy.atan2(dx)
            } else {
                by.atan2(bx)
            };
            let dir = ((angle / std::f64::consts::FRAC_PI_2).round() as i64).rem_euclid(4) as u8;
            let (ux, uy) = unit(dir);
            let along = |p: (f64, f64)| p.0 * ux + p.1 * uy;
            // Distance down the page in the writing frame (the normal, flipped).
            let down = |p: (f64, f64)| -(p.0 * -uy + p.1 * ux);
            let (a0, a1) = (along(start), along(end).max(along(start)));
            let y = down(start);
            let chars: Vec<char> = code.text.chars().filter(|c| !c.is_control()).collect();
            if chars.is_empty() {
                continue;
            }
            let step = (a1 - a0) / chars.len() as f64;
            for (k, ch) in chars.into_iter().enumerate() {
                self.glyphs.push(Glyph {
                    ch,
                    x0: a0 + step * k as f64,
                    x1: a0 + step * (k + 1) as f64,
                    y,
                    size,
                    dir,
                    bold: font.bold,
                    space: ch.is_whitespace(),
                });
            }
        }
        let shift = if font.vertical {
            [1.0, 0.0, 0.0, 1.0, 0.0, -advance]
        } else {
            [1.0, 0.0, 0.0, 1.0, advance, 0.0]
        };
        *tm = mul(&shift, tm);
    }
}

/// The page's resource dictionary (its own or inherited).
fn page_resources(doc: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let (direct, ids) = doc.get_page_resources(page_id).ok()?;
    direct.or_else(|| ids.first().and_then(|id| doc.get_dictionary(*id).ok()))
}

/// The page's visible box (`CropBox`, else `MediaBox`), inherited.
pub(super) fn page_box(doc: &Document, page_id: ObjectId) -> [f64; 4] {
    let mut node = Some(page_id);
    let mut depth = 0;
    let mut found: Option<[f64; 4]> = None;
    while let (Some(id), true) = (node, depth < 32) {
        let Ok(dict) = doc.get_dictionary(id) else { break };
        for key in [b"CropBox".as_slice(), b"MediaBox".as_slice()] {
            if found.is_none()
                && let Some(a) = dict
                    .get(key)
                    .ok()
                    .map(|o| doc.dereference(o).map(|(_, o)| o).unwrap_or(o))
                    .and_then(|o| o.as_array().ok())
            {
                let v: Vec<f64> = a.iter().filter_map(number).collect();
                if v.len() == 4 {
                    found = Some([v[0], v[1], v[2], v[3]]);
                }
            }
        }
        if found.is_some() {
            break;
        }
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
        depth += 1;
    }
    found.unwrap_or([0.0, 0.0, 612.0, 792.0])
}
