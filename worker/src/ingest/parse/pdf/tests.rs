//! Small PDFs made here, one text-state case each.

use lopdf::{Dictionary, Object, Stream, dictionary};

use super::*;

/// A PDF whose pages have the given content streams; `fonts` adds the
/// objects it needs and returns the `/Font` resource dictionary.
fn pdf(pages: &[&str], title: Option<&str>, fonts: impl FnOnce(&mut lopdf::Document) -> Dictionary) -> Vec<u8> {
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_dict = fonts(&mut doc);
    let resources = doc.add_object(dictionary! { "Font" => font_dict });
    let mut kids = Vec::new();
    for content in pages {
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        });
        kids.push(Object::Reference(page));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    if let Some(t) = title {
        let info = doc.add_object(dictionary! { "Title" => Object::string_literal(t) });
        doc.trailer.set("Info", info);
    }
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("the test PDF is written");
    out
}

/// Helvetica with no `/Widths`: the standard 14 metrics apply.
fn helvetica(doc: &mut lopdf::Document) -> Dictionary {
    let f = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" });
    let b = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica-Bold" });
    dictionary! { "F1" => f, "F2" => b }
}

fn text_of(bytes: &[u8]) -> String {
    let doc = parse_pdf(bytes).expect("the PDF parses");
    doc.blocks.iter().map(Block::to_markdown).collect::<Vec<_>>().join("\n")
}

/// `TJ` with a small kerning number between every letter, no spaces drawn:
/// the word gap is a larger displacement, and only geometry tells them apart.
#[test]
fn tj_kerning_between_every_glyph() {
    let kerned = |word: &str| word.chars().map(|c| format!("({c}) 15")).collect::<Vec<_>>().join(" ");
    let content = format!(
        "BT /F1 12 Tf 72 700 Td [{} -300 {}] TJ ET",
        kerned("Equity"),
        kerned("investments")
    );
    assert_eq!(text_of(&pdf(&[&content], None, helvetica)), "Equity investments");
}

/// Every glyph shown with its own `Tj` after a `Td` to its position.
#[test]
fn glyph_by_glyph_positioning() {
    // Helvetica widths at 10 pt: E 6.67, q 5.56, u 5.56, i 2.22, t 2.78, y 5.0.
    let mut ops = String::from("BT /F1 10 Tf 72 700 Td ");
    let mut x = 0.0;
    let mut place = |text: &str, ops: &mut String| {
        for c in text.chars() {
            let w = match c {
                'E' => 6.67,
                'q' | 'u' | 'n' | 's' | 'e' => 5.56,
                'i' => 2.22,
                't' => 2.78,
                'y' | 'v' => 5.0,
                'm' => 8.33,
                _ => 5.56,
            };
            ops.push_str(&format!("({c}) Tj {w} 0 Td "));
            x += w;
        }
    };
    place("Equity", &mut ops);
    ops.push_str("2.78 0 Td ");
    place("investments", &mut ops);
    ops.push_str("ET");
    assert_eq!(text_of(&pdf(&[&ops], None, helvetica)), "Equity investments");
}

/// Letter spacing (`Tc`) opens every gap; word spacing (`Tw`) widens the
/// drawn space. Horizontal scaling (`Tz`) shrinks both.
#[test]
fn char_spacing_word_spacing_and_scaling() {
    let content = "BT /F1 12 Tf 3 Tc 6 Tw 72 700 Td (ANNUAL PERFORMANCE REPORT) Tj ET \
                   BT /F1 12 Tf 50 Tz 72 650 Td (Narrow text stays apart) Tj ET";
    assert_eq!(
        text_of(&pdf(&[content], None, helvetica)),
        "ANNUAL PERFORMANCE REPORT\nNarrow text stays apart"
    );
}

/// A Type 0 font with two-byte codes, `/W` widths and a `/ToUnicode` map.
#[test]
fn cid_font_with_to_unicode() {
    let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap
1 begincodespacerange <0000> <FFFF> endcodespacerange
1 beginbfrange <0010> <0029> <0061> endbfrange
1 beginbfchar <0003> <0020> endbfchar
endcmap end end";
    let fonts = |doc: &mut lopdf::Document| {
        let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.to_vec()));
        let descendant = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "ABCDEF+Calibri",
            "CIDSystemInfo" => dictionary! { "Registry" => Object::string_literal("Adobe"), "Ordering" => Object::string_literal("Identity"), "Supplement" => 0 },
            "DW" => 500,
            "W" => vec![3.into(), vec![Object::Integer(250)].into(), 16.into(), 41.into(), 480.into()],
        });
        let f = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "ABCDEF+Calibri",
            "Encoding" => "Identity-H", "DescendantFonts" => vec![descendant.into()], "ToUnicode" => to_unicode,
        });
        dictionary! { "F1" => f }
    };
    // "cid font" as codes: a=0x10, so c=0x12, i=0x18, d=0x13, f=0x15, o=0x1e, n=0x1d, t=0x23;
    // each glyph positioned on its own with a small kerning, the word gap by displacement.
    let content = "BT /F1 11 Tf 72 700 Td [<0012> 10 <0018> 10 <0013> -280 <0015> 10 <001e> 10 <001d> 10 <0023>] TJ ET";
    assert_eq!(text_of(&pdf(&[content], None, fonts)), "cid font");
}

