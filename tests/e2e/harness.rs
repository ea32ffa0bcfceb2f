//! Starting the application for a test: a fresh database per test (a SQLite
//! file, or a new PostgreSQL database with its own Redis queue namespace).

use std::time::Duration;

use parley_api::app::{Application, Roles};
use parley_api::config::{LogFormat, Settings};
use parley_domain::Store;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) fn pg_admin_url() -> String {
    std::env::var("PARLEY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("PARLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared test data: `$PARLEY_SHARED_DIR`, or `shared/` beside the checkout.
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var("PARLEY_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// Where `scripts/setup-models` installed the model (tests use the real one).
fn models_dir() -> String {
    std::env::var("PARLEY_MODELS_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.parley/models").to_owned())
}

/// Serves a folder over HTTP on 127.0.0.1 (port 0) until dropped.
pub struct StaticSite {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl StaticSite {
    pub async fn serve(dir: std::path::PathBuf) -> StaticSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        let app = poem::endpoint::StaticFilesEndpoint::new(dir).index_file("index.html");
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        StaticSite {
            base: format!("http://127.0.0.1:{port}"),
            task,
        }
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One test's database (and queue namespace); survives application restarts.
pub struct TestEnv {
    pub backend: Backend,
    database_url: String,
    redis_url: Option<String>,
    namespace: String,
    pg_database: Option<String>,
    sqlite_dir: Option<std::path::PathBuf>,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> TestEnv {
        let id = Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("parley-test-{id}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                TestEnv {
                    backend,
                    database_url: format!("sqlite://{}", dir.join("parley.db").display()),
                    redis_url: None,
                    namespace: String::new(),
                    pg_database: None,
                    sqlite_dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("parley_test_{id}");
                let admin = Database::connect(pg_admin_url())
                    .await
                    .expect("PostgreSQL must be reachable (PARLEY_TEST_POSTGRES_URL) for the postgres tier");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let base = pg_admin_url();
                let server = base
                    .rsplit_once('/')
                    .map_or(base.as_str(), |(server, _)| server)
                    .to_owned();
                TestEnv {
                    backend,
                    database_url: format!("{server}/{name}"),
                    redis_url: Some(redis_url()),
                    namespace: format!("parley-test-{id}"),
                    pg_database: Some(name),
                    sqlite_dir: None,
                }
            }
        }
    }

    /// A PostgreSQL environment whose queue lives in another Redis.
    pub async fn new_with_redis(backend: Backend, redis: String) -> TestEnv {
        let mut env = TestEnv::new(backend).await;
        env.redis_url = Some(redis);
        env
    }

    /// The PostgreSQL database's name.
    pub fn database_name(&self) -> Option<&str> {
        self.pg_database.as_deref()
    }

    pub fn settings(&self) -> Settings {
        let defaults = parley_api::config::defaults().expect("default settings");
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: self.database_url.clone().into(),
            redis_url: self.redis_url.clone().map(Into::into),
            queue_namespace: Some(self.namespace.clone()).filter(|n| !n.is_empty()),
            log_format: LogFormat::Text,
            log_level: "warn".into(),
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
            shutdown_timeout_secs: 10,
            outbox_lease_secs: 2,
            models_dir: models_dir(),
            allowed_private_hosts: "127.0.0.1".into(),
            webhook_allowed_private_hosts: "127.0.0.1".into(),
            max_upload_bytes: 2 * 1024 * 1024,
            max_sources_per_bot: 6,
            max_pages_cap: 1000,
            crawl_delay_ms: 0,
            crawl_concurrency: 4,
            // Documents are parsed by the real `parley` binary in its sandbox,
            // as in production (this test process is not `parley`).
            parse_program: parley_binary().display().to_string(),
            sse_heartbeat_secs: 1,
            // Scenarios poll; the rate-limit scenario sets its own limits.
            rate_limit_per_minute: 1_000_000,
            upload_limit: 1000,
            crawl_limit: 1000,
            visitor_rate_limit_per_minute: 1_000_000,
            visitor_conversations_per_minute: 1_000_000,
            visitor_messages_per_minute: 1_000_000,
            plan_messages_per_month: 1_000_000,
            plan_bots: 1000,
            plan_sources: 1000,
            ..defaults
        }
    }

    /// Starts the application with these roles on this environment's database.
    pub async fn start(&self, roles: Roles) -> TestApp {
        self.start_with(roles, |_| {}).await
    }

    /// Starts the application with adjusted settings.
    pub async fn start_with(&self, roles: Roles, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        if let Ok(level) = std::env::var("PARLEY_TEST_LOG") {
            parley_api::telemetry::init(LogFormat::Text, &level);
        }
        let mut settings = self.settings();
        adjust(&mut settings);
        settings.validate().expect("test settings are valid");
        if !roles.api {
            settings.listen = "127.0.0.1:0".into();
        }
        let app = Application::build(settings, roles).await.expect("application starts");
        let port = app.port();
        let board = app.board_port().map(|p| format!("http://127.0.0.1:{p}"));
        let clock = app.state().clock.clone();
        let store = app.state().store.clone();
        let queue = app.state().queue.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = stop_rx.await;
        }));
        TestApp {
            base: port.map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default(),
            board,
            clock,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            store,
            queue,
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }

    /// Drops the test database (PostgreSQL) or its folder (SQLite).
    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_database
            && let Ok(admin) = Database::connect(pg_admin_url()).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `parley` binary beside this test executable (`scripts/test` builds it
/// before the end-to-end runs), or `$PARLEY_BIN`.
pub fn parley_binary() -> std::path::PathBuf {
    if let Ok(bin) = std::env::var("PARLEY_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // .../debug/deps/e2e-<hash> → .../debug/parley
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|debug| debug.join("parley"))
        .expect("target folder");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p parley-api` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A `parley` process of its own (an OS process: it can be killed with
/// SIGKILL); stopped with SIGKILL when dropped.
pub struct ParleyProcess {
    pub base: String,
    pub child: tokio::process::Child,
}

impl ParleyProcess {
    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub async fn kill9(mut self) {
        // SIGKILL on Unix; waits for the process.
        let _ = self.child.kill().await;
    }
}

impl TestEnv {
    /// The environment a `parley` process needs to run on this test's
    /// database and queue, with the test settings.
    fn process_env(&self, listen: &str) -> Vec<(String, String)> {
        let s = self.settings();
        let mut env = vec![
            ("PARLEY_LISTEN".to_owned(), listen.to_owned()),
            ("PARLEY_DATABASE_URL".to_owned(), self.database_url.clone()),
            ("PARLEY_MODELS_DIR".to_owned(), s.models_dir.clone()),
            (
                "PARLEY_ALLOWED_PRIVATE_HOSTS".to_owned(),
                s.allowed_private_hosts.clone(),
            ),
            (
                "PARLEY_WEBHOOK_ALLOWED_PRIVATE_HOSTS".to_owned(),
                s.webhook_allowed_private_hosts.clone(),
            ),
            ("PARLEY_LOG_LEVEL".to_owned(), "warn".to_owned()),
            ("PARLEY_OUTBOX_LEASE_SECS".to_owned(), s.outbox_lease_secs.to_string()),
            ("PARLEY_CRAWL_DELAY_MS".to_owned(), s.crawl_delay_ms.to_string()),
            (
                "PARLEY_RATE_LIMIT_PER_MINUTE".to_owned(),
                s.rate_limit_per_minute.to_string(),
            ),
            ("PARLEY_UPLOAD_LIMIT".to_owned(), s.upload_limit.to_string()),
            ("PARLEY_CRAWL_LIMIT".to_owned(), s.crawl_limit.to_string()),
            (
                "PARLEY_PLAN_MESSAGES_PER_MONTH".to_owned(),
                s.plan_messages_per_month.to_string(),
            ),
            (
                "PARLEY_VISITOR_RATE_LIMIT_PER_MINUTE".to_owned(),
                s.visitor_rate_limit_per_minute.to_string(),
            ),
            (
                "PARLEY_VISITOR_CONVERSATIONS_PER_MINUTE".to_owned(),
                s.visitor_conversations_per_minute.to_string(),
            ),
            (
                "PARLEY_VISITOR_MESSAGES_PER_MINUTE".to_owned(),
                s.visitor_messages_per_minute.to_string(),
            ),
            ("PARLEY_WEBHOOK_RETRY_BASE_MS".to_owned(), "200".to_owned()),
            ("PARLEY_SHUTDOWN_TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ];
        if let Some(redis) = &self.redis_url {
            env.push(("PARLEY_REDIS_URL".to_owned(), redis.clone()));
            env.push(("PARLEY_QUEUE_NAMESPACE".to_owned(), self.namespace.clone()));
        }
        env
    }

    /// Starts `parley <role>` (`api`, `worker`, `serve`) as a process of its
    /// own on this environment, with extra variables; waits until it serves
    /// `/healthz` (API roles) or a moment (workers).
    pub async fn spawn(&self, role: &str, extra: &[(&str, &str)]) -> ParleyProcess {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let mut cmd = tokio::process::Command::new(parley_binary());
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in self.process_env(&format!("127.0.0.1:{port}")) {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("parley starts");
        let base = format!("http://127.0.0.1:{port}");
        if role != "worker" {
            let client = reqwest::Client::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                    && r.status().is_success()
                {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "parley {role} did not start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        ParleyProcess { base, child }
    }
}

/// A running application.
pub struct TestApp {
    pub base: String,
    /// The job dashboard's base URL, when it is enabled.
    pub board: Option<String>,
    /// The time quotas are counted in.
    pub clock: std::sync::Arc<parley_api::state::Clock>,
    pub client: reqwest::Client,
    pub store: Store,
    pub queue: parley_worker::JobQueue,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response: status, headers and JSON body (Null when not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the documented error shape and returns the code.
    pub fn error_code(&self) -> String {
        let error = self
            .body
            .get("error")
            .unwrap_or_else(|| panic!("no error object in {}", self.body));
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message missing: {}",
            self.body
        );
        assert!(error["details"].is_array(), "details missing: {}", self.body);
        assert!(
            error["request_id"].as_str().is_some(),
            "request_id missing: {}",
            self.body
        );
        error["code"].as_str().expect("code").to_owned()
    }
}

/// A member's signed-in session: the cookie to send and the CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub person_id: String,
}

impl Session {
    /// From a `201` of sign-in or of accepting an invitation.
    pub fn from_reply(reply: &Reply) -> Session {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let set_cookie = reply.header("set-cookie").expect("Set-Cookie");
        Session {
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
            csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
            person_id: reply.body["person"]["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// An organization and one of its keys.
#[derive(Clone)]
pub struct Org {
    pub id: Uuid,
    pub key: String,
}

impl TestApp {
    pub async fn create_org(&self, name: &str) -> Org {
        let created = parley_api::admin::create_org(&self.store, name)
            .await
            .expect("create org");
        Org {
            id: created.org_id,
            key: created.api_key,
        }
    }

    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, key, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    /// Signs in; panics unless it succeeds.
    pub async fn sign_in(&self, email: &str, password: &str) -> Session {
        let reply = self
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        Session::from_reply(&reply)
    }

    /// A person who joins the organization of `key` by invitation, with
    /// `role`, signed in.
    pub async fn join(
        &self,
        key: &str,
        email: &str,
        role: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Session {
        let invited = self
            .post(
                "/api/v1/invitations",
                key,
                serde_json::json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let mut body = serde_json::json!({"token": invited.body["token"], "password": password});
        if let Some(name) = display_name {
            body["display_name"] = serde_json::json!(name);
        }
        let accepted = self
            .call(Method::POST, "/api/v1/invitations/accept", None, Some(body))
            .await;
        Session::from_reply(&accepted)
    }

    /// A request with a member's session, as the console sends it (same
    /// origin, with the CSRF token).
    pub async fn as_member(&self, method: Method, path: &str, session: &Session, body: Option<Value>) -> Reply {
        let origin = self.base.clone();
        self.call_with(
            method,
            path,
            None,
            body,
            &[
                ("Cookie", &session.cookie),
                ("X-CSRF-Token", &session.csrf),
                ("Origin", &origin),
                ("Sec-Fetch-Site", "same-origin"),
            ],
        )
        .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Reply {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Graceful stop: in-flight requests and jobs finish. Then every read
    /// model is rebuilt from the log and must equal what the live
    /// application left (replay integrity after every scenario).
    pub async fn stop(mut self) {
        self.stop_tasks().await;
        let live = self.snapshots().await;
        self.store.replay(None).await.expect("replay");
        let rebuilt = self.snapshots().await;
        for ((name, before), (_, after)) in live.iter().zip(&rebuilt) {
            assert_eq!(
                before, after,
                "projection `{name}` rebuilt from the log differs from the live one"
            );
        }
    }

    /// Stops gracefully without the replay check, for an app stopped while
    /// the test goes on with another one on the same database (whose
    /// final `stop` checks the replay).
    pub async fn shutdown(mut self) {
        self.stop_tasks().await;
    }

    async fn stop_tasks(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app task").expect("app stopped cleanly");
        }
    }

    /// A bot's site key (from its widget settings).
    pub async fn site_key(&self, key: &str, bot_id: &str) -> String {
        let settings = self.get(&format!("/api/v1/bots/{bot_id}/widget-settings"), key).await;
        assert_eq!(settings.status, StatusCode::OK, "{}", settings.body);
        settings.body["site_key"].as_str().expect("site_key").to_owned()
    }

    /// Every projection's rows, by name.
    pub async fn snapshots(&self) -> Vec<(&'static str, Vec<Value>)> {
        let mut out = Vec::new();
        for p in self.store.projections() {
            out.push((p.name(), p.snapshot(self.store.db()).await.expect("snapshot")));
        }
        out
    }

    /// Simulates a crash: every task of the application is dropped mid-flight.
    pub async fn kill(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Waits until a source is `ready` or `failed`, and returns it with its pages.
    pub async fn settled_source(&self, key: &str, bot_id: &str, source_id: &str, secs: u64) -> Value {
        let path = format!("/api/v1/bots/{bot_id}/sources/{source_id}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.get(&path, key).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if matches!(r.body["status"].as_str(), Some("ready" | "failed")) {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "source still {} after {secs}s",
                r.body["status"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Uploads a file as a document source.
    pub async fn upload(&self, key: &str, bot_id: &str, file_name: &str, bytes: Vec<u8>) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .client
            .post(format!("{}/api/v1/bots/{bot_id}/sources/documents", self.base))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("upload sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    /// Waits until `check` holds, polling, for at most `secs` seconds.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if check().await {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}
