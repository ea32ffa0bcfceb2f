//! The outbox dispatcher: follows the event log from a saved checkpoint and
//! enqueues the jobs each event causes. The checkpoint moves only after the
//! jobs are enqueued, so a crash re-enqueues (harmless: jobs are idempotent)
//! and never loses one. A lease makes one process follow at a time.

use std::time::{Duration, Instant};

use parley_domain::aggregates::source::{Source, SourceCommand};
use parley_domain::event::Metadata;
use parley_domain::jobs::{Job, jobs_for};
use parley_domain::store::deliveries;
use parley_domain::store::{Execute, Store, StoreError};
use parley_domain::{DomainError, store::read};

use crate::queue::JobQueue;

pub use parley_domain::jobs::OUTBOX;

/// How long a dispatcher's lease lasts without renewal: the longest pause
/// before another process takes over from one that died.
/// How often due scheduled refreshes are looked for.
const SCHEDULE_EVERY: Duration = Duration::from_secs(30);

pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// How often due webhook deliveries are looked for.
const DELIVERIES_EVERY: Duration = Duration::from_millis(500);

/// How often stored bytes nothing refers to (refused uploads, replaced
/// documents) are deleted; only those older than an hour.
const GARBAGE_EVERY: Duration = Duration::from_secs(600);

pub struct Dispatcher {
    store: Store,
    queue: JobQueue,
    owner: String,
    batch: u64,
    poll: Duration,
    lease_until: Option<Instant>,
    lease_ttl: Duration,
}

impl Dispatcher {
    pub fn new(store: Store, queue: JobQueue) -> Self {
        Dispatcher {
            store,
            queue,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            batch: 200,
            poll: Duration::from_millis(250),
            lease_until: None,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    async fn hold_lease(&mut self) -> anyhow::Result<bool> {
        let now = Instant::now();
        if self.lease_until.is_some_and(|until| until > now + self.lease_ttl / 2) {
            return Ok(true);
        }
        if self.store.acquire_lease(OUTBOX, &self.owner, self.lease_ttl).await? {
            self.lease_until = Some(now + self.lease_ttl);
            Ok(true)
        } else {
            self.lease_until = None;
            Ok(false)
        }
    }

    /// Dispatches one batch: the jobs each event causes, and a webhook
    /// delivery per event and subscribed endpoint. Returns how many events
    /// were read (0: idle or not the leader).
    pub async fn step(&mut self) -> anyhow::Result<usize> {
        if !self.hold_lease().await? {
            return Ok(0);
        }
        let after = self.store.checkpoint(OUTBOX).await?;
        let events = self.store.read_log(None, after, self.batch, &[]).await?;
        // Deliveries are keyed by event and endpoint: reading the events
        // again after a crash creates none twice.
        let deliveries = deliveries::fan_out(&self.store, &events).await?;
        let mut done = after;
        for event in &events {
            for job in jobs_for(event) {
                if let Err(e) = self.queue.enqueue(job).await {
                    if done > after {
                        self.store.set_checkpoint(OUTBOX, done).await?;
                    }
                    return Err(e);
                }
            }
            for delivery_id in deliveries.get(&event.event_id).into_iter().flatten() {
                crate::webhooks::hand_over(&self.queue, &self.store, event.org_id, *delivery_id, event.event_id)
                    .await?;
            }
            done = event.position;
        }
        if done > after {
            self.store.set_checkpoint(OUTBOX, done).await?;
        }
        Ok(events.len())
    }

    /// Hands due webhook deliveries (retries, and those whose sender died)
    /// to jobs. Runs only where the lease is held.
    pub async fn enqueue_due_deliveries(&mut self) -> anyhow::Result<usize> {
        if !self.hold_lease().await? {
            return Ok(0);
        }
        let due = deliveries::due(&self.store, 200).await?;
        for (delivery_id, org_id, event_id) in &due {
            self.queue
                .enqueue(Job::deliver_webhook(*org_id, *delivery_id, *event_id))
                .await?;
        }
        Ok(due.len())
    }

    /// Requests a refresh of every source whose schedule is due. Runs only
    /// where the lease is held, so one process does it.
    pub async fn refresh_due_sources(&mut self) -> anyhow::Result<usize> {
        if !self.hold_lease().await? {
            return Ok(0);
        }
        let due = read::due_sources(&self.store, parley_domain::store::now(), 100).await?;
        let mut requested = 0;
        for (org_id, source_id) in due {
            let result = self
                .store
                .execute::<Source>(Execute {
                    org_id,
                    stream_id: source_id,
                    expected_version: None,
                    command: SourceCommand::Refresh {
                        org_id,
                        run_id: uuid::Uuid::now_v7(),
                        reason: "scheduled".into(),
                    },
                    metadata: Metadata::system(format!("schedule-{source_id}")),
                    idempotency: None,
                })
                .await;
            match result {
                Ok(_) => requested += 1,
                Err(StoreError::Domain(DomainError::SourceBusy | DomainError::SourceNotFound)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(requested)
    }

    /// Dispatches until the log is drained (for tests and `parley worker --once`).
    pub async fn drain(&mut self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.step().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Follows the log until `shutdown` resolves, then gives the lease up.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let appended = self.store.appended();
        tokio::pin!(shutdown);
        let mut last_schedule_check = Instant::now() - SCHEDULE_EVERY;
        let mut last_delivery_check = Instant::now() - DELIVERIES_EVERY;
        let mut last_garbage_check = Instant::now();
        loop {
            if last_garbage_check.elapsed() >= GARBAGE_EVERY {
                last_garbage_check = Instant::now();
                match self.hold_lease().await {
                    Ok(true) => {
                        let before = parley_domain::store::now() - chrono::TimeDelta::hours(1);
                        match parley_domain::store::content::collect_garbage_blobs(&self.store, before).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(blobs = n, "unreferenced stored bytes deleted"),
                            Err(e) => tracing::warn!(error = %e, "stored bytes clean-up failed"),
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox lease check failed"),
                }
            }
            if last_delivery_check.elapsed() >= DELIVERIES_EVERY {
                last_delivery_check = Instant::now();
                match self.enqueue_due_deliveries().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deliveries = n, "due webhook deliveries handed to jobs"),
                    Err(e) => tracing::warn!(error = %e, "due webhook deliveries check failed"),
                }
            }
            if last_schedule_check.elapsed() >= SCHEDULE_EVERY {
                last_schedule_check = Instant::now();
                match self.refresh_due_sources().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sources = n, "scheduled refreshes requested"),
                    Err(e) => tracing::warn!(error = %e, "scheduled refresh check failed"),
                }
            }
            match self.step().await {
                Ok(n) if n as u64 >= self.batch => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox dispatch failed; will retry"),
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = appended.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        if let Err(e) = self.store.release_lease(OUTBOX, &self.owner).await {
            tracing::warn!(error = %e, "could not release the outbox lease");
        }
    }
}
