//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_domain::aggregates::api_key::{hash_key, looks_like_key};
use parley_domain::usage::Quota;
use parley_domain::{Actor, ErrorCode, Metadata, Role, Store, store::read};
use parley_worker::JobQueue;
use uuid::Uuid;

use crate::config::Settings;
use crate::error::ApiError;
use crate::http::metrics::Metrics;

/// Last-used times are written at most this often per key and process.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingest: Arc<parley_worker::ingest::pipeline::Ingest>,
    pub queue: JobQueue,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
    pub chat: Arc<crate::chat::ChatEngine>,
    pub limiter: Arc<crate::http::ratelimit::Limiter>,
    /// New events of the log, for live streams.
    pub live: Arc<crate::live::LiveFeed>,
    /// Who is typing where (signals, not events).
    pub typing: Arc<crate::typing::Typing>,
    /// The time quotas are counted in (settable in tests).
    pub clock: Arc<Clock>,
    streams: Arc<Mutex<HashMap<(Uuid, String), usize>>>,
    touched: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

/// The organization a request acts for, who acts, and with which role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: Uuid,
    pub role: Role,
    /// The key or member recorded as the actor of what the request does.
    pub actor: Actor,
}

impl Principal {
    /// The metadata of events this request appends.
    pub fn metadata(&self, request_id: &str) -> Metadata {
        Metadata::new(self.actor.clone(), Some(request_id.to_owned()))
    }

    /// A stable handle of the caller (`key:<id>`), for what is held per caller.
    pub fn handle(&self) -> String {
        match &self.actor {
            Actor::ApiKey { id } => format!("key:{id}"),
            Actor::Member { id } => format!("member:{id}"),
            Actor::Visitor { id } => format!("visitor:{id}"),
            Actor::Cli => "cli".to_owned(),
            Actor::System => "system".to_owned(),
        }
    }

    /// The caller, as messages name it ("this API key").
    pub fn describe(&self) -> &'static str {
        match &self.actor {
            Actor::ApiKey { .. } => "this API key",
            Actor::Member { .. } => "your membership",
            Actor::Visitor { .. } | Actor::Cli | Actor::System => "this caller",
        }
    }
}

impl AppState {
    pub fn new(
        store: Store,
        queue: JobQueue,
        metrics: Metrics,
        settings: Arc<Settings>,
        ingest: Arc<parley_worker::ingest::pipeline::Ingest>,
    ) -> Self {
        let limits = settings.limits();
        let limiter = match queue.redis_conn() {
            // The queue's Redis connection also holds the shared counts.
            Some(conn) => crate::http::ratelimit::Limiter::redis(limits, conn, settings.queue_namespace.as_deref()),
            None => crate::http::ratelimit::Limiter::memory(limits, Arc::new(crate::http::ratelimit::system_clock)),
        };
        // Validated at start; an invalid list never gets this far.
        let limiter = limiter
            .with_proxies(crate::http::client_ip::parse_proxies(&settings.trusted_proxies).unwrap_or_default())
            .with_store(store.clone());
        AppState {
            chat: Arc::new(crate::chat::ChatEngine::new(store.clone(), &settings)),
            limiter: Arc::new(limiter),
            live: Arc::default(),
            typing: crate::typing::Typing::new(
                settings.redis_url.as_ref().map(secrecy::ExposeSecret::expose_secret),
                settings.queue_namespace.as_deref(),
            ),
            clock: Arc::default(),
            streams: Arc::default(),
            store,
            ingest,
            queue,
            metrics,
            settings,
            touched: Arc::default(),
        }
    }

    /// Resolves a secret API key. Revocation takes effect on the next request:
    /// nothing is cached.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        if !looks_like_key(token) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "malformed API key: expected pk_ followed by 64 hex characters",
            ));
        }
        let key = read::api_key_by_hash(&self.store, &hash_key(token))
            .await
            .map_err(|e| ApiError::from(parley_domain::StoreError::Db(e)))?;
        let Some(key) = key else {
            return Err(ApiError::new(ErrorCode::Unauthorized, "unknown API key"));
        };
        if key.revoked_at.is_some() {
            return Err(ApiError::new(ErrorCode::Unauthorized, "this API key has been revoked"));
        }
        let role = key.role.parse::<Role>().map_err(ApiError::internal)?;
        self.touch(key.id).await;
        Ok(Principal {
            org_id: key.org_id,
            role,
            actor: Actor::ApiKey { id: key.id },
        })
    }

    async fn touch(&self, key_id: Uuid) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched
                .get(&key_id)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY)
            {
                return;
            }
            touched.insert(key_id, now);
        }
        if let Err(e) = self.store.touch_api_key(key_id, parley_domain::store::now()).await {
            tracing::warn!(error = %e, "could not record API key use");
        }
    }
}

