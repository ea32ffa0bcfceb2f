//! Building and running the application: the API, the outbox dispatcher and
//! the job workers, in one process or apart, on SQLite or PostgreSQL + Redis.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parley_domain::Store;
use parley_migration::{Migrator, MigratorTrait};
use parley_worker::handlers::JobMetrics;
use parley_worker::{Dispatcher, JobContext, JobQueue};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::{Endpoint, EndpointExt, Route, Server};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::config::Settings;
use crate::http::metrics::Metrics;
use crate::http::middleware::{limit_body, observe};
use crate::routes;
use crate::state::AppState;

/// Which parts run in this process.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub workers: bool,
    pub dispatcher: bool,
    /// Apply pending migrations at start (the embedded default does).
    pub migrate: bool,
}

impl Roles {
    /// `parley serve`: everything in one process.
    pub const ALL: Roles = Roles {
        api: true,
        workers: true,
        dispatcher: true,
        migrate: true,
    };
    /// `parley api`.
    pub const API: Roles = Roles {
        api: true,
        workers: false,
        dispatcher: false,
        migrate: false,
    };
    /// `parley worker`.
    pub const WORKER: Roles = Roles {
        api: false,
        workers: true,
        dispatcher: true,
        migrate: false,
    };
}

/// Opens the database without looking at its schema.
pub async fn connect_db(settings: &Settings) -> anyhow::Result<sea_orm::DatabaseConnection> {
    parley_domain::store::connect(settings.database_url.expose_secret())
        .await
        .context("cannot open the database (PARLEY_DATABASE_URL)")
}

/// Opens the database and applies pending migrations, or checks there are none.
pub async fn open_store(settings: &Settings, migrate: bool) -> anyhow::Result<Store> {
    let db = connect_db(settings).await?;
    if migrate {
        Migrator::up(&db, None).await.context("migrations failed")?;
    } else {
        let pending = Migrator::get_pending_migrations(&db)
            .await
            .context("cannot read the migration state")?;
        if !pending.is_empty() {
            anyhow::bail!(
                "the database schema is not current ({} pending migrations): run `parley migrate`",
                pending.len()
            );
        }
    }
    Ok(Store::new(db))
}

/// Opens the job queue: Redis when configured, else the SQLite database itself.
pub async fn open_queue(settings: &Settings, store: &Store) -> anyhow::Result<JobQueue> {
    match &settings.redis_url {
        Some(url) => JobQueue::redis(url.expose_secret(), settings.queue_namespace.as_deref())
            .await
            .context("cannot connect to Redis (PARLEY_REDIS_URL)"),
        None if settings.is_sqlite() => JobQueue::sqlite(store.db().get_sqlite_connection_pool())
            .await
            .context("cannot set up the job queue in SQLite"),
        None => anyhow::bail!("PostgreSQL deployments need PARLEY_REDIS_URL"),
    }
}

/// The HTTP endpoint: OpenAPI operations, Swagger UI, the spec, and the
/// middleware every request passes through.
pub fn endpoint(state: AppState) -> impl Endpoint {
    let api = routes::service(Some(state.clone()));
    let docs = api.swagger_ui();

    let limit = state.settings.max_body_bytes;
    let upload_limit = state.settings.max_upload_bytes;
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let attachment_limit = state.settings.max_attachment_bytes;
    let metrics = state.metrics.clone();
    let limiter = state.limiter.clone();
    let cors_state = state.clone();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", poem::get(crate::spec::spec_endpoint))
        .at("/jobs", poem::get(jobs_redirect))
        .at("/widget.js", poem::get(crate::widget_assets::loader))
        .at("/widget/frame.html", poem::get(crate::widget_assets::frame))
        .at("/widget/:name", poem::get(crate::widget_assets::frame_asset))
        .around(move |ep, req| crate::http::ratelimit::limit(ep, req, limiter.clone()))
        // Members' session cookies, read by the rate limits and the operations.
        .with(poem::middleware::CookieJarManager::new())
        .around(move |ep, req| {
            // Uploads have their own, larger limits (multipart adds a little).
            let path = req.uri().path();
            let limit = if path.ends_with("/sources/documents") {
                upload_limit
            } else if path.ends_with("/attachments") {
                attachment_limit + 64 * 1024
            } else {
                limit
            };
            limit_body(ep, req, limit)
        })
        .around(move |ep, req| crate::http::middleware::with_timeout(ep, req, timeout))
        .around(|ep, req| crate::error::json_errors(ep, req, crate::spec::allowed_methods))
        .around(move |ep, req| crate::http::cors::public_cors(ep, req, cors_state.clone()))
        .around(move |ep, req| observe(ep, req, metrics.clone()))
        .data(state)
}

pub struct Application {
    state: AppState,
    roles: Roles,
    acceptor: Option<crate::http::header_timeout::HeaderTimeout<TcpAcceptor>>,
    port: Option<u16>,
    board: Option<tokio::net::TcpListener>,
    job_metrics: JobMetrics,
}

