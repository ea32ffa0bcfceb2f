//! Request rate limits per API key, and tighter ones for expensive work
//! (uploads, crawls). Counted in Redis by one atomic script when Redis is
//! configured, so every API process shares the counts; in memory otherwise.
//! Every limited response says where it stands (`X-RateLimit-Limit`,
//! `X-RateLimit-Remaining`, `X-RateLimit-Reset`); a refused one is
//! `429 RATE_LIMITED` with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use parley_domain::ErrorCode;
use parley_domain::ratelimit::{Decision, Rate, gcra};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The GCRA step of `parley_domain::ratelimit::gcra`, atomically in Redis,
/// on the server's clock (so processes on several machines agree).
const SCRIPT: &str = r"
local t = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local new_tat = tat + t
local allow_at = new_tat - t * limit
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
return {1, math.floor((now - allow_at) / t), math.ceil(new_tat - now), 0}
";

/// The clock of the in-memory backend, in milliseconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Milliseconds since the Unix epoch.
pub fn system_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

enum Backend {
    Memory {
        state: Mutex<HashMap<String, f64>>,
        clock: Clock,
    },
    Redis {
        conn: redis::aio::ConnectionManager,
        script: redis::Script,
    },
}

/// The configured limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_key: Rate,
    pub uploads: Rate,
    pub crawls: Rate,
    /// When the shared store does not answer: let requests through (true)
    /// or refuse them with 503 (false).
    pub fail_open: bool,
    /// Public (visitor) requests per client IP.
    pub visitor: Rate,
    /// Conversations started per client IP.
    pub visitor_conversations: Rate,
    /// Messages sent per client IP.
    pub visitor_messages: Rate,
}

pub struct Limiter {
    backend: Backend,
    limits: Limits,
    prefix: String,
    /// Proxies whose `X-Forwarded-For` names the client.
    proxies: Vec<ipnet::IpNet>,
    /// Where bots' own limits are read.
    store: Option<parley_domain::Store>,
    /// Bots' site keys and own limits, read at most every few seconds per
    /// bot and process.
    bot_limits: Mutex<HashMap<uuid::Uuid, (std::time::Instant, BotLimit)>>,
}

/// What the limiter knows of a bot.
#[derive(Debug, Clone, Default)]
struct BotLimit {
    site_key: Option<String>,
    per_minute: Option<u32>,
}

