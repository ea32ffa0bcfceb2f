//! The visitor side end to end: widget settings and the site key, the public
//! visitor API (origins, CORS, conversation tokens, every documented error),
//! hand-off seen from the visitor, feedback, leads, attachments, exports
//! parsed with a CSV library, insights, and replay of the new read models.

use std::time::Duration;

use parley_api::app::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, Reply, TestApp, TestEnv};
use crate::ingestion::add;

const SHOP: &str = "https://shop.example";

/// A visitor's view of the public API of one bot.
struct Visitor<'a> {
    app: &'a TestApp,
    bot: String,
    site_key: String,
    origin: Option<&'a str>,
}

impl Visitor<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/public/bots/{}{path}", self.app.base, self.bot)
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut headers = vec![("X-Parley-Site-Key", self.site_key.as_str())];
        if let Some(origin) = self.origin {
            headers.push(("Origin", origin));
        }
        if let Some(token) = token {
            headers.push(("X-Parley-Conversation-Token", token));
        }
        let path = format!("/api/v1/public/bots/{}{path}", self.bot);
        self.app.call_with(method, &path, None, body, &headers).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn upload(&self, path: &str, token: &str, name: &str, bytes: Vec<u8>) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let resp = self
            .app
            .client
            .post(self.url(path))
            .header("X-Parley-Site-Key", &self.site_key)
            .header("X-Parley-Conversation-Token", token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply { status, headers, body }
    }
}

fn detail_fields(r: &Reply) -> Vec<String> {
    r.body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_invalid(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_code(), "VALIDATION_FAILED");
    assert!(detail_fields(r).iter().any(|f| f == field), "{field} not in {}", r.body);
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains(field),
        "the message names the field: {}",
        r.body
    );
}

