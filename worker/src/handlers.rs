//! Job handlers. Each first checks whether its work is already done, because
//! a job can arrive more than once.

use parley_domain::DomainError;
use parley_domain::aggregates::bot::{Bot, BotCommand};
use parley_domain::event::Metadata;
use parley_domain::jobs::Job;
use parley_domain::store::{Execute, Store, StoreError};
use prometheus::{IntCounterVec, Opts, Registry};
use tracing::Instrument;
use uuid::Uuid;

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub metrics: JobMetrics,
}

/// Job outcome counters, exported on `/metrics`.
#[derive(Clone)]
pub struct JobMetrics {
    pub jobs: IntCounterVec,
}

impl JobMetrics {
    pub fn new(registry: &Registry) -> Self {
        let jobs = IntCounterVec::new(
            Opts::new("parley_jobs_total", "Background jobs run, by job and outcome"),
            &["job", "outcome"],
        )
        .expect("constant metric options are valid");
        // A second registration (several apps in one test process) is harmless.
        let _ = registry.register(Box::new(jobs.clone()));
        JobMetrics { jobs }
    }
}

/// Whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("transient: {0}")]
    Transient(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            JobError::Transient(e.to_string())
        } else {
            JobError::Permanent(e.to_string())
        }
    }
}

/// Runs one job to completion.
pub async fn run_job(job: Job, ctx: &JobContext) -> Result<(), JobError> {
    let name = job.name();
    let span = tracing::info_span!("job", job = name, event_id = %job.event_id());
    let result = async {
        match job {
            Job::PurgeBot {
                org_id,
                bot_id,
                event_id,
                correlation_id,
            } => {
                purge_bot(
                    ctx,
                    org_id,
                    bot_id,
                    correlation_id.unwrap_or_else(|| event_id.to_string()),
                )
                .await
            }
        }
    }
    .instrument(span)
    .await;
    let outcome = match &result {
        Ok(()) => "succeeded",
        Err(JobError::Transient(_)) => "retried",
        Err(JobError::Permanent(_)) => "failed",
    };
    ctx.metrics.jobs.with_label_values(&[name, outcome]).inc();
    match &result {
        Ok(()) => tracing::info!(job = name, "job done"),
        Err(e) => tracing::warn!(job = name, error = %e, "job failed"),
    }
    result
}

/// Removes a deleted bot's derived data, then records `bot.purged`, once.
pub async fn purge_bot(ctx: &JobContext, org_id: Uuid, bot_id: Uuid, correlation_id: String) -> Result<(), JobError> {
    let (state, _) = ctx.store.load::<Bot>(bot_id).await?;
    if state.purged {
        tracing::info!(%bot_id, "bot already purged");
        return Ok(());
    }
    // Derived data of later capabilities (knowledge chunks, files) is removed
    // here, before the purge is recorded; the bot's read row goes with
    // `bot.purged` in the same transaction as the event.
    let executed = ctx
        .store
        .execute::<Bot>(Execute {
            org_id,
            stream_id: bot_id,
            expected_version: None,
            command: BotCommand::Purge,
            metadata: Metadata::system(correlation_id),
            idempotency: None,
        })
        .await;
    match executed {
        Ok(_) => Ok(()),
        Err(StoreError::Domain(DomainError::BotNotFound)) => Err(JobError::Permanent(format!(
            "bot {bot_id} does not exist or was not deleted"
        ))),
        Err(e) => Err(e.into()),
    }
}
