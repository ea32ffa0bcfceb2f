//! A knowledge source of a bot: one URL, a site (sitemap or crawl), a text,
//! Q&A pairs, or an uploaded document. Every indexing pass is a run:
//! queued → fetching → parsing → embedding → ready | failed. Page contents and
//! chunks are not in events; events carry what happened and the counts.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain_events;
use crate::error::{DomainError, FieldError};
use crate::event::{Aggregate, to_payload};

pub const SOURCE_ADDED: &str = "source.added";
pub const SOURCE_REFRESH_REQUESTED: &str = "source.refresh_requested";
pub const SOURCE_FETCHING: &str = "source.fetching";
pub const SOURCE_FETCHED: &str = "source.fetched";
pub const SOURCE_PARSED: &str = "source.parsed";
pub const SOURCE_INDEXED: &str = "source.indexed";
pub const SOURCE_FAILED: &str = "source.failed";
pub const SOURCE_SCHEDULE_CHANGED: &str = "source.schedule_changed";
pub const SOURCE_DOCUMENT_RENAMED: &str = "source.document_renamed";
pub const SOURCE_DELETED: &str = "source.deleted";
pub const SOURCE_PURGED: &str = "source.purged";

/// Every event type of a source, for projections and the feed.
pub const SOURCE_EVENTS: &[&str] = &[
    SOURCE_ADDED,
    SOURCE_REFRESH_REQUESTED,
    SOURCE_FETCHING,
    SOURCE_FETCHED,
    SOURCE_PARSED,
    SOURCE_INDEXED,
    SOURCE_FAILED,
    SOURCE_SCHEDULE_CHANGED,
    SOURCE_DOCUMENT_RENAMED,
    SOURCE_DELETED,
    SOURCE_PURGED,
];

pub const DEFAULT_MAX_PAGES: u32 = 500;
pub const MAX_PATTERNS: usize = 50;
pub const MAX_TEXT_CHARS: usize = 1_000_000;
pub const MAX_QA_PAIRS: usize = 1000;
/// The document key of a source's Q&A pairs: one document, a heading per
/// question with its answer below.
pub const QA_DOC_KEY: &str = "qa";
/// The longest title an owner can give a document, in characters.
pub const MAX_DOCUMENT_TITLE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaPair {
    pub question: String,
    pub answer: String,
}

