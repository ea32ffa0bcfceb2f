//! Webhooks end to end: a real receiver on 127.0.0.1 verifies every
//! signature the documented way (its own HMAC code, not Parley's) and counts
//! deliveries: every event of a scenario arrives; a receiver that fails at
//! first gets the delivery later; 410 disables an endpoint; disabled and
//! other tenants' endpoints get nothing; a tampered body fails verification;
//! a worker killed mid-delivery still delivers once restarted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use parley_api::app::Roles;
use poem::web::Data;
use poem::{EndpointExt, Request, handler};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{Backend, TestApp, TestEnv};
use crate::ingestion::{add, add_text_ready};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub event_id: String,
    pub event_type: String,
    pub delivery_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

#[derive(Default)]
pub(crate) struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Requests to fail (500) per path before answering 200.
    pub fail_first: Mutex<HashMap<String, usize>>,
    /// Paths whose first request is never answered.
    pub hang_first: Mutex<HashSet<String>>,
    /// Paths that take two seconds to answer every request.
    pub slow: Mutex<HashSet<String>>,
}

#[handler]
async fn receive(req: &Request, body: String, state: Data<&Arc<Receiver>>) -> poem::Response {
    let header = |name: &str| req.header(name).unwrap_or_default().to_owned();
    let path = req.uri().path().to_owned();
    let seen_before = state.got.lock().unwrap().iter().filter(|r| r.path == path).count();
    state.got.lock().unwrap().push(Received {
        path: path.clone(),
        event_id: header("x-parley-event-id"),
        event_type: header("x-parley-event-type"),
        delivery_id: header("x-parley-delivery-id"),
        timestamp: header("x-parley-timestamp"),
        signature: header("x-parley-signature"),
        body,
    });
    if path.ends_with("/gone") {
        return poem::Response::builder().status(poem::http::StatusCode::GONE).finish();
    }
    if seen_before == 0 && state.hang_first.lock().unwrap().contains(&path) {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    if state.slow.lock().unwrap().contains(&path) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let failing = state.fail_first.lock().unwrap().get(&path).copied().unwrap_or(0);
    if seen_before < failing {
        return poem::Response::builder()
            .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
            .body("temporarily broken");
    }
    poem::Response::builder().body("thanks")
}

/// A webhook receiver on 127.0.0.1 that records every request.
pub(crate) struct Server {
    pub base: String,
    pub state: Arc<Receiver>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let state = Arc::new(Receiver::default());
        let app = poem::Route::new().at("/*path", poem::post(receive)).data(state.clone());
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            state,
            task,
        }
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.state
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The documented check, written independently of Parley's code: the
/// timestamp is recent, and one `v1=` signature is the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` with the secret, compared in constant time.
pub(crate) fn verify(secret: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    header
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|given| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{ts}.{body}").as_bytes());
            mac.verify_slice(&given).is_ok()
        })
}

/// Short timeouts and retries. An endpoint failing for 8 s is disabled: long
/// enough for the flaky endpoint's three attempts (about a second apart) on
/// a loaded machine, short enough to see the broken one disabled.
fn test_settings(s: &mut parley_api::config::Settings) {
    s.webhook_timeout_secs = 3;
    s.webhook_retry_base_ms = 200;
    s.webhook_disable_after_secs = 8;
}

