//! Faults: a worker process killed with SIGKILL in the middle of a crawl and
//! of a webhook delivery; Redis restarted and the database unreachable for a
//! few seconds under load. Afterwards every source and delivery completes,
//! with nothing lost and nothing twice (counted from the event log).

use std::collections::HashSet;
use std::time::Duration;

use parley_api::app::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, StaticSite, TestApp, TestEnv};
use crate::ingestion::{add, add_site, add_text_ready, assert_whole, bot, eleven_page_site, tempdir};
use crate::webhooks::{Server, create_endpoint, verify};

/// The API and migrations in this process; jobs in `parley worker` processes.
const API_ONLY: Roles = Roles {
    api: true,
    workers: false,
    dispatcher: false,
    migrate: true,
};

/// Events of a type in an organization's log, from the feed.
async fn logged(app: &TestApp, key: &str, event_type: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/events?after=0&limit=1000&type={event_type}"), key)
        .await;
    r.body["data"].as_array().cloned().unwrap_or_default()
}

pub async fn worker_killed_with_sigkill(backend: Backend) {
    let dir = eleven_page_site("fault-site");
    let site = StaticSite::serve(dir.clone()).await;
    let receiver = Server::start().await;
    receiver.state.hang_first.lock().unwrap().insert("/hook".into());
    let env = TestEnv::new(backend).await;
    let app = env.start(API_ONLY).await;
    let a = app.create_org("Acme").await;
    let slow = [
        ("PARLEY_CRAWL_DELAY_MS", "400"),
        ("PARLEY_CRAWL_CONCURRENCY", "1"),
        ("PARLEY_WEBHOOK_TIMEOUT_SECS", "5"),
    ];
    let first = env.spawn("worker", &slow).await;

    let (hook, secret) = create_endpoint(&app, &a.key, json!({"url": format!("{}/hook", receiver.base)})).await;
    let bot_id = bot(&app, &a.key).await;
    let source = add_site(&app, &a.key, &bot_id, &site).await;
    let ping = app
        .post(&format!("/api/v1/webhooks/{hook}/ping"), &a.key, json!({}))
        .await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{}", ping.body);
    let delivery = ping.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/bots/{bot_id}/sources/{source}");
    app.eventually(
        60,
        "the crawl is under way and the ping is waiting for its answer",
        || async { app.get(&path, &a.key).await.body["status"] == "fetching" && !receiver.at("/hook").is_empty() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    first.kill9().await;

    // A new worker process takes over.
    let second = env.spawn("worker", &[("PARLEY_WEBHOOK_TIMEOUT_SECS", "5")]).await;
    assert_whole(&app, &a.key, &bot_id, &source, 12).await;
    let delivery_path = format!("/api/v1/webhooks/{hook}/deliveries/{delivery}");
    app.eventually(60, "the ping was delivered", || async {
        app.get(&delivery_path, &a.key).await.body["status"] == "delivered"
    })
    .await;
    let got = receiver.at("/hook");
    let pings: Vec<_> = got.iter().filter(|r| r.event_type == "webhook.ping").collect();
    assert!(pings.len() >= 2, "sent again after the kill: {got:?}");
    assert!(pings.iter().all(|r| r.event_id == pings[0].event_id));
    assert!(got.iter().all(|r| verify(&secret, &r.timestamp, &r.body, &r.signature)));
    // The log holds one indexing of the run, and the ready event reached the endpoint once.
    let indexed = logged(&app, &a.key, "source.indexed").await;
    assert_eq!(indexed.len(), 1, "{indexed:?}");
    let ready_id = indexed[0]["id"].as_str().unwrap();
    app.eventually(30, "source.ready was delivered", || async {
        receiver.at("/hook").iter().any(|r| r.event_id == ready_id)
    })
    .await;
    assert_eq!(
        receiver.at("/hook").iter().filter(|r| r.event_id == ready_id).count(),
        1,
        "once"
    );
    second.kill9().await;
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A Redis server of the test's own, with an append-only file (as production
/// Redis should run), on a free port; restartable.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = PrivateRedis {
            port,
            dir: tempdir("redis"),
        };
        redis.up();
        redis
    }

    fn up(&self) {
        let status = std::process::Command::new("redis-server")
            .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--dir"])
            .arg(&self.dir)
            .status()
            .expect("redis-server runs");
        assert!(status.success());
        for _ in 0..100 {
            if self.cli(&["ping"]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private Redis did not start");
    }

    fn cli(&self, args: &[&str]) -> bool {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("ERR"))
    }

    /// Redis's answer to a command, as text.
    fn output(&self, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Jobs held in Redis (apalis keeps each job's payload in the hash
    /// `<queue>:data` until it is done).
    fn waiting(&self) -> usize {
        self.output(&["--scan", "--pattern", "*:data"])
            .lines()
            .filter(|key| !key.is_empty())
            .map(|key| self.output(&["hlen", key]).trim().parse::<usize>().unwrap_or(0))
            .sum()
    }

    /// Stops Redis (saving its append-only file), proves it is down, and
    /// starts it again.
    fn restart(&self) {
        self.cli(&["shutdown"]);
        let mut down = false;
        for _ in 0..100 {
            if !self.cli(&["ping"]) {
                down = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(down, "Redis did not stop");
        self.up();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.cli(&["shutdown", "nosave"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Redis restarted under load, then the database unreachable for a few
/// seconds: readiness says so, and afterwards every source, answer and
/// delivery completes once.
pub async fn redis_restart_and_database_outage(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "Redis and PostgreSQL faults need that tier");
    let redis = PrivateRedis::start();
    let receiver = Server::start().await;
    let env = TestEnv::new_with_redis(backend, redis.url()).await;
    // The API and the outbox here; the jobs' workers start only after Redis
    // has been restarted with jobs waiting in it.
    let app = env
        .start(Roles {
            dispatcher: true,
            ..API_ONLY
        })
        .await;
    let a = app.create_org("Acme").await;
    let (hook_id, secret) = create_endpoint(
        &app,
        &a.key,
        json!({"url": format!("{}/all", receiver.base), "events": ["source.ready", "message.created"]}),
    )
    .await;
    let bot_id = bot(&app, &a.key).await;
    let fact = |i: usize| {
        json!({"type": "text", "title": format!("Fact {i}"),
               "body": format!("Fact number {i}: the warehouse ships parcel type {i} on weekdays.")})
    };
    let mut sources = Vec::new();
    for i in 0..3 {
        sources.push(add(&app, &a.key, &bot_id, fact(i)).await);
    }
    // Their jobs wait in Redis, which goes away and comes back with them.
    app.eventually(30, "the sources' jobs wait in Redis", || async { redis.waiting() >= 3 })
        .await;
    let before = redis.waiting();
    redis.restart();
    assert_eq!(redis.waiting(), before, "the waiting jobs outlived the restart");
    let worker = env
        .start(Roles {
            api: false,
            workers: true,
            dispatcher: false,
            migrate: false,
        })
        .await;
    for i in 3..5 {
        sources.push(add(&app, &a.key, &bot_id, fact(i)).await);
    }
    for source in &sources {
        let done = app.settled_source(&a.key, &bot_id, source, 180).await;
        assert_eq!(done["status"], "ready", "{done}");
    }
    assert_eq!(app.get("/readyz", &a.key).await.status, StatusCode::OK);
    // Deliveries in flight when the database goes away are sent again
    // (at least once: receivers drop duplicates by event id). So that this
    // test can demand "exactly once", the ones so far are recorded first.
    app.eventually(60, "the deliveries so far to be recorded as delivered", || async {
        let page = app.get(&format!("/api/v1/webhooks/{hook_id}/deliveries"), &a.key).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        items.len() == sources.len() && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;

    // The database refuses connections for a few seconds.
    let db = env.database_name().unwrap().to_owned();
    let admin = sea_orm::Database::connect(crate::harness::pg_admin_url())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ))
        .await
        .unwrap();
    let during = app.get("/readyz", &a.key).await;
    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE, "{}", during.body);
    let refused = app.get("/api/v1/bots", &a.key).await;
    assert!(refused.status.is_server_error(), "{} {}", refused.status, refused.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    admin
        .execute_unprepared(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let _ = admin.close().await;
    app.eventually(30, "the database answers again", || async {
        app.get("/readyz", &a.key).await.status == StatusCode::OK
    })
    .await;

    // Work after the outage goes through too.
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/chat"),
            &a.key,
            json!({"message": "What does the warehouse ship on weekdays?", "stream": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    add_text_ready(&app, &a.key, &bot_id, "Late", "Returns are accepted for 30 days.").await;

    // Every event endpoints hear about arrived, once, signed.
    let mut expected: Vec<String> = Vec::new();
    for t in [
        "source.indexed",
        "conversation.message_received",
        "conversation.answered",
    ] {
        expected.extend(
            logged(&app, &a.key, t)
                .await
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(expected.len(), 6 + 2, "six sources, one question and its answer");
    app.eventually(60, "every event reached the endpoint", || async {
        let got: HashSet<String> = receiver.at("/all").into_iter().map(|r| r.event_id).collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    let got = receiver.at("/all");
    let ids: Vec<&str> = got.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), expected.len(), "nothing twice, nothing else: {ids:?}");
    assert!(got.iter().all(|r| verify(&secret, &r.timestamp, &r.body, &r.signature)));
    // The outbox read the whole log.
    let head = app.store.head().await.unwrap();
    app.eventually(20, "the outbox caught up", || async {
        app.store.checkpoint(parley_worker::dispatcher::OUTBOX).await.unwrap() == head
    })
    .await;

    // Redis down: rate limits fail open by default (logged), or closed when configured.
    let closed = env.start_with(Roles::API, |s| s.rate_limit_fail_open = false).await;
    redis.cli(&["shutdown", "nosave"]);
    app.eventually(10, "Redis is down", || async { !redis.cli(&["ping"]) })
        .await;
    let open = app.get("/api/v1/bots", &a.key).await;
    assert_eq!(open.status, StatusCode::OK, "fail open: {}", open.body);
    let refused = closed.get("/api/v1/bots", &a.key).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    assert_eq!(refused.error_code(), "SERVICE_UNAVAILABLE");
    redis.up();
    app.eventually(30, "limits apply again once Redis is back", || async {
        closed.get("/api/v1/bots", &a.key).await.status == StatusCode::OK
    })
    .await;
    closed.shutdown().await;
    worker.stop().await;
    app.stop().await;
    env.cleanup().await;
}

/// A page whose parser crashes and one whose parser hangs fail alone, with
/// their codes; the site's other pages are indexed and the worker goes on
/// serving. The parser program is a wrapper around the real `parley` that
/// crashes (SIGSEGV) on one URL and sleeps past the deadline on another, as
/// a parser bug or a pathological file would.
pub async fn a_parser_crash_costs_one_page(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let dir = eleven_page_site("parser-crash");
    for page in ["crash", "hang"] {
        std::fs::write(
            dir.join(format!("{page}.html")),
            format!("<html><body><main><h1>{page}</h1><p>The {page} page says something.</p></main></body></html>"),
        )
        .unwrap();
    }
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        index.replace(
            "</p>",
            "<a href=\"crash.html\">crash</a> <a href=\"hang.html\">hang</a></p>",
        ),
    )
    .unwrap();
    let wrapper = dir.join("parser.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *crash.html*) kill -SEGV $$ ;;\n  *hang.html*) exec sleep 60 ;;\nesac\nexec {} \"$@\"\n",
            crate::harness::parley_binary().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.parse_program = wrapper.display().to_string();
            s.parse_timeout_secs = 3;
        })
        .await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;
    let crawl = add_site(&app, &a.key, &bot_id, &site).await;
    let done = app.settled_source(&a.key, &bot_id, &crawl, 180).await;
    assert_eq!(done["status"], "ready", "{done}");
    let pages = done["page_list"].as_array().unwrap();
    let page = |name: &str| {
        pages
            .iter()
            .find(|p| p["key"].as_str().unwrap().ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} in {done}"))
            .clone()
    };
    let crash = page("crash.html");
    assert_eq!(crash["status"], "failed", "{crash}");
    assert_eq!(crash["error"]["code"], "CORRUPT_DOCUMENT", "{crash}");
    assert!(
        crash["error"]["message"].as_str().unwrap().contains("signal 11"),
        "{crash}"
    );
    let hang = page("hang.html");
    assert_eq!(hang["status"], "failed", "{hang}");
    assert_eq!(hang["error"]["code"], "PARSE_TIMEOUT", "{hang}");
    let ready = pages.iter().filter(|p| p["status"] == "ready").count();
    assert_eq!(ready, 12, "the index and its eleven pages: {done}");
    // The worker goes on: a new source is indexed, and its text is found.
    let text = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "text", "title": "After", "body": "Parsing went on after the crash."}),
    )
    .await;
    let after = app.settled_source(&a.key, &bot_id, &text, 120).await;
    assert_eq!(after["status"], "ready", "{after}");
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "fact number 7", "limit": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body["results"][0]["text"].as_str().unwrap().contains("Fact number 7"),
        "{}",
        r.body
    );
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parser processes this process started through `program` (a path of
/// the test's own, so that other tests' parsers do not count) that are
/// still running.
fn parser_children(program: &std::path::Path) -> Vec<String> {
    let program = program.display().to_string();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: the parent is the second field after the name.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if parent != Some(me.as_str()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with(&program) {
            found.push(cmdline);
        }
    }
    found
}

/// Documents made to hurt a parser, through the real API, while a second
/// client asks `/healthz` every 100 ms: a PDF whose page inflates twice to
/// 1.5 GB of spaces, a Word file of 5,000 nested tables (both uploaded) and
/// a page of 200,000 nested `<div>`s on a crawled site. The bomb fails with
/// `TOO_LARGE`; the deep documents give their text; health never fails;
/// this same process then indexes a normal document; no parser process is
/// left behind.
pub async fn hostile_documents_cannot_stop_parley(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let corpus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    let read = |name: &str| std::fs::read(corpus.join(name)).unwrap();
    let dir = tempdir("hostile-site");
    std::fs::write(
        dir.join("index.html"),
        "<html><body><main><h1>Index</h1><p><a href=\"deep.html\">deep</a> <a href=\"plain.html\">plain</a> <a href=\"big.html\">big</a></p></main></body></html>",
    )
    .unwrap();
    std::fs::write(
        dir.join("plain.html"),
        "<html><body><main><h1>Plain</h1><p>The plain page tells of lighthouse keepers.</p></main></body></html>",
    )
    .unwrap();
    std::fs::write(dir.join("deep.html"), read("html/nested-divs-200000.html")).unwrap();
    // Past the download limit: one failed page with its reason, not a lost one.
    std::fs::write(dir.join("big.html"), vec![b'x'; 3 << 20]).unwrap();
    let site = StaticSite::serve(dir.clone()).await;
    // The parser under a name of this test's own, to find its processes.
    let program = dir.join("parley-hostile-parser");
    std::os::unix::fs::symlink(crate::harness::parley_binary(), &program).unwrap();
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.parse_program = program.display().to_string();
            // The deep page is 2.2 MB (the tests' default limit is 2 MB); the big one 3 MB.
            s.max_upload_bytes = 5 << 19;
        })
        .await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (polls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // The most parser processes seen at once: proves the search for them finds them.
    let parsers_seen = Arc::new(AtomicU64::new(0));
    let poller = {
        let (client, url) = (app.client.clone(), format!("{}/healthz", app.base));
        let (stop, polls, failures) = (stop.clone(), polls.clone(), failures.clone());
        let (parsers_seen, program) = (parsers_seen.clone(), program.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                parsers_seen.fetch_max(parser_children(&program).len() as u64, Ordering::Relaxed);
                let ok = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                polls.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let started = std::time::Instant::now();
    let bomb = app
        .upload(&a.key, &bot_id, "bomb.pdf", read("pdf/flate-bomb-1.5gb.pdf"))
        .await;
    assert_eq!(bomb.status, StatusCode::ACCEPTED, "{}", bomb.body);
    let tables = app
        .upload(&a.key, &bot_id, "tables.docx", read("docx/nested-tables-5000.docx"))
        .await;
    assert_eq!(tables.status, StatusCode::ACCEPTED, "{}", tables.body);
    let crawl = add_site(&app, &a.key, &bot_id, &site).await;
    let id = |r: &crate::harness::Reply| r.body["id"].as_str().unwrap().to_owned();
    let bomb = app.settled_source(&a.key, &bot_id, &id(&bomb), 180).await;
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert_eq!(bomb["error"]["code"], "TOO_LARGE", "{bomb}");
    let tables = app.settled_source(&a.key, &bot_id, &id(&tables), 180).await;
    assert_eq!(tables["status"], "ready", "the deep Word file gives its text: {tables}");
    let crawl = app.settled_source(&a.key, &bot_id, &crawl, 180).await;
    assert_eq!(crawl["status"], "ready", "{crawl}");
    let pages = crawl["page_list"].as_array().unwrap();
    assert_eq!(pages.len(), 4, "{crawl}");
    let (big, others): (Vec<&Value>, Vec<&Value>) = pages
        .iter()
        .partition(|p| p["key"].as_str().unwrap().ends_with("/big.html"));
    assert!(
        others.iter().all(|p| p["status"] == "ready"),
        "every other page, the deep one too: {crawl}"
    );
    assert_eq!(big[0]["status"], "failed", "{crawl}");
    assert_eq!(big[0]["error"]["code"], "TOO_LARGE", "{crawl}");
    assert!(
        big[0]["error"]["message"].as_str().unwrap().contains("larger than"),
        "{crawl}"
    );
    let took = started.elapsed();

    // The text inside the deep documents is found.
    for (query, expected) in [("deep inside", "Deep inside."), ("lighthouse keepers", "lighthouse")] {
        let r = app
            .post(
                &format!("/api/v1/bots/{bot_id}/search"),
                &a.key,
                json!({"query": query, "limit": 5}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["results"].to_string().contains(expected), "{query}: {}", r.body);
    }
    // The same process goes on indexing.
    add_text_ready(
        &app,
        &a.key,
        &bot_id,
        "After",
        "Parsing went on after the hostile files.",
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    let (polls, failures) = (polls.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    println!("hostile documents: settled in {took:?}; /healthz asked {polls} times, {failures} failed");
    assert!(polls >= 10, "the health poller ran ({polls} polls)");
    assert_eq!(failures, 0, "/healthz failed {failures} of {polls} times");
    assert!(
        parsers_seen.load(Ordering::Relaxed) > 0,
        "parser processes were seen while the documents were read"
    );
    app.eventually(10, "no parser process is left behind", || async {
        parser_children(&program).is_empty()
    })
    .await;
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
