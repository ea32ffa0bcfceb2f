//! Rate limits: per API key, shared by every API instance through Redis (in
//! memory on the embedded tier), and tighter limits for uploads.

use std::time::Duration;

use parley_api::app::Roles;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp, TestEnv};

const LIMIT: u32 = 60;

fn limited(s: &mut parley_api::config::Settings) {
    s.rate_limit_per_minute = LIMIT;
    s.upload_limit = 2;
}

async fn get_bots(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/api/v1/bots", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

pub async fn rate_limits(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = env.start_with(Roles::ALL, limited).await;
    // A second API instance on the same database and Redis (the embedded
    // tier keeps counts in memory, so it has one instance).
    let second = match backend {
        Backend::Postgres => Some(env.start_with(Roles::API, limited).await),
        Backend::Sqlite => None,
    };
    let a = first.create_org("Acme").await;

    // 200 requests at once, alternating between the instances.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = match (&second, i % 2) {
            (Some(second), 1) => second,
            _ => &first,
        };
        let (client, url, key) = (app.client.clone(), format!("{}/api/v1/bots", app.base), a.key.clone());
        tasks.push(tokio::spawn(async move {
            client.get(url).bearer_auth(key).send().await.unwrap()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("x-ratelimit-limit").as_deref(), Some("60"), "{:?}", r.headers());
        let remaining: u32 = header("x-ratelimit-remaining").unwrap().parse().unwrap();
        let reset: u64 = header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(remaining < LIMIT && reset <= 60, "remaining {remaining}, reset {reset}");
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
    assert_eq!(get_bots(&first, &b.key).await.status(), StatusCode::OK);

    // The window moves: a request per second comes back, not the whole burst.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_bots(&first, &a.key).await.status(), StatusCode::OK);
    let mut again = Vec::new();
    for _ in 0..10 {
        again.push(get_bots(second.as_ref().unwrap_or(&first), &a.key).await.status());
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
    assert_eq!(get_bots(&first, &b.key).await.status(), StatusCode::OK);

    if let Some(second) = second {
        second.stop().await;
    }
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
