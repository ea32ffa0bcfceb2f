//! `/api/v1/bots/{id}/chat` (answers, streamed or whole) and the retrieval
//! debug search.

use parley_domain::aggregates::conversation::Conversation;
use parley_domain::retrieval::Mode;
use parley_domain::{DomainError, ErrorCode};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::active_bot;
use crate::access::{live, live_bot};
use crate::chat::turn::{Ask, ask};
use crate::chat::{SearchSpec, citation};
use crate::error::{ApiError, ErrorDetail, bad_request};
use crate::http::middleware::RequestId;
use crate::schemas::chat::ChatResponse;
use crate::security::{AdminAuth, AgentAuth};
use crate::state::AppState;
use crate::types::Text;

pub struct ChatApi {
    pub state: Option<AppState>,
}

/// Largest `metadata` object, as JSON bytes.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// One turn of `messages`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ChatMessageIn {
    /// `user`, `assistant` or `system`.
    pub role: Text,
    /// The turn's text.
    pub content: Text,
}

/// A visitor's message to a bot.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct ChatRequest {
    /// The visitor's message (give this or `messages`). Empty: 400; over
    /// 10,000 characters: 422.
    pub message: Option<Text>,
    /// Turns with roles `user`, `assistant` and `system`; the last `user` turn
    /// is the question, earlier turns are context, `system` text is appended
    /// to the bot's persona.
    pub messages: Option<Vec<ChatMessageIn>>,
    /// Continue this conversation; absent, a new one starts.
    pub conversation_id: Option<Uuid>,
    /// Your identifier of the visitor, up to 255 characters.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub visitor_id: Option<Text>,
    /// Stream the answer as server-sent events; absent, the bot's `streaming` setting decides.
    pub stream: Option<bool>,
    /// Language tag to answer in, e.g. `en` or `pt-BR`.
    #[oai(validator(min_length = 2, max_length = 35))]
    pub language: Option<Text>,
    /// Any JSON object, stored with the visitor's message (up to 16 KB).
    pub metadata: Option<Value>,
}

/// How the debug search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 and vectors, fused (what chat uses).
    Hybrid,
    /// BM25 over chunk text only.
    Bm25,
    /// Vector similarity only.
    Vector,
}

/// A retrieval debug query.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct SearchRequest {
    /// The question, 1 to 2,000 characters.
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub query: Text,
    /// Results to return, 1 to 50 (default 10).
    #[oai(validator(minimum(value = "1"), maximum(value = "50")))]
    pub limit: Option<u32>,
    /// Only these sources.
    #[oai(validator(max_items = 200))]
    pub source_ids: Option<Vec<Uuid>>,
    /// Default `hybrid`.
    pub mode: Option<SearchMode>,
}

/// A retriever's opinion of a result.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RetrieverScore {
    /// 1-based rank in that retriever's list.
    pub rank: u32,
    /// BM25 score, or cosine similarity for vectors.
    pub score: f32,
}

/// One retrieved chunk with its scores.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchResult {
    /// The chunk.
    pub chunk_id: Uuid,
    /// The knowledge source it belongs to.
    pub source_id: Uuid,
    /// The document within the source (URL or file name).
    pub document: String,
    /// The document's title.
    pub title: Option<String>,
    /// The page's URL (web sources).
    pub url: Option<String>,
    /// Headings above the chunk, `A > B`.
    pub heading_path: String,
    /// Page number (PDF).
    pub page: Option<i32>,
    /// The chunk's text.
    pub text: String,
    /// The fused score (reciprocal rank fusion) or the single retriever's score.
    pub score: f32,
    /// Set when BM25 found it.
    pub bm25: Option<RetrieverScore>,
    /// Set when vector search found it.
    pub vector: Option<RetrieverScore>,
    /// Which retrievers found it: `bm25`, `vector`.
    pub found_by: Vec<String>,
}

/// Both retrievers' evidence that the knowledge answers a question.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Answerability {
    /// The probability that the knowledge answers the question, 0 to 1;
    /// the bot answers at `PARLEY_CHAT_MIN_ANSWERABILITY` and above.
    pub probability: f32,
    /// Cosine similarity of the closest passage.
    pub similarity: f32,
    /// Share of the question's term weight (by rarity) that the best three
    /// passages contain.
    pub coverage: f32,
    /// Share of the question's term weight in words the knowledge never uses.
    pub unknown_terms: f32,
    /// How well the best two passages answer the question, read together
    /// with it by the cross-encoder (its logit: above 0 leans yes); absent
    /// when the model is not installed.
    pub relevance: Option<f32>,
}