/// A bot that knows Acme's prices and shipping, and its site key.
pub(crate) async fn shop_bot(app: &TestApp, key: &str) -> (String, String) {
    let r = app.post("/api/v1/bots", key, json!({"name": "Acme help"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bot = r.body["id"].as_str().unwrap().to_owned();
    let source = add(
        app,
        key,
        &bot,
        json!({"type": "text", "title": "Pricing and shipping",
               "body": "# Pricing\n\nThe Starter plan costs 9 euros per month. The Pro plan costs 29 euros per month.\n\n\
                        # Shipping\n\nOrders ship within 3 business days. Shipping is free above 50 euros."}),
    )
    .await;
    let done = app.settled_source(key, &bot, &source, 120).await;
    assert_eq!(done["status"], "ready", "{done}");
    let site_key = app.site_key(key, &bot).await;
    (bot, site_key)
}

async fn stream_message(v: &Visitor<'_>, cid: &str, token: &str, text: &str) -> (String, Vec<Value>, Value) {
    let resp = v
        .app
        .client
        .post(v.url(&format!("/conversations/{cid}/messages")))
        .header("X-Parley-Site-Key", &v.site_key)
        .header("X-Parley-Conversation-Token", token)
        .header("Origin", SHOP)
        .json(&json!({"text": text, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"].to_str().unwrap(),
        SHOP,
        "an allowed origin may read the stream"
    );
    let streamed = crate::chat::read_stream(resp).await;
    assert!(streamed.finished, "the stream ends with [DONE]");
    (streamed.text, streamed.sources, streamed.done.unwrap_or(Value::Null))
}

fn png() -> Vec<u8> {
    // A 1x1 transparent PNG.
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    bytes.extend_from_slice(b"\0\0\0\rIDATx\x9cc\xf8\x0f\x00\x01\x01\x01\x00\x18\xdd\x8d\xb4\0\0\0\0IEND\xaeB`\x82");
    bytes
}

pub async fn visitor_api(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start_with(Roles::ALL, |s| s.max_attachment_bytes = 64 * 1024).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let (bot, site_key) = shop_bot(&app, &a.key).await;
    let settings_path = format!("/api/v1/bots/{bot}/widget-settings");

    // Widget settings: defaults, the site key and the snippet; validation; tenants.
    let r = app.get(&settings_path, &a.key).await;
    assert!(site_key.starts_with("ps_") && site_key.len() == 35, "{site_key}");
    assert_eq!(r.body["accent_color"], "#3A82FF");
    assert_eq!(r.body["allowed_origins"], json!([]));
    let snippet = r.body["embed_snippet"].as_str().unwrap();
    assert!(
        snippet.contains("/widget.js") && snippet.contains(&site_key) && snippet.contains(&bot),
        "{snippet}"
    );
    assert_eq!(app.get(&settings_path, &b.key).await.error_code(), "BOT_NOT_FOUND");
    let bad = app
        .call(
            Method::PUT,
            &settings_path,
            Some(&a.key),
            Some(
                json!({"accent_color": "blue", "allowed_origins": ["https://shop.example/path"],
                        "avatar_url": "http://insecure.example/a.png", "quick_prompts": [""]}),
            ),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let fields = detail_fields(&bad);
    for f in ["accent_color", "allowed_origins[0]", "avatar_url", "quick_prompts[0]"] {
        assert!(fields.iter().any(|x| x == f), "{f} missing in {}", bad.body);
    }
    let put = app
        .call(
            Method::PUT,
            &settings_path,
            Some(&a.key),
            Some(json!({
                "accent_color": "#12ab34", "position": "bottom-left", "title": "Acme support",
                "quick_prompts": ["How much is the Pro plan?", "How long does shipping take?"],
                "allowed_origins": ["https://shop.example/", "https://*.acme.example"],
                "lead_capture": {"mode": "before_chat", "fields": [
                    {"key": "name", "label": "Your name", "type": "text", "required": true},
                    {"key": "email", "label": "Email", "type": "email", "required": true},
                    {"key": "company", "label": "Company", "type": "text"}
                ]}
            })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["accent_color"], "#12AB34");
    assert_eq!(put.body["allowed_origins"], json!([SHOP, "https://*.acme.example"]));

    // The public config: only what the widget needs.
    let v = Visitor {
        app: &app,
        bot: bot.clone(),
        site_key: site_key.clone(),
        origin: Some(SHOP),
    };
    let config = v.get("/config", None).await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.body);
    assert_eq!(config.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(config.body["title"], "Acme support");
    assert_eq!(config.body["position"], "bottom-left");
    assert_eq!(config.body["lead_capture"]["mode"], "before_chat");
    assert_eq!(config.body["quick_prompts"][0], "How much is the Pro plan?");
    for private in ["allowed_origins", "site_key", "persona", "model", "org_id"] {
        assert!(config.body.get(private).is_none(), "{private} leaked: {}", config.body);
    }
    let sub = Visitor {
        origin: Some("https://eu.acme.example"),
        ..v_clone(&v)
    };
    assert_eq!(
        sub.get("/config", None).await.status,
        StatusCode::OK,
        "a wildcard subdomain"
    );

    // Refused: another website, a wrong, malformed or missing site key, another bot.
    let evil = Visitor {
        origin: Some("https://evil.example"),
        ..v_clone(&v)
    };
    let r = evil.get("/config", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, v.url("/conversations"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,x-parley-site-key")
            .send()
    };
    let ok = preflight(SHOP).await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-origin"], SHOP);
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-parley-conversation-token")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let wrong = Visitor {
        site_key: format!("ps_{}", "0".repeat(32)),
        ..v_clone(&v)
    };
    assert_eq!(wrong.get("/config", None).await.error_code(), "UNAUTHORIZED");
    let malformed = Visitor {
        site_key: "pk_notakey".into(),
        ..v_clone(&v)
    };
    assert_eq!(malformed.get("/config", None).await.error_code(), "UNAUTHORIZED");
    let r = app
        .call_with(
            Method::GET,
            &format!("/api/v1/public/bots/{bot}/config"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Parley-Site-Key"),
        "{}",
        r.body
    );
    let other_bot = app.post("/api/v1/bots", &b.key, json!({"name": "Globex"})).await;
    let other_id = other_bot.body["id"].as_str().unwrap();
    let cross = Visitor {
        bot: other_id.to_owned(),
        ..v_clone(&v)
    };
    assert_eq!(
        cross.get("/config", None).await.error_code(),
        "UNAUTHORIZED",
        "a key opens its own bot only"
    );
    // A secret API key is no site key.
    let r = app
        .call_with(
            Method::GET,
            &format!("/api/v1/public/bots/{bot}/config"),
            None,
            None,
            &[("X-Parley-Site-Key", a.key.as_str())],
        )
        .await;
    assert_eq!(r.error_code(), "UNAUTHORIZED");

    // Starting a conversation: every documented 422, each naming its field.
    let token = "v_0123456789abcdef0123";
    let start = |body: Value| v.post("/conversations", None, body);
    assert_invalid(
        &start(json!({"name": "Ana", "email": "ana@shop.example"})).await,
        "visitor_token",
    );
    assert_invalid(
        &start(json!({"visitor_token": "short", "name": "Ana", "email": "ana@shop.example"})).await,
        "visitor_token",
    );
    assert_invalid(&start(json!({"visitor_token": token, "name": "Ana"})).await, "email");
    assert_invalid(
        &start(json!({"visitor_token": token, "name": "Ana", "email": "ana@"})).await,
        "email",
    );
    assert_invalid(
        &start(
            json!({"visitor_token": token, "name": "Ana", "email": "ana@shop.example",
                      "message": "x".repeat(10_001)}),
        )
        .await,
        "message",
    );
    assert_invalid(
        &start(
            json!({"visitor_token": token, "name": "Ana", "email": "ana@shop.example",
                      "fields": {"shoe_size": "42"}}),
        )
        .await,
        "fields.shoe_size",
    );
    let r = start(json!({"visitor_token": token, "name": 42, "email": "ana@shop.example"})).await;
    assert_eq!(r.error_code(), "INVALID_REQUEST", "a number is no name: {}", r.body);

    let r = start(
        json!({"visitor_token": token, "name": "Ana", "email": "Ana@Shop.Example",
                         "fields": {"company": "Shop Ltd"}, "message": "How much is the Pro plan?"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cid = r.body["conversation_id"].as_str().unwrap().to_owned();
    let ct = r.body["token"].as_str().unwrap().to_owned();
    assert!(ct.starts_with("ct_") && ct.len() == 67, "{ct}");
    let messages = r.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{}", r.body);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[1]["text"].as_str().unwrap().contains("29 euros"), "{}", r.body);
    assert!(!messages[1]["sources"].as_array().unwrap().is_empty());
    let first_answer = messages[1]["id"].as_str().unwrap().to_owned();
    let first_question = messages[0]["id"].as_str().unwrap().to_owned();
    let lead_id = r.body["lead_id"].as_str().unwrap().to_owned();
    // One conversation per visitor token.
    let again = start(json!({"visitor_token": token, "name": "Ana", "email": "ana@shop.example"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error_code(), "CONVERSATION_EXISTS");

    // The conversation token: missing 401, wrong or another bot's 404.
    let msgs = format!("/conversations/{cid}/messages");
    assert_eq!(v.get(&msgs, None).await.error_code(), "UNAUTHORIZED");
    let wrong_token = format!("ct_{}", "a".repeat(64));
    assert_eq!(
        v.get(&msgs, Some(&wrong_token)).await.error_code(),
        "CONVERSATION_NOT_FOUND"
    );
    let r = v.get(&msgs, Some(&ct)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 2);
    // The admin sees a widget conversation of visitor `token`.
    let admin = app.get(&format!("/api/v1/conversations/{cid}"), &a.key).await;
    assert_eq!(admin.body["channel"], "widget");
    assert_eq!(admin.body["visitor_id"], token);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{cid}"), &b.key).await.status,
        StatusCode::NOT_FOUND
    );

    // Sending: bad input, then a streamed answer with its citation.
    assert_invalid(&v.post(&msgs, Some(&ct), json!({"stream": false})).await, "text");
    assert_invalid(&v.post(&msgs, Some(&ct), json!({"text": "   "})).await, "text");
    assert_invalid(
        &v.post(&msgs, Some(&ct), json!({"text": "y".repeat(10_001)})).await,
        "text",
    );
    let (text, sources, done) = stream_message(&v, &cid, &ct, "How long does shipping take?").await;
    assert!(text.contains("3 business days"), "{text}");
    assert!(!sources.is_empty());
    assert_eq!(done["escalated"], false);
    assert!(done["user_message_id"].as_str().is_some(), "{done}");

    // The visitor asks for a person: the bot hands over and then stays quiet.
    let r = v
        .post(
            &msgs,
            Some(&ct),
            json!({"text": "I want to talk to a human", "stream": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["escalated"], true);
    let r = v
        .post(&msgs, Some(&ct), json!({"text": "Are you there?", "stream": false}))
        .await;
    assert_eq!(
        (r.body["escalated"].clone(), r.body["answer"].clone()),
        (json!(true), json!(""))
    );
    let seen = v.get(&msgs, Some(&ct)).await;
    assert_eq!(seen.body["status"], "escalated");
    let last_seen = seen.body["messages"].as_array().unwrap().last().unwrap()["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/conversations?bot_id={bot}&status=escalated"), &a.key)
            .await
            .body["items"][0]["id"],
        cid.as_str()
    );

    // A person replies through the API; the visitor sees it with `after`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = app
        .post(
            &format!("/api/v1/conversations/{cid}/reply"),
            &a.key,
            json!({"text": "Hi, this is Ana from support."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = url_encode(&last_seen);
    let new = v.get(&format!("{msgs}?after={after}"), Some(&ct)).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    let new_messages = new.body["messages"].as_array().unwrap();
    assert_eq!(new_messages.len(), 1, "only what came after: {}", new.body);
    assert_eq!(new_messages[0]["role"], "agent");
    assert_eq!(new_messages[0]["text"], "Hi, this is Ana from support.");
    let r = v.get(&format!("{msgs}?after=yesterday"), Some(&ct)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Closed; the visitor writes again and the conversation reopens.
    let r = app
        .post(&format!("/api/v1/conversations/{cid}/close"), &a.key, json!({}))
        .await;
    assert_eq!(r.body["status"], "closed");
    assert_eq!(v.get(&msgs, Some(&ct)).await.body["status"], "closed");
    let r = v
        .post(
            &msgs,
            Some(&ct),
            json!({"text": "How much is the Starter plan?", "stream": false}),
        )
        .await;
    assert_eq!(r.body["escalated"], false, "{}", r.body);
    assert!(r.body["answer"].as_str().unwrap().contains("9 euros"), "{}", r.body);
    assert_eq!(v.get(&msgs, Some(&ct)).await.body["status"], "open");
    // The explicit "talk to a person" endpoint.
    let r = v
        .post(&format!("/conversations/{cid}/escalate"), Some(&ct), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "escalated");

    // Feedback by the visitor, shown to the admin and counted per bot.
    let feedback = |mid: &str| format!("/conversations/{cid}/messages/{mid}/feedback");
    let r = v
        .post(
            &feedback(&first_answer),
            Some(&ct),
            json!({"rating": "down", "comment": "Too short"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["feedback"], "down");
    let r = v
        .post(&feedback(&first_question), Some(&ct), json!({"rating": "up"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "only the bot's answers: {}", r.body);
    assert_eq!(r.error_code(), "MESSAGE_NOT_FOUND");
    let r = v
        .post(&feedback(&first_answer), Some(&ct), json!({"rating": "meh"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let admin = app.get(&format!("/api/v1/conversations/{cid}"), &a.key).await;
    let rated = admin.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == first_answer.as_str())
        .unwrap();
    assert_eq!(rated["feedback"]["rating"], "down");
    assert_eq!(rated["feedback"]["comment"], "Too short");
    let counts = app.get(&format!("/api/v1/bots/{bot}/feedback"), &a.key).await;
    assert_eq!(
        (counts.body["up"].clone(), counts.body["down"].clone()),
        (json!(0), json!(1))
    );

    // Leads: the same address merges, another is new; bad input is 422.
    let lead = format!("/conversations/{cid}/lead");
    assert_invalid(&v.post(&lead, Some(&ct), json!({"name": "Ana"})).await, "email");
    assert_invalid(
        &v.post(
            &lead,
            Some(&ct),
            json!({"name": "Ana", "email": "ana@shop.example", "phone": "12"}),
        )
        .await,
        "phone",
    );
    let r = v
        .post(
            &lead,
            Some(&ct),
            json!({"name": "Ana Lima", "email": "ana@SHOP.example", "phone": "+351 912 345 678"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "merged into the lead captured before the chat: {}",
        r.body
    );
    assert_eq!(r.body["lead_id"], lead_id.as_str());
    assert!(
        r.body["fields"].get("company").is_none(),
        "the answer shows what was given, never what was stored: {}",
        r.body
    );
    let r = v
        .post(&lead, Some(&ct), json!({"name": "Bo", "email": "bo@shop.example"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let listed = app.get(&format!("/api/v1/leads?bot_id={bot}"), &a.key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", listed.body);
    let ana = items.iter().find(|l| l["id"] == lead_id.as_str()).unwrap();
    assert_eq!(ana["name"], "Ana Lima");
    assert_eq!(ana["phone"], "+351 912 345 678");
    assert_eq!(ana["source"], "before_chat");
    assert_eq!(ana["conversation_id"], cid.as_str());
    assert_eq!(ana["fields"]["company"], "Shop Ltd", "earlier details are kept");
    // Someone else giving Ana's address can neither read nor overwrite her details.
    let intruder = start(json!({"visitor_token": "v_intruder-0000000001", "name": "Mallory",
                                "email": "ana@shop.example", "fields": {"company": "Evil Corp"}}))
    .await;
    assert_eq!(intruder.status, StatusCode::CREATED, "{}", intruder.body);
    let shown = intruder.body.to_string();
    assert!(
        !shown.contains("Ana Lima") && !shown.contains("912 345 678") && !shown.contains("Shop Ltd"),
        "{shown}"
    );
    let ana = app.get(&format!("/api/v1/leads/{lead_id}"), &a.key).await;
    assert_eq!(ana.body["name"], "Ana Lima", "{}", ana.body);
    assert_eq!(ana.body["fields"]["company"], "Shop Ltd");
    assert_eq!(
        ana.body["conversation_id"],
        cid.as_str(),
        "not moved to the intruder's conversation"
    );
    assert_eq!(ana.body["visitor_id"], token);
    let by_email = app.get("/api/v1/leads?email=ANA@shop.example", &a.key).await;
    assert_eq!(by_email.body["items"].as_array().unwrap().len(), 1, "{}", by_email.body);
    assert_eq!(
        app.get(&format!("/api/v1/leads/{lead_id}"), &a.key).await.body["email"],
        "ana@shop.example",
        "the latest spelling of the same address"
    );
    assert_eq!(
        app.get(&format!("/api/v1/leads/{lead_id}"), &b.key).await.error_code(),
        "LEAD_NOT_FOUND"
    );
    assert!(
        app.get("/api/v1/leads", &b.key).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let paged = app.get(&format!("/api/v1/leads?bot_id={bot}&limit=1"), &a.key).await;
    let cursor = paged.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(&format!("/api/v1/leads?bot_id={bot}&limit=1&cursor={cursor}"), &a.key)
        .await;
    assert_ne!(paged.body["items"][0]["id"], rest.body["items"][0]["id"]);
    assert!(rest.body["next_cursor"].is_null());
    // Another organization's lead (or an erased one) is no cursor.
    let r = app.get(&format!("/api/v1/leads?cursor={cursor}"), &b.key).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "INVALID_REQUEST");

    // The leads CSV, read back with a CSV library.
    let csv_resp = app
        .client
        .get(format!("{}/api/v1/leads/export?bot_id={bot}", app.base))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(csv_resp.status(), StatusCode::OK);
    assert!(
        csv_resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = csv_resp.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_ref());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert!(
        header.contains(&"email".to_owned()) && header.contains(&"field:company".to_owned()),
        "{header:?}"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let email_col = header.iter().position(|h| h == "email").unwrap();
    let company_col = header.iter().position(|h| h == "field:company").unwrap();
    let ana_row = rows.iter().find(|r| &r[email_col] == "ana@shop.example").unwrap();
    assert_eq!(&ana_row[company_col], "Shop Ltd");

    // The conversation's CSV export shows the visitor, the bot and the person.
    let export = app
        .client
        .get(format!("{}/api/v1/conversations/{cid}/export?format=csv", app.base))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(export.as_ref());
    let roles: Vec<String> = reader.records().map(|r| r.unwrap()[3].to_owned()).collect();
    assert!(
        roles.contains(&"agent".to_owned()) && roles.contains(&"user".to_owned()),
        "{roles:?}"
    );

    // Attachments: to the visitor's own message, by content type and size.
    let attach = format!("/conversations/{cid}/messages/{first_question}/attachments");
    let r = v.upload(&attach, &ct, "../screenshot.png", png()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["content_type"], "image/png");
    assert_eq!(r.body["file_name"], "screenshot.png");
    let aid = r.body["id"].as_str().unwrap().to_owned();
    let r = v
        .upload(&attach, &ct, "notes.txt", b"Order 1234 arrived broken.".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["content_type"], "text/plain");
    let r = v
        .upload(&attach, &ct, "setup.exe", b"MZ\x90\0\x03\0\0\0\x04\0".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    assert_eq!(r.error_code(), "UNSUPPORTED_MEDIA_TYPE");
    let r = v.upload(&attach, &ct, "big.txt", vec![b'a'; 70 * 1024]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    let r = v.upload(&attach, &ct, "empty.txt", vec![]).await;
    assert_invalid(&r, "file");
    let r = v
        .upload(
            &format!("/conversations/{cid}/messages/{first_answer}/attachments"),
            &ct,
            "a.png",
            png(),
        )
        .await;
    assert_invalid(&r, "message_id");
    let r = v.upload(&attach, &wrong_token, "a.png", png()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Downloaded through a link (query parameters), inline or as a file.
    let link = |disposition: &str| {
        format!(
            "{}?disposition={disposition}&site_key={site_key}&token={ct}",
            v.url(&format!("/conversations/{cid}/attachments/{aid}"))
        )
    };
    let file = app.client.get(link("inline")).send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "image/png");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    assert_eq!(file.bytes().await.unwrap().as_ref(), png().as_slice());
    let file = app.client.get(link("attachment")).send().await.unwrap();
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"screenshot.png\"")
    );
    let no_token = app
        .client
        .get(format!(
            "{}?site_key={site_key}",
            v.url(&format!("/conversations/{cid}/attachments/{aid}"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let admin_file = app
        .client
        .get(format!("{}/api/v1/conversations/{cid}/attachments/{aid}", app.base))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_file.status(), StatusCode::OK);
    let other_org = app
        .get(&format!("/api/v1/conversations/{cid}/attachments/{aid}"), &b.key)
        .await;
    assert_eq!(other_org.status, StatusCode::NOT_FOUND);
    let admin = app.get(&format!("/api/v1/conversations/{cid}"), &a.key).await;
    let with_files = admin.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == first_question.as_str())
        .unwrap();
    assert_eq!(with_files["attachments"].as_array().unwrap().len(), 2, "{with_files}");

    // Sources hidden from visitors when the widget says so.
    let r = app
        .call(
            Method::PUT,
            &settings_path,
            Some(&a.key),
            Some(json!({"show_sources": false, "allowed_origins": [SHOP]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token2 = "v_fedcba9876543210fedc";
    let r = start(json!({"visitor_token": token2, "email": "cy@shop.example", "message": "How much is the Pro plan?"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(
        r.body["messages"][1]["sources"].as_array().unwrap().is_empty(),
        "{}",
        r.body
    );
    assert!(r.body["messages"][1]["text"].as_str().unwrap().contains("29 euros"));

    // Stopping checks that the read models rebuild from the log to the same rows.
    app.stop().await;
    env.cleanup().await;
}

fn v_clone<'a>(v: &Visitor<'a>) -> Visitor<'a> {
    Visitor {
        app: v.app,
        bot: v.bot.clone(),
        site_key: v.site_key.clone(),
        origin: v.origin,
    }
}

fn url_encode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Insights: questions grouped by meaning, fallbacks, ratings and hand-offs.
pub async fn insights(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let (bot, _) = shop_bot(&app, &a.key).await;
    let chat = |message: &'static str| {
        let app = &app;
        let key = a.key.clone();
        let bot = bot.clone();
        async move {
            let r = app
                .post(
                    &format!("/api/v1/bots/{bot}/chat"),
                    &key,
                    json!({"message": message, "stream": false}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body
        }
    };
    // The same unanswerable question in three wordings, another one once.
    let gift = chat("Do you sell gift cards?").await;
    assert_eq!(gift["unanswered"], true, "{gift}");
    for q in ["do you sell gift cards", "Do you sell gift cards for birthdays?"] {
        assert_eq!(chat(q).await["unanswered"], true);
    }
    assert_eq!(chat("Who painted the Mona Lisa?").await["unanswered"], true);
    // Answered ones, twice the same in other words.
    let pro = chat("How much is the Pro plan?").await;
    assert_eq!(pro["unanswered"], false, "{pro}");
    chat("What does the Pro plan cost?").await;
    chat("How long does shipping take?").await;
    let cid = pro["conversation_id"].as_str().unwrap();
    let mid = pro["message_id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/conversations/{cid}/messages/{mid}/feedback"),
            &a.key,
            json!({"rating": "up"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .post(&format!("/api/v1/conversations/{cid}/escalate"), &a.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = app.get(&format!("/api/v1/bots/{bot}/insights"), &a.key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let i = &r.body;
    assert_eq!(i["conversations"], 7, "{i}");
    assert_eq!(i["escalated_conversations"], 1);
    assert!((i["escalation_rate"].as_f64().unwrap() - 1.0 / 7.0).abs() < 1e-9);
    assert_eq!(i["questions"], 7);
    assert_eq!(i["answers"], 7);
    assert_eq!(i["unanswered_answers"], 4);
    assert_eq!(i["feedback"]["up"], 1);
    assert_eq!(i["feedback"]["ratio"], 1.0);
    let unanswered = i["unanswered_questions"].as_array().unwrap();
    assert_eq!(
        unanswered[0]["count"], 3,
        "the gift card wordings are one question: {i}"
    );
    assert_eq!(unanswered[0]["unanswered"], 3);
    assert_eq!(unanswered[1]["count"], 1);
    assert!(unanswered[1]["question"].as_str().unwrap().contains("Mona Lisa"));
    let top = i["top_questions"].as_array().unwrap();
    assert_eq!(top.len(), 4, "gift cards, the Pro plan, shipping, the Mona Lisa: {i}");
    let pro_group = top
        .iter()
        .find(|g| g["question"].as_str().unwrap().contains("Pro plan"))
        .unwrap();
    assert_eq!(pro_group["count"], 2, "{pro_group}");
    assert_eq!(pro_group["unanswered"], 0);
    // A range with nothing in it, and a bad range.
    let empty = app
        .get(
            &format!("/api/v1/bots/{bot}/insights?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z"),
            &a.key,
        )
        .await;
    assert_eq!(empty.body["conversations"], 0);
    assert!(empty.body["escalation_rate"].is_null());
    assert!(empty.body["top_questions"].as_array().unwrap().is_empty());
    let bad = app
        .get(
            &format!("/api/v1/bots/{bot}/insights?from=2020-02-01T00:00:00Z&to=2020-01-01T00:00:00Z"),
            &a.key,
        )
        .await;
    assert_eq!(bad.error_code(), "INVALID_REQUEST");
    let b = app.create_org("Globex").await;
    assert_eq!(
        app.get(&format!("/api/v1/bots/{bot}/insights"), &b.key)
            .await
            .error_code(),
        "BOT_NOT_FOUND"
    );

    app.stop().await;
    env.cleanup().await;
}
