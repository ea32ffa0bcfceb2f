//! Parley's HTTP API (poem-openapi) and the application that runs it with the
//! job workers.

pub mod access;
pub mod admin;
pub mod app;
pub mod bench;
pub mod board;
pub mod chat;
pub mod config;
pub mod error;
pub mod files;
pub mod http;
pub mod idempotency;
pub mod ingestion;
pub mod live;
pub mod people;
pub mod routes;
pub mod schemas;
pub mod security;
pub mod spec;
pub mod state;
pub mod telemetry;
pub mod types;
pub mod typing;
pub mod widget_assets;

pub use app::{Application, Roles};
pub use config::Settings;
