//! Webhook delivery: one attempt per job. The job claims its delivery with a
//! lease (so two copies of the job never send it at once), posts the signed
//! body, records the attempt and schedules the next one on failure. A sender
//! that dies mid-attempt leaves the lease to expire; the dispatcher then
//! hands the delivery to a new job, which sends it again with the same event id.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use parley_domain::aggregates::webhook::{Webhook, WebhookCommand};
use parley_domain::event::Metadata;
use parley_domain::store::deliveries::{self, Attempt, Outcome};
use parley_domain::store::{Execute, Store, now};
use parley_domain::webhooks::{self, MAX_LOGGED_BODY};
use uuid::Uuid;

use crate::error::JobError;
use crate::net::{self, NetPolicy, reqwest};

/// Hands a stored delivery to a job. A queue that refuses it is logged, not
/// an error: the delivery is marked unqueued and the dispatcher's scan of
/// due deliveries picks it up.
pub(crate) async fn hand_over(
    queue: &crate::JobQueue,
    store: &Store,
    org_id: Uuid,
    delivery_id: Uuid,
    event_id: Uuid,
) -> Result<(), sea_orm::DbErr> {
    let job = parley_domain::jobs::Job::deliver_webhook(org_id, delivery_id, event_id);
    if let Err(e) = queue.enqueue(job).await {
        tracing::warn!(error = %e, %delivery_id, "could not queue a delivery now");
        deliveries::unqueued(store, delivery_id).await?;
    }
    Ok(())
}

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub net: NetPolicy,
    /// Longest wait for an endpoint's answer.
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles (with jitter).
    pub retry_base: Duration,
    /// How long after its creation a delivery is still retried.
    pub retry_window: Duration,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            net: NetPolicy::default(),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            retry_window: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(72 * 3600),
        }
    }
}

pub const USER_AGENT: &str = concat!("Parley-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Sends deliveries; one per process, shared by the job handlers.
pub struct Deliverer {
    pub settings: WebhookSettings,
    client: reqwest::Client,
}

impl Deliverer {
    pub fn new(settings: WebhookSettings) -> anyhow::Result<Self> {
        let client = net::webhook_client(&settings.net, settings.timeout, USER_AGENT)?;
        Ok(Deliverer { settings, client })
    }

    /// Posts one delivery; `Err` carries what to log for a failed request.
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<(u16, Option<String>), String> {
        net::check_url(url, &self.settings.net)
            .await
            .map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", self.settings.timeout.as_secs())
            } else if e.is_connect() {
                format!("cannot connect: {e}")
            } else {
                format!("request failed: {e}")
            }
        })?;
        let status = response.status().as_u16();
        // Keep the start of the answer for the delivery log, read no more.
        let mut response = response;
        let mut kept = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = (MAX_LOGGED_BODY + 1).saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if kept.len() > MAX_LOGGED_BODY {
                break;
            }
        }
        // NUL cannot be stored in a PostgreSQL text column.
        let mut text = String::from_utf8_lossy(&kept[..kept.len().min(MAX_LOGGED_BODY)]).replace('\0', "\u{fffd}");
        if kept.len() > MAX_LOGGED_BODY {
            text.push('…');
        }
        Ok((status, (!text.is_empty()).then_some(text)))
    }
}

