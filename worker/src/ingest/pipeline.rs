//! The steps of a source's run, each an idempotent job: a step that no longer
//! applies (another run started, the step already happened, the source was
//! deleted) records nothing.

use std::time::Duration;

use parley_domain::aggregates::source::{
    Failed, Fetched, Indexed, PageRecord, Parsed, QA_DOC_KEY, Source, SourceCommand, SourceSpec, SourceState,
    SourceStatus,
};
use parley_domain::chunking::{ChunkConfig, TokenCounter, chunk, context, embedding_text};
use parley_domain::document::Document;
use parley_domain::event::Metadata;
use parley_domain::store::content::{self, DocRef, FetchedDoc, NewChunk, Retitled};
use parley_domain::store::{Execute, Store, StoreError};
use spider::reqwest;
use uuid::Uuid;

pub use super::context::{Ingest, IngestSettings};
use super::parse::{self, Kind, ParseLimits};
use crate::error::JobError;
use crate::net::{self};

fn metadata(correlation: &str) -> Metadata {
    Metadata::system(correlation)
}

pub(crate) async fn command(
    store: &Store,
    org_id: Uuid,
    source_id: Uuid,
    command: SourceCommand,
    correlation: &str,
) -> Result<(), JobError> {
    store
        .execute::<Source>(Execute {
            org_id,
            stream_id: source_id,
            expected_version: None,
            command,
            metadata: metadata(correlation),
            idempotency: None,
        })
        .await?;
    Ok(())
}

/// The source's state if `run_id` is its current run and it is at one of `statuses`.
async fn current(
    store: &Store,
    source_id: Uuid,
    run_id: Uuid,
    statuses: &[SourceStatus],
) -> Result<Option<SourceState>, JobError> {
    let (state, _) = store.load::<Source>(source_id).await?;
    let applies = !state.deleted && state.run_id == Some(run_id) && statuses.contains(&state.status);
    Ok(applies.then_some(state))
}

fn db(e: sea_orm::DbErr) -> JobError {
    JobError::from(StoreError::Db(e))
}