/// What a source is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// One web page.
    Url {
        url: String,
    },
    /// A whole site: a sitemap.xml, a sitemap index, or a start page to crawl from.
    Sitemap {
        url: String,
        include: Vec<String>,
        exclude: Vec<String>,
        max_pages: u32,
        max_depth: Option<u32>,
    },
    Text {
        title: String,
        body: String,
    },
    Qa {
        pairs: Vec<QaPair>,
    },
    /// An uploaded file, stored as a blob.
    Document {
        file_name: String,
        content_type: String,
        size: u64,
        blob_hash: String,
    },
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Url { .. } => "url",
            SourceSpec::Sitemap { .. } => "sitemap",
            SourceSpec::Text { .. } => "text",
            SourceSpec::Qa { .. } => "qa",
            SourceSpec::Document { .. } => "document",
        }
    }

    /// A short human title for lists.
    pub fn title(&self) -> String {
        let title = match self {
            SourceSpec::Url { url } | SourceSpec::Sitemap { url, .. } => url.clone(),
            SourceSpec::Text { title, .. } => title.clone(),
            SourceSpec::Qa { pairs } => format!("Q&A ({} pairs)", pairs.len()),
            SourceSpec::Document { file_name, .. } => file_name.clone(),
        };
        title.chars().take(500).collect()
    }

    /// The spec as the API shows it: without the stored bodies of texts and Q&A.
    pub fn summary(&self) -> Value {
        match self {
            SourceSpec::Text { title, body } => serde_json::json!({
                "kind": "text", "title": title, "characters": body.chars().count()
            }),
            SourceSpec::Qa { pairs } => serde_json::json!({ "kind": "qa", "pairs": pairs.len() }),
            SourceSpec::Url { .. } | SourceSpec::Sitemap { .. } | SourceSpec::Document { .. } => to_payload(self),
        }
    }

    pub fn validate(&self, max_pages_cap: u32) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: String| {
            if !ok {
                errors.push(FieldError {
                    field: field.into(),
                    message,
                });
            }
        };
        match self {
            SourceSpec::Url { url } => check(
                valid_http_url(url),
                "url",
                "must be an absolute http or https URL".into(),
            ),
            SourceSpec::Sitemap {
                url,
                include,
                exclude,
                max_pages,
                max_depth,
            } => {
                check(
                    valid_http_url(url),
                    "url",
                    "must be an absolute http or https URL".into(),
                );
                for (field, patterns) in [("include", include), ("exclude", exclude)] {
                    check(
                        patterns.len() <= MAX_PATTERNS,
                        field,
                        format!("at most {MAX_PATTERNS} patterns"),
                    );
                    for p in patterns {
                        let ok = !p.is_empty() && p.len() <= 500 && globset::Glob::new(p).is_ok();
                        check(ok, field, format!("`{p}` is not a valid glob pattern"));
                    }
                }
                check(
                    (1..=max_pages_cap).contains(max_pages),
                    "max_pages",
                    format!("must be between 1 and {max_pages_cap}"),
                );
                if let Some(depth) = max_depth {
                    check(
                        (1..=100).contains(depth),
                        "max_depth",
                        "must be between 1 and 100".into(),
                    );
                }
            }
            SourceSpec::Text { title, body } => {
                let t = title.trim().chars().count();
                check((1..=500).contains(&t), "title", "must be 1 to 500 characters".into());
                let b = body.chars().count();
                check(
                    !body.trim().is_empty() && b <= MAX_TEXT_CHARS,
                    "body",
                    format!("must be 1 to {MAX_TEXT_CHARS} characters"),
                );
            }
            SourceSpec::Qa { pairs } => {
                check(
                    (1..=MAX_QA_PAIRS).contains(&pairs.len()),
                    "pairs",
                    format!("must hold 1 to {MAX_QA_PAIRS} pairs"),
                );
                for (i, p) in pairs.iter().enumerate() {
                    let q = p.question.trim().chars().count();
                    let a = p.answer.trim().chars().count();
                    check(
                        (1..=2000).contains(&q),
                        &format!("pairs[{i}].question"),
                        "must be 1 to 2000 characters".into(),
                    );
                    check(
                        (1..=20_000).contains(&a),
                        &format!("pairs[{i}].answer"),
                        "must be 1 to 20000 characters".into(),
                    );
                }
            }
            SourceSpec::Document {
                file_name, blob_hash, ..
            } => {
                check(
                    !file_name.trim().is_empty() && file_name.chars().count() <= 255,
                    "file",
                    "the file name must be 1 to 255 characters".into(),
                );
                check(
                    blob_hash.len() == 64 && blob_hash.bytes().all(|b| b.is_ascii_hexdigit()),
                    "file",
                    "the stored file is missing".into(),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(errors))
        }
    }
}

pub fn valid_http_url(url: &str) -> bool {
    url.len() <= 2048
        && url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// How often a source refreshes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Never,
    Daily,
    Weekly,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Never => "never",
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never" => Some(Schedule::Never),
            "daily" => Some(Schedule::Daily),
            "weekly" => Some(Schedule::Weekly),
            _ => None,
        }
    }

    /// When a source indexed at `at` is due again.
    pub fn next_after(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Never => None,
            Schedule::Daily => Some(at + TimeDelta::days(1)),
            Schedule::Weekly => Some(at + TimeDelta::weeks(1)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    #[default]
    Queued,
    Fetching,
    Parsing,
    Embedding,
    Ready,
    Failed,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Queued => "queued",
            SourceStatus::Fetching => "fetching",
            SourceStatus::Parsing => "parsing",
            SourceStatus::Embedding => "embedding",
            SourceStatus::Ready => "ready",
            SourceStatus::Failed => "failed",
        }
    }

    /// Whether a run is in progress.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            SourceStatus::Queued | SourceStatus::Fetching | SourceStatus::Parsing | SourceStatus::Embedding
        )
    }
}

