//! `/api/v1/bots/{bot_id}/sources`: a bot's knowledge sources. Adding one
//! answers `202 Accepted`; workers then fetch, parse, chunk and embed it, and
//! its `status` follows: queued → fetching → parsing → embedding → ready | failed.

use chrono::{DateTime, Utc};
use parley_domain::aggregates::source::{
    DEFAULT_MAX_PAGES, QaPair, Schedule, Source as SourceAggregate, SourceCommand, SourceSpec,
};
use parley_domain::ids::new_id;
use parley_domain::store::entities::{source_pages, sources};
use parley_domain::store::{Execute, StoreError};
use parley_domain::{DomainError, ErrorCode, Metadata, store::content, store::read};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Enum, Multipart, Object, OpenApi, Union};
use serde_json::Value;
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::{live, live_bot};
use crate::error::ApiError;
use crate::http::middleware::RequestId;
use crate::idempotency::{self, Idempotency};
use crate::security::{AdminAuth, AgentAuth};
use crate::state::{AppState, Principal};
use crate::types::Text;

pub struct SourcesApi {
    pub state: Option<AppState>,
}

/// How often a source refreshes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RefreshSchedule {
    /// Only when asked (`POST .../refresh`).
    Never,
    Daily,
    Weekly,
}

impl From<RefreshSchedule> for Schedule {
    fn from(s: RefreshSchedule) -> Self {
        match s {
            RefreshSchedule::Never => Schedule::Never,
            RefreshSchedule::Daily => Schedule::Daily,
            RefreshSchedule::Weekly => Schedule::Weekly,
        }
    }
}

/// One web page.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UrlSourceInput {
    /// An absolute http or https URL of a public page.
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    /// Default `never`.
    pub schedule: Option<RefreshSchedule>,
}

/// A whole site: a sitemap.xml, a sitemap index, or a start page whose links
/// are followed (same host, under the start page's folder).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SitemapSourceInput {
    /// A sitemap.xml, a sitemap index, or a start page.
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    /// Glob patterns on the URL path; when given, only matching pages are read (`/docs/**`).
    pub include: Option<Vec<Text>>,
    /// Glob patterns on the URL path of pages to leave out (`**/print.html`).
    pub exclude: Option<Vec<Text>>,
    /// Most pages to read; default 500.
    pub max_pages: Option<u32>,
    /// Deepest URL path to follow, in folders below the start page's folder.
    pub max_depth: Option<u32>,
    /// Default `never`.
    pub schedule: Option<RefreshSchedule>,
}

/// A text written here.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TextSourceInput {
    /// A title, shown as the source of answers.
    #[oai(validator(max_length = 500))]
    pub title: Text,
    /// The text; Markdown headings, lists and tables are understood.
    pub body: Text,
}

/// A question and its answer.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QaPairInput {
    /// The question, as visitors would ask it.
    #[oai(validator(max_length = 2000))]
    pub question: Text,
    /// The answer.
    #[oai(validator(max_length = 20000))]
    pub answer: Text,
}

/// Question and answer pairs, many at once.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QaSourceInput {
    /// 1 to 1000 pairs.
    pub pairs: Vec<QaPairInput>,
}

/// A source to add; `type` says which. Documents are uploaded with
/// `POST /api/v1/bots/{bot_id}/sources/documents`.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum AddSourceRequest {
    #[oai(mapping = "url")]
    Url(UrlSourceInput),
    #[oai(mapping = "sitemap")]
    Sitemap(SitemapSourceInput),
    #[oai(mapping = "text")]
    Text(TextSourceInput),
    #[oai(mapping = "qa")]
    Qa(QaSourceInput),
}

/// A file to upload: PDF, DOCX, TXT or Markdown.
#[derive(Debug, Multipart)]
pub struct UploadDocument {
    /// The file. Its type is read from its content, not only its name.
    pub file: Upload,
    /// `never` (default), `daily` or `weekly` (re-reads the stored file).
    pub schedule: Option<String>,
}

