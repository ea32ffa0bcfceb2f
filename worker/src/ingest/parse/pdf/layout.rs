//! From placed glyphs to lines in reading order. Glyphs on one baseline
//! with small gaps form pieces; a word break is a gap wider than a fraction
//! of the font size (above the piece's own letter spacing); a recursive
//! XY cut orders the pieces into columns and bands; pieces on one baseline
//! within a band form a line, whose pieces are its cells.

use super::content::Glyph;

/// A gap wider than this many font sizes ends a piece (a column or a cell).
const PIECE_GAP: f64 = 1.0;
/// A gap wider than this fraction of the font size, above the piece's
/// usual letter spacing, is a word break.
const WORD_GAP: f64 = 0.12;

/// Glyphs on one baseline with no wide gap.
#[derive(Debug, Clone)]
struct Piece {
    glyphs: Vec<Glyph>,
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
}

impl Piece {
    fn new(g: Glyph) -> Piece {
        Piece {
            x0: g.x0,
            x1: g.x1,
            y: g.y,
            size: g.size,
            glyphs: vec![g],
        }
    }

    fn top(&self) -> f64 {
        self.y - 0.75 * self.size
    }

    fn bottom(&self) -> f64 {
        self.y + 0.25 * self.size
    }

    fn push(&mut self, g: Glyph) {
        self.x0 = self.x0.min(g.x0);
        self.x1 = self.x1.max(g.x1);
        self.size = self.size.max(g.size);
        self.glyphs.push(g);
    }

    fn absorb(&mut self, other: Piece) {
        self.x0 = self.x0.min(other.x0);
        self.x1 = self.x1.max(other.x1);
        self.size = self.size.max(other.size);
        self.glyphs.extend(other.glyphs);
    }

    fn chars(&self) -> usize {
        self.glyphs.iter().filter(|g| !g.space).count()
    }

    /// The piece's words: glyphs in order along the baseline (sorted when
    /// the piece was made), a space where the producer drew one or where the
    /// gap is wider than a word break.
    fn text(&self) -> String {
        let glyphs = &self.glyphs;
        let ink: Vec<&Glyph> = glyphs.iter().filter(|g| !g.space).collect();
        // The usual gap between letters of this piece: letter-spaced text
        // has wide gaps inside its words too.
        let mut gaps: Vec<f64> = ink
            .windows(2)
            .map(|w| (w[1].x0 - w[0].x1) / w[0].size.max(0.1))
            .collect();
        let spacing = if gaps.len() >= 6 {
            gaps.sort_by(f64::total_cmp);
            gaps[gaps.len() / 3].clamp(0.0, 0.5)
        } else {
            0.0
        };
        let mut out = String::with_capacity(glyphs.len());
        let mut prev: Option<&Glyph> = None;
        let mut pending_space = false;
        for g in glyphs {
            if g.space {
                pending_space = true;
                continue;
            }
            if let Some(p) = prev {
                let size = (p.size + g.size) / 2.0;
                let gap = g.x0 - p.x1;
                if pending_space || gap > (spacing + WORD_GAP) * size {
                    out.push(' ');
                }
            }
            pending_space = false;
            out.push(g.ch);
            prev = Some(g);
        }
        logical_order(out)
    }
}

