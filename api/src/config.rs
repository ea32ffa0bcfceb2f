//! Layered configuration: compiled-in defaults, then an optional TOML file,
//! then `PARLEY_*` environment variables (`PARLEY_SECTION__KEY` for nested
//! keys). Validated once at start; secrets never appear in logs.

use std::net::SocketAddr;

use parley_domain::usage::Plan;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The plan organizations are on unless they are put on another one.
pub const DEFAULT_PLAN: &str = "default";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: String,
    /// `sqlite://path` (embedded default) or `postgres://...`.
    pub database_url: SecretString,
    /// `redis://...`: job queues in Redis. Unset: the queue lives in the SQLite database.
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Prefix of the Redis queue names, to share one Redis between installations.
    #[serde(default)]
    pub queue_namespace: Option<String>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `parley_api=debug,info`.
    pub log_level: String,
    /// Jobs run at once by one worker process.
    pub worker_concurrency: usize,
    /// Largest JSON request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// Longest time a client may take to send a connection's first request
    /// line and headers.
    pub header_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests and jobs.
    pub shutdown_timeout_secs: u64,
    /// How long the outbox dispatcher's lease lasts: the longest pause before
    /// another worker takes over from one that died.
    pub outbox_lease_secs: u64,
    /// Where `scripts/setup-models` put ONNX Runtime and the embedding model.
    pub models_dir: String,
    /// Whether model sessions keep ONNX Runtime's memory arena: faster
    /// indexing, more memory kept for the life of the process.
    #[serde(default)]
    pub model_arena: bool,
    /// Private hosts or addresses that sources may fetch (comma-separated),
    /// e.g. `127.0.0.1,wiki.internal`. Everything else private is refused.
    #[serde(default)]
    pub allowed_private_hosts: String,
    /// Private hosts webhook endpoints may point at (a list of its own:
    /// every organization can create endpoints).
    #[serde(default)]
    pub webhook_allowed_private_hosts: String,
    /// Largest uploaded document or downloaded page, in bytes.
    pub max_upload_bytes: usize,
    /// Most sources one bot may have.
    pub max_sources_per_bot: u64,
    /// Highest `max_pages` a site source may ask for.
    pub max_pages_cap: u32,
    /// Pause between two requests of one crawl, in milliseconds.
    pub crawl_delay_ms: u64,
    /// Requests of one crawl in flight at once.
    pub crawl_concurrency: usize,
    /// Parse documents in a sandboxed child process (`true`), or on a thread
    /// of the worker (`false`: only for debugging a parser).
    pub parse_sandbox: bool,
    /// The program run as the sandboxed parser (default: this binary).
    #[serde(default)]
    pub parse_program: String,
    /// Address space of a parser process, in MiB.
    pub parse_memory_mb: u64,
    /// CPU time of a parser process, in seconds.
    pub parse_cpu_secs: u64,
    /// Wall-clock time of one document's parse, in seconds.
    pub parse_timeout_secs: u64,
    /// Memory for the search indexes an API process keeps, in MiB; past it
    /// the bots searched least recently are dropped and reloaded when next searched.
    pub index_cache_mb: usize,
    /// Least cosine similarity between the question and the best passage for
    /// the bot to answer (a floor under the answerability gate; 0: none).
    pub chat_min_relevance: f32,
    /// Least probability, from both retrievers' evidence, that the knowledge
    /// answers the question; below it the fallback message is given.
    pub chat_min_answerability: f32,
    /// The answer when nothing relevant is found (it should offer a person).
    pub chat_fallback_message: String,
    /// Passages retrieved for an answer.
    pub chat_passages: usize,
    /// The bot's answer when a visitor asks for a person.
    pub chat_handoff_message: String,
    /// Fallback answers in a row after which a person takes over (0: never).
    pub escalate_after_unanswered: u32,
    /// Seconds between heartbeat comments on a quiet chat stream.
    pub sse_heartbeat_secs: u64,
    /// Base URL of the OpenAI-compatible chat-completions API.
    pub openai_base_url: String,
    /// Its API key (sent as a bearer token), if it needs one.
    #[serde(default)]
    pub openai_api_key: Option<SecretString>,
    /// The model when a bot names none.
    pub openai_model: String,
    /// Longest wait for the provider's first byte, in seconds.
    pub openai_timeout_secs: u64,
    /// Longest silence within a streamed answer, in seconds.
    pub openai_idle_timeout_secs: u64,
    /// Address of the job dashboard (its own port); unset: no dashboard.
    #[serde(default)]
    pub board_listen: Option<String>,
    /// The dashboard's user name (HTTP Basic).
    pub board_user: String,
    /// The dashboard's password; required with `board_listen`.
    #[serde(default)]
    pub board_password: Option<SecretString>,
    /// Requests per minute one API key may make.
    pub rate_limit_per_minute: u32,
    /// Document uploads one key may make per `upload_period_secs`.
    pub upload_limit: u32,
    pub upload_period_secs: u64,
    /// Page and site sources added, and refreshes, per `crawl_period_secs`.
    pub crawl_limit: u32,
    pub crawl_period_secs: u64,
    /// When Redis (holding the shared counts) does not answer: let requests
    /// through (true) or answer 503 (false). Logged either way.
    pub rate_limit_fail_open: bool,
    /// The plan every organization is on: chat messages per calendar month (UTC).
    pub plan_messages_per_month: u64,
    /// Bots per organization.
    pub plan_bots: u64,
    /// Sources per organization, across its bots.
    pub plan_sources: u64,
    /// Answer streams one visitor (or one key, without `visitor_id`) may
    /// have open at once, per API process.
    pub max_streams_per_visitor: usize,
    /// The address visitors and integrators reach the API at (for embed
    /// snippets and links); absent, taken from each request's `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest file a visitor may attach to a message.
    pub max_attachment_bytes: usize,
    /// Comma-separated proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: String,
    /// Requests per minute one visitor IP may make to the public endpoints.
    pub visitor_rate_limit_per_minute: u32,
    /// Conversations per minute one visitor IP may start.
    pub visitor_conversations_per_minute: u32,
    /// Messages per minute one visitor IP may send.
    pub visitor_messages_per_minute: u32,
    /// Longest wait for a webhook endpoint's answer.
    pub webhook_timeout_secs: u64,
    /// Delay before a delivery's first retry; each next one doubles.
    pub webhook_retry_base_ms: u64,
    /// How long a delivery is retried.
    pub webhook_retry_hours: u64,
    /// An endpoint failing this long without a success is disabled.
    pub webhook_disable_after_secs: u64,
    /// Webhook endpoints per organization.
    pub max_webhooks_per_org: u64,
    /// Minutes without a request after which a member's session ends.
    pub session_idle_minutes: u32,
    /// Hours after which a session ends, however active.
    pub session_max_hours: u32,
    /// Failed sign-ins one account may have per 15 minutes before it is
    /// throttled (429 with `Retry-After`).
    pub sign_in_failures_per_account: u32,
    /// Failed sign-ins one client IP may have per 15 minutes.
    pub sign_in_failures_per_ip: u32,
    /// Named plans besides the default one (`[plans.<name>]`, `PARLEY_PLANS__<NAME>__*`).
    #[serde(default)]
    pub plans: std::collections::BTreeMap<String, Plan>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/parley.db";