/// One attempt of one delivery.
pub async fn deliver(store: &Store, deliverer: &Deliverer, delivery_id: Uuid) -> Result<(), JobError> {
    let settings = &deliverer.settings;
    let lease = settings.timeout + Duration::from_secs(5);
    let Some(delivery) = deliveries::claim(store, delivery_id, lease).await? else {
        tracing::info!(%delivery_id, "delivery not due, done, or being sent elsewhere");
        return Ok(());
    };
    let endpoint = deliveries::endpoint_by_id(store, delivery.webhook_id).await?;
    let Some(endpoint) = endpoint.filter(|e| e.deleted_at.is_none() && e.active) else {
        deliveries::cancel(store, &delivery, "the endpoint was disabled or deleted").await?;
        return Ok(());
    };
    let started_at = now();
    let timestamp = Utc::now().timestamp();
    let signature = webhooks::signature_header(
        &webhooks::signing_secrets(&endpoint, started_at),
        timestamp,
        &delivery.payload,
    );
    let headers = [
        ("X-Parley-Event-Id", delivery.event_id.to_string()),
        ("X-Parley-Event-Type", delivery.event_type.clone()),
        ("X-Parley-Delivery-Id", delivery.id.to_string()),
        ("X-Parley-Attempt", (delivery.attempts + 1).to_string()),
        ("X-Parley-Timestamp", timestamp.to_string()),
        ("X-Parley-Signature", signature),
    ];
    let clock = Instant::now();
    // The whole attempt, address check included, ends well before the lease.
    let result = tokio::time::timeout(
        settings.timeout + Duration::from_secs(2),
        deliverer.post(&endpoint.url, &headers, &delivery.payload),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", settings.timeout.as_secs())));
    let latency_ms = clock.elapsed().as_millis() as i64;
    let (status_code, response_body, error) = match result {
        Ok((status, body)) => (Some(status), body, None),
        Err(e) => (None, None, Some(e)),
    };
    let success = status_code.is_some_and(|s| (200..300).contains(&s));
    let gone = status_code == Some(410);
    let error = error.or_else(|| {
        status_code
            .filter(|_| !success)
            .map(|s| format!("the endpoint answered {s}"))
    });
    let retry_until = delivery.created_at + TimeDelta::from_std(settings.retry_window).unwrap_or(TimeDelta::days(1));
    let outcome = if success {
        Outcome::Delivered
    } else if gone {
        Outcome::Failed
    } else {
        let next = now()
            + TimeDelta::from_std(webhooks::retry_delay(
                u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX),
                settings.retry_base,
            ))
            .unwrap_or(TimeDelta::hours(1));
        if next > retry_until {
            Outcome::Failed
        } else {
            Outcome::Retry(next)
        }
    };
    let attempt = Attempt {
        started_at,
        status_code,
        latency_ms,
        response_body,
        error,
    };
    let recorded = deliveries::record(store, &delivery, &attempt, &outcome).await?;
    if !recorded {
        // The lease ran out and another sender has the delivery now.
        tracing::warn!(delivery_id = %delivery.id, "the delivery's lease ran out during the attempt; its outcome is not recorded");
        return Ok(());
    }
    tracing::info!(
        delivery_id = %delivery.id,
        webhook_id = %endpoint.id,
        event_type = %delivery.event_type,
        attempt = delivery.attempts + 1,
        status = ?status_code,
        latency_ms,
        outcome = ?outcome,
        "webhook delivery attempt"
    );
    let failing_since = deliveries::note_health(store, endpoint.id, success).await?;
    let disable = if gone {
        Some(("gone", "the endpoint answered 410 Gone".to_owned()))
    } else {
        failing_since
            .filter(|since| now() - *since >= TimeDelta::from_std(settings.disable_after).unwrap_or(TimeDelta::days(3)))
            .map(|since| {
                (
                    "failing",
                    format!("every delivery failed since {}", since.format("%Y-%m-%d %H:%M:%S UTC")),
                )
            })
    };
    if let Some((code, reason)) = disable {
        let executed = store
            .execute::<Webhook>(Execute {
                org_id: endpoint.org_id,
                stream_id: endpoint.id,
                expected_version: None,
                command: WebhookCommand::Disable {
                    code: code.into(),
                    reason,
                },
                metadata: Metadata::system(format!("webhook-delivery-{}", delivery.id)),
                idempotency: None,
            })
            .await;
        match executed {
            Ok(_) => tracing::warn!(webhook_id = %endpoint.id, code, "webhook endpoint disabled"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