/// Why a source (or page) failed.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceError {
    /// `FETCH_FAILED`, `URL_NOT_ALLOWED`, `NO_TEXT`, `CORRUPT_DOCUMENT`, `ENCRYPTED_DOCUMENT`,
    /// `UNSUPPORTED_TYPE`, `PARSE_TIMEOUT`, `TOO_LARGE`, `EMBEDDINGS_UNAVAILABLE`.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A knowledge source.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceInfo {
    /// The source's id.
    pub id: Uuid,
    /// The bot it feeds.
    pub bot_id: Uuid,
    /// `url`, `sitemap`, `text`, `qa` or `document`.
    #[oai(rename = "type")]
    pub kind: String,
    /// The URL, file name or title.
    pub title: String,
    /// What was added (texts and Q&A are summarised, not repeated).
    pub spec: Value,
    /// `never`, `daily` or `weekly`.
    pub schedule: String,
    /// `queued`, `fetching`, `parsing`, `embedding`, `ready` or `failed`.
    pub status: String,
    /// Set when `status` is `failed`.
    pub error: Option<SourceError>,
    /// Pages or documents indexed.
    pub pages: i64,
    /// Searchable chunks.
    pub chunks: i64,
    /// Model tokens in those chunks.
    pub tokens: i64,
    /// Increases with every change.
    pub version: i64,
    /// When the source was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was last indexed successfully.
    pub last_indexed_at: Option<DateTime<Utc>>,
    /// When the schedule will refresh it next.
    pub next_refresh_at: Option<DateTime<Utc>>,
}

/// A page or document of a source.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourcePage {
    /// The page URL, the file name, `text` or `qa`.
    pub key: String,
    /// The URL the content came from, when it came from the web.
    pub url: Option<String>,
    /// The page or document title.
    pub title: Option<String>,
    /// `ready`, `unchanged` (not re-embedded) or `failed`.
    pub status: String,
    /// SHA-256 of the extracted text.
    pub content_hash: Option<String>,
    /// Chunks from this page.
    pub chunks: i64,
    /// Model tokens in those chunks.
    pub tokens: i64,
    /// Pages of a PDF.
    pub page_count: Option<i32>,
    /// Set when the page failed.
    pub error: Option<SourceError>,
    /// When it was last indexed or tried.
    pub updated_at: DateTime<Utc>,
}

/// A chunk of a document as the indexes hold it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DocumentChunk {
    /// Position in the document, from 0.
    pub ordinal: i32,
    /// Headings above the chunk, outermost first, joined with " > ".
    pub heading_path: String,
    /// The page it starts on (PDF).
    pub page: Option<i32>,
    /// Model tokens of what is embedded (context and text).
    pub tokens: i32,
    /// What is embedded and searched besides the text: the document's title
    /// and the heading path.
    pub context: String,
    /// The chunk's text.
    pub text: String,
}

/// What Parley extracted from one document of a source, and how it was cut
/// into chunks: read it to see why the bot answers as it does.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceDocument {
    /// The page URL, the file name, `text` or `qa`.
    pub key: String,
    /// The URL the content came from, when it came from the web.
    pub url: Option<String>,
    /// The title chunks are indexed and cited with.
    pub title: Option<String>,
    /// The type the content was read as.
    pub content_type: String,
    /// Pages of a paged document (PDF).
    pub page_count: Option<i32>,
    /// The extracted text as Markdown (headings, lists, tables); absent when reading failed.
    pub text: Option<String>,
    /// Set when the document could not be read.
    pub error: Option<SourceError>,
    /// Its chunks in order (empty until the document is embedded).
    pub chunks: Vec<DocumentChunk>,
}

/// A document's new title.
#[derive(Debug, Clone, Object)]
pub struct RenameDocumentRequest {
    /// 1 to 300 characters; runs of whitespace become one space.
    pub title: String,
}

