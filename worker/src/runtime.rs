//! Runs the job workers on the configured queue until shutdown.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::*;
use parley_domain::jobs::Job;
use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use crate::handlers::{JobContext, JobError, give_up, run_job};
use crate::queue::{JobQueue, Lane};

/// How often an idle worker looks for new jobs.
const POLL: Duration = Duration::from_millis(250);
const RETRIES: usize = 8;

async fn handle(job: Job, ctx: Data<JobContext>, attempt: Attempt) -> Result<(), BoxDynError> {
    match run_job(job.clone(), &ctx).await {
        Ok(()) => Ok(()),
        Err(e @ JobError::Transient(_)) if attempt.current() < RETRIES => Err(Box::new(e)),
        // Retrying cannot help (or will not happen again): stop here.
        Err(e @ (JobError::Transient(_) | JobError::Permanent(_))) => {
            give_up(&job, &ctx, &e.to_string()).await;
            Err(Box::new(AbortError::new(e)))
        }
    }
}

fn retry_policy() -> BackoffRetryPolicy<tower::retry::backoff::ExponentialBackoff<HasherRng>> {
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(200),
        Duration::from_secs(60),
        0.5,
        HasherRng::default(),
    )
    .map(|mut maker| maker.make_backoff())
    .unwrap_or_else(|_| ExponentialBackoffMaker::default().make_backoff());
    RetryPolicy::retries(RETRIES).with_backoff(backoff)
}

/// Runs `concurrency` workers until `shutdown` resolves; running jobs finish
/// first. Workers stopped by their queue failing (Redis restarted, a broken
/// connection) are started again with a growing pause, so an outage of the
/// queue delays jobs instead of ending the process.
pub async fn run_workers(
    queue: JobQueue,
    ctx: JobContext,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    let shutdown = shutdown.boxed().shared();
    let mut pause = Duration::from_millis(500);
    loop {
        let signal = shutdown.clone();
        let started = std::time::Instant::now();
        let result = run_monitor(queue.clone(), ctx.clone(), concurrency, signal).await;
        if shutdown.peek().is_some() {
            return result;
        }
        if started.elapsed() > Duration::from_secs(60) {
            // They had been running well: this is a new outage.
            pause = Duration::from_millis(500);
        }
        match result {
            Ok(()) => tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                "job workers stopped; starting them again"
            ),
            Err(e) => {
                tracing::error!(error = %e, pause_ms = pause.as_millis() as u64, "job workers failed; starting them again")
            }
        }
        tokio::select! {
            _ = shutdown.clone() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

async fn run_monitor(
    queue: JobQueue,
    ctx: JobContext,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let signal = async move {
        shutdown.await;
        Ok(())
    };
    let monitor = Monitor::new().shutdown_timeout(Duration::from_secs(30));
    // Worker names are unique per process: a restarted process must not
    // collide with the registration its crashed predecessor left behind.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let instance = format!("{}-{}", std::process::id(), &instance[..8]);
    // Deliveries wait on other servers, not on this machine: their lane
    // gets at least four workers.
    let mut monitor = monitor;
    for (lane, workers) in [(queue.jobs, concurrency), (queue.webhooks, concurrency.max(4))] {
        let ctx = ctx.clone();
        let label = format!("{instance}-{}", lane.name().rsplit('.').next().unwrap_or("jobs"));
        monitor = match lane {
            Lane::Sqlite { storage, .. } => monitor.register(move |i| {
                WorkerBuilder::new(format!("parley-sqlite-{label}-{i}"))
                    .backend(storage.clone().poll_with_interval(POLL))
                    .concurrency(workers)
                    .retry(retry_policy())
                    .data(ctx.clone())
                    .build(handle)
            }),
            Lane::Redis { storage, .. } => monitor.register(move |i| {
                WorkerBuilder::new(format!("parley-redis-{label}-{i}"))
                    .backend(storage.clone().poll_with_interval(POLL))
                    .concurrency(workers)
                    .retry(retry_policy())
                    .data(ctx.clone())
                    .build(handle)
            }),
        };
    }
    monitor.run_with_signal(signal).await?;
    Ok(())
}
