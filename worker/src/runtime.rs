//! Runs the job workers on the configured queue until shutdown.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::*;
use parley_domain::jobs::Job;
use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use crate::error::JobError;
use crate::handlers::{JobContext, give_up, run_job};
use crate::queue::{JobQueue, Lane};

/// How often an idle worker looks for new jobs.
const POLL: Duration = Duration::from_millis(250);

/// Wakes an idle worker every `POLL`, with the next wake-up always armed.
/// (apalis's own interval strategy arms no timer on the poll where it fires,
/// so a worker whose look found nothing could sleep until its next heartbeat.)
struct EveryPoll(tokio::time::Interval);

impl EveryPoll {
    fn new() -> EveryPoll {
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        EveryPoll(interval)
    }
}

impl Clone for EveryPoll {
    fn clone(&self) -> Self {
        EveryPoll::new()
    }
}

impl PollStrategy for EveryPoll {
    fn poll_drive(&mut self, cx: &mut std::task::Context<'_>, _: &PollSnapshot) -> std::task::Poll<Option<()>> {
        // Ticks until one is pending: that one holds the waker.
        let mut fired = false;
        while self.0.poll_tick(cx).is_ready() {
            fired = true;
        }
        if fired {
            std::task::Poll::Ready(Some(()))
        } else {
            std::task::Poll::Pending
        }
    }
}
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

/// Runs the job workers until `shutdown` resolves; running jobs finish
/// first. Each lane has `concurrency` workers (deliveries at least four: they
/// wait on other servers, not on this machine) under a monitor of its own,
/// because a monitor only ends once all its workers have: a lane stopped by
/// its queue failing (Redis restarted, a broken connection) is started again
/// with a growing pause while the other lane goes on, so an outage of the
/// queue delays jobs instead of ending the process or stalling a lane. Jobs
/// the stopped workers had taken are queued again once their registrations
/// expire (`MISSED_HEARTBEATS`).
pub async fn run_workers(
    queue: JobQueue,
    ctx: JobContext,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    let shutdown = shutdown.boxed().shared();
    let (jobs, webhooks) = tokio::join!(
        run_lane(queue.jobs, ctx.clone(), concurrency, shutdown.clone()),
        run_lane(queue.webhooks, ctx, concurrency.max(4), shutdown),
    );
    jobs.and(webhooks)
}

async fn run_lane(
    lane: Lane,
    ctx: JobContext,
    workers: usize,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        let result = run_monitor(lane.clone(), ctx.clone(), workers, shutdown.clone()).await;
        if shutdown.peek().is_some() {
            return result;
        }
        if started.elapsed() > Duration::from_secs(60) {
            // They had been running well: this is a new outage.
            pause = Duration::from_millis(500);
        }
        let pause_ms = pause.as_millis() as u64;
        match result {
            Ok(()) => tracing::warn!(lane = lane.name(), pause_ms, "job workers stopped; starting them again"),
            Err(e) => {
                tracing::error!(lane = lane.name(), error = %e, pause_ms, "job workers failed; starting them again")
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
    lane: Lane,
    ctx: JobContext,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let signal = async move {
        shutdown.await;
        Ok(())
    };
    let monitor = Monitor::new().shutdown_timeout(Duration::from_secs(30));
    // Worker names are unique per start: a restarted process (or lane) must
    // not collide with the registration its predecessor left behind.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let label = format!(
        "{}-{}-{}",
        std::process::id(),
        &instance[..8],
        lane.name().rsplit('.').next().unwrap_or("jobs")
    );
    let monitor = match lane {
        Lane::Sqlite { storage, .. } => monitor.register(move |i| {
            WorkerBuilder::new(format!("parley-sqlite-{label}-{i}"))
                .backend(storage.clone().poll_with_strategy(EveryPoll::new()))
                .concurrency(workers)
                .retry(retry_policy())
                .data(ctx.clone())
                .build(handle)
        }),
        Lane::Redis { storage, .. } => monitor.register(move |i| {
            WorkerBuilder::new(format!("parley-redis-{label}-{i}"))
                .backend(storage.clone().poll_with_strategy(EveryPoll::new()))
                .concurrency(workers)
                .retry(retry_policy())
                .data(ctx.clone())
                .build(handle)
        }),
    };
    monitor.run_with_signal(signal).await?;
    Ok(())
}
