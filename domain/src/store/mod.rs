//! The event store: appends with optimistic concurrency, projections updated in
//! the same transaction, replay, and the reads both binaries share.

pub mod content;
pub mod deliveries;
pub mod entities;
pub mod insights;
pub mod people;
pub mod projections;
pub mod read;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use self::projections::Projection;
use crate::error::DomainError;
use crate::event::{Aggregate, DomainEvent, Metadata, NewEvent, RecordedEvent, UpcastError};
use entities::{api_key_usage, checkpoints, events, idempotency_keys};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another append to the same stream won the race.
    #[error("the stream {stream_id} was changed concurrently")]
    Conflict { stream_id: Uuid },
    /// Another request with the same idempotency key committed first.
    #[error("the idempotency key was used by a concurrent request")]
    IdempotencyRace,
    /// A read model's unique index refused the change (e.g. a taken slug).
    #[error("unique constraint violated in projection `{projection}`: {message}")]
    Unique { projection: &'static str, message: String },
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("stored event cannot be read: {0}")]
    Upcast(#[from] UpcastError),
}

impl StoreError {
    /// Whether the same call may succeed later (connection loss, busy database).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Db(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) | StoreError::Conflict { .. }
        )
    }
}

/// Time as the database keeps it: microsecond precision, so values read back
/// equal values written on both engines.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Opens the database and runs nothing else. SQLite files (and their folder)
/// are created on first use; WAL mode lets readers work while one writer appends.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        use std::str::FromStr;
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !path.is_empty() && path != ":memory:")
        {
            std::fs::create_dir_all(parent).map_err(|e| DbErr::Custom(format!("cannot create {parent:?}: {e}")))?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbErr::Custom(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
        Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    } else {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(20)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        Database::connect(options).await
    }
}

/// What one append writes besides events: the idempotency record of the request.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: String,
    pub status_code: u16,
    /// What a retry needs to answer like the first request (a resource reference).
    pub response: Value,
}

/// One atomic append to one stream.
pub struct Append {
    pub org_id: Uuid,
    pub stream_type: &'static str,
    pub stream_id: Uuid,
    /// The version the stream must be at (0: a new stream).
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
    pub metadata: Metadata,
    pub idempotency: Option<IdempotencyRecord>,
}

/// A command for one aggregate instance.
pub struct Execute<A: Aggregate> {
    pub org_id: Uuid,
    pub stream_id: Uuid,
    /// `Some(v)`: fail with a conflict unless the stream is at `v` (If-Match).
    /// `None`: decide on the latest state, retrying when a concurrent append wins.
    pub expected_version: Option<i64>,
    pub command: A::Command,
    pub metadata: Metadata,
    pub idempotency: Option<IdempotencyRecord>,
}

/// The result of a command: the new state, its version and what was recorded.
pub struct Executed<A: Aggregate> {
    pub state: A::State,
    pub version: i64,
    pub recorded: Vec<RecordedEvent>,
}

