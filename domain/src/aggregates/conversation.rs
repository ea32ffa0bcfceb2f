//! A conversation between a visitor and a bot: its stream holds every message
//! in order, the visitor's and the bot's, and the answers that failed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain_events;
use crate::error::{DomainError, ErrorCode};
use crate::event::Aggregate;

pub const CONVERSATION_STARTED: &str = "conversation.started";
pub const MESSAGE_RECEIVED: &str = "conversation.message_received";
pub const ANSWERED: &str = "conversation.answered";
pub const ANSWER_FAILED: &str = "conversation.answer_failed";
pub const ESCALATED: &str = "conversation.escalated";
pub const ADMIN_REPLIED: &str = "conversation.admin_replied";
pub const CLOSED: &str = "conversation.closed";
pub const REOPENED: &str = "conversation.reopened";
pub const TAGS_CHANGED: &str = "conversation.tags_changed";
pub const FEEDBACK_RECEIVED: &str = "conversation.feedback_received";
pub const ATTACHMENT_ADDED: &str = "conversation.attachment_added";
pub const ASSIGNED: &str = "conversation.assigned";
pub const UNASSIGNED: &str = "conversation.unassigned";
pub const NOTE_ADDED: &str = "conversation.note_added";
pub const HANDED_BACK: &str = "conversation.handed_back";
pub const RATED: &str = "conversation.rated";

/// Most tags one conversation may carry.
pub const MAX_TAGS: usize = 20;
pub const CONVERSATION_EVENTS: &[&str] = &[
    CONVERSATION_STARTED,
    MESSAGE_RECEIVED,
    ANSWERED,
    ANSWER_FAILED,
    ESCALATED,
    ADMIN_REPLIED,
    CLOSED,
    REOPENED,
    TAGS_CHANGED,
    FEEDBACK_RECEIVED,
    ATTACHMENT_ADDED,
    ASSIGNED,
    UNASSIGNED,
    NOTE_ADDED,
    HANDED_BACK,
    RATED,
];

/// Most files one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 5;
/// Most files one conversation may carry.
pub const MAX_ATTACHMENTS_PER_CONVERSATION: usize = 20;

/// Longest visitor message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationStarted {
    pub conversation_id: Uuid,
    pub org_id: Uuid,
    pub bot_id: Uuid,
    pub visitor_id: Option<String>,
    /// Where it started: `api` (secret key) or `widget`.
    pub channel: String,
    /// SHA-256 (hex) of the conversation token a visitor uses (widget conversations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageReceived {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub text: String,
    /// Extra instructions sent with the message (`system` turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

/// A passage an answer used, as cited (`[n]` is its position, from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub chunk_id: Uuid,
    pub source_id: Uuid,
    pub title: Option<String>,
    pub url: Option<String>,
    pub doc_key: String,
    pub heading_path: String,
    pub page: Option<i32>,
    pub score: f32,
    /// A short excerpt of the passage.
    pub snippet: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub retrieval_ms: u32,
    pub generation_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    /// The visitor message this answers.
    pub reply_to: Uuid,
    pub text: String,
    pub sources: Vec<Citation>,
    /// `extractive`, `openai` or `fallback` (nothing relevant was found).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Nothing relevant was found: the "I don't know" answer was given.
    pub unanswered: bool,
    /// `complete`, or `interrupted` when generation stopped early.
    pub status: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerFailed {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub reply_to: Uuid,
    pub provider: String,
    pub code: ErrorCode,
    pub reason: String,
    /// What had been generated before the failure.
    pub partial_text: String,
}

/// A person is asked to take over; the bot stops answering by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalated {
    pub conversation_id: Uuid,
    /// `visitor_request` (asked for a person), `unanswered` (the bot could
    /// not answer several times in a row) or `api`.
    pub reason: String,
}

/// A person's reply in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminReplied {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub text: String,
    /// The member who replied (absent: an API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<Uuid>,
    /// Their display name when they replied, which the visitor sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
}

/// A member now handles the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    pub conversation_id: Uuid,
    /// The member (person id).
    pub assignee_id: Uuid,
    /// `claim` (they took it), `assign` (someone gave it to them) or `auto`.
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unassigned {
    pub conversation_id: Uuid,
}

/// An internal note: for the team only, never shown to the visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteAdded {
    pub conversation_id: Uuid,
    pub note_id: Uuid,
    pub text: String,
    /// The member who wrote it (absent: an API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<Uuid>,
}

/// A person gives the conversation back to the bot, which answers again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedBack {
    pub conversation_id: Uuid,
}

/// The visitor's rating of a conversation a person closed (the latest counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rated {
    pub conversation_id: Uuid,
    /// 1 (bad) to 5 (great).
    pub score: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The member it rates: who had the conversation, else who last replied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub conversation_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reopened {
    pub conversation_id: Uuid,
    /// `visitor_message` or `api`.
    pub reason: String,
}

/// The conversation's tags after a change (the whole set, sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagsChanged {
    pub conversation_id: Uuid,
    pub tags: Vec<String>,
}