/// What happened to one page or document in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRecord {
    /// The page's URL, the file name, or `text` / `qa`.
    pub doc_key: String,
    pub url: Option<String>,
    pub title: Option<String>,
    /// `ready`, `unchanged` or `failed`.
    pub status: String,
    pub content_hash: Option<String>,
    pub chunks: u32,
    pub tokens: u32,
    /// Pages of a PDF or DOCX.
    pub page_count: Option<u32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl PageRecord {
    /// A page that could not be read, and why.
    pub fn failed(doc_key: &str, url: Option<&str>, code: &str, message: &str) -> Self {
        PageRecord {
            doc_key: doc_key.to_owned(),
            url: url.map(str::to_owned),
            title: None,
            status: "failed".into(),
            content_hash: None,
            chunks: 0,
            tokens: 0,
            page_count: None,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceAdded {
    pub source_id: Uuid,
    pub org_id: Uuid,
    pub bot_id: Uuid,
    pub run_id: Uuid,
    pub spec: SourceSpec,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRequested {
    pub run_id: Uuid,
    /// `manual` (API) or `scheduled`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStep {
    pub run_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    pub run_id: Uuid,
    /// Pages or documents fetched (or read) successfully.
    pub fetched: u32,
    /// Pages that could not be fetched.
    pub failed: u32,
    /// Pages skipped by robots.txt, patterns or type.
    pub skipped: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    pub run_id: Uuid,
    pub documents: u32,
    /// Documents whose text changed since the last run (to embed again).
    pub changed: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indexed {
    pub run_id: Uuid,
    pub pages: Vec<PageRecord>,
    /// Keys of pages that disappeared since the last run.
    pub removed: Vec<String>,
    pub chunks: u64,
    pub tokens: u64,
    /// Documents embedded in this run (the others were unchanged).
    pub embedded: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub run_id: Uuid,
    /// `FETCH_FAILED`, `NO_TEXT`, `CORRUPT_DOCUMENT`, `UNSUPPORTED_TYPE`, `PARSE_TIMEOUT`, `URL_NOT_ALLOWED`, `INTERNAL`...
    pub code: String,
    pub message: String,
    /// Per-page outcomes known when the run failed.
    #[serde(default)]
    pub pages: Vec<PageRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleChanged {
    pub schedule: Schedule,
}

/// The owner named a document: the title replaces the extracted one in
/// citations and in what is indexed, and outlives refreshes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRenamed {
    pub doc_key: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceGone {
    pub source_id: Uuid,
    pub bot_id: Uuid,
}

domain_events! {
    pub enum SourceEvent {
        Added(SourceAdded) = SOURCE_ADDED,
        RefreshRequested(RefreshRequested) = SOURCE_REFRESH_REQUESTED,
        Fetching(RunStep) = SOURCE_FETCHING,
        Fetched(Fetched) = SOURCE_FETCHED,
        Parsed(Parsed) = SOURCE_PARSED,
        Indexed(Indexed) = SOURCE_INDEXED,
        Failed(Failed) = SOURCE_FAILED,
        ScheduleChanged(ScheduleChanged) = SOURCE_SCHEDULE_CHANGED,
        DocumentRenamed(DocumentRenamed) = SOURCE_DOCUMENT_RENAMED,
        Deleted(SourceGone) = SOURCE_DELETED,
        Purged(SourceGone) = SOURCE_PURGED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    pub added: Option<SourceAdded>,
    pub schedule: Schedule,
    pub status: SourceStatus,
    pub run_id: Option<Uuid>,
    pub deleted: bool,
    pub purged: bool,
    /// Keys of the documents the last runs recorded.
    pub documents: std::collections::BTreeSet<String>,
    /// Titles the owner gave documents, by key.
    pub titles: std::collections::BTreeMap<String, String>,
}

impl SourceState {
    fn live_for(&self, org_id: Uuid) -> Result<&SourceAdded, DomainError> {
        match &self.added {
            Some(added) if added.org_id == org_id && !self.deleted => Ok(added),
            _ => Err(DomainError::SourceNotFound),
        }
    }

    /// The title a document is indexed and cited with: the owner's, else
    /// `extracted`.
    pub fn title_of(&self, doc_key: &str, extracted: Option<String>) -> Option<String> {
        self.titles.get(doc_key).cloned().or(extracted)
    }

    fn record_pages(&mut self, pages: &[PageRecord]) {
        self.documents.extend(pages.iter().map(|p| p.doc_key.clone()));
    }

    /// Whether `run_id` is the current run and the source is at `status`.
    fn at(&self, run_id: Uuid, status: SourceStatus) -> bool {
        !self.deleted && self.run_id == Some(run_id) && self.status == status
    }
}

/// Commands. Steps of a run are issued by jobs and ignored (no event) when
/// they no longer apply, so a redelivered job changes nothing.
#[derive(Debug, Clone)]
pub enum SourceCommand {
    Add {
        source_id: Uuid,
        org_id: Uuid,
        bot_id: Uuid,
        run_id: Uuid,
        spec: SourceSpec,
        schedule: Schedule,
        max_pages_cap: u32,
    },
    Refresh {
        org_id: Uuid,
        run_id: Uuid,
        reason: String,
    },
    StartFetching {
        run_id: Uuid,
    },
    RecordFetched(Fetched),
    RecordParsed(Parsed),
    RecordIndexed(Indexed),
    Fail(Failed),
    SetSchedule {
        org_id: Uuid,
        schedule: Schedule,
    },
    /// Give a document of the source a title of the owner's.
    RenameDocument {
        org_id: Uuid,
        doc_key: String,
        title: String,
    },
    Delete {
        org_id: Uuid,
    },
    Purge,
}

/// A document title as given: trimmed, one line, not empty, not too long.
fn document_title(title: &str) -> Result<String, DomainError> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(DomainError::invalid("title", "must not be empty"));
    }
    if title.chars().count() > MAX_DOCUMENT_TITLE_CHARS {
        return Err(DomainError::invalid(
            "title",
            format!("must be at most {MAX_DOCUMENT_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(DomainError::invalid("title", "must not contain control characters"));
    }
    Ok(title)
}

pub struct Source;

impl Aggregate for Source {
    const STREAM_TYPE: &'static str = "source";
    type State = SourceState;
    type Event = SourceEvent;
    type Command = SourceCommand;

    fn apply(state: &mut SourceState, event: &SourceEvent) {
        match event {
            SourceEvent::Added(e) => {
                state.added = Some(e.clone());
                state.schedule = e.schedule;
                state.run_id = Some(e.run_id);
                state.status = SourceStatus::Queued;
            }
            SourceEvent::RefreshRequested(e) => {
                state.run_id = Some(e.run_id);
                state.status = SourceStatus::Queued;
            }
            SourceEvent::Fetching(_) => state.status = SourceStatus::Fetching,
            SourceEvent::Fetched(_) => state.status = SourceStatus::Parsing,
            SourceEvent::Parsed(_) => state.status = SourceStatus::Embedding,
            SourceEvent::Indexed(e) => {
                state.status = SourceStatus::Ready;
                state.record_pages(&e.pages);
                for key in &e.removed {
                    state.documents.remove(key);
                    state.titles.remove(key);
                }
            }
            SourceEvent::Failed(e) => {
                state.status = SourceStatus::Failed;
                state.record_pages(&e.pages);
            }
            SourceEvent::ScheduleChanged(e) => state.schedule = e.schedule,
            SourceEvent::DocumentRenamed(e) => {
                state.titles.insert(e.doc_key.clone(), e.title.clone());
            }
            SourceEvent::Deleted(_) => state.deleted = true,
            SourceEvent::Purged(_) => state.purged = true,
        }
    }

    fn decide(state: &SourceState, command: SourceCommand) -> Result<Vec<SourceEvent>, DomainError> {
        use SourceStatus as S;
        Ok(match command {
            SourceCommand::Add {
                source_id,
                org_id,
                bot_id,
                run_id,
                spec,
                schedule,
                max_pages_cap,
            } => {
                if state.added.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                spec.validate(max_pages_cap)?;
                vec![SourceEvent::Added(SourceAdded {
                    source_id,
                    org_id,
                    bot_id,
                    run_id,
                    spec,
                    schedule,
                })]
            }
            SourceCommand::Refresh { org_id, run_id, reason } => {
                state.live_for(org_id)?;
                if state.status.is_running() {
                    return Err(DomainError::SourceBusy);
                }
                vec![SourceEvent::RefreshRequested(RefreshRequested { run_id, reason })]
            }
            SourceCommand::StartFetching { run_id } => {
                if state.at(run_id, S::Queued) {
                    vec![SourceEvent::Fetching(RunStep { run_id })]
                } else {
                    vec![]
                }
            }
            SourceCommand::RecordFetched(e) => {
                if state.at(e.run_id, S::Fetching) {
                    vec![SourceEvent::Fetched(e)]
                } else {
                    vec![]
                }
            }
            SourceCommand::RecordParsed(e) => {
                if state.at(e.run_id, S::Parsing) {
                    vec![SourceEvent::Parsed(e)]
                } else {
                    vec![]
                }
            }
            SourceCommand::RecordIndexed(e) => {
                if state.at(e.run_id, S::Embedding) {
                    vec![SourceEvent::Indexed(e)]
                } else {
                    vec![]
                }
            }
            SourceCommand::Fail(e) => {
                let running = !state.deleted && state.run_id == Some(e.run_id) && state.status.is_running();
                if running { vec![SourceEvent::Failed(e)] } else { vec![] }
            }
            SourceCommand::SetSchedule { org_id, schedule } => {
                state.live_for(org_id)?;
                if state.schedule == schedule {
                    vec![]
                } else {
                    vec![SourceEvent::ScheduleChanged(ScheduleChanged { schedule })]
                }
            }
            SourceCommand::RenameDocument { org_id, doc_key, title } => {
                state.live_for(org_id)?;
                if !state.documents.contains(&doc_key) {
                    return Err(DomainError::DocumentNotFound);
                }
                let title = document_title(&title)?;
                if state.titles.get(&doc_key) == Some(&title) {
                    vec![]
                } else {
                    vec![SourceEvent::DocumentRenamed(DocumentRenamed { doc_key, title })]
                }
            }
            SourceCommand::Delete { org_id } => {
                let added = state.live_for(org_id)?;
                vec![SourceEvent::Deleted(SourceGone {
                    source_id: added.source_id,
                    bot_id: added.bot_id,
                })]
            }
            SourceCommand::Purge => match &state.added {
                Some(added) if state.deleted && !state.purged => {
                    vec![SourceEvent::Purged(SourceGone {
                        source_id: added.source_id,
                        bot_id: added.bot_id,
                    })]
                }
                Some(_) if state.purged => vec![],
                _ => return Err(DomainError::SourceNotFound),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(events: &[SourceEvent]) -> SourceState {
        let mut s = SourceState::default();
        for e in events {
            Source::apply(&mut s, e);
        }
        s
    }

    fn added(spec: SourceSpec) -> (Uuid, Uuid, SourceEvent) {
        let org = Uuid::now_v7();
        let run = Uuid::now_v7();
        let cmd = SourceCommand::Add {
            source_id: Uuid::now_v7(),
            org_id: org,
            bot_id: Uuid::now_v7(),
            run_id: run,
            spec,
            schedule: Schedule::Never,
            max_pages_cap: 1000,
        };
        let events = Source::decide(&SourceState::default(), cmd).unwrap();
        (org, run, events.into_iter().next().unwrap())
    }

    fn text() -> SourceSpec {
        SourceSpec::Text {
            title: "Pricing".into(),
            body: "Pro costs 20 EUR.".into(),
        }
    }

    #[test]
    fn a_run_walks_its_statuses_and_redelivered_steps_record_nothing() {
        let (_, run, a) = added(text());
        let mut events = vec![a];
        assert_eq!(given(&events).status, SourceStatus::Queued);
        let step = Source::decide(&given(&events), SourceCommand::StartFetching { run_id: run }).unwrap();
        assert_eq!(step.len(), 1);
        events.extend(step);
        assert!(
            Source::decide(&given(&events), SourceCommand::StartFetching { run_id: run })
                .unwrap()
                .is_empty()
        );
        let fetched = Fetched {
            run_id: run,
            fetched: 1,
            failed: 0,
            skipped: 0,
        };
        events.extend(Source::decide(&given(&events), SourceCommand::RecordFetched(fetched.clone())).unwrap());
        assert_eq!(given(&events).status, SourceStatus::Parsing);
        assert!(
            Source::decide(&given(&events), SourceCommand::RecordFetched(fetched))
                .unwrap()
                .is_empty()
        );
        let parsed = Parsed {
            run_id: run,
            documents: 1,
            changed: 1,
            failed: 0,
        };
        events.extend(Source::decide(&given(&events), SourceCommand::RecordParsed(parsed)).unwrap());
        let indexed = Indexed {
            run_id: run,
            pages: vec![],
            removed: vec![],
            chunks: 1,
            tokens: 9,
            embedded: 1,
        };
        events.extend(Source::decide(&given(&events), SourceCommand::RecordIndexed(indexed)).unwrap());
        assert_eq!(given(&events).status, SourceStatus::Ready);
    }

    #[test]
    fn refresh_is_refused_while_running_and_steps_of_old_runs_are_ignored() {
        let (org, run, a) = added(text());
        let state = given(std::slice::from_ref(&a));
        let refresh = SourceCommand::Refresh {
            org_id: org,
            run_id: Uuid::now_v7(),
            reason: "manual".into(),
        };
        assert_eq!(
            Source::decide(&state, refresh.clone()).unwrap_err(),
            DomainError::SourceBusy
        );
        let failed = Failed {
            run_id: run,
            code: "NO_TEXT".into(),
            message: "empty".into(),
            pages: vec![],
        };
        let events = vec![a, SourceEvent::Failed(failed)];
        let state = given(&events);
        let next = Source::decide(&state, refresh).unwrap();
        let mut events = events;
        events.extend(next);
        let state = given(&events);
        assert_eq!(state.status, SourceStatus::Queued);
        assert!(
            Source::decide(&state, SourceCommand::StartFetching { run_id: run })
                .unwrap()
                .is_empty(),
            "old run"
        );
    }

    #[test]
    fn an_owner_renames_an_indexed_document_and_the_title_outlives_refreshes() {
        let (org, run, a) = added(text());
        let page = |key: &str| PageRecord {
            doc_key: key.into(),
            url: None,
            title: Some("Extracted".into()),
            status: "ready".into(),
            content_hash: None,
            chunks: 1,
            tokens: 5,
            page_count: None,
            error_code: None,
            error_message: None,
        };
        let indexed = SourceEvent::Indexed(Indexed {
            run_id: run,
            pages: vec![page("text")],
            removed: vec![],
            chunks: 1,
            tokens: 5,
            embedded: 1,
        });
        let rename = |key: &str, title: &str| SourceCommand::RenameDocument {
            org_id: org,
            doc_key: key.into(),
            title: title.into(),
        };
        // Not before the document is indexed, nor another organization's.
        let state = given(std::slice::from_ref(&a));
        assert_eq!(
            Source::decide(&state, rename("text", "Prices")).unwrap_err(),
            DomainError::DocumentNotFound
        );
        let mut events = vec![a, indexed];
        let state = given(&events);
        let other = SourceCommand::RenameDocument {
            org_id: Uuid::now_v7(),
            doc_key: "text".into(),
            title: "Prices".into(),
        };
        assert_eq!(Source::decide(&state, other).unwrap_err(), DomainError::SourceNotFound);
        for bad in ["", " \n ", &"x".repeat(MAX_DOCUMENT_TITLE_CHARS + 1), "a\u{7}b"] {
            assert!(
                matches!(
                    Source::decide(&state, rename("text", bad)),
                    Err(DomainError::Validation(_))
                ),
                "{bad:?}"
            );
        }
        let renamed = Source::decide(&state, rename("text", "  Price\tlist ")).unwrap();
        assert_eq!(
            renamed,
            vec![SourceEvent::DocumentRenamed(DocumentRenamed {
                doc_key: "text".into(),
                title: "Price list".into(),
            })]
        );
        events.extend(renamed);
        let state = given(&events);
        assert_eq!(
            state.title_of("text", Some("Extracted".into())).as_deref(),
            Some("Price list")
        );
        assert_eq!(
            state.title_of("other", Some("Extracted".into())).as_deref(),
            Some("Extracted")
        );
        // The same title again records nothing.
        assert!(Source::decide(&state, rename("text", "Price list")).unwrap().is_empty());
        // A later run keeps it; a run that removes the document forgets it.
        let run2 = Uuid::now_v7();
        events.push(SourceEvent::RefreshRequested(RefreshRequested {
            run_id: run2,
            reason: "manual".into(),
        }));
        events.push(SourceEvent::Indexed(Indexed {
            run_id: run2,
            pages: vec![page("text")],
            removed: vec![],
            chunks: 1,
            tokens: 5,
            embedded: 0,
        }));
        assert_eq!(
            given(&events).titles.get("text").map(String::as_str),
            Some("Price list")
        );
        events.push(SourceEvent::Indexed(Indexed {
            run_id: run2,
            pages: vec![],
            removed: vec!["text".into()],
            chunks: 0,
            tokens: 0,
            embedded: 0,
        }));
        let state = given(&events);
        assert!(state.titles.is_empty() && state.documents.is_empty());
        assert_eq!(
            Source::decide(&state, rename("text", "Prices")).unwrap_err(),
            DomainError::DocumentNotFound
        );
    }

    #[test]
    fn validation_reports_each_problem() {
        let spec = SourceSpec::Sitemap {
            url: "ftp://example.com".into(),
            include: vec!["/docs/**".into(), "[".into()],
            exclude: vec![],
            max_pages: 0,
            max_depth: Some(0),
        };
        let DomainError::Validation(errors) = spec.validate(500).unwrap_err() else {
            panic!()
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "include", "max_pages", "max_depth"]);
        let qa = SourceSpec::Qa {
            pairs: vec![QaPair {
                question: " ".into(),
                answer: "x".into(),
            }],
        };
        assert!(qa.validate(500).is_err());
        assert!(SourceSpec::Qa { pairs: vec![] }.validate(500).is_err());
    }

    #[test]
    fn other_orgs_and_deleted_sources_are_not_found() {
        let (org, _, a) = added(text());
        let state = given(std::slice::from_ref(&a));
        let other = SourceCommand::Delete { org_id: Uuid::now_v7() };
        assert_eq!(Source::decide(&state, other).unwrap_err(), DomainError::SourceNotFound);
        let deleted = Source::decide(&state, SourceCommand::Delete { org_id: org }).unwrap();
        let state = given(&[a, deleted[0].clone()]);
        assert_eq!(
            Source::decide(&state, SourceCommand::Delete { org_id: org }).unwrap_err(),
            DomainError::SourceNotFound
        );
        assert_eq!(Source::decide(&state, SourceCommand::Purge).unwrap().len(), 1);
    }

    #[test]
    fn schedules() {
        let t = Utc::now();
        assert_eq!(Schedule::Daily.next_after(t), Some(t + TimeDelta::days(1)));
        assert_eq!(Schedule::Never.next_after(t), None);
        assert_eq!(Schedule::parse("weekly"), Some(Schedule::Weekly));
    }
}