fn right_to_left(c: char) -> bool {
    matches!(u32::from(c), 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Glyphs are placed left to right on the page; words of right-to-left
/// scripts (Arabic, Hebrew) are read the other way. Each run of such words
/// (numbers and punctuation between them included) is turned around, word
/// order and letters both, except the numbers, which read left to right.
fn logical_order(text: String) -> String {
    if !text.chars().any(right_to_left) {
        return text;
    }
    let words: Vec<&str> = text.split(' ').collect();
    let rtl = |w: &str| w.chars().any(right_to_left);
    let neutral = |w: &str| !w.chars().any(char::is_alphabetic);
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if !rtl(words[i]) {
            out.push(words[i].to_owned());
            i += 1;
            continue;
        }
        let mut j = i;
        let mut end = i;
        while j < words.len() && (rtl(words[j]) || neutral(words[j])) {
            if rtl(words[j]) {
                end = j;
            }
            j += 1;
        }
        for w in words[i..=end].iter().rev() {
            out.push(if rtl(w) {
                w.chars().rev().collect()
            } else {
                (*w).to_owned()
            });
        }
        i = end + 1;
    }
    out.join(" ")
}

/// A line of text in reading order, with its cells (pieces apart by wide gaps).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub cells: Vec<Cell>,
    pub y: f64,
    pub size: f64,
    pub bold: bool,
    /// Writing direction (see [`Glyph::dir`]).
    pub dir: u8,
    /// The column the line belongs to: the region between the XY cut's
    /// vertical cuts (lines of different columns never join).
    pub band: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cell {
    pub text: String,
    pub x0: f64,
    pub x1: f64,
}

impl Line {
    pub(super) fn text(&self) -> String {
        let parts: Vec<&str> = self.cells.iter().map(|c| c.text.as_str()).collect();
        parts.join(" ")
    }
}

/// Lines of one page in reading order: the main writing direction first.
pub(super) fn lines(glyphs: Vec<Glyph>) -> Vec<Line> {
    let mut by_dir: [Vec<Glyph>; 4] = Default::default();
    for g in glyphs {
        by_dir[usize::from(g.dir & 3)].push(g);
    }
    let mut dirs: Vec<usize> = (0..4).filter(|d| !by_dir[*d].is_empty()).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(by_dir[*d].len()));
    let mut out = Vec::new();
    let mut columns = 0;
    for d in dirs {
        let pieces = pieces(std::mem::take(&mut by_dir[d]));
        let mut leaves = Vec::new();
        let first = columns;
        columns += 1;
        xy_cut(
            &pieces,
            (0..pieces.len()).collect(),
            first,
            &mut columns,
            &mut leaves,
            0,
        );
        for (column, leaf) in leaves {
            out.extend(leaf_lines(&pieces, leaf, column));
        }
    }
    out
}

/// Runs of glyphs in drawing order, merged along baselines into pieces.
fn pieces(glyphs: Vec<Glyph>) -> Vec<Piece> {
    let mut runs: Vec<Piece> = Vec::new();
    for g in glyphs {
        if let Some(run) = runs.last_mut() {
            let last = run.glyphs.last().copied().unwrap_or(g);
            let size = last.size.max(g.size);
            // The same glyph drawn again on top (fake bold, shadows).
            let duplicate = !g.space
                && run
                    .glyphs
                    .iter()
                    .rev()
                    .take(8)
                    .any(|p| p.ch == g.ch && (p.x0 - g.x0).abs() < 0.15 * size && (p.y - g.y).abs() < 0.15 * size);
            if duplicate {
                continue;
            }
            let same_line = (g.y - last.y).abs() < 0.4 * size;
            let forward = g.x0 > last.x1 - 0.5 * size && g.x0 - last.x1 < PIECE_GAP * size;
            if same_line && forward {
                run.push(g);
                continue;
            }
        }
        runs.push(Piece::new(g));
    }
    runs.retain(|r| r.chars() > 0);
    // Runs on one baseline that touch become one piece (text drawn out of order).
    runs.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x0.total_cmp(&b.x0)));
    let mut lines: Vec<Vec<Piece>> = Vec::new();
    for r in runs {
        match lines.last_mut() {
            Some(line) if (r.y - line[0].y).abs() < 0.3 * r.size.max(line[0].size) => line.push(r),
            _ => lines.push(vec![r]),
        }
    }
    let mut out = Vec::new();
    for mut line in lines {
        line.sort_by(|a, b| a.x0.total_cmp(&b.x0));
        let mut merged: Vec<Piece> = Vec::new();
        for p in line {
            match merged.last_mut() {
                Some(m) if p.x0 - m.x1 < PIECE_GAP * m.size.max(p.size) => m.absorb(p),
                _ => merged.push(p),
            }
        }
        for piece in &mut merged {
            piece.glyphs.sort_by(|a, b| a.x0.total_cmp(&b.x0));
        }
        out.extend(merged);
    }
    out
}

