//! Rate limits: per API key, shared by every API instance through Redis (in
//! memory on the embedded tier), and tighter limits for uploads.

use std::time::Duration;

use parley_api::app::Roles;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp, TestEnv};

const LIMIT: u32 = 60;

fn limited(s: &mut parley_api::config::Settings) {
    s.rate_limit_per_minute = LIMIT;
    s.upload_limit = 2;
}

/// `GET /api/v1/bots` of the server at `base`.
async fn get_bots(client: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/bots"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

pub async fn rate_limits(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = env.start_with(Roles::ALL, limited).await;
    // On PostgreSQL + Redis: two `parley api` processes of their own sharing
    // the database and Redis (the embedded tier keeps counts in memory, so it
    // has one process).
    let processes = match backend {
        Backend::Postgres => {
            let per_minute = LIMIT.to_string();
            let limits = [
                ("PARLEY_RATE_LIMIT_PER_MINUTE", per_minute.as_str()),
                ("PARLEY_UPLOAD_LIMIT", "2"),
            ];
            vec![env.spawn("api", &limits).await, env.spawn("api", &limits).await]
        }
        Backend::Sqlite => vec![],
    };
    let bases: Vec<String> = if processes.is_empty() {
        vec![first.base.clone()]
    } else {
        processes.iter().map(|p| p.base.clone()).collect()
    };
    let a = first.create_org("Acme").await;

    // 200 requests at once, alternating between the processes.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let base = &bases[i % bases.len()];
        let (client, base, key) = (first.client.clone(), base.clone(), a.key.clone());
        tasks.push(tokio::spawn(async move { get_bots(&client, &base, &key).await }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("x-ratelimit-limit").as_deref(), Some("60"), "{:?}", r.headers());
        let remaining: u32 = header("x-ratelimit-remaining").unwrap().parse().unwrap();
        // The Unix time at which the whole burst is back: within the minute.
        let reset: u64 = header("x-ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            remaining < LIMIT && (now..=now + 61).contains(&reset),
            "remaining {remaining}, reset {reset}, now {now}"
        );
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(remaining, 0);
                let retry: u64 = header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "retry-after {retry}");
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, LIMIT, "exactly the limit succeeds");
    assert_eq!(refused, 200 - LIMIT);

    // Another key has its own budget.
    let b = first.create_org("Other").await;
    assert_eq!(
        get_bots(&first.client, &first.base, &b.key).await.status(),
        StatusCode::OK
    );

    // The window moves: a request per second comes back, not the whole burst.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get_bots(&first.client, &first.base, &a.key).await.status(),
        StatusCode::OK
    );
    let mut again = Vec::new();
    for _ in 0..10 {
        let r = get_bots(&first.client, &bases[bases.len() - 1], &a.key).await;
        again.push(r.status());
    }
    assert!(again.contains(&StatusCode::TOO_MANY_REQUESTS), "{again:?}");

    // Uploads have a tighter limit of their own.
    let bot = first.post("/api/v1/bots", &b.key, json!({"name": "Docs"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    for i in 0..2 {
        let r = first
            .upload(
                &b.key,
                &bot_id,
                &format!("notes-{i}.txt"),
                b"Opening hours: 9 to 5.".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let r = first
        .upload(&b.key, &bot_id, "notes-3.txt", b"Opening hours: 9 to 5.".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.error_code(), "RATE_LIMITED");
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("per 300 s"),
        "{}",
        r.body
    );
    // Ordinary requests of that key still pass.
    assert_eq!(
        get_bots(&first.client, &first.base, &b.key).await.status(),
        StatusCode::OK
    );

    drop(processes);
    first.stop().await;
    env.cleanup().await;
}

pub async fn quotas(backend: Backend) {
    use chrono::TimeZone;
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.plan_messages_per_month = 3;
            s.plan_bots = 2;
            s.plan_sources = 1;
        })
        .await;
    let a = app.create_org("Acme").await;
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Quota"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/sources"),
            &a.key,
            json!({"type": "text", "title": "Hours", "body": "We are open from 9 to 5."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    // The last minute of January: six questions at once, three are counted.
    app.clock
        .set(Some(chrono::Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 0).unwrap()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (client, url, key) = (
            app.client.clone(),
            format!("{}/api/v1/bots/{bot_id}/chat", app.base),
            a.key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"message": format!("When do you open? ({i})"), "stream": false}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("2026-01") && message.contains("2026-02-01"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 3, "exactly the quota");
    // A visitor whose first message cannot be answered gets no conversation
    // either: the same visitor can still start one without a message.
    let site_key = app.site_key(&a.key, &bot_id).await;
    let path = format!("/api/v1/public/bots/{bot_id}/conversations");
    let headers = [("X-Parley-Site-Key", site_key.as_str())];
    let visitor = "quota-visitor-0000000001";
    let body = json!({"visitor_token": visitor, "message": "When do you open?"});
    let r = app.call_with(Method::POST, &path, None, Some(body), &headers).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.error_code(), "QUOTA_EXCEEDED");
    let body = json!({"visitor_token": visitor});
    let r = app.call_with(Method::POST, &path, None, Some(body), &headers).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["messages"], json!([]));
    let usage = app.get("/api/v1/usage", &a.key).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.body["period"], "2026-01");
    assert_eq!(usage.body["resets_at"], "2026-02-01T00:00:00+00:00");
    assert_eq!(usage.body["messages"], json!({"used": 3, "limit": 3, "remaining": 0}));
    assert_eq!(usage.body["bots"], json!({"used": 1, "limit": 2, "remaining": 1}));
    assert_eq!(usage.body["sources"], json!({"used": 1, "limit": 1, "remaining": 0}));

    // Bots and sources are counted against the plan too.
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/sources"),
            &a.key,
            json!({"type": "text", "title": "More", "body": "Closed on Sundays."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.error_code(), "QUOTA_EXCEEDED");
    assert_eq!(
        app.post("/api/v1/bots", &a.key, json!({"name": "Second"})).await.status,
        StatusCode::CREATED
    );
    let r = app.post("/api/v1/bots", &a.key, json!({"name": "Third"})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.error_code(), "QUOTA_EXCEEDED");
    // Another organization has its own quota.
    let b = app.create_org("Other").await;
    assert_eq!(
        app.post("/api/v1/bots", &b.key, json!({"name": "Theirs"})).await.status,
        StatusCode::CREATED
    );

    // February: the count starts again.
    app.clock
        .set(Some(chrono::Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 1).unwrap()));
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/chat"),
            &a.key,
            json!({"message": "When do you open?", "stream": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let usage = app.get("/api/v1/usage", &a.key).await;
    assert_eq!(usage.body["period"], "2026-02");
    assert_eq!(usage.body["messages"]["used"], 1);

    app.stop().await;
    env.cleanup().await;
}

/// Starts a widget conversation from "a client" (optionally with an
/// `X-Forwarded-For` header) and returns the response.
async fn start_conversation(
    app: &TestApp,
    bot: &str,
    site_key: &str,
    visitor: &str,
    forwarded: Option<&str>,
) -> crate::harness::Reply {
    let mut headers = vec![("X-Parley-Site-Key", site_key)];
    if let Some(ip) = forwarded {
        headers.push(("X-Forwarded-For", ip));
    }
    app.call_with(
        reqwest::Method::POST,
        &format!("/api/v1/public/bots/{bot}/conversations"),
        None,
        Some(json!({"visitor_token": visitor})),
        &headers,
    )
    .await
}

async fn widget_bot(app: &TestApp, key: &str) -> (String, String) {
    let bot = app.post("/api/v1/bots", key, json!({"name": "Front desk"})).await;
    assert_eq!(bot.status, StatusCode::CREATED, "{}", bot.body);
    let id = bot.body["id"].as_str().unwrap().to_owned();
    let site_key = app.site_key(key, &id).await;
    (id, site_key)
}

/// Per-IP limits of the visitor API; `X-Forwarded-For` counts only from a
/// trusted proxy; a bot's own limit on visitor messages.
pub async fn visitor_limits(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.visitor_conversations_per_minute = 3;
            s.visitor_messages_per_minute = 1000;
        })
        .await;
    let a = app.create_org("Acme").await;
    let (bot, site_key) = widget_bot(&app, &a.key).await;

    // Three conversations from this client, then 429 with the headers; a
    // spoofed X-Forwarded-For from an untrusted peer changes nothing.
    for i in 0..3 {
        let r = start_conversation(&app, &bot, &site_key, &format!("v_visitor-limit-{i:04}"), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    }
    for spoof in [None, Some("203.0.113.7"), Some("198.51.100.1, 203.0.113.8")] {
        let r = start_conversation(&app, &bot, &site_key, "v_visitor-limit-9999", spoof).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{spoof:?}: {}", r.body);
        assert_eq!(r.error_code(), "RATE_LIMITED");
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
    }
    // Reading is not starting: the visitor's other requests still pass.
    let config = app
        .call_with(
            reqwest::Method::GET,
            &format!("/api/v1/public/bots/{bot}/config"),
            None,
            None,
            &[("X-Parley-Site-Key", site_key.as_str())],
        )
        .await;
    assert_eq!(config.status, StatusCode::OK);

    // A bot's own limit on visitor messages, whoever sends them.
    let r = app
        .patch(
            &format!("/api/v1/bots/{bot}"),
            &a.key,
            json!({"rate_limit_per_minute": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["rate_limit_per_minute"], 2);
    let r = app
        .patch(
            &format!("/api/v1/bots/{bot}"),
            &a.key,
            json!({"rate_limit_per_minute": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    app.shutdown().await;

    // Behind a trusted proxy each forwarded client has its own budget.
    let app = env
        .start_with(Roles::ALL, |s| {
            s.visitor_conversations_per_minute = 3;
            s.visitor_messages_per_minute = 1000;
            s.trusted_proxies = "127.0.0.1/32, ::1".into();
        })
        .await;
    let mut tokens = Vec::new();
    for (i, client) in ["192.0.2.10", "192.0.2.11", "192.0.2.12"].into_iter().enumerate() {
        for j in 0..3 {
            let r = start_conversation(
                &app,
                &bot,
                &site_key,
                &format!("v_proxied-client-{i}-{j:03}"),
                Some(client),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "{client} #{j}: {}", r.body);
            tokens.push((
                r.body["conversation_id"].as_str().unwrap().to_owned(),
                r.body["token"].as_str().unwrap().to_owned(),
            ));
        }
        let r = start_conversation(
            &app,
            &bot,
            &site_key,
            &format!("v_proxied-client-{i}-999"),
            Some(client),
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{client}: {}", r.body);
    }
    // Messages the endpoint refuses (a wrong conversation token) spend
    // nothing of the bot's budget.
    let wrong_token = format!("ct_{}", "b".repeat(64));
    for _ in 0..3 {
        let r = app
            .call_with(
                reqwest::Method::POST,
                &format!("/api/v1/public/bots/{bot}/conversations/{}/messages", tokens[5].0),
                None,
                Some(json!({"text": "Hello?", "stream": false})),
                &[
                    ("X-Parley-Site-Key", site_key.as_str()),
                    ("X-Parley-Conversation-Token", wrong_token.as_str()),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    // The bot answers two visitor messages a minute, from any visitor.
    let mut statuses = Vec::new();
    for (cid, token) in tokens.iter().take(4) {
        let r = app
            .call_with(
                reqwest::Method::POST,
                &format!("/api/v1/public/bots/{bot}/conversations/{cid}/messages"),
                None,
                Some(json!({"text": "Hello?", "stream": false})),
                &[
                    ("X-Parley-Site-Key", site_key.as_str()),
                    ("X-Parley-Conversation-Token", token.as_str()),
                ],
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.error_code(), "RATE_LIMITED");
            assert_eq!(r.header("x-ratelimit-limit"), Some("2"), "the bot's limit speaks");
        }
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    // A wrong site key is refused by the endpoint and does not spend the bot's budget.
    let wrong = format!("ps_{}", "0".repeat(32));
    let r = app
        .call_with(
            reqwest::Method::POST,
            &format!("/api/v1/public/bots/{bot}/conversations/{}/messages", tokens[4].0),
            None,
            Some(json!({"text": "Hello?"})),
            &[
                ("X-Parley-Site-Key", wrong.as_str()),
                ("X-Parley-Conversation-Token", tokens[4].1.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    app.stop().await;
    env.cleanup().await;
}

/// Plans defined in the configuration, one per organization.
pub async fn plans(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.plans.insert(
                "starter".into(),
                parley_domain::usage::Plan {
                    messages_per_month: 1,
                    bots: 1,
                    sources: 5,
                },
            );
        })
        .await;
    let created = parley_api::admin::create_org_on(&app.store, "Small shop", Some("starter"))
        .await
        .unwrap();
    let key = created.api_key;
    let usage = app.get("/api/v1/usage", &key).await;
    assert_eq!(usage.body["plan"], "starter", "{}", usage.body);
    assert_eq!(usage.body["messages"]["limit"], 1);
    assert_eq!(usage.body["bots"]["limit"], 1);
    let bot = app.post("/api/v1/bots", &key, json!({"name": "Only one"})).await;
    assert_eq!(bot.status, StatusCode::CREATED);
    let bot_id = bot.body["id"].as_str().unwrap();
    let r = app.post("/api/v1/bots", &key, json!({"name": "Second"})).await;
    assert_eq!(r.error_code(), "QUOTA_EXCEEDED", "{}", r.body);
    let chat_path = format!("/api/v1/bots/{bot_id}/chat");
    let hello = json!({"message": "Hello", "stream": false});
    assert_eq!(app.post(&chat_path, &key, hello.clone()).await.status, StatusCode::OK);
    assert_eq!(
        app.post(&chat_path, &key, hello.clone()).await.error_code(),
        "QUOTA_EXCEEDED"
    );
    // Another organization on the default plan is not held back.
    let other = app.create_org("Big shop").await;
    let usage = app.get("/api/v1/usage", &other.key).await;
    assert_eq!(usage.body["plan"], "default");
    assert_eq!(
        usage.body["bots"]["limit"],
        json!(env.settings().plan_bots),
        "{}",
        usage.body
    );
    // Moving the small shop to the default plan lifts its limits at once.
    parley_api::admin::set_plan(&app.store, created.org_id, "default")
        .await
        .unwrap();
    assert_eq!(app.get("/api/v1/usage", &key).await.body["plan"], "default");
    assert_eq!(
        app.post("/api/v1/bots", &key, json!({"name": "Second"})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.post(&chat_path, &key, hello).await.status, StatusCode::OK);
    app.stop().await;
    env.cleanup().await;
}

/// A client that does not send its request head in time is disconnected;
/// one that does gets its answer.
pub async fn slow_request_heads(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new(backend).await;
    let app = env.start_with(Roles::ALL, |s| s.header_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("the server closes the connection, it does not wait forever");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer: {read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "not before the deadline: {waited:?}"
    );

    let mut prompt = tokio::net::TcpStream::connect(&addr).await.unwrap();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    prompt.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
    env.cleanup().await;
}

/// A body sent without a length (chunked) is not read before the request is
/// authenticated: an upload without a valid key is refused while its body
/// is still on its way (the body below never ends, so a server that read it
/// first would never answer), and an oversized chunked body with a valid
/// key is cut off with 413.
pub async fn chunked_bodies_are_not_read_before_authentication(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Bot"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let endless = || {
        reqwest::Body::wrap_stream(async_stream::stream! {
            yield Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"));
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                yield Ok(bytes::Bytes::from_static(b"a"));
            }
        })
    };
    let upload = format!("{}/api/v1/bots/{bot_id}/sources/documents", app.base);
    for key in [None, Some("pk_not_a_real_key")] {
        let mut request = app
            .client
            .post(&upload)
            .header("content-type", "multipart/form-data; boundary=x")
            .body(endless());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = tokio::time::timeout(Duration::from_secs(10), request.send())
            .await
            .expect("answered before the body ended")
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "key {key:?}");
    }
    // With a valid key, a chunked body past the limit is refused with 413.
    let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
    let oversized = reqwest::Body::wrap_stream(async_stream::stream! {
        for _ in 0..4 {
            yield Ok::<_, std::io::Error>(chunk.clone());
        }
    });
    let response = app
        .client
        .post(format!("{}/api/v1/bots", app.base))
        .bearer_auth(&a.key)
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    app.stop().await;
    env.cleanup().await;
}
