//! Parley's HTTP API (poem-openapi) and the application that runs it with the
//! job workers.

pub mod access;
pub mod admin;
pub mod app;
pub mod bench;
pub mod bench_answerability;
pub mod bench_documents;
pub mod bench_hostile;
pub mod bench_pdf;
pub mod bench_retrieval;
pub mod board;
pub mod chat;
pub mod client_ip;
pub mod config;
pub mod cors;
pub mod error;
pub mod files;
pub mod header_timeout;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
pub mod routes;
pub mod schemas;
pub mod security;
pub mod spec;
pub mod state;
pub mod telemetry;
pub mod types;
pub mod widget_assets;

pub use app::{Application, Roles};
pub use config::Settings;
