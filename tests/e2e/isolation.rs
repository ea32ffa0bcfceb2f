//! Tenant isolation, generated from the OpenAPI spec: every operation is
//! called on organization A's resources with organization B's key, with a
//! revoked key, with a site key where a secret key is needed (and the
//! reverse). All must be refused with the documented status, and no answer
//! to B may carry A's data.

use std::collections::BTreeMap;

use parley_api::app::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, TestEnv};
use crate::ingestion::add;

/// Marks that only organization A's data contains.
const SECRET_MARKS: &[&str] = &[
    "alpha-private",
    "Alpha private bot",
    "ana.alpha@example.com",
    "agent@alpha.example",
    "owner@alpha.example",
    "pending@alpha.example",
];

/// A body for each operation that takes one: valid enough that ownership,
/// not validation, decides the answer.
pub(crate) fn body_of(operation: &str) -> Option<Value> {
    Some(match operation {
        "create_api_key" => json!({"name": "intruder"}),
        "create_bot" => json!({"name": "Intruder bot"}),
        "update_bot" => json!({"name": "Renamed"}),
        "add_source" => json!({"type": "text", "title": "t", "body": "b"}),
        "update_source" => json!({"schedule": "daily"}),
        "rename_source_document" => json!({"title": "Renamed"}),
        "chat" => json!({"message": "hello", "stream": false}),
        "search_knowledge" => json!({"query": "hello"}),
        "reply_to_conversation" => json!({"text": "hello"}),
        "set_conversation_tags" | "add_conversation_tags" => json!({"tags": ["x"]}),
        "rate_answer" | "visitor_rate_answer" => json!({"rating": "up"}),
        "set_widget_settings" => json!({}),
        "visitor_start_conversation" => json!({"visitor_token": "v_intruder-token-0001", "email": "x@example.com"}),
        "visitor_send_message" => json!({"text": "hello", "stream": false}),
        "visitor_submit_lead" => json!({"email": "x@example.com"}),
        "visitor_rate_conversation" => json!({"score": 5}),
        "create_webhook" => json!({"url": "http://127.0.0.1:9/hook", "active": false}),
        "update_webhook" => json!({"description": "changed"}),
        "rotate_webhook_secret" => json!({}),
        "change_member_role" => json!({"role": "agent"}),
        "assign_conversation" => json!({"member_id": "01a2479b-0000-7000-8000-000000000000"}),
        "add_conversation_note" => json!({"text": "a note"}),
        "create_saved_reply" => json!({"shortcut": "intruder", "text": "hello"}),
        "update_saved_reply" => json!({"text": "changed"}),
        "invite_member" => json!({"email": "someone@example.com", "role": "agent"}),
        _ => return None,
    })
}

/// A's resources, by path parameter name.
/// The password of Alpha's people.
pub(crate) const ALPHA_PASSWORD: &str = "alpha passphrase 2026";

pub(crate) struct Alpha {
    pub(crate) ids: BTreeMap<&'static str, String>,
    pub(crate) key: String,
    site_key: String,
    conversation_token: String,
    revoked: String,
}

