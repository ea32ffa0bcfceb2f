//! The job queue: apalis storage in the same SQLite file (embedded default)
//! or in Redis (production). Both take the same `Job` values.

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use parley_domain::jobs::{JOBS_QUEUE, Job};

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
        let config = apalis_sqlite::Config::default().queue(JOBS_QUEUE);
        Ok(JobQueue::Sqlite(
            SqliteStorage::new(pool).with_config(config),
        ))
    }

    /// A Redis queue. `namespace` prefixes the queue name so that several
    /// installations (or test runs) can share one Redis.
    pub async fn redis(url: &str, namespace: Option<&str>) -> anyhow::Result<Self> {
        let conn = apalis_redis::connect(url).await?;
        let queue = match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}:{JOBS_QUEUE}"),
            _ => JOBS_QUEUE.to_owned(),
        };
        let config = apalis_redis::Config::default().queue(queue);
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