/// A rating of one of the bot's answers (the latest one counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReceived {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    /// `up` or `down`.
    pub rating: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `visitor` or `admin`.
    pub by: String,
}

/// A file a visitor attached to one of their messages. The bytes are kept
/// by content hash, outside the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentAdded {
    pub conversation_id: Uuid,
    pub attachment_id: Uuid,
    pub message_id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

domain_events! {
    pub enum ConversationEvent {
        Started(ConversationStarted) = CONVERSATION_STARTED,
        MessageReceived(MessageReceived) = MESSAGE_RECEIVED,
        Answered(Answered) = ANSWERED,
        AnswerFailed(AnswerFailed) = ANSWER_FAILED,
        Escalated(Escalated) = ESCALATED,
        AdminReplied(AdminReplied) = ADMIN_REPLIED,
        Closed(Closed) = CLOSED,
        Reopened(Reopened) = REOPENED,
        TagsChanged(TagsChanged) = TAGS_CHANGED,
        FeedbackReceived(FeedbackReceived) = FEEDBACK_RECEIVED,
        AttachmentAdded(AttachmentAdded) = ATTACHMENT_ADDED,
        Assigned(Assigned) = ASSIGNED,
        Unassigned(Unassigned) = UNASSIGNED,
        NoteAdded(NoteAdded) = NOTE_ADDED,
        HandedBack(HandedBack) = HANDED_BACK,
        Rated(Rated) = RATED,
    }
}

/// One turn as the decider remembers it (what prompts need).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub message_id: Uuid,
    /// `user` or `assistant`.
    pub role: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationState {
    pub conversation_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub bot_id: Option<Uuid>,
    pub turns: Vec<Turn>,
    /// Visitor messages not answered (nor failed) yet.
    pub pending: Vec<Uuid>,
    /// `open`, `escalated` or `closed`.
    pub status: Status,
    /// Fallback answers since the last real one.
    pub unanswered_in_a_row: u32,
    /// Sorted, unique.
    pub tags: Vec<String>,
    /// The bot's answers (what feedback may rate).
    pub answers: Vec<Uuid>,
    /// The message of each attachment, in order.
    pub attachments: Vec<Uuid>,
    /// The member who handles it.
    pub assignee: Option<Uuid>,
    /// The member who replied last.
    pub last_author: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Open,
    Escalated,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Escalated => "escalated",
            Status::Closed => "closed",
        }
    }
}

impl ConversationState {
    /// Whether a file may be attached to this message: it is one of the
    /// visitor's, and neither it nor the conversation carries the most
    /// files allowed. Checked before the file is stored, and again when
    /// the attachment is recorded.
    pub fn room_for_attachment(&self, message_id: Uuid) -> Result<(), DomainError> {
        let is_visitor_message = self
            .turns
            .iter()
            .any(|t| t.message_id == message_id && t.role == "user");
        if !is_visitor_message {
            return Err(DomainError::invalid(
                "message_id",
                "is not one of the visitor's messages in this conversation",
            ));
        }
        let on_message = self.attachments.iter().filter(|m| **m == message_id).count();
        if on_message >= MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(DomainError::invalid(
                "file",
                format!("a message can carry at most {MAX_ATTACHMENTS_PER_MESSAGE} files"),
            ));
        }
        if self.attachments.len() >= MAX_ATTACHMENTS_PER_CONVERSATION {
            return Err(DomainError::invalid(
                "file",
                format!("a conversation can carry at most {MAX_ATTACHMENTS_PER_CONVERSATION} files"),
            ));
        }
        Ok(())
    }

    /// Whether the conversation exists and belongs to this org and bot.
    pub fn belongs_to(&self, org_id: Uuid, bot_id: Uuid) -> bool {
        self.org_id == Some(org_id) && self.bot_id == Some(bot_id)
    }
}

