//! Conversation exports: one conversation as CSV, a plain-text transcript or
//! JSON; many (a creation range) as one CSV of their messages.

use chrono::{DateTime, Utc};
use parley_domain::store::entities::conversations;
use parley_domain::{DomainError, store::read};
use poem_openapi::param::{Path, Query};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::files::{CsvFile, Export, csv_cell, download_header};
use crate::schemas::conversation::{ConversationDetail, Message, info, messages, messages_with_attachments};
use crate::security::AgentAuth;
use crate::state::AppState;

/// Most conversations one bulk export holds.
const MAX_EXPORTED: u64 = 10_000;

pub struct ExportApi {
    pub state: Option<AppState>,
}

/// The shape of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One row per message (`text/csv`).
    Csv,
    /// A readable transcript (`text/plain`).
    Txt,
    /// The conversation with its messages, as `get_conversation` returns it.
    Json,
}

impl ApiResponse for Export {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The export, as an attachment: `text/csv`, `text/plain` or `application/json`.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "text/csv; charset=utf-8",
                        schema: String::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "text/plain; charset=utf-8",
                        schema: String::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ConversationDetail::schema_ref(),
                    },
                ],
                headers: vec![download_header()],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ConversationDetail::register(registry);
    }
}

const CSV_HEADER: [&str; 9] = [
    "conversation_id",
    "message_id",
    "created_at",
    "role",
    "text",
    "status",
    "provider",
    "unanswered",
    "sources",
];