/// The outcome of downloading one URL.
struct Download {
    final_url: String,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

enum DownloadError {
    /// Retrying later may help (timeouts, 5xx, connection errors).
    Transient(String),
    /// It will not (404, refused address, too large).
    Permanent(&'static str, String),
}

async fn download(ingest: &Ingest, url: &str) -> Result<Download, DownloadError> {
    net::check_url(url, &ingest.settings.net)
        .await
        .map_err(|e| DownloadError::Permanent("URL_NOT_ALLOWED", e.0))?;
    let mut response = ingest.client.get(url).send().await.map_err(|e| {
        let text = format!("{e}");
        if text.contains("refusing") || text.contains("redirect refused") || text.contains("private") {
            DownloadError::Permanent("URL_NOT_ALLOWED", text)
        } else {
            DownloadError::Transient(text)
        }
    })?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(DownloadError::Transient(format!("the server answered {status}")));
    }
    if !status.is_success() {
        return Err(DownloadError::Permanent(
            "FETCH_FAILED",
            format!("the server answered {status}"),
        ));
    }
    let final_url = response.url().to_string();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = ingest.settings.max_download_bytes;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| DownloadError::Transient(e.to_string()))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(DownloadError::Permanent(
                "TOO_LARGE",
                format!("larger than {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Download {
        final_url,
        content_type,
        bytes,
    })
}

/// Downloads with up to 3 attempts and backoff for transient failures.
async fn download_with_retries(ingest: &Ingest, url: &str) -> Result<Download, (&'static str, String)> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=3 {
        match download(ingest, url).await {
            Ok(d) => return Ok(d),
            Err(DownloadError::Permanent(code, message)) => return Err((code, message)),
            Err(DownloadError::Transient(message)) if attempt == 3 => return Err(("FETCH_FAILED", message)),
            Err(DownloadError::Transient(_)) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
    Err(("FETCH_FAILED", "unreachable".into()))
}

fn qa_markdown(pairs: &[parley_domain::aggregates::source::QaPair]) -> String {
    pairs
        .iter()
        .map(|p| format!("## {}\n\n{}", p.question.trim(), p.answer.trim()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Step 1: get the content (download, read the upload, or take the text).
pub async fn fetch_source(
    store: &Store,
    ingest: &Ingest,
    org_id: Uuid,
    source_id: Uuid,
    run_id: Uuid,
    correlation: &str,
) -> Result<(), JobError> {
    let Some(state) = current(
        store,
        source_id,
        run_id,
        &[SourceStatus::Queued, SourceStatus::Fetching],
    )
    .await?
    else {
        return Ok(());
    };
    let Some(added) = state.added else { return Ok(()) };
    command(
        store,
        org_id,
        source_id,
        SourceCommand::StartFetching { run_id },
        correlation,
    )
    .await?;
    let mut fetched = 0u32;
    let mut failures: Vec<PageRecord> = Vec::new();
    let skipped = 0u32;
    match &added.spec {
        SourceSpec::Text { title, body } => {
            let hash = content::put_blob(store, org_id, body.as_bytes()).await.map_err(db)?;
            let doc = FetchedDoc {
                doc_key: "text".into(),
                url: None,
                title: Some(title.clone()),
                content_type: Kind::Markdown.content_type().into(),
                raw_hash: hash,
            };
            content::record_fetched(store, source_id, run_id, doc)
                .await
                .map_err(db)?;
            fetched += 1;
        }
        SourceSpec::Qa { pairs } => {
            let hash = content::put_blob(store, org_id, qa_markdown(pairs).as_bytes())
                .await
                .map_err(db)?;
            let doc = FetchedDoc {
                doc_key: QA_DOC_KEY.into(),
                url: None,
                title: Some(format!("Q&A ({} pairs)", pairs.len())),
                content_type: Kind::Markdown.content_type().into(),
                raw_hash: hash,
            };
            content::record_fetched(store, source_id, run_id, doc)
                .await
                .map_err(db)?;
            fetched += 1;
        }
        SourceSpec::Document {
            file_name,
            content_type,
            blob_hash,
            ..
        } => {
            let doc = FetchedDoc {
                doc_key: file_name.clone(),
                url: None,
                title: Some(file_name.clone()),
                content_type: content_type.clone(),
                raw_hash: blob_hash.clone(),
            };
            content::record_fetched(store, source_id, run_id, doc)
                .await
                .map_err(db)?;
            fetched += 1;
        }
        SourceSpec::Url { url } => match download_with_retries(ingest, url).await {
            Ok(d) => {
                let hash = content::put_blob(store, org_id, &d.bytes).await.map_err(db)?;
                let kind = d
                    .content_type
                    .as_deref()
                    .and_then(Kind::from_content_type)
                    .filter(|k| matches!(k, Kind::Pdf | Kind::Docx | Kind::Html))
                    .or_else(|| parse::detect(&d.bytes, &d.final_url).ok());
                let doc = FetchedDoc {
                    doc_key: url.clone(),
                    url: Some(d.final_url),
                    title: None,
                    content_type: kind.map_or("application/octet-stream", Kind::content_type).into(),
                    raw_hash: hash,
                };
                content::record_fetched(store, source_id, run_id, doc)
                    .await
                    .map_err(db)?;
                fetched += 1;
            }
            Err((code, message)) => failures.push(PageRecord::failed(url, Some(url), code, &message)),
        },
        SourceSpec::Sitemap { .. } => {
            let crawled = super::crawl::crawl_source(store, ingest, org_id, source_id, run_id, &added.spec).await?;
            fetched += crawled.fetched;
            failures.extend(crawled.failures);
        }
    }
    if fetched == 0 {
        let (code, message) = failures
            .first()
            .map(|p| {
                (
                    p.error_code.clone().unwrap_or_default(),
                    p.error_message.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| ("FETCH_FAILED".into(), "nothing could be fetched".into()));
        let failed = Failed {
            run_id,
            code,
            message,
            pages: failures,
        };
        return command(store, org_id, source_id, SourceCommand::Fail(failed), correlation).await;
    }
    let failed = failures.len() as u32;
    let record = Fetched {
        run_id,
        fetched,
        failed,
        skipped,
    };
    command(
        store,
        org_id,
        source_id,
        SourceCommand::RecordFetched(record),
        correlation,
    )
    .await
}

/// Step 2: turn each changed document into text.
pub async fn parse_source(
    store: &Store,
    ingest: &Ingest,
    org_id: Uuid,
    source_id: Uuid,
    run_id: Uuid,
    correlation: &str,
) -> Result<(), JobError> {
    if current(store, source_id, run_id, &[SourceStatus::Parsing])
        .await?
        .is_none()
    {
        return Ok(());
    }
    let docs = content::documents_of_run(store, source_id, run_id).await.map_err(db)?;
    let limits = ParseLimits {
        timeout: ingest.settings.parse_timeout,
        sandbox: ingest.settings.parse_sandbox.clone(),
    };
    let (mut documents, mut changed, mut failed) = (0u32, 0u32, 0u32);
    let mut first_error: Option<(String, String)> = None;
    for doc in &docs {
        if doc.error_code.is_some() && doc.raw_hash.is_none() {
            failed += 1;
            continue;
        }
        if doc.text_hash.is_some() {
            // Unchanged raw content: its text is kept from the last run.
            documents += 1;
            changed += u32::from(doc.text_hash != doc.indexed_hash);
            continue;
        }
        let Some(raw_hash) = &doc.raw_hash else { continue };
        let Some(bytes) = content::get_blob(store, raw_hash).await.map_err(db)? else {
            content::record_parsed(
                store,
                source_id,
                &doc.doc_key,
                Err(("CORRUPT_DOCUMENT".into(), "the stored file is missing".into())),
            )
            .await
            .map_err(db)?;
            failed += 1;
            continue;
        };
        let kind = Kind::from_content_type(&doc.content_type).map_or_else(|| parse::detect(&bytes, &doc.doc_key), Ok);
        let parsed = match kind {
            Ok(kind) => parse::parse(kind, bytes, doc.url.clone(), &limits).await,
            Err(e) => Err(e),
        };
        match parsed {
            Ok(document) => {
                let markdown = document.to_markdown();
                let blocks = serde_json::to_value(&document).unwrap_or_default();
                content::record_parsed(
                    store,
                    source_id,
                    &doc.doc_key,
                    Ok((markdown, blocks, document.title.clone())),
                )
                .await
                .map_err(db)?;
                documents += 1;
                changed += 1;
            }
            Err(e) => {
                content::record_parsed(
                    store,
                    source_id,
                    &doc.doc_key,
                    Err((e.code.to_owned(), e.message.clone())),
                )
                .await
                .map_err(db)?;
                first_error.get_or_insert((e.code.to_owned(), e.message));
                failed += 1;
            }
        }
    }
    if documents == 0 {
        let (code, message) = first_error.unwrap_or_else(|| ("NO_TEXT".into(), "no document contained text".into()));
        let docs = content::documents_of_run(store, source_id, run_id).await.map_err(db)?;
        let pages = docs
            .iter()
            .map(|d| {
                PageRecord::failed(
                    &d.doc_key,
                    d.url.as_deref(),
                    d.error_code.as_deref().unwrap_or("NO_TEXT"),
                    d.error_message.as_deref().unwrap_or("no text"),
                )
            })
            .collect();
        let failed = Failed {
            run_id,
            code,
            message,
            pages,
        };
        return command(store, org_id, source_id, SourceCommand::Fail(failed), correlation).await;
    }
    let record = Parsed {
        run_id,
        documents,
        changed,
        failed,
    };
    command(
        store,
        org_id,
        source_id,
        SourceCommand::RecordParsed(record),
        correlation,
    )
    .await
}

/// Step 3: chunk and embed changed documents; drop documents that disappeared.
pub async fn embed_source(
    store: &Store,
    ingest: &Ingest,
    org_id: Uuid,
    source_id: Uuid,
    run_id: Uuid,
    correlation: &str,
) -> Result<(), JobError> {
    let Some(state) = current(store, source_id, run_id, &[SourceStatus::Embedding]).await? else {
        return Ok(());
    };
    let Some(added) = state.added.clone() else {
        return Ok(());
    };
    let model = match ingest.embedder.model().await {
        Ok(m) => m,
        Err(message) => {
            let failed = Failed {
                run_id,
                code: "EMBEDDINGS_UNAVAILABLE".into(),
                message,
                pages: vec![],
            };
            return command(store, org_id, source_id, SourceCommand::Fail(failed), correlation).await;
        }
    };
    let removed = content::stale_documents(store, source_id, run_id).await.map_err(db)?;
    content::remove_documents(store, source_id, &removed)
        .await
        .map_err(db)?;
    let docs = content::documents_of_run(store, source_id, run_id).await.map_err(db)?;
    let parsed: Vec<Document> = docs
        .iter()
        .filter_map(|d| d.pages.as_ref())
        .map(|blocks| serde_json::from_value(blocks.clone()).unwrap_or_default())
        .collect();
    // Text repeated across a site's pages is not knowledge (pages unchanged
    // since they were embedded keep their chunks as they are).
    let repeated = parley_domain::document::repeated_text(&parsed);
    let mut pages = Vec::with_capacity(docs.len());
    let (mut total_chunks, mut total_tokens, mut embedded) = (0u64, 0u64, 0u32);
    for doc in &docs {
        let (Some(text_hash), Some(blocks)) = (&doc.text_hash, &doc.pages) else {
            pages.push(PageRecord::failed(
                &doc.doc_key,
                doc.url.as_deref(),
                doc.error_code.as_deref().unwrap_or("NO_TEXT"),
                doc.error_message.as_deref().unwrap_or("no text"),
            ));
            continue;
        };
        let document: Document = serde_json::from_value(blocks.clone()).unwrap_or_default();
        let unchanged = doc.indexed_hash.as_deref() == Some(text_hash.as_str());
        if !unchanged {
            let mut cleaned = document.clone().without_repeated(&repeated);
            // Chunks carry the document's title as the owner sees it (the
            // owner's title, else the parsed one, else the file name or page title).
            cleaned.title = state.title_of(&doc.doc_key, doc.title.clone().or(cleaned.title));
            let chunks = chunk(&cleaned, &model.counter, ChunkConfig::default());
            let texts: Vec<String> = chunks.iter().map(|c| c.embedding_text()).collect();
            let vectors = ingest.embedder.embed(texts).await.map_err(JobError::Transient)?;
            let new: Vec<NewChunk> = chunks
                .into_iter()
                .zip(vectors)
                .map(|(c, v)| NewChunk {
                    ordinal: c.ordinal as i32,
                    heading_path: c.heading_path,
                    text: c.text,
                    tokens: c.tokens as i32,
                    page: c.page.map(|p| p as i32),
                    embedding: v,
                })
                .collect();
            let doc_ref = DocRef {
                org_id,
                bot_id: added.bot_id,
                source_id,
                doc_key: &doc.doc_key,
                url: doc.url.as_deref(),
                title: cleaned.title.as_deref(),
            };
            content::replace_chunks(store, doc_ref, text_hash, new)
                .await
                .map_err(db)?;
            embedded += 1;
        }
        let (chunks, tokens) = content::chunk_counts(store, source_id, &doc.doc_key)
            .await
            .map_err(db)?;
        total_chunks += u64::from(chunks);
        total_tokens += u64::from(tokens);
        pages.push(PageRecord {
            doc_key: doc.doc_key.clone(),
            url: doc.url.clone(),
            title: state.title_of(&doc.doc_key, doc.title.clone()),
            status: if unchanged { "unchanged".into() } else { "ready".into() },
            content_hash: Some(text_hash.clone()),
            chunks,
            tokens,
            page_count: document.page_count,
            error_code: None,
            error_message: None,
        });
    }
    let record = Indexed {
        run_id,
        pages,
        removed,
        chunks: total_chunks,
        tokens: total_tokens,
        embedded,
    };
    command(
        store,
        org_id,
        source_id,
        SourceCommand::RecordIndexed(record),
        correlation,
    )
    .await
}

/// Embeds a renamed document's chunks again with its new title (the title
/// is part of what is embedded). Chunks that already carry the title are
/// left alone, so a redelivered job changes nothing.
pub async fn retitle_document(store: &Store, ingest: &Ingest, source_id: Uuid, doc_key: &str) -> Result<(), JobError> {
    let (state, _) = store.load::<Source>(source_id).await?;
    let Some(title) = state.titles.get(doc_key).filter(|_| !state.deleted) else {
        return Ok(());
    };
    let stale: Vec<_> = content::document_chunks(store, source_id, doc_key)
        .await
        .map_err(db)?
        .into_iter()
        .filter(|c| c.title.as_deref() != Some(title.as_str()))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let model = ingest.embedder.model().await.map_err(JobError::Transient)?;
    let texts: Vec<String> = stale
        .iter()
        .map(|c| embedding_text(&context(Some(title), &c.heading_path), &c.text))
        .collect();
    let tokens: Vec<i32> = texts.iter().map(|t| model.counter.count(t) as i32).collect();
    let vectors = ingest.embedder.embed(texts).await.map_err(JobError::Transient)?;
    let retitled = stale
        .iter()
        .zip(tokens.into_iter().zip(vectors))
        .map(|(c, (tokens, embedding))| Retitled {
            id: c.id,
            tokens,
            embedding,
        })
        .collect();
    content::retitle_chunks(store, source_id, doc_key, title, retitled)
        .await
        .map_err(db)?;
    tracing::info!(%source_id, doc_key, chunks = stale.len(), "document embedded under its new title");
    Ok(())
}

/// Removes a deleted source's content and chunks, then records `source.purged`.
pub async fn purge_source(store: &Store, org_id: Uuid, source_id: Uuid, correlation: &str) -> Result<(), JobError> {
    let (state, _) = store.load::<Source>(source_id).await?;
    if state.purged || !state.deleted {
        return Ok(());
    }
    content::purge_source(store.db(), source_id).await.map_err(db)?;
    command(store, org_id, source_id, SourceCommand::Purge, correlation).await?;
    // Stored files nothing refers to any more (kept an hour: an upload whose
    // source is being added refers to its file only once the source exists).
    let reclaimed = content::collect_garbage_blobs(store, parley_domain::store::now() - chrono::TimeDelta::hours(1))
        .await
        .map_err(db)?;
    tracing::info!(%source_id, blobs = reclaimed, "source purged");
    Ok(())
}
