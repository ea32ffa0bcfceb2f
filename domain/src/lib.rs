//! Parley's core: ids, aggregates (commands, events, deciders), the event
//! store with its projections, and the jobs that events cause. No HTTP here.

pub mod aggregates;
pub mod availability;
pub mod chunking;
pub mod document;
pub mod error;
pub mod event;
pub mod ids;
pub mod insights;
pub mod jobs;
pub mod ratelimit;
pub mod retrieval;
pub mod roles;
pub mod store;
pub mod usage;
pub mod webhooks;
pub mod widget;

pub use error::{DomainError, ErrorCode, FieldError, HttpStatus};
pub use event::{Actor, Metadata, RecordedEvent};
pub use roles::Role;
pub use store::{Store, StoreError};
