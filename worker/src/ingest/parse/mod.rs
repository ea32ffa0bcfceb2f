//! Turning bytes into a [`Document`]. The type is decided from the content
//! (magic bytes), not only from the name or the declared type. Parsing runs
//! in a sandboxed child process ([`sandbox`]) with memory, CPU and time
//! limits; a parser that crashes, overflows its stack, runs out of memory or
//! hangs fails that document with a reason and never takes the worker down.

mod docx;
mod html;
mod pdf;
pub mod sandbox;

use std::sync::Arc;
use std::time::Duration;

use parley_domain::document::{Document, parse_markdown};

pub use sandbox::Sandbox;

pub use html::parse_html;

/// A file type Parley can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Html,
    Pdf,
    Docx,
    Markdown,
    Text,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Html => "text/html",
            Kind::Pdf => "application/pdf",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Markdown => "text/markdown",
            Kind::Text => "text/plain",
        }
    }

    pub fn from_content_type(ct: &str) -> Option<Kind> {
        let ct = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match ct.as_str() {
            "text/html" | "application/xhtml+xml" => Some(Kind::Html),
            "application/pdf" => Some(Kind::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Some(Kind::Docx),
            "text/markdown" | "text/x-markdown" => Some(Kind::Markdown),
            "text/plain" => Some(Kind::Text),
            _ => None,
        }
    }
}

/// Why a document could not be read. `code` is stable and shown in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub code: &'static str,
    pub message: String,
}

impl ParseFailure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ParseFailure {
            code,
            message: message.into(),
        }
    }
}

/// The type of `bytes`, from their content. `name` (a file name or URL path)
/// only separates Markdown from plain text.
pub fn detect(bytes: &[u8], name: &str) -> Result<Kind, ParseFailure> {
    if bytes.is_empty() {
        return Err(ParseFailure::new("NO_TEXT", "the file is empty"));
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // A ZIP package; DOCX holds word/document.xml (its name appears in the local headers).
        let window = &bytes[..bytes.len().min(1 << 20)];
        if window.windows(17).any(|w| w == b"word/document.xml") || window.windows(5).any(|w| w == b"word/") {
            return Ok(Kind::Docx);
        }
        return Err(ParseFailure::new(
            "UNSUPPORTED_TYPE",
            "a ZIP archive that is not a Word document",
        ));
    }
    let head = &bytes[..bytes.len().min(8192)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the window's end is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => {
            return Err(ParseFailure::new(
                "UNSUPPORTED_TYPE",
                "binary content that is not PDF, DOCX or text",
            ));
        }
    };
    if text.contains('\0') {
        return Err(ParseFailure::new(
            "UNSUPPORTED_TYPE",
            "binary content that is not PDF, DOCX or text",
        ));
    }
    let start = text
        .trim_start()
        .get(..64)
        .unwrap_or(text.trim_start())
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || (start.starts_with("<?xml") && text.contains("<html"))
    {
        return Ok(Kind::Html);
    }
    let lower = name.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    if path.ends_with(".md") || path.ends_with(".markdown") {
        return Ok(Kind::Markdown);
    }
    if path.ends_with(".html") || path.ends_with(".htm") || text.contains("<body") {
        return Ok(Kind::Html);
    }
    Ok(Kind::Text)
}

/// Limits of one parse.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    /// Wall-clock time.
    pub timeout: Duration,
    /// The child process to parse in; `None` parses on a thread of this
    /// process (tests and benchmarks of the parsers themselves).
    pub sandbox: Option<Arc<Sandbox>>,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            timeout: Duration::from_secs(60),
            sandbox: None,
        }
    }
}

/// Parses on the calling thread (benchmarks and the sandboxed parser use it).
pub fn parse_sync(kind: Kind, bytes: &[u8], base_url: Option<&str>) -> Result<Document, ParseFailure> {
    let doc = match kind {
        Kind::Pdf => pdf::parse_pdf(bytes)?,
        Kind::Docx => docx::parse_docx(bytes)?,
        Kind::Html => parse_html(&String::from_utf8_lossy(bytes), base_url),
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

/// Parses in the sandbox when `limits` names one, else on a blocking thread
/// with a time limit; panics become failures.
pub async fn parse(
    kind: Kind,
    bytes: Vec<u8>,
    base_url: Option<String>,
    limits: &ParseLimits,
) -> Result<Document, ParseFailure> {
    if let Some(sandbox) = &limits.sandbox {
        return sandbox::parse_in_child(sandbox, kind, bytes, base_url.as_deref(), limits.timeout).await;
    }
    let task = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parse_sync(kind, &bytes, base_url.as_deref())
        }))
    });
    match tokio::time::timeout(limits.timeout, task).await {
        Err(_) => Err(ParseFailure::new(
            "PARSE_TIMEOUT",
            format!("parsing took longer than {} seconds", limits.timeout.as_secs()),
        )),
        Ok(Err(join)) => Err(ParseFailure::new(
            "CORRUPT_DOCUMENT",
            format!("the parser failed: {join}"),
        )),
        Ok(Ok(Err(_panic))) => Err(ParseFailure::new("CORRUPT_DOCUMENT", "the parser failed on this file")),
        Ok(Ok(Ok(result))) => result,
    }
}

/// Helpers of the parsers' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use parley_domain::document::{Block, Document};

    /// The document's paragraphs' texts, in order.
    pub fn paragraphs(doc: &Document) -> Vec<String> {
        doc.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Paragraph { text, .. } => Some(text.clone()),
                Block::Heading { .. } | Block::ListItem { .. } | Block::Table { .. } | Block::Code { .. } => None,
            })
            .collect()
    }

    /// Runs `f` on a thread with a 256 KiB stack: a parser whose recursion
    /// followed a document's nesting would overflow it.
    pub fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(f)
            .expect("a thread starts")
            .join()
            .expect("no stack overflow")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_reads_content_not_names() {
        assert_eq!(detect(b"%PDF-1.7\n...", "report.docx"), Ok(Kind::Pdf));
        assert_eq!(detect(b"<!DOCTYPE html><html>", "page"), Ok(Kind::Html));
        assert_eq!(detect(b"# Title\n\ntext", "notes.md"), Ok(Kind::Markdown));
        assert_eq!(detect(b"plain words", "notes.txt"), Ok(Kind::Text));
        assert_eq!(detect(b"", "x.txt").unwrap_err().code, "NO_TEXT");
        assert_eq!(
            detect(&[0x7f, b'E', b'L', b'F', 0, 1, 2, 0xff], "manual.pdf")
                .unwrap_err()
                .code,
            "UNSUPPORTED_TYPE"
        );
        assert_eq!(
            detect(b"PK\x03\x04not a docx", "a.docx").unwrap_err().code,
            "UNSUPPORTED_TYPE"
        );
    }

    #[tokio::test]
    async fn empty_and_corrupt_documents_fail_with_their_codes() {
        let limits = ParseLimits::default();
        let err = parse(Kind::Text, b"   \n\n ".to_vec(), None, &limits)
            .await
            .unwrap_err();
        assert_eq!(err.code, "NO_TEXT");
        let err = parse(Kind::Pdf, b"%PDF-1.4\nthis is not a pdf".to_vec(), None, &limits)
            .await
            .unwrap_err();
        assert_eq!(err.code, "CORRUPT_DOCUMENT", "{}", err.message);
        let err = parse(
            Kind::Docx,
            b"PK\x03\x04word/document.xml garbage".to_vec(),
            None,
            &limits,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "CORRUPT_DOCUMENT", "{}", err.message);
    }
}