impl Application {
    /// Connects everything and binds the listener (port 0 picks a free port).
    pub async fn build(mut settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        let board = match (&settings.board_listen, roles.api) {
            (Some(addr), true) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (PARLEY_BOARD_LISTEN)"))?;
                // The bound address (port 0 picks one), for `/jobs` to point at.
                settings.board_listen = Some(listener.local_addr()?.to_string());
                Some(listener)
            }
            _ => None,
        };
        let settings = Arc::new(settings);
        let store = open_store(&settings, roles.migrate).await?;
        let queue = open_queue(&settings, &store).await?;
        let metrics = Metrics::new();
        let job_metrics = JobMetrics::new(&metrics.registry);
        let (acceptor, port) = if roles.api {
            let listener = tokio::net::TcpListener::bind(settings.listen_addr())
                .await
                .with_context(|| format!("cannot listen on {} (PARLEY_LISTEN)", settings.listen))?;
            let acceptor = TcpAcceptor::from_tokio(listener)?;
            let port = acceptor
                .local_addr()
                .first()
                .and_then(|a| a.as_socket_addr().map(|s| s.port()));
            let acceptor = crate::http::header_timeout::HeaderTimeout::new(
                acceptor,
                Duration::from_secs(settings.header_timeout_secs),
            );
            (Some(acceptor), port)
        } else {
            (None, None)
        };
        let ingest = Arc::new(parley_worker::ingest::pipeline::Ingest::new(settings.ingest())?);
        let state = AppState::new(store, queue, metrics, settings, ingest);
        Ok(Application {
            state,
            roles,
            acceptor,
            port,
            board,
            job_metrics,
        })
    }

    /// The port the API listens on (when this process serves the API).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port of the job dashboard, when this process serves it.
    pub fn board_port(&self) -> Option<u16> {
        self.board.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until `shutdown` resolves, then stops taking requests and jobs and
    /// lets in-flight ones finish (up to the shutdown timeout).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let grace = Duration::from_secs(self.state.settings.shutdown_timeout_secs);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(acceptor) = self.acceptor {
            let ep = endpoint(self.state.clone());
            let signal = stopped();
            tasks.spawn(async move {
                Server::new_with_acceptor(acceptor)
                    .idle_timeout(Duration::from_secs(75))
                    .run_with_graceful_shutdown(ep, signal, Some(grace))
                    .await
                    .context("HTTP server failed")
            });
        }
        if let (Some(listener), Some(password)) = (self.board, self.state.settings.board_password.clone()) {
            let credentials = crate::board::BoardCredentials {
                user: self.state.settings.board_user.clone(),
                password,
            };
            let app = crate::board::router(&self.state.queue, &credentials);
            let signal = stopped();
            tasks.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(signal)
                    .await
                    .context("job dashboard failed")
            });
        }
        if self.roles.dispatcher {
            let dispatcher = Dispatcher::new(self.state.store.clone(), self.state.queue.clone())
                .with_lease_ttl(Duration::from_secs(self.state.settings.outbox_lease_secs));
            let signal = stopped();
            tasks.spawn(async move {
                dispatcher.run(signal).await;
                Ok(())
            });
        }
        if self.roles.workers {
            let ctx = JobContext {
                store: self.state.store.clone(),
                metrics: self.job_metrics.clone(),
                ingest: self.state.ingest.clone(),
                webhooks: Arc::new(parley_worker::webhooks::Deliverer::new(self.state.settings.webhooks())?),
            };
            let queue = self.state.queue.clone();
            let concurrency = self.state.settings.worker_concurrency;
            let signal = stopped();
            tasks.spawn(async move { parley_worker::runtime::run_workers(queue, ctx, concurrency, signal).await });
        }
        tracing::info!(port = ?self.port, roles = ?self.roles, queue = self.state.queue.kind(), "parley started");
        tokio::pin!(shutdown);
        let mut first_error = None;
        tokio::select! {
            _ = &mut shutdown => {}
            Some(done) = tasks.join_next() => {
                // A component stopped on its own: stop the others too.
                first_error = flatten(done).err();
            }
        }
        let _ = stop_tx.send(true);
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = flatten(done) {
                tracing::error!(error = %e, "component failed");
                first_error.get_or_insert(e);
            }
        }
        tracing::info!("parley stopped");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn flatten(done: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    done.map_err(anyhow::Error::from).and_then(|r| r)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// `/jobs`: the job dashboard lives on its own port; send the browser there.
#[poem::handler]
fn jobs_redirect(req: &poem::Request, state: poem::web::Data<&AppState>) -> poem::Response {
    let port = state
        .settings
        .board_listen
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port());
    match port {
        Some(port) if port != 0 => {
            let host = req.uri().host().map(str::to_owned).or_else(|| {
                req.header("host")
                    .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
            });
            let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
            poem::Response::builder()
                .status(poem::http::StatusCode::TEMPORARY_REDIRECT)
                .header("Location", format!("http://{host}:{port}/"))
                .finish()
        }
        _ => poem::IntoResponse::into_response(crate::error::ApiError::new(
            parley_domain::ErrorCode::NotFound,
            "the job dashboard is not enabled: set PARLEY_BOARD_LISTEN and PARLEY_BOARD_PASSWORD",
        )),
    }
}
