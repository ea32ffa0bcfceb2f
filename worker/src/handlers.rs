//! Job handlers. Each first checks whether its work is already done, because
//! a job can arrive more than once.

use std::sync::Arc;

use parley_domain::aggregates::bot::{Bot, BotCommand};
use parley_domain::aggregates::source::{Source, SourceCommand};
use parley_domain::event::Metadata;
use parley_domain::jobs::{Job, Task};
use parley_domain::store::{Execute, Store, StoreError};
use parley_domain::{DomainError, store::content, store::read};
use prometheus::{IntCounterVec, Opts, Registry};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::JobError;
use crate::ingest::pipeline::{self, Ingest};

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub metrics: JobMetrics,
    pub ingest: Arc<Ingest>,
    pub webhooks: Arc<crate::webhooks::Deliverer>,
}

/// Job outcome counters, exported on `/metrics`.
#[derive(Clone)]
pub struct JobMetrics {
    pub jobs: IntCounterVec,
}

impl JobMetrics {
    pub fn new(registry: &Registry) -> Self {
        let jobs = IntCounterVec::new(
            Opts::new(
                "parley_jobs_total",
                "Background jobs run by this process, by job and outcome",
            ),
            &["job", "outcome"],
        )
        .expect("constant metric options are valid");
        // A second registration (several apps in one test process) is harmless.
        let _ = registry.register(Box::new(jobs.clone()));
        JobMetrics { jobs }
    }
}

/// Runs one job to completion.
pub async fn run_job(job: Job, ctx: &JobContext) -> Result<(), JobError> {
    let name = job.name();
    let span = tracing::info_span!("job", job = name, event_id = %job.event_id);
    let correlation = job.correlation_id.clone().unwrap_or_else(|| job.event_id.to_string());
    let (store, ingest, org) = (&ctx.store, ctx.ingest.as_ref(), job.org_id);
    let result = async {
        match job.task {
            Task::PurgeBot { bot_id } => purge_bot(store, org, bot_id, &correlation).await,
            Task::FetchSource { source_id, run_id } => {
                pipeline::fetch_source(store, ingest, org, source_id, run_id, &correlation).await
            }
            Task::ParseSource { source_id, run_id } => {
                pipeline::parse_source(store, ingest, org, source_id, run_id, &correlation).await
            }
            Task::EmbedSource { source_id, run_id } => {
                pipeline::embed_source(store, ingest, org, source_id, run_id, &correlation).await
            }
            Task::PurgeSource { source_id } => pipeline::purge_source(store, org, source_id, &correlation).await,
            Task::RetitleDocument { source_id, doc_key } => {
                pipeline::retitle_document(store, ingest, source_id, &doc_key).await
            }
            Task::DeliverWebhook { delivery_id } => crate::webhooks::deliver(store, &ctx.webhooks, delivery_id).await,
            Task::AutoAssign { conversation_id } => auto_assign(store, org, conversation_id, &correlation).await,
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

/// When a job will not be run again (it failed for good, or used up its
/// retries): a source step records `source.failed`, so the source does not
/// stay "fetching" forever. The reason is logged; the source says "internal error".
pub async fn give_up(job: &Job, ctx: &JobContext, reason: &str) {
    let (source_id, run_id) = match job.task {
        Task::FetchSource { source_id, run_id }
        | Task::ParseSource { source_id, run_id }
        | Task::EmbedSource { source_id, run_id } => (source_id, run_id),
        // A delivery's own record says where it stands; the dispatcher
        // hands it to a new job when its lease runs out.
        Task::PurgeBot { .. }
        | Task::PurgeSource { .. }
        | Task::RetitleDocument { .. }
        | Task::DeliverWebhook { .. }
        | Task::AutoAssign { .. } => return,
    };
    tracing::error!(job = job.name(), %source_id, reason, "job abandoned; the source is marked failed");
    let correlation = job.correlation_id.clone().unwrap_or_else(|| job.event_id.to_string());
    let failed = parley_domain::aggregates::source::Failed {
        run_id,
        code: "INTERNAL".into(),
        message: "an internal error stopped the indexing; try a refresh".into(),
        pages: vec![],
    };
    let result = pipeline::command(
        &ctx.store,
        job.org_id,
        source_id,
        SourceCommand::Fail(failed),
        &correlation,
    )
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, %source_id, "could not mark the source failed");
    }
}

/// Deletes a deleted bot's sources (each then purges itself), removes its
/// chunks, and records `bot.purged`, once.
pub async fn purge_bot(store: &Store, org_id: Uuid, bot_id: Uuid, correlation_id: &str) -> Result<(), JobError> {
    let (state, _) = store.load::<Bot>(bot_id).await?;
    if state.purged {
        tracing::info!(%bot_id, "bot already purged");
        return Ok(());
    }
    for source_id in read::live_source_ids(store, org_id, bot_id).await? {
        let deleted = store
            .execute::<Source>(Execute {
                org_id,
                stream_id: source_id,
                expected_version: None,
                command: SourceCommand::Delete { org_id },
                metadata: Metadata::system(correlation_id),
                idempotency: None,
            })
            .await;
        match deleted {
            Ok(_) | Err(StoreError::Domain(DomainError::SourceNotFound)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    content::purge_bot_chunks(store.db(), bot_id).await?;
    let executed = store
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

/// Gives a conversation handed to a person to the next online member, when
/// its bot assigns automatically and nobody has it yet; with nobody online
/// (or everyone at the cap) it waits in the queue.
pub async fn auto_assign(
    store: &Store,
    org_id: Uuid,
    conversation_id: Uuid,
    correlation_id: &str,
) -> Result<(), JobError> {
    use parley_domain::aggregates::conversation::{Conversation, ConversationCommand, Status};
    let (conversation, _) = store.load::<Conversation>(conversation_id).await?;
    if conversation.status != Status::Escalated || conversation.assignee.is_some() {
        return Ok(());
    }
    let Some(bot_id) = conversation.bot_id else {
        return Ok(());
    };
    let (bot, _) = store.load::<Bot>(bot_id).await?;
    let Some(settings) = bot.settings else {
        return Ok(());
    };
    if !settings.handoff.auto_assign {
        return Ok(());
    }
    let now = parley_domain::store::now();
    let chosen = parley_domain::store::people::next_assignee(store, org_id, settings.handoff.max_open_per_member, now)
        .await
        .map_err(parley_domain::StoreError::Db)?;
    let Some(member_id) = chosen else {
        tracing::info!(%conversation_id, "no member online to assign; the conversation waits");
        return Ok(());
    };
    store
        .execute::<Conversation>(parley_domain::store::Execute {
            org_id,
            stream_id: conversation_id,
            expected_version: None,
            command: ConversationCommand::Assign {
                member_id,
                how: "auto".into(),
            },
            metadata: parley_domain::Metadata::system(correlation_id),
            idempotency: None,
        })
        .await?;
    Ok(())
}
