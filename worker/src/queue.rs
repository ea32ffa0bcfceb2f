//! The job queue: apalis storage in the same SQLite file (embedded default)
//! or in Redis (production). Both take the same `Job` values.

use apalis::prelude::{Metrics, TaskSink};
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use parley_domain::jobs::{JOBS_QUEUE, Job};

/// How often a worker says it is alive. A job whose worker missed
/// `MISSED_HEARTBEATS` of them (it crashed) is queued again.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 2;

#[derive(Clone)]
pub enum JobQueue {
    Sqlite(SqliteStorage<Job>),
    Redis {
        storage: RedisStorage<Job>,
        conn: redis::aio::ConnectionManager,
    },
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl JobQueue {
    /// The queue inside the application's SQLite database. Creates its tables.
    pub async fn sqlite(pool: &SqlitePool) -> anyhow::Result<Self> {
        // Only the queue's tables: the storage's own `setup` would also relax
        // the durability pragmas of the event log that shares this file.
        SqliteStorage::migrations().run(pool).await?;
        let config = apalis_sqlite::Config::default()
            .queue(JOBS_QUEUE)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        Ok(JobQueue::Sqlite(SqliteStorage::new(pool).with_config(config)))
    }

    /// A Redis queue. `namespace` prefixes the queue name so that several
    /// installations (or test runs) can share one Redis.
    pub async fn redis(url: &str, namespace: Option<&str>) -> anyhow::Result<Self> {
        let conn = apalis_redis::connect(url).await?;
        let queue = match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}:{JOBS_QUEUE}"),
            _ => JOBS_QUEUE.to_owned(),
        };
        let config = apalis_redis::Config::default()
            .queue(queue)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        let storage = RedisStorage::new(conn.clone()).with_config(config);
        Ok(JobQueue::Redis { storage, conn })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            JobQueue::Sqlite(_) => "sqlite",
            JobQueue::Redis { .. } => "redis",
        }
    }

    pub async fn enqueue(&self, job: Job) -> anyhow::Result<()> {
        match self {
            JobQueue::Sqlite(storage) => storage.clone().push(job).await?,
            JobQueue::Redis { storage, .. } => storage.clone().push(job).await?,
        }
        Ok(())
    }

    /// The queue's own counts (pending, running, done, failed... as the
    /// backend reports them), as `(lowercase name, value)`.
    pub async fn stats(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let stats = match self {
            JobQueue::Sqlite(storage) => storage.fetch_by_queue().await?,
            JobQueue::Redis { storage, conn } => {
                // apalis-redis 1.0.0's own per-queue statistics script expects an
                // argument its caller never passes, so count its structures here.
                let config = storage.get_config();
                let mut conn = conn.clone();
                let (pending, running, done, failed): (f64, f64, f64, f64) = redis::pipe()
                    .cmd("LLEN")
                    .arg(config.active_jobs_list())
                    .cmd("SCARD")
                    .arg(config.inflight_jobs_set())
                    .cmd("ZCARD")
                    .arg(config.done_jobs_set())
                    .cmd("ZCARD")
                    .arg(config.dead_jobs_set())
                    .query_async(&mut conn)
                    .await?;
                return Ok(vec![
                    ("pending_jobs".into(), pending),
                    ("running_jobs".into(), running),
                    ("done_jobs".into(), done),
                    ("failed_jobs".into(), failed),
                ]);
            }
        };
        Ok(stats
            .into_iter()
            .filter_map(|s| {
                let name: String = s
                    .title
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                s.value.parse::<f64>().ok().map(|v| (name, v))
            })
            .collect())
    }

    /// Whether the queue's backend answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            JobQueue::Sqlite(storage) => {
                apalis_sqlite::SqlitePool::acquire(storage.pool()).await?;
            }
            JobQueue::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
        }
        Ok(())
    }
}