/// Recursive XY cut: columns first when both sides read as text columns,
/// else bands at every horizontal gap. Leaves hold their column's number
/// and piece indices.
fn xy_cut(
    pieces: &[Piece],
    mut idx: Vec<usize>,
    column: usize,
    columns: &mut usize,
    out: &mut Vec<(usize, Vec<usize>)>,
    depth: usize,
) {
    if idx.len() <= 1 || depth > 64 {
        out.push((column, idx));
        return;
    }
    let sizes: Vec<f64> = idx.iter().map(|i| pieces[*i].size).collect();
    let size = median(&sizes).max(1.0);

    // The widest vertical gap.
    idx.sort_by(|a, b| pieces[*a].x0.total_cmp(&pieces[*b].x0));
    let mut best_x: Option<(f64, usize)> = None;
    let mut right = f64::MIN;
    for (k, i) in idx.iter().enumerate() {
        let p = &pieces[*i];
        if k > 0 {
            let gap = p.x0 - right;
            if gap > 0.8 * size && best_x.is_none_or(|b| gap > b.0) {
                best_x = Some((gap, k));
            }
        }
        right = right.max(p.x1);
    }
    if let Some((_, k)) = best_x {
        let (left, rest) = idx.split_at(k);
        if text_columns(pieces, left, rest) {
            let (left, rest) = (left.to_vec(), rest.to_vec());
            *columns += 2;
            xy_cut(pieces, left, *columns - 2, columns, out, depth + 1);
            xy_cut(pieces, rest, *columns - 1, columns, out, depth + 1);
            return;
        }
    }

    // Bands at every horizontal gap.
    idx.sort_by(|a, b| pieces[*a].top().total_cmp(&pieces[*b].top()));
    let mut bands: Vec<Vec<usize>> = Vec::new();
    let mut bottom = f64::MIN;
    for i in idx.iter().copied() {
        let p = &pieces[i];
        match bands.last_mut() {
            Some(band) if p.top() < bottom => band.push(i),
            _ => bands.push(vec![i]),
        }
        bottom = bottom.max(p.bottom());
    }
    if bands.len() == 1 {
        out.push((column, bands.pop().unwrap_or_default()));
        return;
    }
    for band in bands {
        xy_cut(pieces, band, column, columns, out, depth + 1);
    }
}