/// What a question would retrieve.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchResponse {
    /// Best first.
    pub results: Vec<SearchResult>,
    /// Cosine similarity of the closest chunk (also in `answerability`).
    pub best_similarity: f32,
    /// Whether chat would answer from these results (the answerability gate).
    pub relevant: bool,
    /// Why: both retrievers' evidence and the gate's probability.
    pub answerability: Answerability,
    /// Time taken, in milliseconds.
    pub took_ms: f64,
}

/// The question, earlier turns and system text from `message` / `messages`.
struct Parsed {
    question: String,
    system: Option<String>,
    history: Vec<parley_domain::aggregates::conversation::Turn>,
}

fn parse_turns(req: &ChatRequest) -> Result<Parsed, ApiError> {
    match (&req.message, &req.messages) {
        (Some(_), Some(_)) => Err(bad_request(
            "give either `message` or `messages`, not both",
            "messages",
            "not allowed with `message`",
        )),
        (None, None) => Err(bad_request(
            "`message` or `messages` is required",
            "message",
            "required",
        )),
        (Some(m), None) => {
            if m.0.trim().is_empty() {
                return Err(bad_request("the message is empty", "message", "must not be empty"));
            }
            Ok(Parsed {
                question: m.0.clone(),
                system: None,
                history: vec![],
            })
        }
        (None, Some(turns)) => {
            let mut details = Vec::new();
            let mut system = Vec::new();
            let mut history = Vec::new();
            for (i, t) in turns.iter().enumerate() {
                let role = match t.role.0.as_str() {
                    "user" => "user",
                    "assistant" => "assistant",
                    "system" => "system",
                    other => {
                        details.push(ErrorDetail {
                            field: Some(format!("messages[{i}].role")),
                            message: format!("`{other}` is not one of user, assistant, system"),
                        });
                        continue;
                    }
                };
                if t.content.0.trim().is_empty() {
                    details.push(ErrorDetail {
                        field: Some(format!("messages[{i}].content")),
                        message: "must not be empty".into(),
                    });
                    continue;
                }
                if role == "system" {
                    system.push(t.content.0.clone());
                } else {
                    history.push(parley_domain::aggregates::conversation::Turn {
                        message_id: Uuid::nil(),
                        role,
                        text: t.content.0.clone(),
                    });
                }
            }
            if !details.is_empty() {
                return Err(ApiError::with_details(
                    ErrorCode::InvalidRequest,
                    "malformed `messages`",
                    details,
                ));
            }
            match history.last() {
                Some(last) if last.role == "user" => {}
                Some(_) => {
                    return Err(bad_request(
                        "malformed `messages`: the last turn must be the user's question",
                        "messages",
                        "the last non-system turn must have role `user`",
                    ));
                }
                None => {
                    return Err(bad_request(
                        "malformed `messages`: there is no user turn",
                        "messages",
                        "at least one turn with role `user` is required",
                    ));
                }
            }
            let question = history.pop().map(|t| t.text).unwrap_or_default();
            Ok(Parsed {
                question,
                system: (!system.is_empty()).then(|| system.join("\n\n")),
                history,
            })
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Chat")]
impl ChatApi {
    /// Ask a bot
    ///
    /// Answers a visitor's message from the bot's knowledge, with the passages
    /// it used as sources. Streams server-sent events when `stream` is true
    /// (or the bot streams by default): `delta` events with text, a `sources`
    /// event, then `done` (or `error`), then `data: [DONE]`. The visitor's
    /// message and the answer are stored in the conversation, even if the
    /// client disconnects mid-stream. When nothing relevant is found the bot
    /// gives its fallback answer and the message is marked unanswered.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/bots/:bot_id/chat", method = "post", operation_id = "chat")]
    async fn chat(
        &self,
        auth: AdminAuth,
        request_id: Data<&RequestId>,
        bot_id: Path<Uuid>,
        body: Json<ChatRequest>,
    ) -> Result<ChatResponse, ApiError> {
        let state = live(&self.state)?;
        let req = body.0;
        let parsed = parse_turns(&req)?;
        if let Some(metadata) = &req.metadata {
            if crate::types::has_nul(metadata) {
                return Err(bad_request(
                    "`metadata` must not contain NUL characters",
                    "metadata",
                    "must not contain NUL characters",
                ));
            }
            if !metadata.is_object() {
                return Err(bad_request(
                    "`metadata` must be an object",
                    "metadata",
                    "must be an object",
                ));
            }
            if metadata.to_string().len() > MAX_METADATA_BYTES {
                return Err(ApiError::with_details(
                    ErrorCode::ValidationFailed,
                    "`metadata` is too large",
                    vec![ErrorDetail {
                        field: Some("metadata".into()),
                        message: format!("at most {MAX_METADATA_BYTES} bytes of JSON"),
                    }],
                ));
            }
        }
        // (An empty question was refused while parsing: this is its length.)
        if let Some(problem) = parley_domain::aggregates::conversation::message_problem(&parsed.question) {
            return Err(DomainError::invalid("message", problem).into());
        }
        let org_id = auth.0.org_id;
        let bot = active_bot(state, org_id, bot_id.0).await?;
        let conversation_id = match req.conversation_id {
            Some(id) => {
                let (existing, _) = state.store.load::<Conversation>(id).await?;
                if !existing.belongs_to(org_id, bot_id.0) {
                    return Err(DomainError::ConversationNotFound.into());
                }
                id
            }
            None => Uuid::now_v7(),
        };
        let visitor_id = req.visitor_id.map(Text::into_inner);
        ask(
            state,
            Ask {
                org_id,
                bot_id: bot_id.0,
                stream: req.stream.unwrap_or(bot.streaming),
                bot,
                conversation_id,
                stream_owner: match &visitor_id {
                    Some(v) => format!("visitor:{v}"),
                    None => auth.0.handle(),
                },
                visitor_id,
                channel: "api",
                question: parsed.question,
                system: parsed.system,
                extra_history: parsed.history,
                language: req.language.map(Text::into_inner),
                metadata: req.metadata.unwrap_or(Value::Null),
                recorded: auth.0.metadata(&request_id.0.0),
            },
        )
        .await
    }

    /// Search a bot's knowledge
    ///
    /// A retrieval debug view: the chunks a question would get, with their
    /// fused score and each retriever's rank and score.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/bots/:bot_id/search", method = "post", operation_id = "search_knowledge")]
    async fn search(
        &self,
        auth: AgentAuth,
        bot_id: Path<Uuid>,
        body: Json<SearchRequest>,
    ) -> Result<Json<SearchResponse>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        live_bot(state, org_id, bot_id.0).await?;
        let req = body.0;
        if req.query.0.trim().is_empty() {
            return Err(bad_request("the query is empty", "query", "must not be empty"));
        }
        let mode = match req.mode.unwrap_or(SearchMode::Hybrid) {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Bm25 => Mode::Bm25,
            SearchMode::Vector => Mode::Vector,
        };
        let retrieved = state
            .chat
            .retrieve(
                org_id,
                bot_id.0,
                SearchSpec {
                    question: &req.query.0,
                    context: None,
                    sources: req.source_ids.as_deref(),
                    limit: req.limit.unwrap_or(10) as usize,
                    mode,
                },
            )
            .await?;
        let results = retrieved
            .passages
            .iter()
            .map(|p| {
                let c = citation(p);
                let mut found_by = Vec::new();
                if p.bm25.is_some() {
                    found_by.push("bm25".to_owned());
                }
                if p.vector.is_some() {
                    found_by.push("vector".to_owned());
                }
                SearchResult {
                    chunk_id: c.chunk_id,
                    source_id: c.source_id,
                    document: c.doc_key,
                    title: c.title,
                    url: c.url,
                    heading_path: c.heading_path,
                    page: c.page,
                    text: p.text.clone(),
                    score: p.score,
                    bm25: p.bm25.map(|r| RetrieverScore {
                        rank: r.rank,
                        score: r.score,
                    }),
                    vector: p.vector.map(|r| RetrieverScore {
                        rank: r.rank,
                        score: r.score,
                    }),
                    found_by,
                }
            })
            .collect::<Vec<_>>();
        Ok(Json(SearchResponse {
            relevant: retrieved.answerable,
            answerability: Answerability {
                probability: retrieved.answerability,
                similarity: retrieved.evidence.similarity,
                coverage: retrieved.evidence.coverage,
                unknown_terms: retrieved.evidence.unknown,
                relevance: retrieved.evidence.relevance,
            },
            results,
            best_similarity: retrieved.best_similarity,
            took_ms: retrieved.elapsed.as_secs_f64() * 1000.0,
        }))
    }
}