pub const DEFAULT_HANDOFF: &str =
    "I've asked a person to join this conversation. They will reply here as soon as they can.";

pub const DEFAULT_FALLBACK: &str = "I'm sorry, I couldn't find the answer to that in what I know. \
     Would you like me to connect you with a person?";

/// The compiled-in defaults, without a file or the environment (a base
/// for tests and tools to adjust).
pub fn defaults() -> Result<Settings, ConfigError> {
    Ok(with_defaults()?.build()?.try_deserialize()?)
}

/// Where the configuration came from, for `--config`.
pub fn load(file: Option<&str>) -> Result<Settings, ConfigError> {
    let mut builder = with_defaults()?;
    let file = file.map(str::to_owned).or_else(|| std::env::var("PARLEY_CONFIG").ok());
    match file {
        Some(path) => builder = builder.add_source(config::File::with_name(&path).required(true)),
        None => builder = builder.add_source(config::File::with_name("parley").required(false)),
    }
    builder = builder.add_source(
        config::Environment::with_prefix("PARLEY")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true),
    );
    let mut settings: Settings = builder.build()?.try_deserialize()?;
    // An empty variable means "unset", as operators expect.
    if settings
        .redis_url
        .as_ref()
        .is_some_and(|u| u.expose_secret().trim().is_empty())
    {
        settings.redis_url = None;
    }
    if settings.queue_namespace.as_ref().is_some_and(|n| n.trim().is_empty()) {
        settings.queue_namespace = None;
    }
    if settings.board_listen.as_ref().is_some_and(|n| n.trim().is_empty()) {
        settings.board_listen = None;
    }
    if settings.public_url.as_ref().is_some_and(|n| n.trim().is_empty()) {
        settings.public_url = None;
    }
    settings.validate()?;
    Ok(settings)
}

