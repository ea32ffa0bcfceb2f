//! Reading a document in this process: what the sandboxed child runs, and
//! what tests and benchmarks call directly.

use parley_domain::document::{Document, parse_markdown};

use super::kind::{Kind, ParseFailure};
use super::{docx, html, pdf};

/// Parses on the calling thread (benchmarks and the sandboxed parser use it).
pub fn parse_sync(kind: Kind, bytes: &[u8], base_url: Option<&str>) -> Result<Document, ParseFailure> {
    let doc = match kind {
        Kind::Pdf => pdf::parse_pdf(bytes)?,
        Kind::Docx => docx::parse_docx(bytes)?,
        Kind::Html => html::parse_html(&String::from_utf8_lossy(bytes), base_url),
        Kind::Markdown | Kind::Text => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ParseFailure::new("CORRUPT_DOCUMENT", "the text is not valid UTF-8"))?;
            parse_markdown(text)
        }
    };
    if !doc.has_text() {
        let why = if kind == Kind::Pdf {
            "the PDF has no text layer (a scanned document?)"
        } else {
            "the document contains no text"
        };
        return Err(ParseFailure::new("NO_TEXT", why));
    }
    Ok(doc)
}