/// How long a bot's own limit is cached before it is read again.
const BOT_LIMIT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Limiter {
    pub fn memory(limits: Limits, clock: Clock) -> Limiter {
        Limiter {
            backend: Backend::Memory {
                state: Mutex::default(),
                clock,
            },
            limits,
            prefix: String::new(),
            proxies: vec![],
            store: None,
            bot_limits: Mutex::default(),
        }
    }

    pub fn redis(limits: Limits, conn: redis::aio::ConnectionManager, namespace: Option<&str>) -> Limiter {
        Limiter {
            backend: Backend::Redis {
                conn,
                script: redis::Script::new(SCRIPT),
            },
            limits,
            prefix: namespace.map(|n| format!("{n}:")).unwrap_or_default(),
            proxies: vec![],
            store: None,
            bot_limits: Mutex::default(),
        }
    }

    /// Whether a message's conversation token opens its conversation:
    /// requests the endpoint will refuse spend nothing of the bot's budget.
    async fn opens(&self, bot_id: uuid::Uuid, conversation: uuid::Uuid, token: Option<&str>) -> bool {
        let (Some(store), Some(token)) = (&self.store, token) else {
            return false;
        };
        match parley_domain::store::read::conversation_of_bot(store, bot_id, conversation).await {
            Ok(Some(row)) => {
                row.token_hash.as_deref() == Some(&parley_domain::store::content::sha256_hex(token.as_bytes()))
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the conversation for the bot's rate limit");
                false
            }
        }
    }

    /// Reads bots' own limits from this store.
    pub fn with_store(mut self, store: parley_domain::Store) -> Limiter {
        self.store = Some(store);
        self
    }

    /// A bot's own messages-per-minute limit, for a request that shows the
    /// bot's site key (others are refused by the endpoint and count for
    /// nothing). Cached a few seconds.
    async fn bot_limit(&self, bot_id: uuid::Uuid, site_key: Option<&str>) -> Option<u32> {
        let now = std::time::Instant::now();
        let cached = self
            .bot_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&bot_id)
            .filter(|(at, _)| now.duration_since(*at) < BOT_LIMIT_TTL)
            .map(|(_, limit)| limit.clone());
        let limit = match cached {
            Some(limit) => limit,
            None => self.read_bot_limit(bot_id, now).await?,
        };
        match (&limit.site_key, site_key) {
            (Some(own), Some(shown)) if own == shown => limit.per_minute,
            _ => None,
        }
    }

    async fn read_bot_limit(&self, bot_id: uuid::Uuid, now: std::time::Instant) -> Option<BotLimit> {
        let store = self.store.as_ref()?;
        let limit = match parley_domain::store::read::live_bot_by_id(store, bot_id).await {
            Ok(bot) => bot.map_or_else(BotLimit::default, |b| BotLimit {
                site_key: b.site_key,
                per_minute: b.rate_limit_per_minute.and_then(|v| u32::try_from(v).ok()),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bot's rate limit");
                return None;
            }
        };
        let mut cache = self
            .bot_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(bot_id, (now, limit.clone()));
        Some(limit)
    }

    /// Believes `X-Forwarded-For` from these proxies.
    pub fn with_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Limiter {
        self.proxies = proxies;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What limits count a client by: its IP (behind the trusted proxies),
    /// an IPv6 client by its /64.
    pub fn client_of(&self, req: &Request) -> Option<String> {
        crate::http::client_ip::client_ip(req, &self.proxies).map(crate::http::client_ip::rate_bucket)
    }

    /// One request against `key` at `rate`; `None` when the shared store
    /// failed (the caller applies the configured direction).
    async fn check(&self, key: &str, rate: Rate) -> Option<Decision> {
        self.decide(key, rate, true).await
    }

    /// Whether one more event counted under `key` would be allowed now,
    /// without counting it (`None`: the shared store failed).
    pub async fn peek(&self, key: &str, rate: Rate) -> Option<Decision> {
        self.decide(key, rate, false).await
    }

    /// Counts one event under `key` (such as a failed sign-in).
    pub async fn count(&self, key: &str, rate: Rate) -> Option<Decision> {
        self.decide(key, rate, true).await
    }

    async fn decide(&self, key: &str, rate: Rate, commit: bool) -> Option<Decision> {
        match &self.backend {
            Backend::Memory { state, clock } => {
                let now = clock();
                let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let (decision, tat) = gcra(rate, state.get(key).copied(), now);
                if !commit {
                    return Some(decision);
                }
                state.insert(key.to_owned(), tat);
                // Keys whose burst is whole again hold nothing worth keeping.
                if state.len() > 100_000 {
                    state.retain(|_, tat| *tat > now);
                }
                Some(decision)
            }
            Backend::Redis { conn, script } => {
                let mut conn = conn.clone();
                let result: Result<(u8, u64, u64, u64), _> = script
                    .key(format!("{}parley:ratelimit:{key}", self.prefix))
                    .arg(rate.emission_ms())
                    .arg(rate.limit)
                    .arg(u8::from(commit))
                    .invoke_async(&mut conn)
                    .await;
                match result {
                    Ok((allowed, remaining, reset_ms, retry_after_ms)) => Some(Decision {
                        allowed: allowed == 1,
                        limit: rate.limit,
                        remaining: remaining.min(u64::from(rate.limit)) as u32,
                        reset_ms,
                        retry_after_ms,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, fail_open = self.limits.fail_open, "rate limit store unreachable");
                        None
                    }
                }
            }
        }
    }
}

/// Which tighter limit a request also counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Upload,
    Crawl,
}

async fn class_of(req: &mut Request) -> Option<Class> {
    if req.method() != Method::POST {
        return None;
    }
    let path = req.uri().path().to_owned();
    if path.ends_with("/sources/documents") {
        return Some(Class::Upload);
    }
    if path.ends_with("/refresh") && path.contains("/sources/") {
        return Some(Class::Crawl);
    }
    if path.starts_with("/api/v1/bots/") && path.ends_with("/sources") {
        // Adding a page or a site fetches from the web; texts do not.
        let crawls = peek_json(req, |v| matches!(v["type"].as_str(), Some("url" | "sitemap"))).await;
        if crawls {
            return Some(Class::Crawl);
        }
    }
    None
}

/// What a visitor request may ask a bot to answer.
enum Asks {
    /// A message in this conversation.
    Message(uuid::Uuid),
    /// A new conversation: an answer when its body holds a first message.
    Start,
}

/// The bot a visitor request may ask for an answer, by its path alone.
fn bot_request(req: &Request) -> Option<(uuid::Uuid, Asks)> {
    if req.method() != Method::POST {
        return None;
    }
    let segments: Vec<&str> = req.uri().path().trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [
            "api",
            "v1",
            "public",
            "bots",
            bot,
            "conversations",
            conversation,
            "messages",
        ] => Some((bot.parse().ok()?, Asks::Message(conversation.parse().ok()?))),
        ["api", "v1", "public", "bots", bot, "conversations"] => Some((bot.parse().ok()?, Asks::Start)),
        _ => None,
    }
}

/// What `look` says of a request's JSON body (`false` when it is not
/// JSON); the body is put back for the endpoint.
async fn peek_json(req: &mut Request, look: impl FnOnce(&serde_json::Value) -> bool) -> bool {
    let body = req.take_body().into_bytes().await.unwrap_or_default();
    let seen = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|v| look(&v));
    req.set_body(body);
    seen
}

