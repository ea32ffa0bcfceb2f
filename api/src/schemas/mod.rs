//! Transfer types that several route files show: conversations and their
//! messages, chat answers, the widget's settings, roles. Types of one operation stay
//! in its route file.

pub mod chat;
pub mod conversation;
pub mod role;
pub mod widget;