/// Where people reach a server with these settings.
pub fn public_base(settings: &Settings, host: Option<&str>) -> String {
    match &settings.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", host.unwrap_or(&settings.listen)),
    }
}

/// The current time, or a time set by a test (to cross a month boundary).
#[derive(Default)]
pub struct Clock {
    fixed: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.fixed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or_else(chrono::Utc::now)
    }

    /// Sets the time (`None`: the real time again).
    pub fn set(&self, at: Option<chrono::DateTime<chrono::Utc>>) {
        *self.fixed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

impl AppState {
    /// Where people reach this server: `PARLEY_PUBLIC_URL`, else the
    /// request's host (else the listening address).
    pub fn public_base(&self, host: Option<&str>) -> String {
        public_base(&self.settings, host)
    }

    /// The name of the organization's plan and what it allows.
    pub async fn org_plan(&self, org_id: Uuid) -> Result<(String, parley_domain::usage::Plan), ApiError> {
        let org = read::org(&self.store, org_id).await?;
        let name = org
            .and_then(|o| o.plan)
            .unwrap_or_else(|| crate::config::DEFAULT_PLAN.to_owned());
        let plan = self.settings.plan_named(Some(&name));
        Ok((name, plan))
    }

    /// What the organization's plan allows. With no named plans configured
    /// every organization is on the default one: nothing to read.
    async fn plan_of(&self, org_id: Uuid) -> Result<parley_domain::usage::Plan, ApiError> {
        if self.settings.plans.is_empty() {
            return Ok(self.settings.plan());
        }
        Ok(self.org_plan(org_id).await?.1)
    }

    /// `429 QUOTA_EXCEEDED` unless the organization's plan allows one more
    /// chat message this month (and counts it).
    pub async fn take_message(&self, org_id: Uuid) -> Result<(), ApiError> {
        let plan = self.plan_of(org_id).await?;
        let now = self.clock.now();
        let taken =
            parley_domain::store::usage::take_message(&self.store, org_id, now, plan.messages_per_month).await?;
        if taken {
            return Ok(());
        }
        Err(plan.messages_used_up(now).into())
    }

    /// `429 QUOTA_EXCEEDED` when the month's chat messages are used up,
    /// without taking one: checked before anything else is stored.
    pub async fn room_for_message(&self, org_id: Uuid) -> Result<(), ApiError> {
        let plan = self.plan_of(org_id).await?;
        let now = self.clock.now();
        let used = parley_domain::store::usage::messages_used(&self.store, org_id, now).await?;
        Ok(plan.room_for_message(used, now)?)
    }

    /// `429 QUOTA_EXCEEDED` when the organization has as many bots (or
    /// sources) as its plan allows.
    pub async fn room_for(&self, org_id: Uuid, what: Quota) -> Result<(), ApiError> {
        let plan = self.plan_of(org_id).await?;
        let used = match what {
            Quota::Bots => parley_domain::store::usage::bots_used(&self.store, org_id).await,
            Quota::Sources => parley_domain::store::usage::sources_used(&self.store, org_id).await,
        };
        Ok(plan.room_for(what, used?)?)
    }
}

/// An open answer stream; dropping it (the stream ended or the client left)
/// frees its place.
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<(Uuid, String), usize>>>,
    key: (Uuid, String),
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = streams.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

impl AppState {
    /// A place for one more open answer stream of this visitor, or
    /// `429 RATE_LIMITED` when they have the most allowed open already.
    pub fn open_stream(&self, org_id: Uuid, visitor: String) -> Result<StreamSlot, ApiError> {
        let max = self.settings.max_streams_per_visitor;
        let key = (org_id, visitor);
        let mut streams = self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = streams.entry(key.clone()).or_default();
        if *open >= max {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("this visitor already has {max} answers streaming; wait for one to finish"),
            ));
        }
        *open += 1;
        Ok(StreamSlot {
            streams: self.streams.clone(),
            key,
        })
    }
}