#[derive(Debug, Clone)]
pub enum ConversationCommand {
    /// Start a conversation without a message (a visitor opening the widget).
    Start {
        conversation_id: Uuid,
        org_id: Uuid,
        bot_id: Uuid,
        visitor_id: Option<String>,
        channel: String,
        token_hash: Option<String>,
    },
    /// A file attached to one of the visitor's messages.
    Attach(AttachmentAdded),
    /// A visitor message; starts the conversation when it is new.
    Receive {
        /// The stream's id: a new conversation takes it.
        conversation_id: Uuid,
        org_id: Uuid,
        bot_id: Uuid,
        visitor_id: Option<String>,
        channel: String,
        message_id: Uuid,
        text: String,
        system: Option<String>,
        language: Option<String>,
        metadata: Value,
        /// The bot takes no part (live chat only): the same append hands
        /// the conversation to a person, where it waits.
        human_only: bool,
    },
    /// The bot's answer to a pending visitor message. The same append hands
    /// the conversation to a person when the visitor asked for one, or when
    /// this is the `escalate_after_unanswered`-th fallback answer in a row
    /// (0: never).
    Answer {
        answer: Box<Answered>,
        escalate_after_unanswered: u32,
    },
    /// Generation failed for a pending visitor message.
    Fail(AnswerFailed),
    /// Hand the conversation to a person (no-op when already escalated).
    Escalate {
        reason: String,
    },
    /// A person's reply; escalates the conversation if it was not.
    AdminReply {
        message_id: Uuid,
        text: String,
        /// The member replying and their display name (none: an API key).
        author: Option<(Uuid, String)>,
    },
    /// A member takes the conversation; it is theirs unless another has it.
    Claim {
        member_id: Uuid,
    },
    /// Give the conversation to a member (the caller checked they are one).
    Assign {
        member_id: Uuid,
        how: String,
    },
    Unassign,
    /// An internal note.
    AddNote {
        note_id: Uuid,
        text: String,
        author_id: Option<Uuid>,
    },
    /// The bot answers again.
    HandBack,
    /// The visitor rates the conversation once a person closed it;
    /// `asked` is whether the bot asks for ratings at all.
    Rate {
        score: u8,
        comment: Option<String>,
        asked: bool,
    },
    Close,
    Reopen,
    /// Replace, add or remove tags.
    Tags(TagChange),
    /// Rate one of the bot's answers.
    Feedback {
        message_id: Uuid,
        up: bool,
        comment: Option<String>,
        by: String,
    },
}

/// Longest feedback comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

#[derive(Debug, Clone)]
pub enum TagChange {
    Set(Vec<String>),
    Add(Vec<String>),
    Remove(Vec<String>),
}

/// A tag: 1 to 50 characters of lowercase letters, digits, `-`, `_`, `:`.
fn check_tag(tag: &str) -> Result<(), DomainError> {
    let ok = (1..=50).contains(&tag.chars().count())
        && tag
            .chars()
            .all(|c| c.is_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "tags",
            format!("`{tag}` is not a tag: use 1 to 50 lowercase letters, digits, `-`, `_` or `:`"),
        ))
    }
}

/// Phrases that ask for a person anywhere in a message, in the languages
/// bots are most often set to.
const PERSON_PHRASES: &[&str] = &[
    "talk to a human",
    "speak to a human",
    "talk to a person",
    "speak to a person",
    "real person",
    "human agent",
    "live agent",
    "talk to someone",
    "speak to someone",
    "customer service",
    "un humain",
    "une vraie personne",
    "un conseiller",
    "parler à quelqu'un",
    "echte person",
    "einen mitarbeiter",
    "mit einem menschen",
    "una persona real",
    "un humano",
    "hablar con alguien",
    "um humano",
    "falar com alguém",
    "un operatore",
];

/// Single words that ask for a person when they are most of a short message.
const PERSON_WORDS: &[&str] = &[
    "human",
    "agent",
    "operator",
    "representative",
    "person",
    "humain",
    "conseiller",
    "mensch",
    "mitarbeiter",
    "humano",
    "agente",
    "operador",
    "atendente",
    "operatore",
];

/// Whether a visitor message asks for a person.
pub fn asks_for_person(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    if PERSON_PHRASES.iter().any(|p| joined.contains(&format!(" {p} "))) {
        return true;
    }
    words.len() <= 5 && words.iter().any(|w| PERSON_WORDS.contains(w))
}

pub struct Conversation;

/// What is wrong with a message's text, if anything: empty, or too long.
pub fn message_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("must not be empty".into());
    }
    let chars = text.chars().count();
    (chars > MAX_MESSAGE_CHARS).then(|| format!("is {chars} characters long; at most {MAX_MESSAGE_CHARS} are allowed"))
}

fn validate_text(text: &str) -> Result<(), DomainError> {
    match message_problem(text) {
        Some(problem) => Err(DomainError::invalid("message", problem)),
        None => Ok(()),
    }
}

/// The events that hand a conversation to a person: none when a person
/// already has it; a closed one is reopened first.
fn escalation(state: &ConversationState, conversation_id: Uuid, reason: &str) -> Vec<ConversationEvent> {
    if state.status == Status::Escalated {
        return vec![];
    }
    let mut events = Vec::new();
    if state.status == Status::Closed {
        events.push(ConversationEvent::Reopened(Reopened {
            conversation_id,
            reason: "api".into(),
        }));
    }
    events.push(ConversationEvent::Escalated(Escalated {
        conversation_id,
        reason: reason.into(),
    }));
    events
}

impl Aggregate for Conversation {
    const STREAM_TYPE: &'static str = "conversation";
    type State = ConversationState;
    type Event = ConversationEvent;
    type Command = ConversationCommand;

