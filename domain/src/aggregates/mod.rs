//! Aggregates: each keeps its commands, events, state and decisions together.

pub mod api_key;
pub mod bot;
pub mod conversation;
pub mod lead;
pub mod org;
pub mod person;
pub mod saved_reply;
pub mod source;
pub mod webhook;