fn csv_rows(writer: &mut csv::Writer<Vec<u8>>, messages: &[Message], conversation_id: Uuid) -> Result<(), ApiError> {
    for m in messages {
        let sources = m
            .sources
            .iter()
            .map(|s| s.url.clone().unwrap_or_else(|| s.document.clone()))
            .collect::<Vec<_>>()
            .join(" | ");
        writer
            .write_record([
                conversation_id.to_string(),
                m.id.to_string(),
                m.created_at.to_rfc3339(),
                m.role.clone(),
                csv_cell(&m.text),
                m.status.clone(),
                m.provider.clone().unwrap_or_default(),
                m.unanswered.to_string(),
                csv_cell(&sources),
            ])
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ApiError> {
    writer.into_inner().map_err(ApiError::internal)
}

/// Conversations whose messages one query reads while a bulk export streams.
const EXPORT_BATCH: usize = 100;

/// The CSV of these conversations' messages, written as it is read: one
/// query per `EXPORT_BATCH` conversations, never the whole file in memory.
/// A failure half-way ends the download early (logged), since the status
/// line has gone out.
fn stream_csv(store: parley_domain::Store, ids: Vec<Uuid>) -> poem::Body {
    let chunks = async_stream::stream! {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let head = writer.write_record(CSV_HEADER).map_err(ApiError::internal).and_then(|()| finish(writer));
        yield head;
        for batch in ids.chunks(EXPORT_BATCH) {
            yield csv_batch(&store, batch).await;
        }
    };
    let bytes = futures::StreamExt::map(chunks, |chunk| {
        chunk.map_err(|e| {
            tracing::error!(error = ?e, "conversation export broke off");
            std::io::Error::other("conversation export broke off")
        })
    });
    poem::Body::from_bytes_stream(bytes)
}

/// The CSV rows (no header) of a batch of conversations, in the batch's order.
async fn csv_batch(store: &parley_domain::Store, batch: &[Uuid]) -> Result<Vec<u8>, ApiError> {
    let mut by_conversation: std::collections::HashMap<Uuid, Vec<Message>> = std::collections::HashMap::new();
    for row in read::messages_of(store, batch).await? {
        by_conversation
            .entry(row.conversation_id)
            .or_default()
            .push(Message::from(row));
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    for id in batch {
        if let Some(messages) = by_conversation.get(id) {
            csv_rows(&mut writer, messages, *id)?;
        }
    }
    finish(writer)
}

fn transcript(conversation: &conversations::Model, messages: &[Message]) -> String {
    let mut out = format!(
        "Conversation {}\nStarted {}{}\nStatus: {}\n",
        conversation.id,
        conversation.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        conversation
            .visitor_id
            .as_deref()
            .map(|v| format!(" by visitor {v}"))
            .unwrap_or_default(),
        conversation.status
    );
    for m in messages {
        let who = match m.role.as_str() {
            "user" => "Visitor",
            "agent" => "Agent",
            _ => "Bot",
        };
        out.push_str(&format!(
            "\n[{}] {who}: {}\n",
            m.created_at.format("%Y-%m-%d %H:%M:%S"),
            m.text
        ));
        for (i, s) in m.sources.iter().enumerate() {
            let place = s.url.clone().unwrap_or_else(|| s.document.clone());
            out.push_str(&format!("    [{}] {place}\n", i + 1));
        }
        if let Some(e) = &m.error {
            out.push_str(&format!("    (failed: {} {})\n", e.code, e.message));
        }
    }
    out
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Conversations")]
impl ExportApi {
    /// Export conversations
    ///
    /// Every message of the conversations started in `[from, to)` (optionally
    /// of one bot), one CSV row each, oldest conversation first. At most
    /// 10,000 conversations; narrow the range for more.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/export",
        method = "get",
        operation_id = "export_conversations"
    )]
    async fn export_many(
        &self,
        auth: AgentAuth,
        /// Conversations started at or after this time (RFC 3339).
        from: Query<DateTime<Utc>>,
        /// Conversations started before this time (RFC 3339).
        to: Query<DateTime<Utc>>,
        /// Only this bot's conversations.
        bot_id: Query<Option<Uuid>>,
    ) -> Result<CsvFile, ApiError> {
        let state = live(&self.state)?;
        if to.0 <= from.0 {
            return Err(ApiError::new(
                parley_domain::ErrorCode::InvalidRequest,
                "`to` must be later than `from`",
            ));
        }
        let filter = read::ConversationFilter {
            bot_id: bot_id.0,
            created_after: Some(from.0),
            created_before: Some(to.0),
            ..read::ConversationFilter::default()
        };
        let mut rows = read::conversations(&state.store, auth.0.org_id, &filter, None, MAX_EXPORTED + 1).await?;
        if rows.len() as u64 > MAX_EXPORTED {
            return Err(ApiError::new(
                parley_domain::ErrorCode::ValidationFailed,
                format!("more than {MAX_EXPORTED} conversations in that range; export a shorter one"),
            ));
        }
        rows.reverse();
        let ids: Vec<Uuid> = rows.into_iter().map(|c| c.id).collect();
        Ok(CsvFile {
            body: stream_csv(state.store.clone(), ids),
            file_name: format!(
                "conversations-{}-{}.csv",
                from.0.format("%Y%m%d"),
                to.0.format("%Y%m%d")
            ),
        })
    }

    /// Export a conversation
    ///
    /// As CSV (one row per message), a plain-text transcript, or JSON.
    ///
    /// Role: `agent` or higher.
    #[oai(
        path = "/conversations/:conversation_id/export",
        method = "get",
        operation_id = "export_conversation"
    )]
    async fn export_one(
        &self,
        auth: AgentAuth,
        conversation_id: Path<Uuid>,
        /// `json` (default), `csv` or `txt`.
        format: Query<Option<ExportFormat>>,
    ) -> Result<Export, ApiError> {
        let state = live(&self.state)?;
        let conversation = read::conversation(&state.store, auth.0.org_id, conversation_id.0)
            .await?
            .ok_or(DomainError::ConversationNotFound)?;
        let name = format!("conversation-{}", conversation.id);
        Ok(match format.0.unwrap_or(ExportFormat::Json) {
            ExportFormat::Csv => {
                let messages = messages(state, conversation.id).await?;
                let mut writer = csv::Writer::from_writer(Vec::new());
                writer.write_record(CSV_HEADER).map_err(ApiError::internal)?;
                csv_rows(&mut writer, &messages, conversation.id)?;
                Export {
                    body: finish(writer)?.into(),
                    content_type: "text/csv; charset=utf-8",
                    file_name: format!("{name}.csv"),
                }
            }
            ExportFormat::Txt => Export {
                body: transcript(&conversation, &messages(state, conversation.id).await?)
                    .into_bytes()
                    .into(),
                content_type: "text/plain; charset=utf-8",
                file_name: format!("{name}.txt"),
            },
            ExportFormat::Json => {
                let detail = ConversationDetail {
                    messages: messages_with_attachments(state, conversation.id).await?,
                    conversation: info(state, conversation).await?,
                };
                Export {
                    body: detail.to_json_string().into_bytes().into(),
                    content_type: "application/json; charset=utf-8",
                    file_name: format!("{name}.json"),
                }
            }
        })
    }
}
