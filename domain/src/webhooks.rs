//! Webhooks without a database: the public event catalogue, signatures
//! (HMAC-SHA256 over the timestamp and the body), the retry schedule and the
//! envelope every delivery is sent in. The delivery records live in
//! `store::deliveries`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

pub use crate::aggregates::webhook::{EVENT_TYPES, PING, public_type};
use crate::store::entities::webhooks;

/// Longest response body kept in the delivery log.
pub const MAX_LOGGED_BODY: usize = 2048;

/// `hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac
}

/// The `X-Parley-Signature` header: `v1=<hex>` per secret, comma-separated
/// (two during a rotation's grace period, the newest first).
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| format!("v1={}", sign(s, timestamp, body)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The documented check a subscriber makes: the timestamp is recent and one
/// of the `v1=` signatures is the HMAC of `timestamp.body` with its secret.
pub fn verify(header: &str, secret: &str, timestamp: &str, body: &str, now: i64, tolerance_secs: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > tolerance_secs {
        return false;
    }
    let expected = mac(secret, ts, body);
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|hex_sig| hex::decode(hex_sig).ok())
        // In constant time: the comparison tells nothing of how much matched.
        .any(|given| expected.clone().verify_slice(&given).is_ok())
}

/// Delay before retry `attempt` (1 for the first retry): `base · 2^(attempt-1)`,
/// at most an hour, then a random 50–100 % of it so that retries spread out.
pub fn retry_delay(attempt: u32, base: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(Duration::from_secs(3600));
    capped.mul_f64(rand::random_range(0.5..=1.0))
}

/// The body every delivery has: `{"id", "type", "created_at", "data"}`.
pub fn envelope(id: Uuid, event_type: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "created_at": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": data,
    })
}

/// The secrets that sign a delivery now: the current one, and the previous
/// one while its grace period lasts.
pub fn signing_secrets(endpoint: &webhooks::Model, at: DateTime<Utc>) -> Vec<&str> {
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
        && until > at
        && !previous.is_empty()
    {
        secrets.push(previous);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::conversation::{
        ADMIN_REPLIED, ANSWERED, CONVERSATION_STARTED, ESCALATED, FEEDBACK_RECEIVED, MESSAGE_RECEIVED, REOPENED,
    };
    use crate::aggregates::lead::LEAD_UPDATED;
    use crate::aggregates::source::SOURCE_INDEXED;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let body = r#"{"id":"1","type":"message.created"}"#;
        let header = signature_header(&["whsec_new", "whsec_old"], 1_700_000_000, body);
        assert_eq!(header.matches("v1=").count(), 2);
        assert!(verify(&header, "whsec_new", "1700000000", body, 1_700_000_100, 300));
        assert!(verify(&header, "whsec_old", "1700000000", body, 1_700_000_100, 300));
        assert!(!verify(&header, "whsec_other", "1700000000", body, 1_700_000_100, 300));
        let tampered = body.replace("message", "massage");
        assert!(!verify(
            &header,
            "whsec_new",
            "1700000000",
            &tampered,
            1_700_000_100,
            300
        ));
        assert!(
            !verify(&header, "whsec_new", "1700000001", body, 1_700_000_100, 300),
            "the timestamp is signed"
        );
        assert!(
            !verify(&header, "whsec_new", "1700000000", body, 1_700_001_000, 300),
            "too old"
        );
        // HMAC-SHA256 with key "key" over "0.body", as Python's hmac module computes it.
        assert_eq!(
            sign("key", 0, "body"),
            "e0af04d5c83b24373ff89f540d0c8fd9a4e097e2b3ee8318ab5541047697626d"
        );
    }

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        let base = Duration::from_secs(10);
        for attempt in 1..=30 {
            let d = retry_delay(attempt, base);
            let full = base
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(Duration::from_secs(3600));
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn the_catalogue_covers_the_mapped_types() {
        use crate::aggregates::conversation::CLOSED;
        use crate::aggregates::lead::LEAD_CAPTURED;
        use crate::aggregates::source::SOURCE_FAILED;
        for stored in [
            CONVERSATION_STARTED,
            MESSAGE_RECEIVED,
            ANSWERED,
            ESCALATED,
            ADMIN_REPLIED,
            CLOSED,
            REOPENED,
            FEEDBACK_RECEIVED,
            LEAD_CAPTURED,
            LEAD_UPDATED,
            SOURCE_INDEXED,
            SOURCE_FAILED,
            crate::aggregates::conversation::ASSIGNED,
            crate::aggregates::conversation::UNASSIGNED,
            crate::aggregates::conversation::HANDED_BACK,
            crate::aggregates::conversation::NOTE_ADDED,
            crate::aggregates::conversation::RATED,
        ] {
            let public = public_type(stored).unwrap();
            assert!(EVENT_TYPES.contains(&public), "{public}");
        }
        assert_eq!(public_type("bot.created"), None);
    }
}