    fn apply(state: &mut ConversationState, event: &ConversationEvent) {
        match event {
            ConversationEvent::Started(e) => {
                state.conversation_id = Some(e.conversation_id);
                state.org_id = Some(e.org_id);
                state.bot_id = Some(e.bot_id);
            }
            ConversationEvent::Escalated(_) => state.status = Status::Escalated,
            ConversationEvent::AdminReplied(e) => {
                if e.author_id.is_some() {
                    state.last_author = e.author_id;
                }
                state.turns.push(Turn {
                    message_id: e.message_id,
                    role: "assistant",
                    text: e.text.clone(),
                });
                // A person answered: whatever waited is answered.
                state.pending.clear();
            }
            ConversationEvent::Closed(_) => state.status = Status::Closed,
            ConversationEvent::Reopened(_) => state.status = Status::Open,
            ConversationEvent::TagsChanged(e) => state.tags = e.tags.clone(),
            ConversationEvent::FeedbackReceived(_) => {}
            ConversationEvent::AttachmentAdded(e) => state.attachments.push(e.message_id),
            ConversationEvent::Assigned(e) => state.assignee = Some(e.assignee_id),
            ConversationEvent::Unassigned(_) => state.assignee = None,
            ConversationEvent::NoteAdded(_) | ConversationEvent::Rated(_) => {}
            ConversationEvent::HandedBack(_) => {
                state.status = Status::Open;
                state.assignee = None;
                state.unanswered_in_a_row = 0;
            }
            ConversationEvent::MessageReceived(e) => {
                state.turns.push(Turn {
                    message_id: e.message_id,
                    role: "user",
                    text: e.text.clone(),
                });
                state.pending.push(e.message_id);
            }
            ConversationEvent::Answered(e) => {
                state.turns.push(Turn {
                    message_id: e.message_id,
                    role: "assistant",
                    text: e.text.clone(),
                });
                state.pending.retain(|m| *m != e.reply_to);
                state.answers.push(e.message_id);
                state.unanswered_in_a_row = if e.unanswered { state.unanswered_in_a_row + 1 } else { 0 };
            }
            ConversationEvent::AnswerFailed(e) => state.pending.retain(|m| *m != e.reply_to),
        }
    }

