//! Scenario bodies, each run on SQLite and on PostgreSQL + Redis.

use parley_api::app::Roles;
use parley_domain::aggregates::bot::BOT_PURGED;
use parley_worker::dispatcher::OUTBOX;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, TestEnv};

async fn fresh(backend: Backend) -> (TestEnv, TestApp) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    (env, app)
}

async fn create_bot(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/bots", key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub async fn keys_bots_and_tenant_isolation(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;

    // A second key for Acme, shown once; lists never show it.
    let created = app.post("/api/v1/keys", &a.key, json!({"name": "ci"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key2 = created.body["key"].as_str().expect("key shown once").to_owned();
    assert!(key2.starts_with("pk_") && key2.len() == 67, "{key2}");
    assert_eq!(created.body["last4"], json!(&key2[63..]));
    assert!(key2.starts_with(created.body["prefix"].as_str().expect("prefix")));
    let key2_id = id(&created.body);
    let listed = app.get("/api/v1/keys", &key2).await;
    assert_eq!(listed.status, StatusCode::OK);
    let keys = listed.body["data"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("key").is_none()),
        "secrets must not be listed: {}",
        listed.body
    );
    assert!(
        !listed.body.to_string().contains(&key2[3..]),
        "the key must not appear in lists"
    );
    let key2_row = keys.iter().find(|k| k["id"] == json!(key2_id)).expect("key2 listed");
    assert!(
        key2_row["last_used_at"].is_string(),
        "using a key records its last use: {key2_row}"
    );

    // Bots: create, read back, list in pages, update.
    let bot = create_bot(
        &app,
        &a.key,
        json!({"name": "Support Bot", "website": "https://acme.example"}),
    )
    .await;
    assert_eq!(bot["slug"], "support-bot");
    assert_eq!(bot["version"], 1);
    assert_eq!(bot["language"], "en");
    let twin = create_bot(&app, &a.key, json!({"name": "Support Bot"})).await;
    assert_eq!(twin["slug"], "support-bot-2", "derived slugs are made unique");
    let third = create_bot(
        &app,
        &a.key,
        json!({"name": "Sales", "slug": "sales", "language": "pt-BR",
        "model": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.7}, "streaming": false}),
    )
    .await;
    assert_eq!(third["model"]["provider"], "openai");
    assert_eq!(third["streaming"], false);
    let bot_id = id(&bot);
    let got = app.get(&format!("/api/v1/bots/{bot_id}"), &a.key).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, bot, "read back what was created");
    assert_eq!(got.header("etag"), Some("\"1\""));

    let page1 = app.get("/api/v1/bots?limit=2", &a.key).await;
    assert_eq!(page1.body["data"].as_array().map(Vec::len), Some(2));
    let cursor = page1.body["next_cursor"].as_str().expect("a next page");
    let page2 = app.get(&format!("/api/v1/bots?limit=2&cursor={cursor}"), &a.key).await;
    assert_eq!(page2.body["data"].as_array().map(Vec::len), Some(1));
    assert!(page2.body["next_cursor"].is_null());
    assert_eq!(page2.body["data"][0]["id"], third["id"]);

    let updated = app
        .patch(
            &format!("/api/v1/bots/{bot_id}"),
            &a.key,
            json!({"persona": "Be brief.", "website": null, "model": {"temperature": 0}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["persona"], "Be brief.");
    assert!(updated.body["website"].is_null());
    assert_eq!(updated.body["model"]["temperature"], 0.0);
    assert_eq!(updated.body["version"], 2);
    let taken = app
        .patch(&format!("/api/v1/bots/{bot_id}"), &a.key, json!({"slug": "sales"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.error_code(), "BOT_SLUG_TAKEN");

    // Another organization sees nothing of Acme's and can change nothing.
    assert_eq!(app.get("/api/v1/bots", &b.key).await.body["data"], json!([]));
    for r in [
        app.get(&format!("/api/v1/bots/{bot_id}"), &b.key).await,
        app.patch(&format!("/api/v1/bots/{bot_id}"), &b.key, json!({"name": "pwned"}))
            .await,
        app.delete(&format!("/api/v1/bots/{bot_id}"), &b.key).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(r.error_code(), "BOT_NOT_FOUND");
    }
    let r = app.delete(&format!("/api/v1/keys/{key2_id}"), &b.key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "API_KEY_NOT_FOUND");
    assert_eq!(
        app.get(&format!("/api/v1/keys/{key2_id}"), &b.key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/keys", &b.key).await.body["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        app.get(&format!("/api/v1/bots/{bot_id}"), &a.key).await.body["name"],
        "Support Bot"
    );

    // Revocation takes effect on the next request.
    assert_eq!(app.get("/api/v1/bots", &key2).await.status, StatusCode::OK);
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{key2_id}"), &a.key).await.status,
        StatusCode::NO_CONTENT
    );
    let refused = app.get("/api/v1/bots", &key2).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), "UNAUTHORIZED");
    let row = app.get(&format!("/api/v1/keys/{key2_id}"), &a.key).await;
    assert!(row.body["revoked_at"].is_string());
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{key2_id}"), &a.key).await.status,
        StatusCode::NO_CONTENT,
        "revoking twice is harmless"
    );

    // Deleting a bot: gone at once, slug free again.
    assert_eq!(
        app.delete(&format!("/api/v1/bots/{bot_id}"), &a.key).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = app.get(&format!("/api/v1/bots/{bot_id}"), &a.key).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "BOT_NOT_FOUND");
    assert_eq!(
        app.delete(&format!("/api/v1/bots/{bot_id}"), &a.key).await.status,
        StatusCode::NOT_FOUND
    );
    let again = create_bot(&app, &a.key, json!({"name": "Support Bot", "slug": "support-bot"})).await;
    assert_eq!(again["slug"], "support-bot");

    app.stop().await;
    env.cleanup().await;
}

pub async fn idempotent_creates(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let body = json!({"name": "Docs Bot"});
    let headers = [("Idempotency-Key", "create-docs-bot-1")];
    let first = app
        .call_with(Method::POST, "/api/v1/bots", Some(&a.key), Some(body.clone()), &headers)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    let retry = app
        .call_with(Method::POST, "/api/v1/bots", Some(&a.key), Some(body.clone()), &headers)
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body, "a retry answers like the first request");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let created = app.get("/api/v1/events?type=bot.created", &a.key).await;
    assert_eq!(
        created.body["data"].as_array().map(Vec::len),
        Some(1),
        "one event only: {}",
        created.body
    );

    let other = app
        .call_with(
            Method::POST,
            "/api/v1/bots",
            Some(&a.key),
            Some(json!({"name": "Other"})),
            &headers,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.error_code(), "IDEMPOTENCY_KEY_REUSED");

    // Keys are per organization.
    let globex = app
        .call_with(Method::POST, "/api/v1/bots", Some(&b.key), Some(body.clone()), &headers)
        .await;
    assert_eq!(globex.status, StatusCode::CREATED);
    assert_ne!(globex.body["id"], first.body["id"]);

    // Concurrent retries with one key create one bot.
    let racing = [("Idempotency-Key", "race-1")];
    let replies = futures::future::join_all((0..6).map(|_| {
        app.call_with(
            Method::POST,
            "/api/v1/bots",
            Some(&a.key),
            Some(json!({"name": "Race"})),
            &racing,
        )
    }))
    .await;
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| r.body["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one bot for one key");
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT)
    );
    let races = app.get("/api/v1/bots?limit=100", &a.key).await;
    let names: Vec<_> = races.body["data"]
        .as_array()
        .expect("bots")
        .iter()
        .filter(|b| b["name"] == "Race")
        .collect();
    assert_eq!(names.len(), 1);

    // Key creation: the secret is shown only in the first answer.
    let kh = [("Idempotency-Key", "key-1")];
    let k1 = app
        .call_with(
            Method::POST,
            "/api/v1/keys",
            Some(&a.key),
            Some(json!({"name": "zapier"})),
            &kh,
        )
        .await;
    let k2 = app
        .call_with(
            Method::POST,
            "/api/v1/keys",
            Some(&a.key),
            Some(json!({"name": "zapier"})),
            &kh,
        )
        .await;
    assert_eq!(k1.status, StatusCode::CREATED);
    assert_eq!(k2.status, StatusCode::CREATED);
    assert_eq!(k1.body["id"], k2.body["id"]);
    assert!(k1.body["key"].is_string());
    assert!(k2.body["key"].is_null(), "a replay never shows the secret again");

    app.stop().await;
    env.cleanup().await;
}

