//! The job queue: apalis storage in the same SQLite file (embedded default)
//! or in Redis (production). Both take the same `Job` values, in two lanes:
//! indexing and the other work, and webhook deliveries, so that a flood of
//! deliveries never holds up indexing (and the reverse).

use apalis::prelude::{Metrics, TaskSink};
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use parley_domain::jobs::{JOBS_QUEUE, Job, Task, WEBHOOKS_QUEUE};

/// How often a worker says it is alive. A job whose worker missed
/// `MISSED_HEARTBEATS` of them (it crashed) is queued again.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 2;

/// The application's queues: one lane for indexing and the other work, one
/// for webhook deliveries. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    pub jobs: Lane,
    pub webhooks: Lane,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl JobQueue {
    /// The queues inside the application's SQLite database. Creates their tables.
    pub async fn sqlite(pool: &SqlitePool) -> anyhow::Result<Self> {
        // Only the queue's tables: the storage's own `setup` would also relax
        // the durability pragmas of the event log that shares this file.
        SqliteStorage::migrations().run(pool).await?;
        let lane = |name: &str| {
            let config = apalis_sqlite::Config::default()
                .queue(name)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_HEARTBEATS);
            Lane::Sqlite {
                storage: SqliteStorage::new(pool).with_config(config),
                queue: name.to_owned(),
            }
        };
        Ok(JobQueue {
            jobs: lane(JOBS_QUEUE),
            webhooks: lane(WEBHOOKS_QUEUE),
        })
    }

    /// Queues in Redis. `namespace` prefixes their names so that several
    /// installations (or test runs) can share one Redis.
    pub async fn redis(url: &str, namespace: Option<&str>) -> anyhow::Result<Self> {
        let conn = apalis_redis::connect(url).await?;
        let lane = |name: &str| {
            let queue = match namespace {
                Some(ns) if !ns.is_empty() => format!("{ns}:{name}"),
                _ => name.to_owned(),
            };
            let config = apalis_redis::Config::default()
                .queue(&queue)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let storage = RedisStorage::new(conn.clone()).with_config(config);
            Lane::Redis {
                storage,
                conn: conn.clone(),
                queue,
            }
        };
        Ok(JobQueue {
            jobs: lane(JOBS_QUEUE),
            webhooks: lane(WEBHOOKS_QUEUE),
        })
    }

    /// Both lanes.
    pub fn lanes(&self) -> [&Lane; 2] {
        [&self.jobs, &self.webhooks]
    }

    /// The main lane's name (with the namespace, in Redis).
    pub fn name(&self) -> &str {
        self.jobs.name()
    }

    pub fn kind(&self) -> &'static str {
        self.jobs.kind()
    }

    /// The Redis connection of Redis queues.
    pub fn redis_conn(&self) -> Option<redis::aio::ConnectionManager> {
        match &self.jobs {
            Lane::Redis { conn, .. } => Some(conn.clone()),
            Lane::Sqlite { .. } => None,
        }
    }

    /// Queues a job in its lane.
    pub async fn enqueue(&self, job: Job) -> anyhow::Result<()> {
        match job.task {
            // Light and quick, like deliveries: never behind an indexing run.
            Task::DeliverWebhook { .. } | Task::AutoAssign { .. } => self.webhooks.enqueue(job).await,
            Task::PurgeBot { .. }
            | Task::FetchSource { .. }
            | Task::ParseSource { .. }
            | Task::EmbedSource { .. }
            | Task::PurgeSource { .. }
            | Task::RetitleDocument { .. } => self.jobs.enqueue(job).await,
        }
    }

    /// Counts by state over both lanes.
    pub async fn stats(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut totals: Vec<(String, f64)> = Vec::new();
        for lane in self.lanes() {
            for (name, value) in lane.stats().await? {
                match totals.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => *v += value,
                    None => totals.push((name, value)),
                }
            }
        }
        Ok(totals)
    }

    /// Whether the queues' backend answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.jobs.ping().await
    }
}

/// One apalis queue.
#[derive(Clone)]
pub enum Lane {
    Sqlite {
        storage: SqliteStorage<Job>,
        queue: String,
    },
    Redis {
        storage: RedisStorage<Job>,
        conn: redis::aio::ConnectionManager,
        /// The queue's name, with the namespace.
        queue: String,
    },
}