/// A source with its pages.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceDetail {
    /// The source.
    #[oai(flatten)]
    pub source: SourceInfo,
    /// Its pages or documents, by key.
    pub page_list: Vec<SourcePage>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SourceList {
    /// One page of sources, oldest first.
    pub data: Vec<SourceInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Changes to a source.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct UpdateSourceRequest {
    /// How often it refreshes itself.
    pub schedule: RefreshSchedule,
}

#[derive(ApiResponse)]
pub enum AcceptedResponse {
    /// Accepted: workers index the source; follow `status`.
    #[oai(status = 202)]
    Accepted(
        Json<SourceInfo>,
        #[oai(header = "Location")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum DeleteSourceResponse {
    /// Deleted: its chunks stop being retrievable at once; storage is reclaimed in the background.
    #[oai(status = 204)]
    Deleted,
}

fn source_error(code: Option<String>, message: Option<String>) -> Option<SourceError> {
    code.map(|code| SourceError {
        code,
        message: message.unwrap_or_default(),
    })
}

impl From<sources::Model> for SourceInfo {
    fn from(m: sources::Model) -> Self {
        SourceInfo {
            id: m.id,
            bot_id: m.bot_id,
            kind: m.kind,
            title: m.title,
            spec: m.spec,
            schedule: m.schedule,
            status: m.status,
            error: source_error(m.error_code, m.error_message),
            pages: m.pages,
            chunks: m.chunks,
            tokens: m.tokens,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_indexed_at: m.last_indexed_at,
            next_refresh_at: m.next_refresh_at,
        }
    }
}

impl From<source_pages::Model> for SourcePage {
    fn from(m: source_pages::Model) -> Self {
        SourcePage {
            key: m.doc_key,
            url: m.url,
            title: m.title,
            status: m.status,
            content_hash: m.content_hash,
            chunks: m.chunks,
            tokens: m.tokens,
            page_count: m.page_count,
            error: source_error(m.error_code, m.error_message),
            updated_at: m.updated_at,
        }
    }
}

fn metadata(principal: &Principal, request_id: &RequestId) -> Metadata {
    principal.metadata(&request_id.0)
}

async fn find(state: &AppState, org_id: Uuid, bot_id: Uuid, source_id: Uuid) -> Result<SourceInfo, ApiError> {
    read::source(&state.store, org_id, bot_id, source_id)
        .await?
        .map(SourceInfo::from)
        .ok_or_else(|| DomainError::SourceNotFound.into())
}

/// Appends `source.added` under an optional Idempotency-Key and answers 202.
async fn add(
    state: &AppState,
    principal: &Principal,
    request_id: &RequestId,
    bot_id: Uuid,
    idem: Option<Idempotency>,
    spec: SourceSpec,
    schedule: Schedule,
) -> Result<AcceptedResponse, ApiError> {
    let org_id = principal.org_id;
    if let Some(source_id) = idempotency::prior(&idem, state, org_id).await? {
        return accepted(state, org_id, bot_id, source_id, true).await;
    }
    live_bot(state, org_id, bot_id).await?;
    // A malformed source is reported as such, even to a bot that is full.
    spec.validate(state.settings.max_pages_cap)?;
    let limit = state.settings.max_sources_per_bot;
    if read::source_count(&state.store, org_id, bot_id).await? >= limit {
        return Err(ApiError::new(
            ErrorCode::SourceLimitReached,
            format!("a bot can have at most {limit} sources"),
        ));
    }
    state.room_for(org_id, parley_domain::usage::Quota::Sources).await?;
    let source_id = new_id();
    let command = SourceCommand::Add {
        source_id,
        org_id,
        bot_id,
        run_id: new_id(),
        spec,
        schedule,
        max_pages_cap: state.settings.max_pages_cap,
    };
    let executed = state
        .store
        .execute::<SourceAggregate>(Execute {
            org_id,
            stream_id: source_id,
            expected_version: Some(0),
            command,
            metadata: metadata(principal, request_id),
            idempotency: idempotency::record(&idem, source_id),
        })
        .await;
    match executed {
        Ok(_) => accepted(state, org_id, bot_id, source_id, false).await,
        Err(StoreError::IdempotencyRace) => {
            let winner = idempotency::race_winner(&idem, state, org_id).await?;
            accepted(state, org_id, bot_id, winner, true).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a command on a live source of one of the caller's bots.
async fn source_command(
    state: &AppState,
    principal: &Principal,
    request_id: &RequestId,
    bot_id: Uuid,
    source_id: Uuid,
    command: SourceCommand,
) -> Result<(), ApiError> {
    find(state, principal.org_id, bot_id, source_id).await?;
    state
        .store
        .execute::<SourceAggregate>(Execute {
            org_id: principal.org_id,
            stream_id: source_id,
            expected_version: None,
            command,
            metadata: metadata(principal, request_id),
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// A document lookup's result, or the error that tells the caller why not.
fn found<T>(lookup: Result<content::Lookup<T>, sea_orm::DbErr>) -> Result<T, ApiError> {
    match lookup? {
        content::Lookup::Found(found) => Ok(found),
        content::Lookup::NotFound => Err(ApiError::new(
            ErrorCode::DocumentNotFound,
            "this source has no document with that key (yet)",
        )),
        content::Lookup::KeyNeeded(n) => Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("this source has {n} documents: name one with `key` (see the source's `page_list`)"),
        )),
    }
}

async fn accepted(
    state: &AppState,
    org_id: Uuid,
    bot_id: Uuid,
    source_id: Uuid,
    replayed: bool,
) -> Result<AcceptedResponse, ApiError> {
    let source = find(state, org_id, bot_id, source_id).await?;
    Ok(AcceptedResponse::Accepted(
        Json(source),
        format!("/api/v1/bots/{bot_id}/sources/{source_id}"),
        replayed.then(|| "true".to_owned()),
    ))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Sources")]
impl SourcesApi {
    /// Add a source
    ///
    /// Adds a URL, a whole site (sitemap or crawl), a text, or Q&A pairs to a
    /// bot's knowledge. Answers `202` at once; workers index it in the background.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots/:bot_id/sources", method = "post", operation_id = "add_source")]
    async fn add_source(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        /// Makes a retried request safe: see the API description.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<AddSourceRequest>,
    ) -> Result<AcceptedResponse, ApiError> {
        let state = live(&self.state)?;
        let idem = Idempotency::from_header(idempotency_key.0, "add_source", &body.0)?;
        let (spec, schedule) = match body.0 {
            AddSourceRequest::Url(u) => {
                let url = u.url.into_inner();
                crate::ingestion::fetchable(state, &url).await?;
                (SourceSpec::Url { url }, u.schedule)
            }
            AddSourceRequest::Sitemap(s) => {
                let url = s.url.into_inner();
                crate::ingestion::fetchable(state, &url).await?;
                let spec = SourceSpec::Sitemap {
                    url,
                    include: Text::all(s.include.unwrap_or_default()),
                    exclude: Text::all(s.exclude.unwrap_or_default()),
                    max_pages: s
                        .max_pages
                        .unwrap_or(DEFAULT_MAX_PAGES.min(state.settings.max_pages_cap)),
                    max_depth: s.max_depth,
                };
                (spec, s.schedule)
            }
            AddSourceRequest::Text(t) => (
                SourceSpec::Text {
                    title: t.title.into_inner().trim().to_owned(),
                    body: t.body.into_inner(),
                },
                None,
            ),
            AddSourceRequest::Qa(q) => {
                let pairs = q
                    .pairs
                    .into_iter()
                    .map(|p| QaPair {
                        question: p.question.into_inner(),
                        answer: p.answer.into_inner(),
                    })
                    .collect();
                (SourceSpec::Qa { pairs }, None)
            }
        };
        let schedule = schedule.map(Schedule::from).unwrap_or_default();
        add(state, &auth.0, &request_id, bot_id.0, idem, spec, schedule).await
    }

    /// Upload a document
    ///
    /// Adds a PDF, DOCX, TXT or Markdown file (multipart field `file`). The
    /// type is read from the content; other files are refused with `415`,
    /// files over the upload limit with `413`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/sources/documents",
        method = "post",
        operation_id = "upload_document"
    )]
    async fn upload(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        body: UploadDocument,
    ) -> Result<AcceptedResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        live_bot(state, org_id, bot_id.0).await?;
        let schedule = match body.schedule.as_deref() {
            None | Some("") => Schedule::Never,
            Some(s) => Schedule::parse(s)
                .ok_or_else(|| ApiError::new(ErrorCode::ValidationFailed, "schedule must be never, daily or weekly"))?,
        };
        let limit = state.settings.max_upload_bytes;
        if body.file.size() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than {limit} bytes"),
            ));
        }
        let file_name = body
            .file
            .file_name()
            .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "document".to_owned());
        let bytes = body
            .file
            .into_vec()
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("cannot read the upload: {e}")))?;
        let content_type = crate::ingestion::upload_type(&bytes, &file_name)?;
        let blob_hash = content::put_blob(&state.store, org_id, &bytes).await?;
        let spec = SourceSpec::Document {
            file_name,
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
            blob_hash,
        };
        add(state, &auth.0, &request_id, bot_id.0, None, spec, schedule).await
    }

    /// List sources
    ///
    /// A bot's sources, oldest first, optionally only those of one status or type.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots/:bot_id/sources", method = "get", operation_id = "list_sources")]
    async fn list(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        /// Only sources with this status (`ready`, `failed`, ...).
        status: Query<Option<String>>,
        /// Only sources of this type (`url`, `sitemap`, `text`, `qa`, `document`).
        #[oai(name = "type")]
        kind: Query<Option<String>>,
        /// Page size, 1 to 100.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u64>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<Uuid>>,
    ) -> Result<Json<SourceList>, ApiError> {
        let state = live(&self.state)?;
        live_bot(state, auth.0.org_id, bot_id.0).await?;
        let page = read::sources(
            &state.store,
            auth.0.org_id,
            bot_id.0,
            status.0.as_deref(),
            kind.0.as_deref(),
            cursor.0,
            limit.0,
        )
        .await?;
        Ok(Json(SourceList {
            data: page.items.into_iter().map(SourceInfo::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Get a source
    ///
    /// One source with its status, counts and pages.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id",
        method = "get",
        operation_id = "get_source"
    )]
    async fn get(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<Json<SourceDetail>, ApiError> {
        let state = live(&self.state)?;
        let source = find(state, auth.0.org_id, bot_id.0, source_id.0).await?;
        let pages = read::source_pages(&state.store, source_id.0).await?;
        Ok(Json(SourceDetail {
            source,
            page_list: pages.into_iter().map(SourcePage::from).collect(),
        }))
    }

    /// Read a document of a source
    ///
    /// The text Parley extracted from one document of the source (Markdown)
    /// and its chunks with their title, heading path and page. `key` names the
    /// document (a key of the source's `page_list`); it may be left out when
    /// the source has one document. `404 DOCUMENT_NOT_FOUND` when no document
    /// has that key (yet); `422 VALIDATION_FAILED` without `key` when the
    /// source has several.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id/document",
        method = "get",
        operation_id = "get_source_document"
    )]
    async fn document(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
        /// The document's key, as in `page_list`.
        key: Query<Option<String>>,
    ) -> Result<Json<SourceDocument>, ApiError> {
        let state = live(&self.state)?;
        find(state, auth.0.org_id, bot_id.0, source_id.0).await?;
        let (row, chunks) = found(content::document(&state.store, source_id.0, key.0.as_deref()).await)?;
        let row = *row;
        // The title as the owner sees it (theirs when they gave one).
        let title = read::source_page(&state.store, source_id.0, &row.doc_key)
            .await?
            .and_then(|p| p.title)
            .or(row.title);
        let page_count = row
            .pages
            .as_ref()
            .and_then(|p| p.get("page_count"))
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok());
        Ok(Json(SourceDocument {
            key: row.doc_key,
            url: row.url,
            title,
            content_type: row.content_type,
            page_count,
            text: row.text,
            error: source_error(row.error_code, row.error_message),
            chunks: chunks
                .into_iter()
                .map(|c| DocumentChunk {
                    ordinal: c.ordinal,
                    context: parley_domain::chunking::context(c.title.as_deref(), &c.heading_path),
                    heading_path: c.heading_path,
                    page: c.page,
                    tokens: c.tokens,
                    text: c.text,
                })
                .collect(),
        }))
    }

    /// Rename a document of a source
    ///
    /// Gives one document of the source (named by `key` as in `page_list`; it
    /// may be left out when the source has one document) a title of your
    /// own. Citations and the source's `page_list` show it at once; the
    /// document's chunks are embedded again with it in the background (the
    /// title is part of what is searched), and refreshes keep it.
    /// `404 DOCUMENT_NOT_FOUND` when no indexed document has that key.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id/document",
        method = "patch",
        operation_id = "rename_source_document"
    )]
    async fn rename_document(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
        /// The document's key, as in `page_list`.
        key: Query<Option<String>>,
        body: Json<RenameDocumentRequest>,
    ) -> Result<Json<SourcePage>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        find(state, org_id, bot_id.0, source_id.0).await?;
        let doc_key = found(content::document_key(&state.store, source_id.0, key.0.as_deref()).await)?;
        source_command(
            state,
            &auth.0,
            &request_id,
            bot_id.0,
            source_id.0,
            SourceCommand::RenameDocument {
                org_id,
                doc_key: doc_key.clone(),
                title: body.0.title,
            },
        )
        .await?;
        let page = read::source_page(&state.store, source_id.0, &doc_key)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::DocumentNotFound, "this source has no document with that key"))?;
        Ok(Json(SourcePage::from(page)))
    }

    /// Refresh a source
    ///
    /// Fetches the source again; only pages whose content changed are embedded
    /// again, and pages that disappeared are removed. `409 SOURCE_BUSY` while
    /// the source is being indexed.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id/refresh",
        method = "post",
        operation_id = "refresh_source"
    )]
    async fn refresh(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<AcceptedResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        source_command(
            state,
            &auth.0,
            &request_id,
            bot_id.0,
            source_id.0,
            SourceCommand::Refresh {
                org_id,
                run_id: new_id(),
                reason: "manual".into(),
            },
        )
        .await?;
        accepted(state, org_id, bot_id.0, source_id.0, false).await
    }

    /// Update a source
    ///
    /// Changes the refresh schedule.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id",
        method = "patch",
        operation_id = "update_source"
    )]
    async fn update(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
        body: Json<UpdateSourceRequest>,
    ) -> Result<Json<SourceInfo>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        source_command(
            state,
            &auth.0,
            &request_id,
            bot_id.0,
            source_id.0,
            SourceCommand::SetSchedule {
                org_id,
                schedule: body.0.schedule.into(),
            },
        )
        .await?;
        Ok(Json(find(state, org_id, bot_id.0, source_id.0).await?))
    }

    /// Delete a source
    ///
    /// Its chunks stop being retrievable at once; a job reclaims the storage.
    ///
    /// Role: `admin` or `owner`.
    #[oai(
        path = "/bots/:bot_id/sources/:source_id",
        method = "delete",
        operation_id = "delete_source"
    )]
    async fn delete(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        source_id: Path<Uuid>,
    ) -> Result<DeleteSourceResponse, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        source_command(
            state,
            &auth.0,
            &request_id,
            bot_id.0,
            source_id.0,
            SourceCommand::Delete { org_id },
        )
        .await?;
        Ok(DeleteSourceResponse::Deleted)
    }
}

fn default_limit() -> u64 {
    20
}