pub async fn request_errors_have_one_shape(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let raw = |body: &'static str, content_type: &'static str| {
        let req = app
            .client
            .post(format!("{}/api/v1/bots", app.base))
            .bearer_auth(&a.key)
            .header("content-type", content_type)
            .body(body);
        async move {
            let resp = req.send().await.expect("sent");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            crate::harness::Reply {
                status,
                headers: Default::default(),
                body,
            }
        }
    };
    let cases = [
        (
            raw("{\"name\":", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("{\"name\": 42}", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("{\"name\": \"x\", \"persona\": true}", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("{\"name\": [\"x\"]}", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("{\"name\": \"x\", \"streaming\": \"yes\"}", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("{\"name\": \"x\", \"colour\": \"red\"}", "application/json").await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            raw("name=x", "application/x-www-form-urlencoded").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            app.post("/api/v1/bots", &a.key, json!({"name": "x".repeat(101)})).await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            app.post(
                "/api/v1/bots",
                &a.key,
                json!({"name": "x", "persona": "p".repeat(200_000)}),
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            app.post(
                "/api/v1/bots",
                &a.key,
                json!({"name": "x", "language": "english!", "website": "javascript:alert(1)"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            app.post("/api/v1/bots", &a.key, json!({"name": "x", "slug": "Not A Slug"}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            app.post(
                "/api/v1/bots",
                &a.key,
                json!({"name": "x", "model": {"temperature": 9}}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            app.call(Method::GET, "/api/v1/bots", None, None).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ),
        (
            app.get("/api/v1/bots", "pk_short").await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ),
        (
            app.get("/api/v1/bots", &format!("pk_{}", "0".repeat(64))).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ),
        (
            app.get("/api/v1/bots/not-a-uuid", &a.key).await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            app.get("/api/v1/bots?limit=0", &a.key).await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            app.get(&format!("/api/v1/bots/{}", uuid::Uuid::now_v7()), &a.key).await,
            StatusCode::NOT_FOUND,
            "BOT_NOT_FOUND",
        ),
        (
            app.get("/api/v1/nothing-here", &a.key).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            app.call(Method::PUT, "/api/v1/bots", Some(&a.key), None).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            app.call_with(
                Method::POST,
                "/api/v1/bots",
                Some(&a.key),
                Some(json!({"name": "x"})),
                &[("Idempotency-Key", "")],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
    ];
    for (i, (reply, status, code)) in cases.iter().enumerate() {
        assert_eq!(reply.status, *status, "case {i}: {}", reply.body);
        assert_eq!(reply.error_code(), *code, "case {i}: {}", reply.body);
    }
    // A 405 says which methods the path takes.
    let wrong_method = cases
        .iter()
        .find(|(r, ..)| r.status == StatusCode::METHOD_NOT_ALLOWED)
        .unwrap();
    assert_eq!(wrong_method.0.header("allow"), Some("GET, HEAD, POST"));
    let head = app.call(Method::HEAD, "/api/v1/bots", Some(&a.key), None).await;
    assert_eq!(head.status, StatusCode::OK, "HEAD is served where GET is");
    // Every invalid field is reported, by name.
    let validation = cases
        .iter()
        .find(|c| c.1 == StatusCode::UNPROCESSABLE_ENTITY)
        .expect("a validation case");
    let details = &validation.0.body["error"]["details"];
    let fields: Vec<_> = details
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["website", "language"]);
    // Nothing was stored by any refused request.
    assert_eq!(app.get("/api/v1/bots", &a.key).await.body["data"], json!([]));
    let conflict = {
        let bot = create_bot(&app, &a.key, json!({"name": "x"})).await;
        app.call_with(
            Method::PATCH,
            &format!("/api/v1/bots/{}", id(&bot)),
            Some(&a.key),
            Some(json!({"name": "y"})),
            &[("If-Match", "\"7\"")],
        )
        .await
    };
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.error_code(), "CONFLICT");
    app.stop().await;
    env.cleanup().await;
}

pub async fn concurrent_updates_conflict_without_gaps(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let bot = create_bot(&app, &a.key, json!({"name": "Support"})).await;
    let path = format!("/api/v1/bots/{}", id(&bot));

    // Two updates expecting the same version: one wins, the other gets 409.
    let (r1, r2) = tokio::join!(
        app.call_with(
            Method::PATCH,
            &path,
            Some(&a.key),
            Some(json!({"persona": "one"})),
            &[("If-Match", "\"1\"")]
        ),
        app.call_with(
            Method::PATCH,
            &path,
            Some(&a.key),
            Some(json!({"persona": "two"})),
            &[("If-Match", "\"1\"")]
        ),
    );
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        r1.body,
        r2.body
    );
    let loser = if r1.status == StatusCode::CONFLICT { &r1 } else { &r2 };
    assert_eq!(loser.error_code(), "CONFLICT");
    let winner = if r1.status == StatusCode::OK { &r1 } else { &r2 };
    let now = app.get(&path, &a.key).await;
    assert_eq!(
        now.body["persona"], winner.body["persona"],
        "the winner's change is what is stored"
    );
    assert_eq!(now.body["version"], 2);

    // Updates without If-Match are decided again on the fresh state: all apply.
    let replies = futures::future::join_all(
        (0..8).map(|i| app.patch(&path, &a.key, json!({"welcome_message": format!("hello {i}")}))),
    )
    .await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );

    let stream = app
        .store
        .read_stream(bot["id"].as_str().expect("id").parse().expect("uuid"))
        .await
        .expect("stream");
    let versions: Vec<i64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=10).collect::<Vec<i64>>(), "no gap, no duplicate");
    let positions: Vec<i64> = stream.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(app.get(&path, &a.key).await.body["version"], 10);
    app.stop().await;
    env.cleanup().await;
}

pub async fn replay_rebuilds_identical_rows(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let k = app.post("/api/v1/keys", &a.key, json!({"name": "ci"})).await;
    app.delete(&format!("/api/v1/keys/{}", id(&k.body)), &a.key).await;
    let keep = create_bot(&app, &a.key, json!({"name": "Keep", "website": "https://a.example"})).await;
    app.patch(
        &format!("/api/v1/bots/{}", id(&keep)),
        &a.key,
        json!({"active": false, "model": {"provider": "openai"}}),
    )
    .await;
    let gone = create_bot(&app, &b.key, json!({"name": "Gone"})).await;
    app.delete(&format!("/api/v1/bots/{}", id(&gone)), &b.key).await;
    let store = app.store.clone();
    app.eventually(20, "bot.purged recorded", || {
        let store = store.clone();
        async move {
            !store
                .read_log(None, 0, 1000, &[BOT_PURGED.to_owned()])
                .await
                .expect("log")
                .is_empty()
        }
    })
    .await;

    // Sources and their pages, indexed and then refreshed.
    let src = app
        .post(
            &format!("/api/v1/bots/{}/sources", id(&keep)),
            &a.key,
            json!({"type": "text", "title": "T", "body": "Hello world."}),
        )
        .await;
    assert_eq!(src.status, StatusCode::ACCEPTED, "{}", src.body);
    let src_id = id(&src.body);
    assert_eq!(
        app.settled_source(&a.key, &id(&keep), &src_id, 120).await["status"],
        "ready"
    );
    app.patch(
        &format!("/api/v1/bots/{}/sources/{src_id}", id(&keep)),
        &a.key,
        json!({"schedule": "weekly"}),
    )
    .await;

    // A conversation: a question and its answer (the bot answers once active).
    app.patch(
        &format!("/api/v1/bots/{}", id(&keep)),
        &a.key,
        json!({"active": true, "model": {"provider": "extractive"}}),
    )
    .await;
    let chat = app
        .post(
            &format!("/api/v1/bots/{}/chat", id(&keep)),
            &a.key,
            json!({"message": "What does the text say?", "stream": false}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.body);
    let tagged = app
        .post(
            &format!(
                "/api/v1/conversations/{}/tags",
                chat.body["conversation_id"].as_str().unwrap()
            ),
            &a.key,
            json!({"tags": ["vip", "billing"]}),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    // A visitor of the widget leaves contact details and a file.
    let site_key = app.site_key(&a.key, &id(&keep)).await;
    let public = format!("/api/v1/public/bots/{}/conversations", id(&keep));
    let started = app
        .call_with(
            Method::POST,
            &public,
            None,
            Some(
                json!({"visitor_token": "v_replay-visitor-0001", "email": "ana@shop.example",
                        "message": "What does the text say?"}),
            ),
            &[("X-Parley-Site-Key", &site_key)],
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let (cid, token) = (
        started.body["conversation_id"].as_str().unwrap(),
        started.body["token"].as_str().unwrap(),
    );
    let mid = started.body["messages"][0]["id"].as_str().unwrap();
    let part = reqwest::multipart::Part::bytes(b"a note".to_vec()).file_name("note.txt");
    let attached = app
        .client
        .post(format!("{}{public}/{cid}/messages/{mid}/attachments", app.base))
        .header("X-Parley-Site-Key", &site_key)
        .header("X-Parley-Conversation-Token", token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(attached.status(), StatusCode::CREATED);
    // A webhook endpoint, its secret rotated.
    let hook = app
        .post(
            "/api/v1/webhooks",
            &a.key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["lead.captured"], "active": false}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{}/rotate-secret", id(&hook.body)),
            &a.key,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    // People: an owner, a member who joined by invitation, an internal note.
    parley_api::admin::add_owner(
        &app.store,
        &app.base,
        a.id,
        "owner@replay.example",
        Some("owner passphrase 2026"),
    )
    .await
    .expect("owner added");
    let agent = app
        .join(&a.key, "agent@replay.example", "agent", "agent passphrase 2026", None)
        .await;
    let noted = app
        .as_member(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{cid}/notes"),
            &agent,
            Some(json!({"text": "replayed note"})),
        )
        .await;
    assert_eq!(noted.status, StatusCode::CREATED, "{}", noted.body);
    let saved = app
        .post(
            "/api/v1/saved-replies",
            &a.key,
            json!({"shortcut": "/hours", "text": "We are open 9 to 5."}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);

    let live = app.snapshots().await;
    for (name, rows) in &live {
        assert!(!rows.is_empty(), "projection {name} has rows to compare");
    }
    let (rebuilt, events) = app.store.replay(None).await.expect("replay");
    assert_eq!(
        rebuilt,
        [
            "orgs",
            "people",
            "members",
            "api_keys",
            "bots",
            "sources",
            "source_pages",
            "conversations",
            "messages",
            "conversation_notes",
            "conversation_tags",
            "attachments",
            "leads",
            "webhooks",
            "saved_replies"
        ]
    );
    assert!(events >= 9, "read the whole log ({events} events)");
    assert_eq!(app.snapshots().await, live, "replayed rows equal live rows");
    // One projection alone, and the app keeps working on the rebuilt rows.
    app.store.replay(Some("bots")).await.expect("replay bots");
    assert_eq!(app.snapshots().await, live);
    let more = create_bot(&app, &a.key, json!({"name": "After replay"})).await;
    assert_eq!(more["slug"], "after-replay");
    app.stop().await;
    env.cleanup().await;
}

async fn purged_count(app: &TestApp) -> usize {
    app.store
        .read_log(None, 0, 10_000, &[BOT_PURGED.to_owned()])
        .await
        .expect("log")
        .len()
}

pub async fn outbox_survives_a_crash_and_redelivery(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // 1. The API appends bot.deleted, and the process dies before any job is
    //    enqueued (no dispatcher runs in it).
    let api_only = env
        .start(Roles {
            migrate: true,
            ..Roles::API
        })
        .await;
    let a = api_only.create_org("Acme").await;
    let bot = create_bot(&api_only, &a.key, json!({"name": "Doomed"})).await;
    assert_eq!(
        api_only
            .delete(&format!("/api/v1/bots/{}", id(&bot)), &a.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api_only.store.checkpoint(OUTBOX).await.expect("checkpoint"),
        0,
        "nothing was dispatched yet"
    );
    api_only.kill().await;

    // 2. After a restart the dispatcher finds the event from its checkpoint
    //    and the purge job runs.
    let app = env.start(Roles::ALL).await;
    let probe = app.store.clone();
    app.eventually(30, "bot.purged after restart", || {
        let app_store = probe.clone();
        async move {
            !app_store
                .read_log(None, 0, 1000, &[BOT_PURGED.to_owned()])
                .await
                .expect("log")
                .is_empty()
        }
    })
    .await;
    assert_eq!(purged_count(&app).await, 1);
    let head = app.store.head().await.expect("head");
    app.eventually(10, "checkpoint at head", || {
        let s = probe.clone();
        async move { s.checkpoint(OUTBOX).await.expect("checkpoint") >= head - 1 }
    })
    .await;
    app.kill().await;

    // 3. A crash after enqueueing but before saving the checkpoint re-enqueues
    //    the job: it runs again and changes nothing.
    let probe_app = env
        .start(Roles {
            api: false,
            workers: false,
            dispatcher: false,
            migrate: false,
        })
        .await;
    probe_app.store.set_checkpoint(OUTBOX, 0).await.expect("rewind");
    probe_app.shutdown().await;
    let app = env.start(Roles::ALL).await;
    let probe = app.store.clone();
    app.eventually(30, "re-dispatch done", || {
        let s = probe.clone();
        async move { s.checkpoint(OUTBOX).await.expect("checkpoint") > 0 }
    })
    .await;
    // Wait for the re-delivered job to be processed (the jobs metric counts it).
    let base = app.base.clone();
    let client = app.client.clone();
    app.eventually(30, "duplicate job processed", || {
        let (base, client) = (base.clone(), client.clone());
        async move {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .unwrap_or_default();
            text.lines()
                .any(|l| l.starts_with("parley_jobs_total{job=\"purge_bot\",outcome=\"succeeded\"} 1"))
        }
    })
    .await;
    assert_eq!(purged_count(&app).await, 1, "the purge happened exactly once in effect");
    let log = app
        .store
        .read_stream(bot["id"].as_str().expect("id").parse().expect("uuid"))
        .await
        .expect("stream");
    let types: Vec<_> = log.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["bot.created", "bot.deleted", "bot.purged"]);
    assert_eq!(
        log[2].correlation_id(),
        log[1].correlation_id(),
        "the job carries the request's correlation id"
    );
    app.stop().await;
    env.cleanup().await;
}

pub async fn operations_endpoints(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["queue"], "ok");
    assert_eq!(
        ready.body["queue_backend"],
        if env.backend == Backend::Sqlite {
            "sqlite"
        } else {
            "redis"
        }
    );

    // Request ids: echoed when sane, generated otherwise, recorded in events.
    let given = app
        .call_with(
            Method::POST,
            "/api/v1/bots",
            Some(&a.key),
            Some(json!({"name": "Traced"})),
            &[("X-Request-Id", "req-abc-123")],
        )
        .await;
    assert_eq!(given.header("x-request-id"), Some("req-abc-123"));
    let generated = app
        .call_with(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("X-Request-Id", "bad id with spaces")],
        )
        .await;
    let rid = generated.header("x-request-id").expect("generated id");
    assert_ne!(rid, "bad id with spaces");
    assert_eq!(rid.len(), 36);
    let events = app.get("/api/v1/events?type=bot.created", &a.key).await;
    assert_eq!(events.body["data"][0]["correlation_id"], "req-abc-123");

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("parley_http_requests_total{method=\"POST\",route=\"create_bot\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("parley_http_request_duration_seconds_bucket{method=\"GET\",route=\"healthz\",status=\"200\""),
        "{text}"
    );
    assert!(text.contains("parley_event_log_position{cursor=\"head\"}"), "{text}");
    assert!(
        text.contains("parley_queue_jobs{state="),
        "queue counts from the backend: {text}"
    );
    for line in [
        "parley_index_cache{measure=\"budget_bytes\"}",
        "parley_index_cache{measure=\"bytes\"}",
        "parley_index_cache_events_total{event=\"miss\"}",
        "parley_index_cache_events_total{event=\"eviction\"}",
    ] {
        assert!(text.contains(line), "the index cache's {line}: {text}");
    }

    let docs = app.client.get(format!("{}/docs", app.base)).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap_or_default().contains("swagger"),
        "Swagger UI is served"
    );
    let spec = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.body["info"]["title"], "Parley API");
    app.stop().await;
    env.cleanup().await;
}

pub async fn event_feed_is_scoped_and_filtered(backend: Backend) {
    let (env, app) = fresh(backend).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let bot = create_bot(&app, &a.key, json!({"name": "One"})).await;
    app.patch(&format!("/api/v1/bots/{}", id(&bot)), &a.key, json!({"name": "Uno"}))
        .await;
    create_bot(&app, &b.key, json!({"name": "Theirs"})).await;

    let feed = app.get("/api/v1/events", &a.key).await;
    assert_eq!(feed.status, StatusCode::OK);
    let events = feed.body["data"].as_array().expect("events");
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect();
    assert_eq!(types, ["org.created", "api_key.created", "bot.created", "bot.updated"]);
    assert_eq!(
        events[0]["stream_id"],
        json!(a.id),
        "the feed starts with the organization's creation"
    );
    assert!(
        !feed.body.to_string().contains("Theirs"),
        "another org's events are invisible"
    );
    assert!(
        events.iter().all(|e| e["data"].get("hash").is_none()),
        "key hashes are not published"
    );
    assert_eq!(events[3]["data"]["changed"], json!(["name"]));
    assert_eq!(events[3]["stream_version"], 2);
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["position"].as_i64().unwrap_or_default())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));

    // Paging by position, and filtering by type.
    let first = app.get("/api/v1/events?limit=2", &a.key).await;
    assert_eq!(first.body["data"].as_array().map(Vec::len), Some(2));
    let after = first.body["next_after"].as_i64().expect("next_after");
    let rest = app.get(&format!("/api/v1/events?after={after}"), &a.key).await;
    assert_eq!(rest.body["data"].as_array().map(Vec::len), Some(2));
    let end = rest.body["next_after"].as_i64().expect("next_after");
    let none = app.get(&format!("/api/v1/events?after={end}"), &a.key).await;
    assert_eq!(none.body["data"], json!([]));
    assert_eq!(none.body["next_after"], end);
    let only = app
        .get("/api/v1/events?type=bot.updated&type=org.created", &a.key)
        .await;
    let only_types: Vec<_> = only.body["data"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(only_types, [json!("org.created"), json!("bot.updated")]);
    app.stop().await;
    env.cleanup().await;
}

pub use crate::ingestion::{
    crawl_survives_a_killed_worker, scheduled_refresh, site_crawl_refresh_and_robots, sources_from_texts_qa_and_files,
};
