//! Files the API sends and takes: visitors' attachments (what they may be,
//! their names, how they are served) and CSV downloads.

use parley_domain::store::content::get_blob;
use parley_domain::store::entities::attachments;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Enum};

use crate::error::ApiError;
use crate::state::AppState;

/// How a downloaded file is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Disposition {
    /// Shown by the browser (images, PDF, text).
    Inline,
    /// Saved as a file.
    Attachment,
}

/// A stored file, served with its own type.
pub struct FileResponse {
    bytes: Vec<u8>,
    content_type: String,
    disposition: String,
    csp: &'static str,
}

impl ApiResponse for FileResponse {
    fn meta() -> MetaResponses {
        let binary = || MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")));
        let header = |name: &str, description: &str| MetaHeader {
            name: name.into(),
            description: Some(description.into()),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        };
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The file, with its own content type.",
                status: Some(200),
                status_range: None,
                content: [
                    "image/png",
                    "image/jpeg",
                    "image/gif",
                    "image/webp",
                    "application/pdf",
                    "text/plain",
                ]
                .into_iter()
                .map(|content_type| MetaMediaType {
                    content_type,
                    schema: binary(),
                })
                .collect(),
                headers: vec![
                    header("Content-Disposition", "`inline` or `attachment`, with the file's name"),
                    header("X-Content-Type-Options", "`nosniff`"),
                    header("Content-Security-Policy", "Keeps scripts out of the shown file"),
                ],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

impl IntoResponse for FileResponse {
    fn into_response(self) -> Response {
        let content_type = if self.content_type == "text/plain" {
            "text/plain; charset=utf-8".to_owned()
        } else {
            self.content_type
        };
        Response::builder()
            .content_type(content_type)
            .header("Content-Disposition", self.disposition)
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Security-Policy", self.csp)
            .header("Cache-Control", "private, max-age=3600")
            .body(self.bytes)
    }
}

/// What an attachment's bytes are, from their content: an image, a PDF or
/// UTF-8 text. Anything else is refused.
pub(crate) fn attachment_type(bytes: &[u8]) -> Option<&'static str> {
    if let Some(kind) = infer::get(bytes) {
        return match kind.mime_type() {
            "image/png" => Some("image/png"),
            "image/jpeg" => Some("image/jpeg"),
            "image/gif" => Some("image/gif"),
            "image/webp" => Some("image/webp"),
            "application/pdf" => Some("application/pdf"),
            _ => None,
        };
    }
    (std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0)).then_some("text/plain")
}

/// A file name without folders or control characters, at most 255 bytes.
pub(crate) fn clean_file_name(name: Option<&str>) -> String {
    let name = name.map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n)).unwrap_or("");
    let mut clean: String = name.chars().filter(|c| !c.is_control() && *c != '"').collect();
    while clean.len() > 255 {
        clean.pop();
    }
    let clean = clean.trim().to_owned();
    if clean.is_empty() || clean == "." || clean == ".." {
        "attachment".to_owned()
    } else {
        clean
    }
}

/// Serves a stored attachment.
pub(crate) async fn file_response(
    state: &AppState,
    attachment: attachments::Model,
    disposition: Disposition,
) -> Result<FileResponse, ApiError> {
    let bytes = get_blob(&state.store, &attachment.sha256)
        .await?
        .ok_or_else(|| ApiError::internal(format!("the bytes of attachment {} are missing", attachment.id)))?;
    let encoded: String = url::form_urlencoded::byte_serialize(attachment.file_name.as_bytes()).collect();
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let ascii: String = attachment
        .file_name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .collect();
    // PDFs need the browser's viewer; everything else runs nothing at all.
    let csp = if attachment.content_type == "application/pdf" {
        "default-src 'none'; object-src 'self'; img-src 'self' data:"
    } else {
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
    };
    Ok(FileResponse {
        bytes,
        content_type: attachment.content_type,
        disposition: format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
        csp,
    })
}

/// A file to download.
pub struct Export {
    pub body: poem::Body,
    pub content_type: &'static str,
    pub file_name: String,
}

impl IntoResponse for Export {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.content_type)
            .header(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.file_name),
            )
            .body(self.body)
    }
}

/// The `Content-Disposition` header of a download, as the spec describes it.
pub(crate) fn download_header() -> MetaHeader {
    MetaHeader {
        name: "Content-Disposition".into(),
        description: Some("`attachment; filename=\"...\"`".into()),
        required: true,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

/// A CSV file to download (built whole, or written as it is read).
pub struct CsvFile {
    pub body: poem::Body,
    pub file_name: String,
}

impl ApiResponse for CsvFile {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The CSV file, as an attachment (a header row, then one row per record).",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/csv; charset=utf-8",
                    schema: String::schema_ref(),
                }],
                headers: vec![download_header()],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

impl IntoResponse for CsvFile {
    fn into_response(self) -> Response {
        Export {
            body: self.body,
            content_type: "text/csv; charset=utf-8",
            file_name: self.file_name,
        }
        .into_response()
    }
}

/// A cell as spreadsheets read it safely: text a spreadsheet would take for
/// a formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a `'`
/// in front, so a visitor's words never run as one.
pub fn csv_cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_types_come_from_the_content() {
        assert_eq!(attachment_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(
            attachment_type(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
            Some("application/pdf")
        );
        assert_eq!(attachment_type("plain text, é".as_bytes()), Some("text/plain"));
        assert_eq!(attachment_type(b"MZ\x90\0\x03\0\0\0"), None, "an executable is refused");
        assert_eq!(attachment_type(b"PK\x03\x04\x14\0\0\0"), None, "an archive is refused");
        assert_eq!(attachment_type(b"\0\x01\x02\xff"), None);
    }

    #[test]
    fn file_names_lose_folders_and_control_characters() {
        assert_eq!(clean_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_file_name(Some("C:\\Users\\ana\\scan.pdf")), "scan.pdf");
        assert_eq!(clean_file_name(Some("a\"b\n.png")), "ab.png");
        assert_eq!(clean_file_name(None), "attachment");
        assert_eq!(clean_file_name(Some("..")), "attachment");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(csv_cell("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(csv_cell("+1 555"), "'+1 555");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("Ana"), "Ana");
        assert_eq!(csv_cell(""), "");
    }
}