/// Two columns of prose sharing baselines read one column after the other.
#[test]
fn two_columns() {
    let mut content = String::new();
    for row in 0..6 {
        let y = 700 - row * 14;
        content.push_str(&format!(
            "BT /F1 10 Tf 72 {y} Td (Left column sentence number {row} continues here.) Tj ET \
             BT /F1 10 Tf 320 {y} Td (Right column sentence number {row} continues here.) Tj ET "
        ));
    }
    let text = text_of(&pdf(&[&content], None, helvetica));
    let left = text.find("Left column sentence number 5").expect("left column");
    let right = text.find("Right column sentence number 0").expect("right column");
    assert!(left < right, "{text}");
}

/// Text rotated a quarter turn (a landscape table on a portrait page) still
/// comes out as words in order.
#[test]
fn rotated_text() {
    let content = "BT /F1 12 Tf 0 1 -1 0 300 100 Tm (Rotated table heading) Tj ET \
                   BT /F1 12 Tf 0 1 -1 0 320 100 Tm (second rotated line) Tj ET";
    assert_eq!(
        text_of(&pdf(&[content], None, helvetica)),
        "Rotated table heading second rotated line"
    );
}

/// A bold heading over body text, a hyphenated line end, headers and page
/// numbers repeated on every page, and an accession number as the metadata
/// title: the first heading becomes the title.
#[test]
fn headings_hyphens_running_lines_and_title() {
    let pages: Vec<String> = (1..=4)
        .map(|n| {
            format!(
                "BT /F1 8 Tf 72 760 Td (Acme Corp Quarterly Report) Tj ET \
                 BT /F2 16 Tf 72 700 Td (Section {n} Results) Tj ET \
                 BT /F1 10 Tf 72 680 Td (Revenue grew in the regula-) Tj 0 -12 Td (tory period across all segments.) Tj ET \
                 BT /F1 8 Tf 300 40 Td ({n}) Tj ET"
            )
        })
        .collect();
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let doc = parse_pdf(&pdf(&refs, Some("0000320193-23-000077"), helvetica)).expect("parses");
    assert_eq!(doc.title.as_deref(), Some("Section 1 Results"));
    assert_eq!(
        doc.blocks[0],
        Block::Heading {
            level: 1,
            text: "Section 1 Results".into(),
            page: Some(1)
        }
    );
    assert_eq!(
        doc.blocks[1],
        Block::Paragraph {
            text: "Revenue grew in the regulatory period across all segments.".into(),
            page: Some(1)
        }
    );
    let all = doc.blocks.iter().map(Block::to_markdown).collect::<Vec<_>>().join("\n");
    assert!(!all.contains("Acme Corp Quarterly Report"), "{all}");
    assert_eq!(doc.blocks.len(), 8, "{all}");
}

#[test]
fn metadata_titles_that_read_as_titles() {
    assert!(reads_as_title("Annual Performance Report FY 2022"));
    assert!(!reads_as_title("0000320193-23-000077"));
    assert!(!reads_as_title("Microsoft Word - draft3.docx"));
    assert!(!reads_as_title("untitled"));
    assert!(!reads_as_title("NCT06145295_Prot_SAP_000"));
    assert!(!reads_as_title("DOSAID2022"));
    assert!(!reads_as_title("HHS2022B"));
}

/// A table's rows keep their cells, with the first row as header.
#[test]
fn table_rows_with_header() {
    let mut content = String::new();
    for (row, (a, b)) in [
        ("Quarter ended", "Net sales"),
        ("July 1, 2023", "81,797"),
        ("April 1, 2023", "94,836"),
    ]
    .iter()
    .enumerate()
    {
        let y = 700 - row as i64 * 14;
        content.push_str(&format!(
            "BT /F1 10 Tf 72 {y} Td ({a}) Tj ET BT /F1 10 Tf 300 {y} Td ({b}) Tj ET "
        ));
    }
    let doc = parse_pdf(&pdf(&[&content], None, helvetica)).expect("parses");
    assert_eq!(
        doc.blocks,
        [Block::Table {
            rows: vec![
                vec!["Quarter ended".into(), "Net sales".into()],
                vec!["July 1, 2023".into(), "81,797".into()],
                vec!["April 1, 2023".into(), "94,836".into()],
            ],
            header: true,
            page: Some(1)
        }]
    );
}

/// A page whose content inflates past the limit fails as too large instead
/// of taking the memory.
#[test]
fn content_bombs_are_refused() {
    use std::io::Write;
    let mut z = flate2_free_deflate(&vec![b' '; content::MAX_PAGE_CONTENT + 1024]);
    z.flush().ok();
    let fonts = helvetica;
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_dict = fonts(&mut doc);
    let resources = doc.add_object(dictionary! { "Font" => font_dict });
    let content_id =
        doc.add_object(Stream::new(dictionary! { "Filter" => "FlateDecode" }, z.into_inner()).with_compression(false));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id, "Resources" => resources,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("written");
    assert_eq!(parse_pdf(&out).unwrap_err().code, "TOO_LARGE");
}

/// Deflates with lopdf's own encoder.
fn flate2_free_deflate(data: &[u8]) -> std::io::Cursor<Vec<u8>> {
    let mut s = Stream::new(dictionary! {}, data.to_vec());
    s.compress().expect("compressed");
    std::io::Cursor::new(s.content)
}