pub(crate) async fn alpha(app: &TestApp) -> Alpha {
    let a = app.create_org("Alpha").await;
    let mut ids = BTreeMap::new();
    let bot = app
        .post(
            "/api/v1/bots",
            &a.key,
            json!({"name": "Alpha private bot", "persona": "alpha-private persona"}),
        )
        .await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let source = add(
        app,
        &a.key,
        &bot_id,
        json!({"type": "text", "title": "alpha-private notes",
               "body": "The alpha-private vault code is kept in the safe. Deliveries arrive on Mondays."}),
    )
    .await;
    assert_eq!(
        app.settled_source(&a.key, &bot_id, &source, 120).await["status"],
        "ready"
    );
    let chat = app
        .post(
            &format!("/api/v1/bots/{bot_id}/chat"),
            &a.key,
            json!({"message": "When do alpha-private deliveries arrive?", "stream": false}),
        )
        .await;
    let conversation = chat.body["conversation_id"].as_str().unwrap().to_owned();
    let message = chat.body["message_id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conversations/{conversation}/tags"),
        &a.key,
        json!({"tags": ["vip"]}),
    )
    .await;
    let site_key = app.site_key(&a.key, &bot_id).await;
    let started = app
        .call_with(
            Method::POST,
            &format!("/api/v1/public/bots/{bot_id}/conversations"),
            None,
            Some(
                json!({"visitor_token": "v_alpha-visitor-0001", "email": "ana.alpha@example.com",
                        "message": "alpha-private question about deliveries"}),
            ),
            &[("X-Parley-Site-Key", &site_key)],
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let widget_conversation = started.body["conversation_id"].as_str().unwrap().to_owned();
    let token = started.body["token"].as_str().unwrap().to_owned();
    let question = started.body["messages"][0]["id"].as_str().unwrap().to_owned();
    let part = reqwest::multipart::Part::bytes(b"alpha-private attachment".to_vec()).file_name("a.txt");
    let attached = app
        .client
        .post(format!(
            "{}/api/v1/public/bots/{bot_id}/conversations/{widget_conversation}/messages/{question}/attachments",
            app.base
        ))
        .header("X-Parley-Site-Key", &site_key)
        .header("X-Parley-Conversation-Token", &token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let attachment: Value = attached.json().await.unwrap();
    let leads = app.get("/api/v1/leads", &a.key).await;
    let hook = app
        .post(
            "/api/v1/webhooks",
            &a.key,
            json!({"url": "http://127.0.0.1:9/alpha-private", "description": "alpha-private hook"}),
        )
        .await;
    let webhook = hook.body["id"].as_str().unwrap().to_owned();
    let ping = app
        .post(&format!("/api/v1/webhooks/{webhook}/ping"), &a.key, json!({}))
        .await;
    let second_key = app
        .post("/api/v1/keys", &a.key, json!({"name": "alpha-private key"}))
        .await;
    let revoked = app.post("/api/v1/keys", &a.key, json!({"name": "revoked"})).await;
    let revoked_key = revoked.body["key"].as_str().unwrap().to_owned();
    let r = app
        .delete(
            &format!("/api/v1/keys/{}", revoked.body["id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    ids.insert("bot_id", bot_id);
    ids.insert("source_id", source);
    ids.insert("conversation_id", conversation);
    ids.insert("message_id", message);
    ids.insert("tag", "vip".into());
    ids.insert("attachment_id", attachment["id"].as_str().unwrap().to_owned());
    ids.insert("lead_id", leads.body["items"][0]["id"].as_str().unwrap().to_owned());
    ids.insert("webhook_id", webhook);
    ids.insert("delivery_id", ping.body["id"].as_str().unwrap().to_owned());
    ids.insert("key_id", second_key.body["id"].as_str().unwrap().to_owned());
    ids.insert("widget_conversation_id", widget_conversation);
    ids.insert("question_id", question);
    // People: an owner, an agent who joined by invitation, and an open invitation.
    parley_api::admin::add_owner(&app.store, &app.base, a.id, "owner@alpha.example", Some(ALPHA_PASSWORD))
        .await
        .expect("owner added");
    let joined = app
        .join(
            &a.key,
            "agent@alpha.example",
            "agent",
            ALPHA_PASSWORD,
            Some("alpha-private agent"),
        )
        .await;
    ids.insert("person_id", joined.person_id);
    let pending = app
        .post(
            "/api/v1/invitations",
            &a.key,
            json!({"email": "pending@alpha.example", "role": "agent"}),
        )
        .await;
    ids.insert("invitation_id", pending.body["id"].as_str().unwrap().to_owned());
    let saved = app
        .post(
            "/api/v1/saved-replies",
            &a.key,
            json!({"shortcut": "alpha", "text": "alpha-private saved reply"}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    ids.insert("saved_reply_id", saved.body["id"].as_str().unwrap().to_owned());
    Alpha {
        ids,
        key: a.key,
        site_key,
        conversation_token: token,
        revoked: revoked_key,
    }
}

pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) operation: &'a str,
    pub(crate) body: Option<Value>,
    pub(crate) multipart: bool,
}

pub(crate) async fn send(app: &TestApp, call: &Call<'_>, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut url = format!("{}{}", app.base, call.path);
    if call.operation == "export_conversations" {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("from=2020-01-01T00:00:00Z&to=2099-01-01T00:00:00Z");
    }
    let mut req = app.client.request(call.method.clone(), url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if call.multipart {
        let part = reqwest::multipart::Part::bytes(b"intruder".to_vec()).file_name("i.txt");
        req = req.multipart(reqwest::multipart::Form::new().part("file", part));
    } else if let Some(body) = &call.body {
        req = req.json(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

fn leaks(body: &str) -> Option<&'static str> {
    SECRET_MARKS.iter().copied().find(|mark| body.contains(mark))
}

pub async fn tenant_isolation_matrix(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = alpha(&app).await;
    let b = app.create_org("Beta").await;
    let beta_bot = app.post("/api/v1/bots", &b.key, json!({"name": "Beta bot"})).await;
    let beta_bot_id = beta_bot.body["id"].as_str().unwrap().to_owned();
    let beta_site_key = app.site_key(&b.key, &beta_bot_id).await;

    let spec: Value = serde_json::from_str(parley_api::spec::spec_json()).unwrap();
    let mut operations = 0;
    let mut calls = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let operation = op["operationId"].as_str().unwrap();
            let security = op["security"][0].as_object().and_then(|s| s.keys().next().cloned());
            let public = template.starts_with("/api/v1/public/");
            if security.is_none() && !public {
                continue; // health, readiness, metrics, signing in: no tenant data
            }
            if security.as_deref() == Some("Session") {
                continue; // the signed-in person's own session and account
            }
            operations += 1;
            let mut path = template.clone();
            for (name, id) in &a.ids {
                path = path.replace(&format!("{{{name}}}"), id);
            }
            if public {
                // The visitor's own conversation and message.
                path = template
                    .replace("{bot_id}", &a.ids["bot_id"])
                    .replace("{conversation_id}", &a.ids["widget_conversation_id"])
                    .replace("{message_id}", &a.ids["question_id"])
                    .replace("{attachment_id}", &a.ids["attachment_id"]);
            }
            assert!(!path.contains('{'), "no value for a parameter of {template}");
            let multipart = op["requestBody"]["content"]["multipart/form-data"].is_object();
            let takes_json = op["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.keys().any(|k| k.starts_with("application/json")));
            let body = body_of(operation);
            assert!(
                !takes_json || body.is_some(),
                "the matrix has no body for `{operation}`: add one to `body_of`"
            );
            let call = Call {
                method: method.to_uppercase().parse().unwrap(),
                path,
                operation,
                body,
                multipart,
            };
            let names_a_resource = template.contains('{');
            let beta = format!("Bearer {}", b.key);
            let revoked = format!("Bearer {}", a.revoked);
            let site_as_bearer = format!("Bearer {}", a.site_key);
            if public {
                // B's site key does not open A's bot; a secret key is no site key.
                for (what, headers) in [
                    (
                        "B's site key",
                        vec![
                            ("X-Parley-Site-Key", beta_site_key.as_str()),
                            ("X-Parley-Conversation-Token", a.conversation_token.as_str()),
                        ],
                    ),
                    (
                        "A's secret key instead of a site key",
                        vec![
                            ("Authorization", &format!("Bearer {}", a.key) as &str),
                            ("X-Parley-Conversation-Token", a.conversation_token.as_str()),
                        ],
                    ),
                ] {
                    let (status, text) = send(&app, &call, &headers).await;
                    calls += 1;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{operation} with {what}: {text}");
                    assert_eq!(leaks(&text), None, "{operation} with {what} leaked: {text}");
                }
                // A's site key but a conversation of another bot's visitor
                // (B's bot id in the path) is refused too.
                let other = Call {
                    path: call.path.replacen(&a.ids["bot_id"], &beta_bot_id, 1),
                    method: call.method.clone(),
                    operation,
                    body: call.body.clone(),
                    multipart,
                };
                let (status, text) = send(
                    &app,
                    &other,
                    &[
                        ("X-Parley-Site-Key", a.site_key.as_str()),
                        ("X-Parley-Conversation-Token", a.conversation_token.as_str()),
                    ],
                )
                .await;
                calls += 1;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{operation} on B's bot with A's key: {text}"
                );
                continue;
            }
            // A revoked key and a site key are no secret keys.
            for (what, auth) in [("a revoked key", &revoked), ("a site key", &site_as_bearer)] {
                let (status, text) = send(&app, &call, &[("Authorization", auth.as_str())]).await;
                calls += 1;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{operation} with {what}: {text}");
                assert_eq!(leaks(&text), None, "{operation} with {what} leaked: {text}");
            }
            let (status, text) = send(&app, &call, &[("X-Parley-Site-Key", a.site_key.as_str())]).await;
            calls += 1;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{operation} with only a site key: {text}"
            );
            // B's key on A's resources: 404, exactly like a missing one.
            let (status, text) = send(&app, &call, &[("Authorization", beta.as_str())]).await;
            calls += 1;
            assert_eq!(leaks(&text), None, "{operation} with B's key leaked: {text}");
            if names_a_resource {
                assert_eq!(status, StatusCode::NOT_FOUND, "{operation} with B's key: {text}");
                let code = serde_json::from_str::<Value>(&text).unwrap()["error"]["code"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(code.ends_with("NOT_FOUND"), "{operation}: {code}");
            } else {
                // Organization-wide operations answer B about B only.
                assert!(status.is_success(), "{operation} with B's key: {status} {text}");
            }
            let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
            let named = |place: &str| -> Vec<String> {
                parameters
                    .iter()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            };
            // A's ids in B's query filters (`bot_id`, `conversation_id`, ...):
            // refused as not found, or answered about B alone.
            let filters: Vec<(String, String)> = named("query")
                .into_iter()
                .filter_map(|name| a.ids.get(name.as_str()).map(|id| (name, id.clone())))
                .collect();
            for (name, id) in &filters {
                let separator = if call.path.contains('?') { '&' } else { '?' };
                let filtered = Call {
                    path: format!("{}{separator}{name}={id}", call.path),
                    method: call.method.clone(),
                    operation,
                    body: call.body.clone(),
                    multipart,
                };
                let (status, text) = send(&app, &filtered, &[("Authorization", beta.as_str())]).await;
                calls += 1;
                assert_eq!(
                    leaks(&text),
                    None,
                    "{operation}?{name}=<A's> with B's key leaked: {text}"
                );
                let others: Vec<&String> = a.ids.values().filter(|v| *v != id && v.len() > 8).collect();
                assert!(
                    others.iter().all(|v| !text.contains(v.as_str())),
                    "{operation}?{name}=<A's> with B's key shows another of A's ids: {text}"
                );
                assert!(
                    status == StatusCode::NOT_FOUND || status.is_success(),
                    "{operation}?{name}=<A's> with B's key: {status} {text}"
                );
            }
            // With a version condition, B still learns nothing but "not found".
            if named("header").iter().any(|h| h.eq_ignore_ascii_case("If-Match")) {
                let (status, text) = send(
                    &app,
                    &call,
                    &[("Authorization", beta.as_str()), ("If-Match", "\"999\"")],
                )
                .await;
                calls += 1;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{operation} If-Match with B's key: {text}"
                );
            }
            // An id of another kind (a bot's id given as a key's, a
            // conversation's id as a bot's) is not found, never a failure.
            for param in named("path") {
                let Some(own) = a.ids.get(param.as_str()) else { continue };
                if param == "tag" {
                    continue;
                }
                let other = if param == "bot_id" {
                    &a.ids["conversation_id"]
                } else {
                    &a.ids["bot_id"]
                };
                let mut wrong = template.clone();
                for (name, id) in &a.ids {
                    let value = if *name == param { other } else { id };
                    wrong = wrong.replace(&format!("{{{name}}}"), value);
                }
                if wrong.contains('{') {
                    continue;
                }
                let call = Call {
                    path: wrong,
                    method: call.method.clone(),
                    operation,
                    body: call.body.clone(),
                    multipart,
                };
                let (status, text) =
                    send(&app, &call, &[("Authorization", &format!("Bearer {}", a.key) as &str)]).await;
                calls += 1;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{operation} with another kind of id as {param} ({own} replaced): {text}"
                );
            }
        }
    }
    // A's data is intact after all that.
    let r = app.get(&format!("/api/v1/bots/{}", a.ids["bot_id"]), &a.key).await;
    assert_eq!(r.body["name"], "Alpha private bot");
    let hooks = app.get("/api/v1/webhooks", &a.key).await;
    assert_eq!(hooks.body["items"].as_array().unwrap().len(), 1);
    println!("tenant isolation: {operations} operations, {calls} refused calls checked");
    assert!(operations >= 55, "{operations}");
    app.stop().await;
    env.cleanup().await;
}