impl Lane {
    /// The queue's name (with the namespace, in Redis).
    pub fn name(&self) -> &str {
        match self {
            Lane::Sqlite { queue, .. } => queue,
            Lane::Redis { queue, .. } => queue,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Lane::Sqlite { .. } => "sqlite",
            Lane::Redis { .. } => "redis",
        }
    }

    pub async fn enqueue(&self, job: Job) -> anyhow::Result<()> {
        match self {
            Lane::Sqlite { storage, .. } => storage.clone().push(job).await?,
            Lane::Redis { storage, .. } => storage.clone().push(job).await?,
        }
        Ok(())
    }

    /// The queue's own counts (pending, running, done, failed... as the
    /// backend reports them), as `(lowercase name, value)`.
    pub async fn stats(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let stats = match self {
            Lane::Sqlite { storage, .. } => storage.fetch_by_queue().await?,
            Lane::Redis { storage, conn, .. } => {
                // apalis-redis 1.0.0's own per-queue statistics script expects an
                // argument its caller never passes, so count its structures here
                // (done and dead jobs are plain sets, whatever its scripts assume).
                let config = storage.get_config();
                let mut conn = conn.clone();
                let (pending, running, done, failed): (f64, f64, f64, f64) = redis::pipe()
                    .cmd("LLEN")
                    .arg(config.active_jobs_list())
                    .cmd("SCARD")
                    .arg(config.inflight_jobs_set())
                    .cmd("SCARD")
                    .arg(config.done_jobs_set())
                    .cmd("SCARD")
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

    /// Jobs of a Redis queue with a status (`Done`, `Failed`, `Killed`,
    /// `Running`, `Pending`; `None`: all), newest first, as the job dashboard
    /// shows them (`{"args", "ctx"}`). apalis-redis 1.0.0's own listing reads
    /// a key nothing writes, so this reads its sets and hashes directly.
    /// `None` for a SQLite queue, whose own listing works.
    pub async fn redis_jobs(
        &self,
        status: Option<&str>,
        page: usize,
        page_size: usize,
    ) -> anyhow::Result<Option<Vec<serde_json::Value>>> {
        let Lane::Redis { storage, conn, queue } = self else {
            return Ok(None);
        };
        let config = storage.get_config();
        let mut conn = conn.clone();
        let mut ids: Vec<(String, &'static str)> = Vec::new();
        // `Killed` jobs sit with the failed ones, `Queued` with the pending.
        let wanted = |s: &str| {
            status.is_none_or(|w| w == s || (s == "Failed" && w == "Killed") || (s == "Pending" && w == "Queued"))
        };
        for (key, label, is_set) in [
            (config.done_jobs_set(), "Done", true),
            (config.dead_jobs_set(), "Failed", true),
            (config.inflight_jobs_set(), "Running", true),
            (config.active_jobs_list(), "Pending", false),
        ] {
            if !wanted(label) {
                continue;
            }
            let found: Vec<String> = if is_set {
                redis::cmd("SMEMBERS").arg(&key).query_async(&mut conn).await?
            } else {
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await?
            };
            ids.extend(found.into_iter().map(|id| (id, label)));
        }
        // Task ids are ULIDs: their order is their creation order.
        ids.sort_by(|a, b| b.0.cmp(&a.0));
        let mut out = Vec::new();
        for (id, label) in ids.into_iter().skip(page.saturating_sub(1) * page_size).take(page_size) {
            let data: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(config.job_data_hash())
                .arg(&id)
                .query_async(&mut conn)
                .await?;
            let meta: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{}:{id}", config.job_meta_hash()))
                .query_async(&mut conn)
                .await?;
            let args = data
                .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
                .unwrap_or(serde_json::Value::Null);
            let number = |field: &str| meta.get(field).and_then(|v| v.parse::<u64>().ok());
            out.push(serde_json::json!({
                "args": args,
                "ctx": {
                    "task_id": id,
                    "status": meta.get("status").map_or(label, String::as_str),
                    "attempt": number("attempts").unwrap_or(0),
                    "done_at": number("done_at"),
                    "run_at": number("run_at"),
                    "lock_at": null,
                    "lock_by": null,
                    "idempotency_key": null,
                    "metadata": {},
                    "max_attempts": 25,
                    "priority": 0,
                    "queue": queue,
                    "runs": [],
                }
            }));
        }
        Ok(Some(out))
    }

    /// Whether the queue's backend answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Lane::Sqlite { storage, .. } => {
                apalis_sqlite::SqlitePool::acquire(storage.pool()).await?;
            }
            Lane::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
        }
        Ok(())
    }
}