pub(crate) async fn create_endpoint(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let r = app.post("/api/v1/webhooks", key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 70, "{secret}");
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

pub async fn webhooks_deliver_every_event(backend: Backend) {
    let receiver = Server::start().await;
    let env = TestEnv::new(backend).await;
    let app = env.start_with(Roles::ALL, test_settings).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let url = |path: &str| format!("{}{path}", receiver.base);

    // Bad endpoints are refused, each naming its problem.
    let r = app
        .post(
            "/api/v1/webhooks",
            &a.key,
            json!({"url": url("/x"), "events": ["message.created", "bot.exploded"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["details"][0]["field"], "events[1]");
    for (bad, code) in [
        ("http://10.1.2.3/hook", "URL_NOT_ALLOWED"),
        ("http://169.254.169.254/latest", "URL_NOT_ALLOWED"),
        ("http://localhost:9/hook", "URL_NOT_ALLOWED"),
        ("ftp://example.com/hook", "VALIDATION_FAILED"),
    ] {
        let r = app.post("/api/v1/webhooks", &a.key, json!({"url": bad})).await;
        assert_eq!(r.error_code(), code, "{bad}: {}", r.body);
    }
    let types = app.get("/api/v1/webhooks/event-types", &a.key).await;
    assert!(types.body["types"].as_array().unwrap().len() >= 10, "{}", types.body);

    // Endpoints: everything; leads only, failing twice first; a disabled one;
    // one that is gone; another organization's.
    let (all_id, all_secret) = create_endpoint(&app, &a.key, json!({"url": url("/all"), "description": "CRM"})).await;
    let (flaky_id, flaky_secret) =
        create_endpoint(&app, &a.key, json!({"url": url("/flaky"), "events": ["lead.captured"]})).await;
    receiver.state.fail_first.lock().unwrap().insert("/flaky".into(), 2);
    let (_, _) = create_endpoint(&app, &a.key, json!({"url": url("/disabled"), "active": false})).await;
    let (gone_id, _) = create_endpoint(
        &app,
        &a.key,
        json!({"url": url("/gone"), "events": ["conversation.created"]}),
    )
    .await;
    let (_, _) = create_endpoint(&app, &b.key, json!({"url": url("/globex")})).await;
    // One that always fails: disabled once it has failed for the configured time.
    let (broken_id, _) = create_endpoint(
        &app,
        &a.key,
        json!({"url": url("/broken"), "events": ["conversation.created"]}),
    )
    .await;
    receiver
        .state
        .fail_first
        .lock()
        .unwrap()
        .insert("/broken".into(), usize::MAX);
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{all_id}"), &b.key)
            .await
            .error_code(),
        "WEBHOOK_NOT_FOUND"
    );
    let listed = app.get("/api/v1/webhooks", &a.key).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 5);
    assert!(
        listed.body.to_string().find("whsec_").is_none(),
        "secrets are shown once only"
    );

    // A scenario that emits every event type.
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Acme help"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    add_text_ready(&app, &a.key, &bot_id, "Shipping", "Orders ship within 3 business days.").await;
    let broken = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "url", "url": format!("{}/no-such-page", receiver.base)}),
    )
    .await;
    assert_eq!(
        app.settled_source(&a.key, &bot_id, &broken, 120).await["status"],
        "failed"
    );
    let site_key = app.site_key(&a.key, &bot_id).await;
    let public = |path: &str| format!("/api/v1/public/bots/{bot_id}{path}");
    let started = app
        .call_with(
            Method::POST,
            &public("/conversations"),
            None,
            Some(
                json!({"visitor_token": "v_webhook-visitor-0001", "email": "ana@shop.example",
                        "message": "How long does shipping take?"}),
            ),
            &[("X-Parley-Site-Key", &site_key)],
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let cid = started.body["conversation_id"].as_str().unwrap().to_owned();
    let token = started.body["token"].as_str().unwrap().to_owned();
    let answer_id = started.body["messages"][1]["id"].as_str().unwrap().to_owned();
    let visitor = |path: String, body: Value| {
        let app = &app;
        let site_key = site_key.clone();
        let token = token.clone();
        async move {
            app.call_with(
                Method::POST,
                &path,
                None,
                Some(body),
                &[
                    ("X-Parley-Site-Key", &site_key),
                    ("X-Parley-Conversation-Token", &token),
                ],
            )
            .await
        }
    };
    let r = visitor(
        public(&format!("/conversations/{cid}/messages/{answer_id}/feedback")),
        json!({"rating": "up"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = visitor(
        public(&format!("/conversations/{cid}/messages")),
        json!({"text": "I want to talk to a human", "stream": false}),
    )
    .await;
    assert_eq!(r.body["escalated"], true, "{}", r.body);
    let r = visitor(
        public(&format!("/conversations/{cid}/lead")),
        json!({"email": "ana@shop.example", "phone": "+351 912 345 678"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "lead.updated: {}", r.body);
    // A member to assign it to.
    let member = app
        .join(&a.key, "ana@acme.example", "agent", "ana passphrase 2026", None)
        .await
        .person_id;
    for (path, body) in [
        ("reply", json!({"text": "Hi, this is Ana."})),
        ("assign", json!({"member_id": member})),
        ("notes", json!({"text": "Internal: ships from Lisbon"})),
        ("unassign", json!({})),
        ("hand-back", json!({})),
        ("close", json!({})),
    ] {
        let r = app
            .post(&format!("/api/v1/conversations/{cid}/{path}"), &a.key, body)
            .await;
        assert!(r.status.is_success(), "{path}: {}", r.body);
    }
    let r = visitor(
        public(&format!("/conversations/{cid}/satisfaction")),
        json!({"score": 5, "comment": "Quick and kind"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "conversation.rated: {}", r.body);
    let r = app
        .post(&format!("/api/v1/conversations/{cid}/reopen"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Every event of organization A that endpoints hear about, from its feed.
    let feed = app.get("/api/v1/events?after=0&limit=1000", &a.key).await;
    let expected: Vec<(String, String)> = feed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let public = parley_domain::webhooks::public_type(e["type"].as_str().unwrap())?;
            Some((e["id"].as_str().unwrap().to_owned(), public.to_owned()))
        })
        .collect();
    let kinds: HashSet<&str> = expected.iter().map(|(_, t)| t.as_str()).collect();
    for t in parley_domain::webhooks::EVENT_TYPES {
        assert!(kinds.contains(t), "the scenario emits {t}: {kinds:?}");
    }
    app.eventually(60, "every event reached /all", || async {
        let got: HashSet<String> = receiver.at("/all").iter().map(|r| r.event_id.clone()).collect();
        expected.iter().all(|(id, _)| got.contains(id))
    })
    .await;
    let all = receiver.at("/all");
    for r in &all {
        assert!(
            verify(&all_secret, &r.timestamp, &r.body, &r.signature),
            "signature of {r:?}"
        );
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], r.event_id.as_str());
        assert_eq!(body["type"], r.event_type.as_str());
        assert!(body["created_at"].as_str().is_some());
        assert_eq!(body["data"]["org_id"], a.id.to_string(), "{body}");
        let (_, want) = expected
            .iter()
            .find(|(id, _)| *id == r.event_id)
            .expect("an expected event");
        assert_eq!(&r.event_type, want);
        if r.event_type.starts_with("conversation.") || r.event_type == "message.created" {
            assert_eq!(body["data"]["conversation_id"], cid.as_str());
            assert_eq!(body["data"]["bot_id"], bot_id.as_str());
            assert_eq!(body["data"]["visitor_id"], "v_webhook-visitor-0001");
        }
    }
    let ids: Vec<&str> = all.iter().map(|r| r.event_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "each event once to a healthy endpoint");
    assert_eq!(ids.len(), expected.len(), "nothing else");

    // The flaky receiver got the lead on the third attempt.
    app.eventually(30, "the lead reached /flaky", || async {
        receiver.at("/flaky").len() >= 3
    })
    .await;
    let flaky = receiver.at("/flaky");
    assert_eq!(flaky.len(), 3, "two failures, then success: {flaky:?}");
    assert!(flaky.iter().all(|r| r.event_type == "lead.captured"));
    assert!(
        flaky.iter().all(|r| r.event_id == flaky[0].event_id),
        "the same event each time"
    );
    assert!(
        flaky
            .iter()
            .all(|r| verify(&flaky_secret, &r.timestamp, &r.body, &r.signature))
    );
    // The worker records the outcome once the third response is in: the
    // receiver may see the request a moment before the log says so.
    app.eventually(30, "the delivery recorded as delivered", || async {
        let log = app
            .get(&format!("/api/v1/webhooks/{flaky_id}/deliveries"), &a.key)
            .await;
        log.body["items"][0]["status"] == "delivered"
    })
    .await;
    let log = app
        .get(&format!("/api/v1/webhooks/{flaky_id}/deliveries"), &a.key)
        .await;
    let delivery = &log.body["items"][0];
    assert_eq!(delivery["status"], "delivered", "{}", log.body);
    assert_eq!(delivery["attempts"], 3);
    let detail = app
        .get(
            &format!(
                "/api/v1/webhooks/{flaky_id}/deliveries/{}",
                delivery["id"].as_str().unwrap()
            ),
            &a.key,
        )
        .await;
    let attempts: Vec<Value> = detail.body["attempt_log"].as_array().unwrap().clone();
    let codes: Vec<i64> = attempts.iter().map(|x| x["status_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [500, 500, 200], "{}", detail.body);
    assert_eq!(attempts[0]["response_body"], "temporarily broken");
    assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
    assert_eq!(detail.body["payload"]["type"], "lead.captured");
    let failed_only = app
        .get(&format!("/api/v1/webhooks/{flaky_id}/deliveries?status=failed"), &a.key)
        .await;
    assert!(failed_only.body["items"].as_array().unwrap().is_empty());

    // 410 Gone disables the endpoint; a disabled or another tenant's endpoint got nothing.
    app.eventually(30, "the gone endpoint was disabled", || async {
        app.get(&format!("/api/v1/webhooks/{gone_id}"), &a.key).await.body["active"] == false
    })
    .await;
    let gone = app.get(&format!("/api/v1/webhooks/{gone_id}"), &a.key).await;
    assert_eq!(gone.body["disabled"]["code"], "gone", "{}", gone.body);
    assert_eq!(receiver.at("/gone").len(), 1, "no retry after 410");
    assert!(receiver.at("/disabled").is_empty());
    app.eventually(30, "the always-failing endpoint was disabled", || async {
        app.get(&format!("/api/v1/webhooks/{broken_id}"), &a.key).await.body["active"] == false
    })
    .await;
    let broken = app.get(&format!("/api/v1/webhooks/{broken_id}"), &a.key).await;
    assert_eq!(broken.body["disabled"]["code"], "failing", "{}", broken.body);
    assert!(broken.body["health"]["failing_since"].is_string(), "{}", broken.body);
    let attempts_then = receiver.at("/broken").len();
    assert!(attempts_then >= 3, "retried before giving up: {attempts_then}");
    let disabled = app.get("/api/v1/events?type=webhook.disabled", &a.key).await;
    let codes: Vec<&str> = disabled.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"failing") && codes.contains(&"gone"), "{codes:?}");
    assert!(
        receiver.at("/globex").is_empty(),
        "another organization's events never reach it"
    );
    let r = app
        .post(&format!("/api/v1/webhooks/{gone_id}/ping"), &a.key, json!({}))
        .await;
    assert_eq!(r.error_code(), "CONFLICT");

    // Tampering is caught by the documented procedure.
    let sample = &all[0];
    let tampered = sample.body.replacen("\"data\"", "\"data\" ", 1);
    assert!(!verify(&all_secret, &sample.timestamp, &tampered, &sample.signature));
    assert!(!verify(
        &flaky_secret,
        &sample.timestamp,
        &sample.body,
        &sample.signature
    ));
    let later = (sample.timestamp.parse::<i64>().unwrap() + 1).to_string();
    assert!(!verify(&all_secret, &later, &sample.body, &sample.signature));

    // A test ping, a redelivery, and a rotation signing with both secrets.
    let r = app
        .post(&format!("/api/v1/webhooks/{all_id}/ping"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.eventually(20, "the ping arrived", || async {
        receiver.at("/all").iter().any(|x| x.event_type == "webhook.ping")
    })
    .await;
    let redo = &all[1];
    let log = app
        .get(&format!("/api/v1/webhooks/{all_id}/deliveries?limit=100"), &a.key)
        .await;
    let original = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == redo.event_id.as_str())
        .unwrap()
        .clone();
    let r = app
        .post(
            &format!(
                "/api/v1/webhooks/{all_id}/deliveries/{}/redeliver",
                original["id"].as_str().unwrap()
            ),
            &a.key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_ne!(r.body["id"], original["id"]);
    app.eventually(20, "the redelivery arrived", || async {
        receiver
            .at("/all")
            .iter()
            .filter(|x| x.event_id == redo.event_id)
            .count()
            == 2
    })
    .await;
    let copies: Vec<Received> = receiver
        .at("/all")
        .into_iter()
        .filter(|x| x.event_id == redo.event_id)
        .collect();
    assert_ne!(
        copies[0].delivery_id, copies[1].delivery_id,
        "a new delivery of the same event"
    );
    assert_eq!(copies[0].body, copies[1].body, "with the same body");
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{all_id}/rotate-secret"),
            &a.key,
            json!({"grace_hours": 1}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, all_secret);
    let before = receiver.at("/all").len();
    let r = app
        .post(&format!("/api/v1/webhooks/{all_id}/ping"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.eventually(20, "the ping after rotation arrived", || async {
        receiver.at("/all").len() > before
    })
    .await;
    let last = receiver.at("/all").pop().unwrap();
    assert_eq!(last.signature.matches("v1=").count(), 2, "{}", last.signature);
    assert!(verify(&new_secret, &last.timestamp, &last.body, &last.signature));
    assert!(verify(&all_secret, &last.timestamp, &last.body, &last.signature));

    // The feed never shows secrets; deleting stops deliveries.
    let feed = app
        .get(
            "/api/v1/events?type=webhook.created&type=webhook.secret_rotated",
            &a.key,
        )
        .await;
    assert!(!feed.body["data"].as_array().unwrap().is_empty());
    assert!(!feed.body.to_string().contains("whsec_"), "{}", feed.body);
    let r = app.delete(&format!("/api/v1/webhooks/{all_id}"), &a.key).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let count = receiver.at("/all").len();
    let r = app
        .post(&format!("/api/v1/conversations/{cid}/close"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.at("/all").len(), count, "a deleted endpoint gets nothing");
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{all_id}"), &a.key)
            .await
            .error_code(),
        "WEBHOOK_NOT_FOUND"
    );

    // The endpoints' read model rebuilds to the same rows.
    let projections = app.store.projections().to_vec();
    let hooks = projections.iter().find(|p| p.name() == "webhooks").unwrap();
    let live = hooks.snapshot(app.store.db()).await.unwrap();
    app.store.replay(Some("webhooks")).await.unwrap();
    assert_eq!(hooks.snapshot(app.store.db()).await.unwrap(), live);

    app.stop().await;
    env.cleanup().await;
}

/// A worker killed while its delivery waits for the endpoint: once the
/// application runs again, the delivery is sent again with the same event id.
pub async fn webhook_survives_a_killed_worker(backend: Backend) {
    let receiver = Server::start().await;
    receiver.state.hang_first.lock().unwrap().insert("/slow".into());
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            test_settings(s);
            s.webhook_timeout_secs = 5;
        })
        .await;
    let a = app.create_org("Acme").await;
    let (id, secret) = create_endpoint(&app, &a.key, json!({"url": format!("{}/slow", receiver.base)})).await;
    let r = app
        .post(&format!("/api/v1/webhooks/{id}/ping"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let delivery = r.body["id"].as_str().unwrap().to_owned();
    app.eventually(20, "the first attempt reached the endpoint", || async {
        !receiver.at("/slow").is_empty()
    })
    .await;
    app.kill().await;

    let app = env
        .start_with(Roles::ALL, |s| {
            test_settings(s);
            s.webhook_timeout_secs = 5;
        })
        .await;
    let path = format!("/api/v1/webhooks/{id}/deliveries/{delivery}");
    app.eventually(60, "the delivery was sent again and accepted", || async {
        app.get(&path, &a.key).await.body["status"] == "delivered"
    })
    .await;
    let got = receiver.at("/slow");
    assert!(got.len() >= 2, "{got:?}");
    assert!(got.iter().all(|r| r.event_id == got[0].event_id), "the same event id");
    assert!(got.iter().all(|r| verify(&secret, &r.timestamp, &r.body, &r.signature)));
    let detail = app.get(&path, &a.key).await;
    let log = detail.body["attempt_log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["status_code"], 200, "{}", detail.body);
    // The killed attempt died with its worker before it was recorded: the
    // delivery was handed to a new job when its lease ran out.
    assert_eq!(log.len(), 1, "{}", detail.body);
    app.stop().await;
    env.cleanup().await;
}

/// Deliveries have a queue of their own: hundreds of slow ones waiting do
/// not hold up the indexing of a new source.
pub async fn deliveries_do_not_hold_up_indexing(backend: Backend) {
    let receiver = Server::start().await;
    receiver.state.slow.lock().unwrap().insert("/slow".into());
    let env = TestEnv::new(backend).await;
    let app = env.start_with(Roles::ALL, test_settings).await;
    let a = app.create_org("Acme").await;
    let (hook, _) = create_endpoint(&app, &a.key, json!({"url": format!("{}/slow", receiver.base)})).await;
    const FLOOD: usize = 150;
    for _ in 0..FLOOD {
        let r = app
            .post(&format!("/api/v1/webhooks/{hook}/ping"), &a.key, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    // At two seconds each, the flood keeps the delivery workers busy for minutes.
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Busy"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let source = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "text", "title": "Hours", "body": "We are open from 9 to 5 on weekdays."}),
    )
    .await;
    let done = app.settled_source(&a.key, &bot_id, &source, 60).await;
    assert_eq!(done["status"], "ready", "{done}");
    let delivered = receiver.at("/slow").len();
    assert!(
        delivered < FLOOD / 2,
        "the flood was still there: {delivered} of {FLOOD} delivered"
    );
    app.stop().await;
    env.cleanup().await;
}
