//! Identifiers. Every id is a UUIDv7: time-ordered, so lists sort by creation.

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A new secret token: `prefix` and `bytes` random bytes in hex.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}
