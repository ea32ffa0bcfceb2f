//! What a file is, decided from its content (magic bytes) before its name,
//! and how reading one fails.

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
    /// How the parse ended: the code the owner sees is the same for a
    /// parser's verdict and for a crash, but tests and logs tell them apart.
    pub ended: Ended,
}

/// How a parse that failed came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The parser read the document and said what is wrong with it.
    Refused,
    /// The parser's code panicked (on a thread, or inside the child process).
    Panicked,
    /// The wall-clock deadline or the CPU-time limit.
    TimedOut,
    /// The child process died otherwise (a signal, out of memory, a stack
    /// overflow) or answered nonsense.
    Killed,
}

impl ParseFailure {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        ParseFailure {
            code,
            message: message.into(),
            ended: Ended::Refused,
        }
    }

    /// The same failure, ended another way.
    pub(crate) fn ended(mut self, ended: Ended) -> Self {
        self.ended = ended;
        self
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