/// Whether two sides of a vertical gap are text columns rather than the
/// cells of a table or form: several lines each, and lines of prose length
/// unless the two sides' baselines do not line up.
fn text_columns(pieces: &[Piece], left: &[usize], right: &[usize]) -> bool {
    let baselines = |side: &[usize]| {
        let mut ys: Vec<f64> = side.iter().map(|i| pieces[*i].y).collect();
        ys.sort_by(f64::total_cmp);
        ys.dedup_by(|a, b| (*a - *b).abs() < 1.0);
        ys
    };
    let (ly, ry) = (baselines(left), baselines(right));
    if ly.len() < 3 || ry.len() < 3 {
        return false;
    }
    let long = |side: &[usize]| {
        let lens: Vec<f64> = side.iter().map(|i| pieces[*i].chars() as f64).collect();
        median(&lens) >= 25.0
    };
    if long(left) && long(right) {
        return true;
    }
    let aligned = ry.iter().filter(|y| ly.iter().any(|l| (*l - **y).abs() < 2.0)).count();
    (aligned as f64) < 0.3 * ry.len().min(ly.len()) as f64
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A leaf's pieces as lines: by baseline, top to bottom, cells left to right.
fn leaf_lines(pieces: &[Piece], mut leaf: Vec<usize>, band: usize) -> Vec<Line> {
    leaf.sort_by(|a, b| pieces[*a].y.total_cmp(&pieces[*b].y));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in leaf {
        let p = &pieces[i];
        match groups.last_mut() {
            Some(g) if (p.y - pieces[g[0]].y).abs() < 0.4 * p.size.max(pieces[g[0]].size) => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
        .into_iter()
        .map(|mut g| {
            g.sort_by(|a, b| pieces[*a].x0.total_cmp(&pieces[*b].x0));
            let cells: Vec<Cell> = g
                .iter()
                .map(|i| Cell {
                    text: pieces[*i].text(),
                    x0: pieces[*i].x0,
                    x1: pieces[*i].x1,
                })
                .filter(|c| !c.text.trim().is_empty())
                .collect();
            let glyphs: Vec<&Glyph> = g
                .iter()
                .flat_map(|i| pieces[*i].glyphs.iter())
                .filter(|x| !x.space)
                .collect();
            let sizes: Vec<f64> = glyphs.iter().map(|x| x.size).collect();
            let bold = glyphs.iter().filter(|x| x.bold).count() * 10 >= glyphs.len() * 9;
            Line {
                cells,
                y: pieces[g[0]].y,
                size: median(&sizes),
                bold,
                dir: pieces[g[0]].glyphs[0].dir,
                band,
            }
        })
        .filter(|l| !l.cells.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` from `x`, each `w` wide plus `gap`, on baseline `y`.
    pub(crate) fn run(text: &str, x: f64, y: f64, w: f64, gap: f64) -> Vec<Glyph> {
        let mut out = Vec::new();
        let mut x = x;
        for ch in text.chars() {
            out.push(Glyph {
                ch,
                x0: x,
                x1: x + w,
                y,
                size: 10.0,
                dir: 0,
                bold: false,
                space: ch == ' ',
            });
            x += w + gap;
        }
        out
    }

    #[test]
    fn words_from_gaps_not_from_strings() {
        // Each glyph placed on its own, no space glyphs: gaps of 2.5 units make words.
        let mut glyphs = run("Equity", 0.0, 100.0, 5.0, 0.2);
        glyphs.extend(run("investments", 33.0, 100.0, 5.0, 0.2));
        let lines = lines(glyphs);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text(), "Equity investments");
    }

    #[test]
    fn letter_spaced_headings_stay_words() {
        // Tracking of 2 units between letters, 6 between words.
        let mut glyphs = run("ANNUAL", 0.0, 50.0, 6.0, 2.0);
        glyphs.extend(run("REPORT", 48.0 - 2.0 + 6.0, 50.0, 6.0, 2.0));
        assert_eq!(lines(glyphs)[0].text(), "ANNUAL REPORT");
    }

    #[test]
    fn two_columns_read_one_after_the_other() {
        let mut glyphs = Vec::new();
        for row in 0..4 {
            let y = 100.0 + 12.0 * f64::from(row);
            glyphs.extend(run(&format!("left column line number {row} goes on"), 0.0, y, 5.0, 0.0));
            glyphs.extend(run(
                &format!("right column line number {row} goes on"),
                220.0,
                y,
                5.0,
                0.0,
            ));
        }
        let text: Vec<String> = lines(glyphs).iter().map(Line::text).collect();
        assert!(text[0].starts_with("left") && text[3].starts_with("left"), "{text:?}");
        assert!(text[4].starts_with("right"), "{text:?}");
    }

    #[test]
    fn table_rows_stay_rows() {
        let mut glyphs = Vec::new();
        for (row, (a, b)) in [
            ("Quarter", "Net sales"),
            ("Q1", "117,154"),
            ("Q2", "94,836"),
            ("Q3", "81,797"),
        ]
        .iter()
        .enumerate()
        {
            let y = 100.0 + 12.0 * row as f64;
            glyphs.extend(run(a, 0.0, y, 5.0, 0.0));
            glyphs.extend(run(b, 120.0, y, 5.0, 0.0));
        }
        let lines = lines(glyphs);
        let text: Vec<String> = lines.iter().map(Line::text).collect();
        assert_eq!(text, ["Quarter Net sales", "Q1 117,154", "Q2 94,836", "Q3 81,797"]);
        assert_eq!(lines[1].cells.len(), 2);
    }

    #[test]
    fn right_to_left_words_read_in_logical_order() {
        // On the page (left to right): "Name:" then the Arabic for "Ahmed Kamal" drawn visually.
        let visual = format!(
            "Name: {} {} 2023",
            "لﺎﻤﻛ".chars().rev().collect::<String>(),
            "ﺪﻤﺣأ".chars().rev().collect::<String>()
        );
        assert_eq!(logical_order(visual), "Name: ﺪﻤﺣأ لﺎﻤﻛ 2023");
        assert_eq!(logical_order("plain text".into()), "plain text");
    }

    #[test]
    fn overprinted_glyphs_count_once() {
        let mut glyphs = run("Bold", 0.0, 10.0, 5.0, 0.0);
        glyphs.extend(run("Bold", 0.3, 10.0, 5.0, 0.0));
        assert_eq!(lines(glyphs)[0].text(), "Bold");
    }
}
