//! Identifiers. Every id is a UUIDv7: time-ordered, so lists sort by creation.

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
