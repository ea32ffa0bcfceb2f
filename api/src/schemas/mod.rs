//! Transfer types that several route files show: conversations and their
//! messages, chat answers, the widget's settings. Types of one operation stay
//! in its route file.

pub mod chat;
pub mod conversation;
pub mod widget;
