//! Parley's background work: the outbox dispatcher that turns events into
//! jobs, the job queue (apalis on SQLite or Redis) and the job handlers.

pub mod dispatcher;
pub mod error;
pub mod handlers;
pub mod ingest;
pub mod net;
pub mod queue;
pub mod runtime;
pub mod webhooks;

pub use dispatcher::Dispatcher;
pub use error::JobError;
pub use handlers::JobContext;
pub use queue::JobQueue;