/// The event store and its inline projections. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    projections: Arc<Vec<Arc<dyn Projection>>>,
    appended: Arc<Notify>,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Store {
            db,
            projections: Arc::new(projections::all()),
            appended: Arc::new(Notify::new()),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Woken after every append in this process (followers of the log also poll).
    /// The channel (PostgreSQL `NOTIFY`) every commit of events signals.
    pub const LOG_CHANNEL: &'static str = "parley_log";

    pub fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// Every event of one stream, oldest first.
    pub async fn read_stream(&self, stream_id: Uuid) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = events::Entity::find()
            .filter(events::Column::StreamId.eq(stream_id))
            .order_by_asc(events::Column::StreamVersion)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_recorded).collect())
    }

    /// The current state and version of one aggregate instance. A stream of
    /// another kind (a bot's id given where a conversation's is expected)
    /// reads as no instance at all.
    pub async fn load<A: Aggregate>(&self, stream_id: Uuid) -> Result<(A::State, i64), StoreError> {
        let events = self.read_stream(stream_id).await?;
        if events.first().is_some_and(|e| e.stream_type != A::STREAM_TYPE) {
            return Ok((A::State::default(), 0));
        }
        fold::<A>(&events)
    }

    /// Loads, decides and appends. Without an expected version a lost race is
    /// decided again on the fresh state; with one it is a conflict. A stream
    /// of another organization or of another kind is decided on as absent,
    /// so the caller learns what it would of a missing one (its not-found
    /// error), never its version.
    pub async fn execute<A: Aggregate>(&self, req: Execute<A>) -> Result<Executed<A>, StoreError>
    where
        A::Command: Clone,
    {
        // Under contention a lost race is common; back off a little, with jitter.
        const ATTEMPTS: usize = 25;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let events = self.read_stream(req.stream_id).await?;
            let foreign = events
                .first()
                .is_some_and(|e| e.stream_type != A::STREAM_TYPE || e.org_id != req.org_id);
            let (mut state, version) = if foreign {
                (A::State::default(), 0)
            } else {
                fold::<A>(&events)?
            };
            if let Some(expected) = req.expected_version
                && expected != version
            {
                // What is not there is not found, whatever version was expected.
                A::decide(&state, req.command.clone())?;
                return Err(DomainError::VersionConflict {
                    expected,
                    actual: version,
                }
                .into());
            }
            let decided = A::decide(&state, req.command.clone())?;
            if foreign && !decided.is_empty() {
                // Only a creation decides anything on an absent instance, and
                // this id is taken.
                return Err(DomainError::VersionConflict {
                    expected: 0,
                    actual: version,
                }
                .into());
            }
            if decided.is_empty() {
                return Ok(Executed {
                    state,
                    version,
                    recorded: vec![],
                });
            }
            let append = Append {
                org_id: req.org_id,
                stream_type: A::STREAM_TYPE,
                stream_id: req.stream_id,
                expected_version: version,
                events: decided.iter().map(DomainEvent::to_new_event).collect(),
                metadata: req.metadata.clone(),
                idempotency: req.idempotency.clone(),
            };
            match self.append(append).await {
                Ok(recorded) => {
                    for e in &decided {
                        A::apply(&mut state, e);
                    }
                    let version = recorded.last().map_or(version, |e| e.stream_version);
                    return Ok(Executed {
                        state,
                        version,
                        recorded,
                    });
                }
                Err(StoreError::Conflict { .. }) if req.expected_version.is_none() && attempt < ATTEMPTS => {
                    let jitter = rand::random_range(1..=5 * attempt as u64);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                    continue;
                }
                Err(StoreError::Conflict { .. }) => {
                    let (_, actual) = self.load::<A>(req.stream_id).await?;
                    return Err(DomainError::VersionConflict {
                        expected: version,
                        actual,
                    }
                    .into());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends events to one stream and applies them to every projection, in
    /// one transaction. A concurrent append at the same version fails with
    /// [`StoreError::Conflict`] and writes nothing.
    pub async fn append(&self, append: Append) -> Result<Vec<RecordedEvent>, StoreError> {
        if append.events.is_empty() {
            return Ok(vec![]);
        }
        let txn = self.db.begin().await?;
        let result = self.append_in(&txn, append).await;
        match result {
            Ok(recorded) => {
                txn.commit().await?;
                self.appended.notify_waiters();
                Ok(recorded)
            }
            Err(e) => {
                // Dropping the transaction also rolls back; an explicit rollback reports errors.
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    async fn append_in(&self, txn: &DatabaseTransaction, append: Append) -> Result<Vec<RecordedEvent>, StoreError> {
        if txn.get_database_backend() == DbBackend::Postgres {
            // One appender at a time: positions then become visible in commit
            // order, so a follower reading `position > checkpoint` never skips one.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(72707265)").await?;
            // Wakes the live feeds of every API process when this commits.
            txn.execute_unprepared("NOTIFY parley_log").await?;
        }
        let recorded_at = now();
        let metadata = {
            let mut m = append.metadata.clone();
            if let Some(idem) = &append.idempotency {
                m.idempotency_key = Some(idem.key.clone());
            }
            serde_json::to_value(&m).unwrap_or(Value::Null)
        };
        let mut recorded = Vec::with_capacity(append.events.len());
        for (i, event) in append.events.into_iter().enumerate() {
            let version = append.expected_version + 1 + i as i64;
            let row = events::ActiveModel {
                position: NotSet,
                event_id: Set(Uuid::now_v7()),
                org_id: Set(append.org_id),
                stream_type: Set(append.stream_type.to_owned()),
                stream_id: Set(append.stream_id),
                stream_version: Set(version),
                event_type: Set(event.event_type.to_owned()),
                schema_version: Set(event.schema_version),
                payload: Set(event.payload),
                metadata: Set(metadata.clone()),
                recorded_at: Set(recorded_at),
            };
            let inserted = events::Entity::insert(row).exec_with_returning(txn).await;
            match inserted {
                Ok(model) => recorded.push(to_recorded(model)),
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict {
                        stream_id: append.stream_id,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Versions are unique and start at 1; a count that differs from the last
        // version means the caller skipped one, which would leave a gap.
        let last_version = append.expected_version + recorded.len() as i64;
        let count = events::Entity::find()
            .filter(events::Column::StreamId.eq(append.stream_id))
            .count(txn)
            .await?;
        if count as i64 != last_version {
            return Err(StoreError::Conflict {
                stream_id: append.stream_id,
            });
        }

        if let Some(idem) = append.idempotency {
            let expired = recorded_at - TimeDelta::hours(IDEMPOTENCY_TTL_HOURS);
            idempotency_keys::Entity::delete_many()
                .filter(idempotency_keys::Column::OrgId.eq(append.org_id))
                .filter(idempotency_keys::Column::Key.eq(idem.key.clone()))
                .filter(idempotency_keys::Column::CreatedAt.lt(expired))
                .exec(txn)
                .await?;
            let row = idempotency_keys::ActiveModel {
                org_id: Set(append.org_id),
                key: Set(idem.key),
                request_hash: Set(idem.request_hash),
                status_code: Set(i32::from(idem.status_code)),
                response: Set(idem.response),
                created_at: Set(recorded_at),
            };
            match idempotency_keys::Entity::insert(row).exec_without_returning(txn).await {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Err(StoreError::IdempotencyRace),
                Err(e) => return Err(e.into()),
            }
        }

        for projection in self.projections.iter() {
            apply_guarded(txn, projection.as_ref(), &recorded).await?;
        }
        Ok(recorded)
    }

    /// Drops and rebuilds projections from the log in one transaction: all of
    /// them, or the one named. Returns the names rebuilt and the events read.
    pub async fn replay(&self, only: Option<&str>) -> Result<(Vec<&'static str>, u64), StoreError> {
        let selected: Vec<_> = self
            .projections
            .iter()
            .filter(|p| only.is_none_or(|name| p.name() == name))
            .cloned()
            .collect();
        if selected.is_empty() {
            return Ok((vec![], 0));
        }
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(72707265)").await?;
        }
        for p in &selected {
            p.reset(&txn).await?;
            set_checkpoint(&txn, &checkpoint_name(p.name()), 0).await?;
        }
        let mut after = 0;
        let mut read = 0u64;
        loop {
            let page = events::Entity::find()
                .filter(events::Column::Position.gt(after))
                .order_by_asc(events::Column::Position)
                .limit(1000)
                .all(&txn)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            read += page.len() as u64;
            let page: Vec<_> = page.into_iter().map(to_recorded).collect();
            for p in &selected {
                apply_guarded(&txn, p.as_ref(), &page).await?;
            }
        }
        txn.commit().await?;
        Ok((selected.iter().map(|p| p.name()).collect(), read))
    }

    /// Events after `after` in log order: all of them, or one organization's,
    /// optionally only of some types.
    pub async fn read_log(
        &self,
        org_id: Option<Uuid>,
        after: i64,
        limit: u64,
        types: &[String],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_log_of(org_id, after, limit, types, None).await
    }

    /// Like [`Store::read_log`], with only the events of one actor: a kind
    /// (`api_key`, `member`, `visitor`, `cli`, `system`) and, optionally, its id.
    pub async fn read_log_of(
        &self,
        org_id: Option<Uuid>,
        after: i64,
        limit: u64,
        types: &[String],
        actor: Option<(&str, Option<&str>)>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut query = events::Entity::find().filter(events::Column::Position.gt(after));
        if let Some((kind, id)) = actor {
            use sea_orm::sea_query::Expr;
            let (kind_expr, id_expr) = if self.db.get_database_backend() == DbBackend::Postgres {
                ("(metadata->'actor'->>'kind') = $1", "(metadata->'actor'->>'id') = $1")
            } else {
                (
                    "json_extract(metadata, '$.actor.kind') = ?",
                    "json_extract(metadata, '$.actor.id') = ?",
                )
            };
            query = query.filter(Expr::cust_with_values(kind_expr, [kind.to_owned()]));
            if let Some(id) = id {
                query = query.filter(Expr::cust_with_values(id_expr, [id.to_owned()]));
            }
        }
        if let Some(org) = org_id {
            query = query.filter(events::Column::OrgId.eq(org));
        }
        if !types.is_empty() {
            query = query.filter(events::Column::EventType.is_in(types.iter().cloned()));
        }
        let rows = query
            .order_by_asc(events::Column::Position)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_recorded).collect())
    }

    /// The newest position of the log (0 when empty).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let last = events::Entity::find()
            .order_by_desc(events::Column::Position)
            .one(&self.db)
            .await?;
        Ok(last.map_or(0, |e| e.position))
    }

    /// A remembered idempotency key younger than the TTL.
    pub async fn idempotency_record(
        &self,
        org_id: Uuid,
        key: &str,
    ) -> Result<Option<idempotency_keys::Model>, StoreError> {
        let row = idempotency_keys::Entity::find_by_id((org_id, key.to_owned()))
            .one(&self.db)
            .await?;
        Ok(row.filter(|r| r.created_at > now() - TimeDelta::hours(IDEMPOTENCY_TTL_HOURS)))
    }

    /// Records that a key was used now. Operational data, not an event: a
    /// request must not append to the log merely by being authenticated.
    pub async fn touch_api_key(&self, key_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let row = api_key_usage::ActiveModel {
            key_id: Set(key_id),
            last_used_at: Set(at),
        };
        api_key_usage::Entity::insert(row)
            .on_conflict(
                OnConflict::column(api_key_usage::Column::KeyId)
                    .update_column(api_key_usage::Column::LastUsedAt)
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// A named follower's checkpoint (0 when it has none).
    pub async fn checkpoint(&self, name: &str) -> Result<i64, StoreError> {
        let row = checkpoints::Entity::find_by_id(name.to_owned()).one(&self.db).await?;
        Ok(row.map_or(0, |r| r.position))
    }

    pub async fn set_checkpoint(&self, name: &str, position: i64) -> Result<(), StoreError> {
        set_checkpoint(&self.db, name, position).await
    }

    /// Takes or renews the lease of a named follower, so that only one process
    /// follows at a time. True when `owner` holds the lease afterwards.
    pub async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now();
        let until = now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::seconds(30));
        // Make sure the row exists, then take it only if free, expired or ours.
        checkpoints::Entity::insert(checkpoints::ActiveModel {
            name: Set(name.to_owned()),
            position: Set(0),
            lease_owner: Set(None),
            lease_until: Set(None),
        })
        .on_conflict(OnConflict::column(checkpoints::Column::Name).do_nothing().to_owned())
        .exec_without_returning(&self.db)
        .await?;
        let backend = self.backend();
        let (sql, values): (&str, Vec<sea_orm::Value>) = match backend {
            DbBackend::Postgres => (
                "UPDATE checkpoints SET lease_owner = $1, lease_until = $2 WHERE name = $3 \
                 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until IS NULL OR lease_until < $4)",
                vec![owner.into(), until.into(), name.into(), now.into()],
            ),
            DbBackend::Sqlite | DbBackend::MySql | _ => (
                "UPDATE checkpoints SET lease_owner = ?, lease_until = ? WHERE name = ? \
                 AND (lease_owner IS NULL OR lease_owner = ? OR lease_until IS NULL OR lease_until < ?)",
                vec![owner.into(), until.into(), name.into(), owner.into(), now.into()],
            ),
        };
        let result = self
            .db
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives a lease up (on shutdown), so another process can take over at once.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        checkpoints::Entity::update_many()
            .col_expr(
                checkpoints::Column::LeaseOwner,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .col_expr(
                checkpoints::Column::LeaseUntil,
                sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(checkpoints::Column::Name.eq(name))
            .filter(checkpoints::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }
}

/// The checkpoint row of a projection.
pub fn checkpoint_name(projection: &str) -> String {
    format!("projection:{projection}")
}

async fn set_checkpoint<C: ConnectionTrait>(db: &C, name: &str, position: i64) -> Result<(), StoreError> {
    checkpoints::Entity::insert(checkpoints::ActiveModel {
        name: Set(name.to_owned()),
        position: Set(position),
        lease_owner: Set(None),
        lease_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(checkpoints::Column::Name)
            .update_column(checkpoints::Column::Position)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Applies the events a projection has not seen yet and moves its checkpoint,
/// so applying the same events twice changes nothing.
async fn apply_guarded(
    txn: &DatabaseTransaction,
    projection: &dyn Projection,
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    let relevant: Vec<_> = events.iter().filter(|e| projection.handles(&e.event_type)).collect();
    let Some(last) = relevant.last() else {
        return Ok(());
    };
    let name = checkpoint_name(projection.name());
    let seen = checkpoints::Entity::find_by_id(name.clone())
        .one(txn)
        .await?
        .map_or(0, |c| c.position);
    for event in relevant.iter().filter(|e| e.position > seen) {
        match projection.apply(txn, event).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Unique {
                    projection: projection.name(),
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    if last.position > seen {
        set_checkpoint(txn, &name, last.position).await?;
    }
    Ok(())
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// An aggregate's state and version from its stream's events, in order.
fn fold<A: Aggregate>(events: &[RecordedEvent]) -> Result<(A::State, i64), StoreError> {
    let mut state = A::State::default();
    let mut version = 0;
    for e in events {
        let event = A::Event::from_stored(&e.event_type, e.schema_version, &e.payload)?;
        A::apply(&mut state, &event);
        version = e.stream_version;
    }
    Ok((state, version))
}

fn to_recorded(m: events::Model) -> RecordedEvent {
    RecordedEvent {
        position: m.position,
        event_id: m.event_id,
        org_id: m.org_id,
        stream_type: m.stream_type,
        stream_id: m.stream_id,
        stream_version: m.stream_version,
        event_type: m.event_type,
        schema_version: m.schema_version,
        payload: m.payload,
        metadata: m.metadata,
        recorded_at: m.recorded_at,
    }
}