/// The counts a request is checked against: `(key, rate)`. Requests with
/// an API key count per key; public (visitor) requests per client IP; a
/// visitor's message to a bot with a limit of its own also counts for the bot.
async fn checks_for(req: &mut Request, limiter: &Limiter) -> Vec<(String, Rate)> {
    let mut checks = own_checks(req, limiter).await;
    let site_key = req.header("x-parley-site-key").map(str::to_owned);
    let token = req.header("x-parley-conversation-token").map(str::to_owned);
    // Bodies are read only for bots with a limit of their own.
    if let Some((bot_id, asks)) = bot_request(req)
        && let Some(limit) = limiter.bot_limit(bot_id, site_key.as_deref()).await
    {
        let answers = match asks {
            Asks::Message(conversation) => limiter.opens(bot_id, conversation, token.as_deref()).await,
            // A new conversation is answered when its body holds a first message.
            Asks::Start => peek_json(req, |v| v["message"].is_string()).await,
        };
        if answers {
            checks.push((format!("bot:{bot_id}"), Rate::per_minute(limit)));
        }
    }
    checks
}

async fn own_checks(req: &mut Request, limiter: &Limiter) -> Vec<(String, Rate)> {
    let limits = limiter.limits;
    let path = req.uri().path().to_owned();
    if path.starts_with("/api/v1/public/") {
        let Some(ip) = crate::http::client_ip::client_ip(req, &limiter.proxies) else {
            return vec![];
        };
        let ip = crate::http::client_ip::rate_bucket(ip);
        let mut checks = vec![(format!("ip:{ip}"), limits.visitor)];
        if req.method() == Method::POST {
            if path.ends_with("/conversations") {
                checks.push((format!("ip-conversations:{ip}"), limits.visitor_conversations));
            } else if path.ends_with("/messages") || path.ends_with("/attachments") {
                checks.push((format!("ip-messages:{ip}"), limits.visitor_messages));
            }
        }
        return checks;
    }
    // A key counts per key; a member's session per session.
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .or_else(|| crate::security::session::token_of(req))
        .map(|t| hex::encode(&Sha256::digest(t.as_bytes())[..16]));
    let Some(token) = token else {
        return vec![];
    };
    let mut checks = vec![(format!("key:{token}"), limits.per_key)];
    match class_of(req).await {
        Some(Class::Upload) => checks.push((format!("upload:{token}"), limits.uploads)),
        Some(Class::Crawl) => checks.push((format!("crawl:{token}"), limits.crawls)),
        None => {}
    }
    checks
}

fn headers(mut resp: Response, d: &Decision) -> Response {
    let h = resp.headers_mut();
    let put = |h: &mut poem::http::HeaderMap, name: &'static str, value: u64| {
        if let Ok(v) = poem::http::HeaderValue::from_str(&value.to_string()) {
            h.insert(name, v);
        }
    };
    put(h, "x-ratelimit-limit", u64::from(d.limit));
    put(h, "x-ratelimit-remaining", u64::from(d.remaining));
    // The Unix time (seconds) at which the whole burst is available again.
    put(
        h,
        "x-ratelimit-reset",
        (system_clock() as u64 + d.reset_ms).div_ceil(1000),
    );
    if !d.allowed {
        put(h, "retry-after", d.retry_after_ms.div_ceil(1000).max(1));
    }
    resp
}

/// Middleware: limits requests that carry an API key or a session, and
/// public requests by client IP.
pub async fn limit<E: Endpoint>(ep: E, mut req: Request, limiter: Arc<Limiter>) -> poem::Result<Response> {
    let limits = limiter.limits();
    let wanted = checks_for(&mut req, &limiter).await;
    if wanted.is_empty() {
        return Ok(ep.call(req).await?.into_response());
    }
    let mut checks = Vec::with_capacity(wanted.len());
    for (key, rate) in wanted {
        checks.push((limiter.check(&key, rate).await, rate));
    }
    if checks.iter().any(|(d, _)| d.is_none()) && !limits.fail_open {
        return Ok(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "rate limits cannot be checked right now; try again shortly",
        )
        .into_response());
    }
    // The tightest limit speaks: a refusal first, else the fewest remaining.
    let shown = checks
        .into_iter()
        .filter_map(|(d, rate)| d.map(|d| (d, rate)))
        .min_by_key(|(d, _)| (d.allowed, d.remaining));
    let Some((shown, rate)) = shown else {
        return Ok(ep.call(req).await?.into_response());
    };
    if !shown.allowed {
        let refused = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many requests: the limit is {} per {} s; retry in {} s",
                shown.limit,
                rate.period_ms / 1000,
                shown.retry_after_ms.div_ceil(1000).max(1)
            ),
        )
        .into_response();
        return Ok(headers(refused, &shown));
    }
    let resp = ep.call(req).await?.into_response();
    Ok(headers(resp, &shown))
}
