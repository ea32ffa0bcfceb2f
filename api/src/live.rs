//! The live feed: every event the log gains, in log order, to the streams
//! of this process (`GET /api/v1/stream`). One follower per process reads
//! the log when woken: by this process's own appends, by PostgreSQL's
//! `NOTIFY` of other processes' appends, or at the latest every second.
//! The log stays the truth: a stream that falls behind reads it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parley_domain::{RecordedEvent, Store};
use sea_orm::DbBackend;
use tokio::sync::broadcast;

/// Events kept for streams that are slow to read; a stream further behind
/// catches up from the log.
const BUFFER: usize = 4096;
/// Events read per query.
const BATCH: u64 = 500;
/// The longest wait when no signal comes.
const FALLBACK: Duration = Duration::from_secs(1);

pub struct LiveFeed {
    tx: broadcast::Sender<Arc<RecordedEvent>>,
    started: AtomicBool,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            tx: broadcast::channel(BUFFER).0,
            started: AtomicBool::new(false),
        }
    }
}

impl LiveFeed {
    /// New events from now on (the follower starts with the first subscriber).
    pub fn subscribe(&self, store: &Store) -> broadcast::Receiver<Arc<RecordedEvent>> {
        let rx = self.tx.subscribe();
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(follow(store.clone(), self.tx.clone()));
        }
        rx
    }
}

async fn follow(store: Store, tx: broadcast::Sender<Arc<RecordedEvent>>) {
    let mut last = loop {
        match store.head().await {
            Ok(head) => break head,
            Err(e) => {
                tracing::warn!(error = %e, "live feed: cannot read the log head; retrying");
                tokio::time::sleep(FALLBACK).await;
            }
        }
    };
    let appended = store.appended();
    let mut listener = listen(&store).await;
    loop {
        let notified = appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Everything after `last`, however many batches.
        loop {
            match store.read_log(None, last, BATCH, &[]).await {
                Ok(events) => {
                    let full = events.len() as u64 == BATCH;
                    for event in events {
                        last = event.position;
                        // No stream listening is fine.
                        let _ = tx.send(Arc::new(event));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live feed: cannot read the log");
                    break;
                }
            }
        }
        let woken_by_database = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut notified => {}
            ok = woken_by_database => {
                if !ok {
                    tracing::warn!("live feed: the database listener failed; reconnecting");
                    listener = listen(&store).await;
                }
            }
            () = tokio::time::sleep(FALLBACK) => {}
        }
    }
}

/// A PostgreSQL listener on the log's channel (none on SQLite, where one
/// process appends).
async fn listen(store: &Store) -> Option<sea_orm::sqlx::postgres::PgListener> {
    if store.db().get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let pool = store.db().get_postgres_connection_pool();
    match sea_orm::sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(mut listener) => match listener.listen(Store::LOG_CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "live feed: LISTEN failed; polling the log instead");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "live feed: no listener connection; polling the log instead");
            None
        }
    }
}
