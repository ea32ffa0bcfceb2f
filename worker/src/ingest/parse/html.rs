//! HTML to blocks: the title and heading structure are kept; scripts, styles,
//! navigation, headers, footers, forms and hidden elements are dropped. When
//! the page marks its main content (`<main>`, `<article>`, `role=main`), only
//! that is read.

// A document tree of a third-party format: node kinds this parser does not
// read (bookmarks, comments, fields...) are skipped on purpose, including
// kinds a later version of the library adds.
#![allow(clippy::wildcard_enum_match_arm)]

use ego_tree::NodeRef;
use parley_domain::document::{Block, Document};
use scraper::{ElementRef, Html, Node, Selector};

const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe", "button",
    "select", "input", "textarea", "canvas", "object", "embed", "head", "dialog", "menu",
];

fn hidden(el: &ElementRef) -> bool {
    let v = el.value();
    v.attr("hidden").is_some()
        || v.attr("aria-hidden") == Some("true")
        || matches!(v.attr("role"), Some("navigation" | "banner" | "contentinfo" | "search"))
        || v.attr("style")
            .is_some_and(|s| s.replace(' ', "").contains("display:none"))
}

/// Elements nested deeper than this are read as plain text, without
/// recursion: a page of 200,000 nested `<div>`s still gives its words, and no
/// page can overflow the parser's stack.
const MAX_DEPTH: usize = 200;