fn with_defaults() -> Result<config::ConfigBuilder<config::builder::DefaultState>, ConfigError> {
    Ok(config::Config::builder()
        .set_default("listen", "127.0.0.1:8080")?
        .set_default("database_url", DEFAULT_DATABASE_URL)?
        .set_default("log_format", "text")?
        .set_default("log_level", "info")?
        .set_default("worker_concurrency", 2)?
        .set_default("max_body_bytes", 1_048_576)?
        .set_default("request_timeout_secs", 120)?
        .set_default("header_timeout_secs", 10)?
        .set_default("shutdown_timeout_secs", 30)?
        .set_default("outbox_lease_secs", 15)?
        .set_default("models_dir", ".parley/models")?
        .set_default("model_arena", false)?
        .set_default("allowed_private_hosts", "")?
        .set_default("webhook_allowed_private_hosts", "")?
        .set_default("max_upload_bytes", 25 * 1024 * 1024)?
        .set_default("max_sources_per_bot", 200)?
        .set_default("max_pages_cap", 5000)?
        .set_default("crawl_delay_ms", 100)?
        .set_default("crawl_concurrency", 2)?
        .set_default("parse_sandbox", true)?
        .set_default("parse_memory_mb", 2048)?
        .set_default("parse_cpu_secs", 60)?
        .set_default("parse_timeout_secs", 90)?
        .set_default("index_cache_mb", 1024)?
        .set_default("chat_min_relevance", 0.0)?
        .set_default(
            "chat_min_answerability",
            f64::from(parley_domain::retrieval::Gate::DEFAULT.threshold),
        )?
        .set_default("chat_fallback_message", DEFAULT_FALLBACK)?
        .set_default("chat_passages", 5)?
        .set_default("chat_handoff_message", DEFAULT_HANDOFF)?
        .set_default("escalate_after_unanswered", 2)?
        .set_default("sse_heartbeat_secs", 15)?
        .set_default("openai_base_url", "https://api.openai.com/v1")?
        .set_default("openai_model", "gpt-4o-mini")?
        .set_default("openai_timeout_secs", 60)?
        .set_default("openai_idle_timeout_secs", 30)?
        .set_default("board_user", "admin")?
        .set_default("rate_limit_per_minute", 60)?
        .set_default("upload_limit", 5)?
        .set_default("upload_period_secs", 300)?
        .set_default("crawl_limit", 10)?
        .set_default("crawl_period_secs", 300)?
        .set_default("rate_limit_fail_open", true)?
        .set_default("plan_messages_per_month", 10_000)?
        .set_default("plan_bots", 50)?
        .set_default("plan_sources", 2_000)?
        .set_default("max_streams_per_visitor", 3)?
        .set_default("max_attachment_bytes", 10 * 1024 * 1024)?
        .set_default("trusted_proxies", "")?
        .set_default("visitor_rate_limit_per_minute", 120)?
        .set_default("visitor_conversations_per_minute", 5)?
        .set_default("visitor_messages_per_minute", 20)?
        .set_default("webhook_timeout_secs", 10)?
        .set_default("webhook_retry_base_ms", 10_000)?
        .set_default("webhook_retry_hours", 24)?
        .set_default("webhook_disable_after_secs", 72 * 3600)?
        .set_default("max_webhooks_per_org", 20)?
        .set_default("session_idle_minutes", 8 * 60)?
        .set_default("session_max_hours", 7 * 24)?
        .set_default("sign_in_failures_per_account", 5)?
        .set_default("sign_in_failures_per_ip", 30)?)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("configuration: {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl Settings {
    /// Checks every value and says which one is wrong and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "PARLEY_LISTEN",
                format!("`{}` is not an address such as 127.0.0.1:8080", self.listen),
            )
        })?;
        let db = self.database_url.expose_secret();
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(invalid(
                "PARLEY_DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if let Some(redis) = &self.redis_url {
            let r = redis.expose_secret();
            if !(r.starts_with("redis://") || r.starts_with("rediss://")) {
                return Err(invalid("PARLEY_REDIS_URL", "must start with redis:// or rediss://"));
            }
        } else if !self.is_sqlite() {
            return Err(invalid(
                "PARLEY_REDIS_URL",
                "PostgreSQL deployments keep their job queues in Redis: set PARLEY_REDIS_URL",
            ));
        }
        if !(1..=64).contains(&self.worker_concurrency) {
            return Err(invalid("PARLEY_WORKER_CONCURRENCY", "must be between 1 and 64"));
        }
        if !(1024..=1 << 30).contains(&self.max_body_bytes) {
            return Err(invalid("PARLEY_MAX_BODY_BYTES", "must be between 1024 and 1073741824"));
        }
        if !(1..=3600).contains(&self.outbox_lease_secs) {
            return Err(invalid("PARLEY_OUTBOX_LEASE_SECS", "must be between 1 and 3600"));
        }
        if !(1024..=1 << 30).contains(&self.max_upload_bytes) {
            return Err(invalid(
                "PARLEY_MAX_UPLOAD_BYTES",
                "must be between 1024 and 1073741824",
            ));
        }
        if !(1..=100_000).contains(&self.max_pages_cap) {
            return Err(invalid("PARLEY_MAX_PAGES_CAP", "must be between 1 and 100000"));
        }
        if !(256..=65536).contains(&self.parse_memory_mb) {
            return Err(invalid("PARLEY_PARSE_MEMORY_MB", "must be between 256 and 65536"));
        }
        if !(1..=3600).contains(&self.parse_cpu_secs) {
            return Err(invalid("PARLEY_PARSE_CPU_SECS", "must be between 1 and 3600"));
        }
        if !(16..=1_048_576).contains(&self.index_cache_mb) {
            return Err(invalid("PARLEY_INDEX_CACHE_MB", "must be between 16 and 1048576"));
        }
        if !(1..=3600).contains(&self.parse_timeout_secs) {
            return Err(invalid("PARLEY_PARSE_TIMEOUT_SECS", "must be between 1 and 3600"));
        }
        if !(1..=32).contains(&self.crawl_concurrency) {
            return Err(invalid("PARLEY_CRAWL_CONCURRENCY", "must be between 1 and 32"));
        }
        if !(1..=300).contains(&self.header_timeout_secs) {
            return Err(invalid("PARLEY_HEADER_TIMEOUT_SECS", "must be between 1 and 300"));
        }
        if self.request_timeout_secs == 0 {
            return Err(invalid("PARLEY_REQUEST_TIMEOUT_SECS", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.chat_min_relevance) {
            return Err(invalid("PARLEY_CHAT_MIN_RELEVANCE", "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&self.chat_min_answerability) {
            return Err(invalid("PARLEY_CHAT_MIN_ANSWERABILITY", "must be between 0 and 1"));
        }
        if self.chat_fallback_message.trim().is_empty() {
            return Err(invalid("PARLEY_CHAT_FALLBACK_MESSAGE", "must not be empty"));
        }
        if !(1..=20).contains(&self.chat_passages) {
            return Err(invalid("PARLEY_CHAT_PASSAGES", "must be between 1 and 20"));
        }
        if !(1..=300).contains(&self.sse_heartbeat_secs) {
            return Err(invalid("PARLEY_SSE_HEARTBEAT_SECS", "must be between 1 and 300"));
        }
        if !(self.openai_base_url.starts_with("http://") || self.openai_base_url.starts_with("https://")) {
            return Err(invalid("PARLEY_OPENAI_BASE_URL", "must be an http(s) URL"));
        }
        if let Some(board) = &self.board_listen {
            board.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "PARLEY_BOARD_LISTEN",
                    format!("`{board}` is not an address such as 127.0.0.1:8081"),
                )
            })?;
            let password = self.board_password.as_ref().map(|p| p.expose_secret().len());
            if password.is_none_or(|n| n < 12) {
                return Err(invalid(
                    "PARLEY_BOARD_PASSWORD",
                    "the job dashboard needs a password of at least 12 characters",
                ));
            }
            if self.board_user.trim().is_empty() || self.board_user.contains(':') {
                return Err(invalid("PARLEY_BOARD_USER", "must be non-empty and contain no `:`"));
            }
        }
        if let Some(url) = &self.public_url {
            let ok =
                url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(invalid(
                    "PARLEY_PUBLIC_URL",
                    "must be an http(s) URL such as https://chat.acme.example",
                ));
            }
        }
        if !(1024..=1 << 30).contains(&self.max_attachment_bytes) {
            return Err(invalid(
                "PARLEY_MAX_ATTACHMENT_BYTES",
                "must be between 1024 and 1073741824",
            ));
        }
        if !(1..=60).contains(&self.webhook_timeout_secs) {
            return Err(invalid("PARLEY_WEBHOOK_TIMEOUT_SECS", "must be between 1 and 60"));
        }
        if !(10..=3_600_000).contains(&self.webhook_retry_base_ms) {
            return Err(invalid(
                "PARLEY_WEBHOOK_RETRY_BASE_MS",
                "must be between 10 and 3600000",
            ));
        }
        if !(1..=720).contains(&self.webhook_retry_hours) {
            return Err(invalid("PARLEY_WEBHOOK_RETRY_HOURS", "must be between 1 and 720"));
        }
        if self.webhook_disable_after_secs == 0 {
            return Err(invalid("PARLEY_WEBHOOK_DISABLE_AFTER_SECS", "must be at least 1"));
        }
        for name in self.plans.keys() {
            if !parley_domain::aggregates::org::valid_plan_name(name) || name == DEFAULT_PLAN {
                return Err(invalid(
                    "PARLEY_PLANS",
                    format!(
                        "`{name}` is not a plan name: 1 to 40 lowercase letters, digits, `-` or `_`, not `default`"
                    ),
                ));
            }
        }
        if !(1..=1000).contains(&self.max_webhooks_per_org) {
            return Err(invalid("PARLEY_MAX_WEBHOOKS_PER_ORG", "must be between 1 and 1000"));
        }
        if !(1..=7 * 24 * 60).contains(&self.session_idle_minutes) {
            return Err(invalid(
                "PARLEY_SESSION_IDLE_MINUTES",
                "must be between 1 and 10080 (a week)",
            ));
        }
        if !(1..=90 * 24).contains(&self.session_max_hours) {
            return Err(invalid(
                "PARLEY_SESSION_MAX_HOURS",
                "must be between 1 and 2160 (90 days)",
            ));
        }
        if self.sign_in_failures_per_account == 0 || self.sign_in_failures_per_ip == 0 {
            return Err(invalid(
                "PARLEY_SIGN_IN_FAILURES_PER_ACCOUNT",
                "sign-in failure limits (per account and per IP) must be at least 1",
            ));
        }
        crate::http::client_ip::parse_proxies(&self.trusted_proxies).map_err(|bad| {
            invalid(
                "PARLEY_TRUSTED_PROXIES",
                format!("`{bad}` is not an address or CIDR range"),
            )
        })?;
        for (name, limit, period) in [
            (
                "PARLEY_VISITOR_RATE_LIMIT_PER_MINUTE",
                self.visitor_rate_limit_per_minute,
                60,
            ),
            (
                "PARLEY_VISITOR_CONVERSATIONS_PER_MINUTE",
                self.visitor_conversations_per_minute,
                60,
            ),
            (
                "PARLEY_VISITOR_MESSAGES_PER_MINUTE",
                self.visitor_messages_per_minute,
                60,
            ),
            ("PARLEY_RATE_LIMIT_PER_MINUTE", self.rate_limit_per_minute, 60),
            ("PARLEY_UPLOAD_LIMIT", self.upload_limit, self.upload_period_secs),
            ("PARLEY_CRAWL_LIMIT", self.crawl_limit, self.crawl_period_secs),
        ] {
            if limit == 0 || period == 0 {
                return Err(invalid(name, "limits and their periods must be at least 1"));
            }
        }
        if self.openai_timeout_secs == 0 || self.openai_idle_timeout_secs == 0 {
            return Err(invalid(
                "PARLEY_OPENAI_TIMEOUT_SECS",
                "timeouts must be at least 1 second",
            ));
        }
        Ok(())
    }

    pub fn limits(&self) -> crate::http::ratelimit::Limits {
        use parley_domain::ratelimit::Rate;
        crate::http::ratelimit::Limits {
            per_key: Rate::per_minute(self.rate_limit_per_minute),
            uploads: Rate {
                limit: self.upload_limit,
                period_ms: self.upload_period_secs * 1000,
            },
            crawls: Rate {
                limit: self.crawl_limit,
                period_ms: self.crawl_period_secs * 1000,
            },
            fail_open: self.rate_limit_fail_open,
            visitor: Rate::per_minute(self.visitor_rate_limit_per_minute),
            visitor_conversations: Rate::per_minute(self.visitor_conversations_per_minute),
            visitor_messages: Rate::per_minute(self.visitor_messages_per_minute),
        }
    }

    /// The default plan.
    pub fn plan(&self) -> Plan {
        Plan {
            messages_per_month: self.plan_messages_per_month,
            bots: self.plan_bots,
            sources: self.plan_sources,
        }
    }

    /// A plan by name (`None` or `default`: the default plan). A name no
    /// longer configured falls back to the default plan.
    pub fn plan_named(&self, name: Option<&str>) -> Plan {
        match name.filter(|n| *n != DEFAULT_PLAN) {
            None => self.plan(),
            Some(n) => match self.plans.get(n) {
                Some(p) => *p,
                None => {
                    tracing::warn!(
                        plan = n,
                        "an organization's plan is not configured; the default plan applies"
                    );
                    self.plan()
                }
            },
        }
    }

    /// An error naming the configured plans unless `name` is one of them.
    pub fn check_plan(&self, name: &str) -> Result<(), ConfigError> {
        if name == DEFAULT_PLAN || self.plans.contains_key(name) {
            return Ok(());
        }
        let mut known: Vec<&str> = vec![DEFAULT_PLAN];
        known.extend(self.plans.keys().map(String::as_str));
        Err(invalid(
            "plan",
            format!("`{name}` is not a configured plan (known: {})", known.join(", ")),
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }

    pub fn private_hosts(&self) -> Vec<String> {
        host_list(&self.allowed_private_hosts)
    }

    /// How model sessions hold their working memory.
    pub fn arena(&self) -> parley_worker::ingest::embed::Arena {
        if self.model_arena {
            parley_worker::ingest::embed::Arena::Kept
        } else {
            parley_worker::ingest::embed::Arena::Off
        }
    }

    /// What ingestion may do, from these settings.
    pub fn ingest(&self) -> parley_worker::ingest::pipeline::IngestSettings {
        parley_worker::ingest::pipeline::IngestSettings {
            net: parley_worker::net::NetPolicy {
                allowed_private_hosts: self.private_hosts(),
            },
            models_dir: self.models_dir.clone().into(),
            model_arena: self.arena(),
            max_download_bytes: self.max_upload_bytes,
            crawl_delay: std::time::Duration::from_millis(self.crawl_delay_ms),
            crawl_concurrency: self.crawl_concurrency,
            parse_timeout: std::time::Duration::from_secs(self.parse_timeout_secs),
            parse_sandbox: self.parse_sandbox.then(|| {
                std::sync::Arc::new(parley_worker::ingest::parse::Sandbox {
                    program: if self.parse_program.is_empty() {
                        std::env::current_exe().unwrap_or_else(|_| "parley".into())
                    } else {
                        self.parse_program.clone().into()
                    },
                    args: vec![parley_worker::ingest::parse::sandbox::SUBCOMMAND.to_owned()],
                    memory_bytes: self.parse_memory_mb << 20,
                    cpu_seconds: self.parse_cpu_secs,
                })
            }),
            ..Default::default()
        }
    }

    pub fn webhooks(&self) -> parley_worker::webhooks::WebhookSettings {
        use std::time::Duration;
        parley_worker::webhooks::WebhookSettings {
            net: self.webhook_net(),
            timeout: Duration::from_secs(self.webhook_timeout_secs),
            retry_base: Duration::from_millis(self.webhook_retry_base_ms),
            retry_window: Duration::from_secs(self.webhook_retry_hours * 3600),
            disable_after: Duration::from_secs(self.webhook_disable_after_secs),
        }
    }

    /// The address guard of webhook deliveries.
    pub fn webhook_net(&self) -> parley_worker::net::NetPolicy {
        parley_worker::net::NetPolicy {
            allowed_private_hosts: host_list(&self.webhook_allowed_private_hosts),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

/// A comma-separated list of hosts, trimmed, without empty entries.
fn host_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        super::defaults().unwrap()
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_variable() {
        defaults().validate().unwrap();
        let bad = Settings {
            listen: "localhost".into(),
            ..defaults()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("PARLEY_LISTEN"));
        let pg_without_redis = Settings {
            database_url: "postgres://x/y".into(),
            ..defaults()
        };
        assert!(
            pg_without_redis
                .validate()
                .unwrap_err()
                .to_string()
                .contains("PARLEY_REDIS_URL")
        );
        let mysql = Settings {
            database_url: "mysql://x".into(),
            ..defaults()
        };
        assert!(
            mysql
                .validate()
                .unwrap_err()
                .to_string()
                .contains("PARLEY_DATABASE_URL")
        );
    }

    #[test]
    fn plans_come_from_the_file_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("parley-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("parley.toml");
        std::fs::write(
            &file,
            "[plans.starter]\nmessages_per_month = 100\nbots = 1\nsources = 10\n",
        )
        .unwrap();
        let settings = load(Some(file.to_str().unwrap())).unwrap();
        assert_eq!(settings.plan_named(Some("starter")).bots, 1);
        assert_eq!(settings.plan_named(None), settings.plan());
        assert_eq!(
            settings.plan_named(Some("gone")),
            settings.plan(),
            "an unknown plan falls back"
        );
        assert!(settings.check_plan("starter").is_ok() && settings.check_plan("default").is_ok());
        let err = settings.check_plan("enterprise").unwrap_err().to_string();
        assert!(err.contains("default, starter"), "{err}");
        std::fs::write(&file, "[plans.Big]\nmessages_per_month = 1\nbots = 1\nsources = 1\n").unwrap();
        assert!(
            load(Some(file.to_str().unwrap()))
                .unwrap_err()
                .to_string()
                .contains("PARLEY_PLANS")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Settings {
            database_url: "postgres://u:hunter2@h/db".into(),
            redis_url: Some("redis://:pw@h".into()),
            ..defaults()
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2") && !printed.contains(":pw@"), "{printed}");
    }
}