    fn decide(state: &ConversationState, command: ConversationCommand) -> Result<Vec<ConversationEvent>, DomainError> {
        match command {
            ConversationCommand::Start {
                conversation_id,
                org_id,
                bot_id,
                visitor_id,
                channel,
                token_hash,
            } => {
                if state.conversation_id.is_some() {
                    return Err(DomainError::ConversationExists);
                }
                Ok(vec![ConversationEvent::Started(ConversationStarted {
                    conversation_id,
                    org_id,
                    bot_id,
                    visitor_id,
                    channel,
                    token_hash,
                })])
            }
            ConversationCommand::Attach(attachment) => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                state.room_for_attachment(attachment.message_id)?;
                Ok(vec![ConversationEvent::AttachmentAdded(AttachmentAdded {
                    conversation_id,
                    ..attachment
                })])
            }
            ConversationCommand::Receive {
                conversation_id,
                org_id,
                bot_id,
                visitor_id,
                channel,
                message_id,
                text,
                system,
                language,
                metadata,
                human_only,
            } => {
                validate_text(&text)?;
                let mut events = Vec::new();
                // An existing conversation keeps its own id.
                let conversation_id = state.conversation_id.unwrap_or(conversation_id);
                match state.conversation_id {
                    Some(_) if state.belongs_to(org_id, bot_id) => {
                        // A visitor writing into a closed conversation reopens it.
                        if state.status == Status::Closed {
                            events.push(ConversationEvent::Reopened(Reopened {
                                conversation_id,
                                reason: "visitor_message".into(),
                            }));
                        }
                    }
                    Some(_) => return Err(DomainError::ConversationNotFound),
                    None => events.push(ConversationEvent::Started(ConversationStarted {
                        conversation_id,
                        org_id,
                        bot_id,
                        visitor_id,
                        channel,
                        token_hash: None,
                    })),
                }
                events.push(ConversationEvent::MessageReceived(MessageReceived {
                    conversation_id,
                    message_id,
                    text,
                    system,
                    language,
                    metadata,
                }));
                if human_only && state.status != Status::Escalated {
                    events.push(ConversationEvent::Escalated(Escalated {
                        conversation_id,
                        reason: "human_only".into(),
                    }));
                }
                Ok(events)
            }
            ConversationCommand::Answer {
                answer,
                escalate_after_unanswered,
            } => {
                if state.conversation_id != Some(answer.conversation_id) {
                    return Err(DomainError::ConversationNotFound);
                }
                if !state.pending.contains(&answer.reply_to) {
                    // Already answered (a retried append): nothing to do.
                    return Ok(vec![]);
                }
                let question = state
                    .turns
                    .iter()
                    .find(|t| t.message_id == answer.reply_to)
                    .map_or("", |t| t.text.as_str());
                let fallbacks_in_a_row = if answer.unanswered {
                    state.unanswered_in_a_row + 1
                } else {
                    0
                };
                let reason = if asks_for_person(question) {
                    Some("visitor_request")
                } else if escalate_after_unanswered > 0 && fallbacks_in_a_row >= escalate_after_unanswered {
                    Some("unanswered")
                } else {
                    None
                };
                let conversation_id = answer.conversation_id;
                let mut events = vec![ConversationEvent::Answered(*answer)];
                if let Some(reason) = reason {
                    events.extend(escalation(state, conversation_id, reason));
                }
                Ok(events)
            }
            ConversationCommand::Fail(failed) => {
                if state.conversation_id != Some(failed.conversation_id) {
                    return Err(DomainError::ConversationNotFound);
                }
                if !state.pending.contains(&failed.reply_to) {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::AnswerFailed(failed)])
            }
            ConversationCommand::Escalate { reason } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                Ok(escalation(state, conversation_id, &reason))
            }
            ConversationCommand::AdminReply {
                message_id,
                text,
                author,
            } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                validate_text(&text)?;
                let mut events = escalation(state, conversation_id, "api");
                // A member who replies to an unassigned conversation takes it.
                if let Some((member_id, _)) = &author
                    && state.assignee.is_none()
                {
                    events.push(ConversationEvent::Assigned(Assigned {
                        conversation_id,
                        assignee_id: *member_id,
                        how: "claim".into(),
                    }));
                }
                let (author_id, author_name) = author.map_or((None, None), |(id, name)| (Some(id), Some(name)));
                events.push(ConversationEvent::AdminReplied(AdminReplied {
                    conversation_id,
                    message_id,
                    text,
                    author_id,
                    author_name,
                }));
                Ok(events)
            }
            ConversationCommand::Claim { member_id } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                match state.assignee {
                    Some(current) if current == member_id => Ok(vec![]),
                    Some(_) => Err(DomainError::AlreadyAssigned),
                    None => {
                        let mut events = escalation(state, conversation_id, "claimed");
                        events.push(ConversationEvent::Assigned(Assigned {
                            conversation_id,
                            assignee_id: member_id,
                            how: "claim".into(),
                        }));
                        Ok(events)
                    }
                }
            }
            ConversationCommand::Assign { member_id, how } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if state.assignee == Some(member_id) {
                    return Ok(vec![]);
                }
                let mut events = escalation(state, conversation_id, "assigned");
                events.push(ConversationEvent::Assigned(Assigned {
                    conversation_id,
                    assignee_id: member_id,
                    how,
                }));
                Ok(events)
            }
            ConversationCommand::Unassign => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if state.assignee.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::Unassigned(Unassigned { conversation_id })])
            }
            ConversationCommand::AddNote {
                note_id,
                text,
                author_id,
            } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                validate_text(&text)?;
                Ok(vec![ConversationEvent::NoteAdded(NoteAdded {
                    conversation_id,
                    note_id,
                    text,
                    author_id,
                })])
            }
            ConversationCommand::HandBack => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if state.status != Status::Escalated {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::HandedBack(HandedBack { conversation_id })])
            }
            ConversationCommand::Rate { score, comment, asked } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if !asked {
                    return Err(DomainError::invalid(
                        "score",
                        "this bot does not ask visitors to rate conversations",
                    ));
                }
                if state.status != Status::Closed {
                    return Err(DomainError::invalid(
                        "score",
                        "a conversation is rated once a person has closed it",
                    ));
                }
                if !(1..=5).contains(&score) {
                    return Err(DomainError::invalid("score", "must be 1 to 5"));
                }
                let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
                if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
                    return Err(DomainError::invalid(
                        "comment",
                        format!("at most {MAX_COMMENT_CHARS} characters"),
                    ));
                }
                Ok(vec![ConversationEvent::Rated(Rated {
                    conversation_id,
                    score,
                    comment,
                    member_id: state.assignee.or(state.last_author),
                })])
            }
            ConversationCommand::Close => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if state.status == Status::Closed {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::Closed(Closed { conversation_id })])
            }
            ConversationCommand::Tags(change) => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                let mut tags: std::collections::BTreeSet<String> = state.tags.iter().cloned().collect();
                match change {
                    TagChange::Set(new) => {
                        new.iter().try_for_each(|t| check_tag(t))?;
                        tags = new.into_iter().collect();
                    }
                    TagChange::Add(new) => {
                        new.iter().try_for_each(|t| check_tag(t))?;
                        tags.extend(new);
                    }
                    TagChange::Remove(gone) => {
                        for t in gone {
                            tags.remove(&t);
                        }
                    }
                }
                if tags.len() > MAX_TAGS {
                    return Err(DomainError::invalid(
                        "tags",
                        format!("a conversation can have at most {MAX_TAGS} tags"),
                    ));
                }
                let tags: Vec<String> = tags.into_iter().collect();
                if tags == state.tags {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::TagsChanged(TagsChanged {
                    conversation_id,
                    tags,
                })])
            }
            ConversationCommand::Feedback {
                message_id,
                up,
                comment,
                by,
            } => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if !state.answers.contains(&message_id) {
                    return Err(DomainError::MessageNotFound);
                }
                let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
                if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
                    return Err(DomainError::invalid(
                        "comment",
                        format!("at most {MAX_COMMENT_CHARS} characters"),
                    ));
                }
                Ok(vec![ConversationEvent::FeedbackReceived(FeedbackReceived {
                    conversation_id,
                    message_id,
                    rating: if up { "up" } else { "down" }.into(),
                    comment,
                    by,
                })])
            }
            ConversationCommand::Reopen => {
                let conversation_id = state.conversation_id.ok_or(DomainError::ConversationNotFound)?;
                if state.status != Status::Closed {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::Reopened(Reopened {
                    conversation_id,
                    reason: "api".into(),
                })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;

    fn given(events: &[ConversationEvent]) -> ConversationState {
        let mut state = ConversationState::default();
        for e in events {
            Conversation::apply(&mut state, e);
        }
        state
    }

    fn receive(org_id: Uuid, bot_id: Uuid, text: &str) -> ConversationCommand {
        ConversationCommand::Receive {
            conversation_id: Uuid::now_v7(),
            org_id,
            bot_id,
            visitor_id: Some("v1".into()),
            channel: "api".into(),
            message_id: Uuid::now_v7(),
            text: text.into(),
            system: None,
            language: None,
            metadata: Value::Null,
            human_only: false,
        }
    }

    fn answer(conversation_id: Uuid, reply_to: Uuid) -> Answered {
        Answered {
            conversation_id,
            message_id: Uuid::now_v7(),
            reply_to,
            text: "It costs 10 € [1].".into(),
            sources: vec![],
            provider: "extractive".into(),
            model: None,
            unanswered: false,
            status: "complete".into(),
            usage: Usage::default(),
        }
    }

    fn answer_command(conversation_id: Uuid, reply_to: Uuid) -> ConversationCommand {
        ConversationCommand::Answer {
            answer: Box::new(answer(conversation_id, reply_to)),
            escalate_after_unanswered: 2,
        }
    }

    #[test]
    fn visitors_rate_closed_conversations_from_1_to_5() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let mut events = Conversation::decide(&ConversationState::default(), receive(org, bot, "Help?")).unwrap();
        let ana = Uuid::now_v7();
        let reply = ConversationCommand::AdminReply {
            message_id: Uuid::now_v7(),
            text: "Done.".into(),
            author: Some((ana, "Ana".into())),
        };
        events.extend(Conversation::decide(&given(&events), reply).unwrap());
        let rate = |score, asked| ConversationCommand::Rate {
            score,
            comment: Some(" quick and kind ".into()),
            asked,
        };
        assert!(
            Conversation::decide(&given(&events), rate(5, true)).is_err(),
            "not closed yet"
        );
        events.extend(Conversation::decide(&given(&events), ConversationCommand::Close).unwrap());
        assert!(Conversation::decide(&given(&events), rate(6, true)).is_err());
        assert!(
            Conversation::decide(&given(&events), rate(5, false)).is_err(),
            "survey off"
        );
        let rated = Conversation::decide(&given(&events), rate(5, true)).unwrap();
        let [ConversationEvent::Rated(r)] = rated.as_slice() else {
            panic!("{rated:?}")
        };
        assert_eq!(
            (r.score, r.comment.as_deref(), r.member_id),
            (5, Some("quick and kind"), Some(ana))
        );
    }

    #[test]
    fn a_human_only_bot_hands_every_conversation_to_a_person() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let ask = |state: &ConversationState, text: &str| {
            let mut command = receive(org, bot, text);
            if let ConversationCommand::Receive {
                human_only,
                conversation_id,
                ..
            } = &mut command
            {
                *human_only = true;
                if let Some(id) = state.conversation_id {
                    *conversation_id = id;
                }
            }
            Conversation::decide(state, command).unwrap()
        };
        let first = ask(&ConversationState::default(), "Hello?");
        assert_eq!(
            first.iter().map(DomainEvent::event_type).collect::<Vec<_>>(),
            vec![CONVERSATION_STARTED, MESSAGE_RECEIVED, ESCALATED]
        );
        let state = given(&first);
        assert_eq!(state.status, Status::Escalated);
        let second = ask(&state, "Anyone there?");
        assert_eq!(second.len(), 1, "already with a person: {second:?}");
    }

    #[test]
    fn members_claim_assign_note_and_hand_back() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let mut state = ConversationState::default();
        let run = |state: &mut ConversationState, command| {
            let events = Conversation::decide(state, command).unwrap();
            for e in &events {
                Conversation::apply(state, e);
            }
            events
        };
        run(&mut state, receive(org, bot, "Where is my parcel?"));
        let (ana, bo) = (Uuid::now_v7(), Uuid::now_v7());
        // Claiming hands the conversation to a person: the bot stops.
        let events = run(&mut state, ConversationCommand::Claim { member_id: ana });
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(state.status, Status::Escalated);
        assert_eq!(state.assignee, Some(ana));
        assert!(run(&mut state, ConversationCommand::Claim { member_id: ana }).is_empty());
        assert_eq!(
            Conversation::decide(&state, ConversationCommand::Claim { member_id: bo }).unwrap_err(),
            DomainError::AlreadyAssigned
        );
        let assign = ConversationCommand::Assign {
            member_id: bo,
            how: "assign".into(),
        };
        run(&mut state, assign);
        assert_eq!(state.assignee, Some(bo));
        let note = ConversationCommand::AddNote {
            note_id: Uuid::now_v7(),
            text: "VIP customer, be kind".into(),
            author_id: Some(bo),
        };
        assert!(matches!(run(&mut state, note)[0], ConversationEvent::NoteAdded(_)));
        let reply = ConversationCommand::AdminReply {
            message_id: Uuid::now_v7(),
            text: "It ships today.".into(),
            author: Some((bo, "Bo".into())),
        };
        let events = run(&mut state, reply);
        let ConversationEvent::AdminReplied(replied) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(replied.author_name.as_deref(), Some("Bo"));
        run(&mut state, ConversationCommand::HandBack);
        assert_eq!(state.status, Status::Open);
        assert_eq!(state.assignee, None);
        assert!(run(&mut state, ConversationCommand::HandBack).is_empty());
        // A member replying to an unassigned conversation takes it.
        let reply = ConversationCommand::AdminReply {
            message_id: Uuid::now_v7(),
            text: "Back again.".into(),
            author: Some((ana, "Ana".into())),
        };
        run(&mut state, reply);
        assert_eq!(state.assignee, Some(ana));
        assert!(!run(&mut state, ConversationCommand::Unassign).is_empty());
        assert_eq!(state.assignee, None);
    }

    #[test]
    fn recognises_requests_for_a_person() {
        for yes in [
            "Can I talk to a human please?",
            "agent",
            "I want a REAL PERSON",
            "Je voudrais parler à quelqu'un",
            "Operator!",
            "quiero hablar con alguien",
        ] {
            assert!(asks_for_person(yes), "{yes}");
        }
        for no in [
            "How do I configure the agent API for my build pipeline?",
            "What is human resources' phone number at the head office?",
            "How much is the Pro plan?",
        ] {
            assert!(!asks_for_person(no), "{no}");
        }
    }

    #[test]
    fn the_answer_and_the_hand_off_are_one_append() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        // Asked for a person: the answer and the hand-off together.
        let events =
            Conversation::decide(&ConversationState::default(), receive(org, bot, "real person please")).unwrap();
        let state = given(&events);
        let (cid, mid) = (state.conversation_id.unwrap(), state.pending[0]);
        let decided = Conversation::decide(&state, answer_command(cid, mid)).unwrap();
        let types: Vec<&str> = decided.iter().map(|e| e.event_type()).collect();
        assert_eq!(types, [ANSWERED, ESCALATED]);
        assert!(matches!(&decided[1], ConversationEvent::Escalated(e) if e.reason == "visitor_request"));

        // Fallback answers: the second in a row hands over; a real answer resets the count.
        let mut all = Conversation::decide(&ConversationState::default(), receive(org, bot, "Price?")).unwrap();
        let cid = given(&all).conversation_id.unwrap();
        let turn = |all: &mut Vec<ConversationEvent>, question: &str, unanswered: bool, after: u32| {
            if given(all).pending.is_empty() {
                let ask = ConversationCommand::Receive {
                    conversation_id: cid,
                    org_id: org,
                    bot_id: bot,
                    visitor_id: Some("v1".into()),
                    channel: "api".into(),
                    message_id: Uuid::now_v7(),
                    text: question.into(),
                    system: None,
                    language: None,
                    metadata: Value::Null,
                    human_only: false,
                };
                all.extend(Conversation::decide(&given(all), ask).unwrap());
            }
            let state = given(all);
            let command = ConversationCommand::Answer {
                answer: Box::new(Answered {
                    unanswered,
                    ..answer(cid, state.pending[0])
                }),
                escalate_after_unanswered: after,
            };
            let decided = Conversation::decide(&state, command).unwrap();
            all.extend(decided.clone());
            decided.iter().map(|e| e.event_type()).collect::<Vec<_>>()
        };
        assert_eq!(turn(&mut all, "Price?", true, 2), [ANSWERED], "the first fallback");
        assert_eq!(turn(&mut all, "Opening hours?", false, 2), [ANSWERED], "an answer");
        assert_eq!(
            turn(&mut all, "Refunds?", true, 2),
            [ANSWERED],
            "counted again from one"
        );
        assert_eq!(given(&all).unanswered_in_a_row, 1);
        assert_eq!(turn(&mut all, "Warranty?", true, 0), [ANSWERED], "0 never hands over");
        assert_eq!(
            turn(&mut all, "Shipping?", true, 3),
            [ANSWERED, ESCALATED],
            "the third in a row"
        );
        assert_eq!(given(&all).status, Status::Escalated);
    }

    #[test]
    fn first_message_starts_the_conversation_and_waits_for_an_answer() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let events = Conversation::decide(&ConversationState::default(), receive(org, bot, "Hello?")).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_type(), CONVERSATION_STARTED);
        assert_eq!(events[1].event_type(), MESSAGE_RECEIVED);
        let state = given(&events);
        assert!(state.belongs_to(org, bot));
        assert_eq!(state.pending.len(), 1);

        let again = Conversation::decide(&state, receive(org, bot, "Anyone?")).unwrap();
        assert_eq!(again.len(), 1, "an existing conversation is not started again");
    }

    #[test]
    fn an_answer_clears_the_pending_message_once() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let events = Conversation::decide(&ConversationState::default(), receive(org, bot, "Price?")).unwrap();
        let state = given(&events);
        let (cid, mid) = (state.conversation_id.unwrap(), state.pending[0]);
        let answered = Conversation::decide(&state, answer_command(cid, mid)).unwrap();
        let mut all = events.clone();
        all.extend(answered);
        let state = given(&all);
        assert!(state.pending.is_empty());
        assert_eq!(
            state.turns.iter().map(|t| t.role).collect::<Vec<_>>(),
            ["user", "assistant"]
        );
        let twice = Conversation::decide(&state, answer_command(cid, mid)).unwrap();
        assert!(twice.is_empty());
    }

    #[test]
    fn hand_off_close_and_reopen() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let mut events = Conversation::decide(&ConversationState::default(), receive(org, bot, "Hi")).unwrap();
        let escalate = |events: &[ConversationEvent], reason: &str| {
            Conversation::decide(&given(events), ConversationCommand::Escalate { reason: reason.into() }).unwrap()
        };
        let e = escalate(&events, "visitor_request");
        assert_eq!(e[0].event_type(), ESCALATED);
        events.extend(e);
        assert_eq!(given(&events).status, Status::Escalated);
        assert!(escalate(&events, "api").is_empty(), "escalating twice records nothing");
        let reply = ConversationCommand::AdminReply {
            message_id: Uuid::now_v7(),
            text: "Hello, I am Ana.".into(),
            author: None,
        };
        events.extend(Conversation::decide(&given(&events), reply).unwrap());
        assert!(given(&events).pending.is_empty(), "the person answered what waited");
        events.extend(Conversation::decide(&given(&events), ConversationCommand::Close).unwrap());
        assert_eq!(given(&events).status, Status::Closed);
        // A visitor message reopens it.
        let again = Conversation::decide(&given(&events), receive(org, bot, "One more thing")).unwrap();
        assert_eq!(
            again.iter().map(DomainEvent::event_type).collect::<Vec<_>>(),
            [REOPENED, MESSAGE_RECEIVED]
        );
        events.extend(again);
        assert_eq!(given(&events).status, Status::Open);
    }

    #[test]
    fn attachments_are_capped_per_message_and_per_conversation() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let mut state = given(&Conversation::decide(&ConversationState::default(), receive(org, bot, "Hi")).unwrap());
        let refused = |state: &ConversationState, message_id: Uuid| match state.room_for_attachment(message_id) {
            Err(DomainError::Validation(errors)) => errors[0].message.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Only the visitor's own messages take files.
        assert!(refused(&state, Uuid::now_v7()).contains("visitor's messages"));
        let add_message = |state: &mut ConversationState| {
            let mut turn = state.turns[0].clone();
            turn.message_id = Uuid::now_v7();
            state.turns.push(turn.clone());
            turn.message_id
        };
        let mut messages = vec![state.turns[0].message_id];
        messages.extend((0..4).map(|_| add_message(&mut state)));
        for message_id in &messages[..4] {
            for _ in 0..MAX_ATTACHMENTS_PER_MESSAGE {
                state.room_for_attachment(*message_id).unwrap();
                state.attachments.push(*message_id);
            }
            assert!(refused(&state, *message_id).contains("a message can carry at most 5"));
        }
        assert_eq!(state.attachments.len(), MAX_ATTACHMENTS_PER_CONVERSATION);
        // The fifth message has none yet, but the conversation is full.
        assert!(refused(&state, messages[4]).contains("a conversation can carry at most 20"));
    }

    #[test]
    fn refuses_other_bots_and_bad_text() {
        let (org, bot) = (Uuid::now_v7(), Uuid::now_v7());
        let state = given(&Conversation::decide(&ConversationState::default(), receive(org, bot, "Hi")).unwrap());
        assert_eq!(
            Conversation::decide(&state, receive(org, Uuid::now_v7(), "Hi")).unwrap_err(),
            DomainError::ConversationNotFound
        );
        assert_eq!(
            Conversation::decide(&state, receive(Uuid::now_v7(), bot, "Hi")).unwrap_err(),
            DomainError::ConversationNotFound
        );
        assert!(matches!(
            Conversation::decide(&state, receive(org, bot, "  ")),
            Err(DomainError::Validation(_))
        ));
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(matches!(
            Conversation::decide(&state, receive(org, bot, &long)),
            Err(DomainError::Validation(_))
        ));
        let exactly = "é".repeat(MAX_MESSAGE_CHARS);
        assert!(Conversation::decide(&state, receive(org, bot, &exactly)).is_ok());
    }
}