/// The text under `node`, walked without recursion (`descendants` keeps its
/// own cursor), leaving out scripts and styles.
fn flat_text(node: NodeRef<Node>, out: &mut String) {
    for d in node.descendants() {
        if let Node::Text(t) = d.value() {
            let code = d
                .parent()
                .and_then(|p| p.value().as_element().map(|e| matches!(e.name(), "script" | "style")))
                .unwrap_or(false);
            if !code {
                out.push_str(t);
                out.push(' ');
            }
        }
    }
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Walker {
    blocks: Vec<Block>,
    pending: String,
}

impl Walker {
    fn flush(&mut self) {
        let text = squash(&self.pending);
        self.pending.clear();
        if !text.is_empty() {
            self.blocks.push(Block::Paragraph { text, page: None });
        }
    }

    /// Text of inline content, skipping what is never read.
    fn inline_text(node: NodeRef<Node>, out: &mut String, skip_lists: bool) {
        Self::inline_text_at(node, out, skip_lists, 0);
    }

    fn inline_text_at(node: NodeRef<Node>, out: &mut String, skip_lists: bool, depth: usize) {
        if depth > MAX_DEPTH {
            flat_text(node, out);
            return;
        }
        for child in node.children() {
            match child.value() {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => {
                    let Some(el) = ElementRef::wrap(child) else { continue };
                    let name = e.name();
                    if SKIP.contains(&name) || hidden(&el) || (skip_lists && matches!(name, "ul" | "ol")) {
                        continue;
                    }
                    if name == "br" {
                        out.push(' ');
                        continue;
                    }
                    if matches!(name, "p" | "div" | "li" | "td" | "th" | "tr") {
                        out.push(' ');
                    }
                    Self::inline_text_at(child, out, skip_lists, depth + 1);
                    if matches!(name, "p" | "div" | "li" | "td" | "th") {
                        out.push(' ');
                    }
                }
                _ => {}
            }
        }
    }

    fn text_of(node: NodeRef<Node>) -> String {
        let mut s = String::new();
        Self::inline_text(node, &mut s, false);
        squash(&s)
    }

    fn list(&mut self, node: NodeRef<Node>, depth: usize) {
        if depth > MAX_DEPTH {
            let mut text = String::new();
            flat_text(node, &mut text);
            let text = squash(&text);
            if !text.is_empty() {
                self.blocks.push(Block::ListItem {
                    depth: 8,
                    text,
                    page: None,
                });
            }
            return;
        }
        for child in node.children() {
            let Some(el) = ElementRef::wrap(child) else { continue };
            match el.value().name() {
                "li" => {
                    let mut text = String::new();
                    Self::inline_text(child, &mut text, true);
                    let text = squash(&text);
                    if !text.is_empty() {
                        self.blocks.push(Block::ListItem {
                            depth: depth.min(8) as u8,
                            text,
                            page: None,
                        });
                    }
                    for nested in child.children() {
                        if let Some(n) = ElementRef::wrap(nested)
                            && matches!(n.value().name(), "ul" | "ol")
                        {
                            self.list(nested, depth + 1);
                        }
                    }
                }
                "ul" | "ol" => self.list(child, depth + 1),
                _ => {}
            }
        }
    }

    fn table(&mut self, node: NodeRef<Node>) {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header = false;
        // Rows in document order, not descending into nested tables.
        fn rows_in<'a>(node: NodeRef<'a, Node>, out: &mut Vec<NodeRef<'a, Node>>, depth: usize) {
            for child in node.children() {
                if let Some(el) = ElementRef::wrap(child) {
                    match el.value().name() {
                        "tr" => out.push(child),
                        "thead" | "tbody" | "tfoot" if depth < MAX_DEPTH => rows_in(child, out, depth + 1),
                        _ => {}
                    }
                }
            }
        }
        let mut ordered = Vec::new();
        rows_in(node, &mut ordered, 0);
        for (i, tr) in ordered.into_iter().enumerate() {
            let mut cells = Vec::new();
            let mut all_th = true;
            for cell in tr.children() {
                let Some(el) = ElementRef::wrap(cell) else { continue };
                match el.value().name() {
                    "th" => cells.push(Self::text_of(cell)),
                    "td" => {
                        all_th = false;
                        cells.push(Self::text_of(cell));
                    }
                    _ => {}
                }
            }
            if i == 0 && all_th && !cells.is_empty() {
                header = true;
            }
            if cells.iter().any(|c| !c.is_empty()) {
                rows.push(cells);
            }
        }
        if !rows.is_empty() {
            self.blocks.push(Block::Table {
                rows,
                header,
                page: None,
            });
        }
    }

    fn walk(&mut self, node: NodeRef<Node>, depth: usize) {
        if depth > MAX_DEPTH {
            flat_text(node, &mut self.pending);
            return;
        }
        for child in node.children() {
            match child.value() {
                Node::Text(t) => self.pending.push_str(t),
                Node::Element(e) => {
                    let Some(el) = ElementRef::wrap(child) else { continue };
                    let name = e.name();
                    if SKIP.contains(&name) || hidden(&el) {
                        continue;
                    }
                    match name {
                        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                            self.flush();
                            let text = Self::text_of(child);
                            if !text.is_empty() {
                                let level = name[1..].parse().unwrap_or(1);
                                self.blocks.push(Block::Heading {
                                    level,
                                    text,
                                    page: None,
                                });
                            }
                        }
                        "p" | "blockquote" | "dt" | "dd" | "figcaption" | "summary" => {
                            self.flush();
                            let text = Self::text_of(child);
                            if !text.is_empty() {
                                self.blocks.push(Block::Paragraph { text, page: None });
                            }
                        }
                        "ul" | "ol" => {
                            self.flush();
                            self.list(child, 0);
                        }
                        "table" => {
                            self.flush();
                            self.table(child);
                        }
                        "pre" => {
                            self.flush();
                            let text: String = el.text().collect();
                            let text = text.trim_matches('\n').to_owned();
                            if !text.trim().is_empty() {
                                self.blocks.push(Block::Code { text, page: None });
                            }
                        }
                        "br" => self.pending.push(' '),
                        "div" | "section" | "article" | "main" | "body" | "details" | "dl" | "figure" | "center" => {
                            self.flush();
                            self.walk(child, depth + 1);
                            self.flush();
                        }
                        _ => {
                            // Inline element: its text joins the current paragraph.
                            let mut s = String::new();
                            Self::inline_text(child, &mut s, false);
                            self.pending.push_str(&s);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Elements that never have content (no closing tag).
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
];

/// Elements whose end tag may be left out (a page of a thousand `<p>`s
/// without `</p>` is not a thousand levels deep): not counted either way.
const OPTIONAL_END: &[&str] = &[
    "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "caption",
    "rb", "rt", "rp", "rtc",
];

/// Open elements deeper than this make the page be read as flat text: the
/// HTML tree builder checks the stack of open elements at many tags, which
/// costs time in the square of the depth (a page of 200,000 nested `<div>`s
/// held a core for over a minute).
const MAX_TREE_DEPTH: usize = 1000;

/// Whether a page is nested too deeply for the HTML tree builder (its
/// readers then take it in one flat pass).
pub fn too_deep(html: &str) -> bool {
    tag_depth(html) > MAX_TREE_DEPTH
}

/// The deepest nesting of open elements, counted from the tags alone in
/// one pass (void and self-closed elements, comments and doctypes aside).
fn tag_depth(html: &str) -> usize {
    let bytes = html.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while let Some(at) = bytes[i..].iter().position(|b| *b == b'<') {
        i += at + 1;
        let closing = bytes.get(i) == Some(&b'/');
        let start = if closing { i + 1 } else { i };
        let name_len = bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        if name_len == 0 || !bytes[start].is_ascii_alphabetic() {
            continue;
        }
        let name = html[start..start + name_len].to_ascii_lowercase();
        let end = bytes[start..].iter().position(|b| *b == b'>').map(|p| start + p);
        let self_closed = end.is_some_and(|e| e > 0 && bytes[e - 1] == b'/');
        if OPTIONAL_END.contains(&name.as_str()) {
            // Counted neither way.
        } else if closing {
            depth = depth.saturating_sub(1);
        } else if !VOID.contains(&name.as_str()) && !self_closed {
            depth += 1;
            deepest = deepest.max(depth);
        }
        i = end.map_or(bytes.len(), |e| e + 1);
    }
    deepest
}

/// A page too deep for the tree builder, read in one pass: tags become
/// breaks between paragraphs, scripts and styles are dropped, the common
/// character references are decoded.
fn flat_document(html: &str) -> Document {
    let mut blocks = Vec::new();
    let mut text = String::new();
    let mut rest = html;
    let flush = |text: &mut String, blocks: &mut Vec<Block>| {
        let line = squash(&decode_references(text));
        text.clear();
        if !line.is_empty() {
            blocks.push(Block::Paragraph { text: line, page: None });
        }
    };
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open..];
        let lower: String = rest.chars().take(8).collect::<String>().to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            "</script"
        } else if lower.starts_with("<style") {
            "</style"
        } else if lower.starts_with("<!--") {
            "-->"
        } else {
            ""
        };
        if !skip_to.is_empty() {
            let found = find_ignoring_case(rest, skip_to);
            rest = found.map_or("", |at| &rest[at + skip_to.len()..]);
            if skip_to != "-->" {
                // The rest of the closing tag.
                rest = rest.find('>').map_or("", |e| &rest[e + 1..]);
            }
            continue;
        }
        let end = rest.find('>').map_or(rest.len(), |e| e + 1);
        let tag = rest[..end].trim_start_matches(['<', '/']).to_ascii_lowercase();
        let inline = [
            "a ", "a>", "b>", "b ", "i>", "i ", "em", "strong", "span", "code", "small", "sub", "sup",
        ]
        .iter()
        .any(|t| tag.starts_with(t));
        if inline {
            text.push(' ');
        } else {
            flush(&mut text, &mut blocks);
        }
        rest = &rest[end..];
    }
    text.push_str(rest);
    flush(&mut text, &mut blocks);
    Document {
        title: None,
        blocks,
        page_count: None,
    }
}

/// Where `needle` (ASCII) first occurs in `hay`, any case, without copying.
fn find_ignoring_case(hay: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

fn decode_references(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Parses an HTML page into blocks. `_base_url` is where the page came from.
pub fn parse_html(html: &str, _base_url: Option<&str>) -> Document {
    if too_deep(html) {
        return flat_document(html);
    }
    let dom = Html::parse_document(html);
    let select = |css: &str| Selector::parse(css).ok().and_then(|s| dom.select(&s).next());
    let title = select("title")
        .map(|t| squash(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let root = select("main")
        .or_else(|| select("[role=main]"))
        .or_else(|| select("article"))
        .or_else(|| select("body"))
        .map(|e| *e)
        .unwrap_or_else(|| dom.tree.root());
    let mut walker = Walker {
        blocks: Vec::new(),
        pending: String::new(),
    };
    walker.walk(root, 0);
    walker.flush();
    let title = title.or_else(|| {
        walker.blocks.iter().find_map(|b| match b {
            Block::Heading { text, .. } => Some(text.clone()),
            Block::Paragraph { .. } | Block::ListItem { .. } | Block::Table { .. } | Block::Code { .. } => None,
        })
    });
    Document {
        title,
        blocks: walker.blocks,
        page_count: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_too_deep_for_the_tree_is_read_flat_and_fast() {
        let n = 200_000;
        let html = format!(
            "<html><body><script>var x = '<div>';</script>{}<p>Deep &amp; inside.</p><p>Second <b>bold</b> line.</p>{}</body></html>",
            "<div>".repeat(n),
            "</div>".repeat(n)
        );
        // html, body, the divs and b (and the `<div>` in the script: the
        // count is a cheap guard, not a parser).
        assert_eq!(tag_depth(&html), n + 4);
        assert_eq!(
            tag_depth("<html><body><div>a<br>b<img src=x/></div><hr></body></html>"),
            3
        );
        // Paragraphs and items whose end tags are left out do not nest.
        let unclosed = format!("<html><body><ul>{}</ul></body></html>", "<li><p>item".repeat(5000));
        assert_eq!(tag_depth(&unclosed), 3);
        let started = std::time::Instant::now();
        let doc = parse_html(&html, None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let texts = crate::ingest::parse::test_support::paragraphs(&doc);
        assert_eq!(texts, vec!["Deep & inside.", "Second bold line."]);
    }

    #[test]
    fn deep_nesting_gives_its_text_without_deep_recursion() {
        let n = 3_000;
        let html = format!(
            "<html><body>{}<p>Deep inside.</p>{}<ul>{}<li>Innermost item</li>{}</ul></body></html>",
            "<div>".repeat(n),
            "</div>".repeat(n),
            "<li><ul>".repeat(500),
            "</ul></li>".repeat(500)
        );
        let doc = crate::ingest::parse::test_support::on_small_stack(move || parse_html(&html, None));
        let text: Vec<String> = doc.blocks.iter().map(|b| format!("{b:?}")).collect();
        let all = text.join(" ");
        assert!(all.contains("Deep inside."), "{all}");
        assert!(all.contains("Innermost item"), "{all}");
    }

    #[test]
    fn main_content_with_structure_and_without_boilerplate() {
        let html = r#"<!doctype html><html><head><title> Pricing | Acme </title><style>p{}</style></head>
        <body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
        <header>Acme header</header>
        <main>
          <h1>Pricing</h1>
          <p>Our <b>Pro</b> plan costs <a href="/p">20 EUR</a> per month.</p>
          <script>alert(1)</script>
          <div>Loose text in a div<br>with a break.</div>
          <h2>Features</h2>
          <ul><li>Fast<ul><li>Really fast</li></ul></li><li>Safe</li></ul>
          <table><thead><tr><th>Plan</th><th>Price</th></tr></thead>
                 <tbody><tr><td>Pro</td><td>20</td></tr></tbody></table>
          <pre>cargo run</pre>
          <div hidden>secret</div>
        </main>
        <footer>Copyright Acme</footer></body></html>"#;
        let doc = parse_html(html, None);
        assert_eq!(doc.title.as_deref(), Some("Pricing | Acme"));
        assert_eq!(
            doc.blocks,
            vec![
                Block::Heading {
                    level: 1,
                    text: "Pricing".into(),
                    page: None
                },
                Block::Paragraph {
                    text: "Our Pro plan costs 20 EUR per month.".into(),
                    page: None
                },
                Block::Paragraph {
                    text: "Loose text in a div with a break.".into(),
                    page: None
                },
                Block::Heading {
                    level: 2,
                    text: "Features".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 0,
                    text: "Fast".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 1,
                    text: "Really fast".into(),
                    page: None
                },
                Block::ListItem {
                    depth: 0,
                    text: "Safe".into(),
                    page: None
                },
                Block::Table {
                    rows: vec![vec!["Plan".into(), "Price".into()], vec!["Pro".into(), "20".into()]],
                    header: true,
                    page: None
                },
                Block::Code {
                    text: "cargo run".into(),
                    page: None
                },
            ]
        );
        let md = doc.to_markdown();
        assert!(!md.contains("Home") && !md.contains("Copyright") && !md.contains("alert") && !md.contains("secret"));
    }
}
