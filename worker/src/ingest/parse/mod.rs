//! Turning bytes into a [`Document`]. The type is decided from the content
//! (magic bytes), not only from the name or the declared type. Parsing runs
//! in a sandboxed child process ([`sandbox`]) with memory, CPU and time
//! limits; a parser that crashes, overflows its stack, runs out of memory or
//! hangs fails that document with a reason and never takes the worker down.

mod docx;
mod html;
mod in_process;
mod kind;
mod pdf;
pub mod sandbox;

use std::sync::Arc;
use std::time::Duration;

use parley_domain::document::Document;

pub use in_process::parse_sync;
pub use kind::{Ended, Kind, ParseFailure, detect};
pub use sandbox::Sandbox;

pub use html::{parse_html, too_deep};

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
        )
        .ended(Ended::TimedOut)),
        Ok(Err(join)) => {
            Err(ParseFailure::new("CORRUPT_DOCUMENT", format!("the parser failed: {join}")).ended(Ended::Panicked))
        }
        Ok(Ok(Err(_panic))) => {
            Err(ParseFailure::new("CORRUPT_DOCUMENT", "the parser failed on this file").ended(Ended::Panicked))
        }
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
