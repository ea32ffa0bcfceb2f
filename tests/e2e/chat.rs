//! Grounded chat end to end: knowledge ingested through the API, questions
//! over HTTP, answers streamed as server-sent events (parsed by an SSE client
//! library) or whole, conversations read back; the OpenAI-compatible provider
//! against a local server that speaks the streaming protocol.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use parley_api::app::Roles;
use poem::web::Data;
use poem::{EndpointExt, handler};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, StaticSite, TestApp, TestEnv};
use crate::ingestion::{add, tempdir};

/// A streamed answer as an SSE client sees it.
#[derive(Default, Debug)]
pub struct Streamed {
    pub text: String,
    pub deltas: usize,
    pub sources: Vec<Value>,
    pub done: Option<Value>,
    pub error: Option<Value>,
    pub finished: bool,
    pub content_type: String,
    pub cache_control: String,
    pub accel: String,
    pub conversation_id: String,
}

async fn stream_chat(app: &TestApp, key: &str, bot_id: &str, mut body: Value) -> Streamed {
    body["stream"] = json!(true);
    let resp = app
        .client
        .post(format!("{}/api/v1/bots/{bot_id}/chat", app.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    read_stream(resp).await
}

/// Reads a chat answer's event stream (the API's and the visitor's are the
/// same): every event's name matches its `type`, and nothing follows `[DONE]`.
pub async fn read_stream(resp: reqwest::Response) -> Streamed {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut out = Streamed {
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        accel: header("x-accel-buffering"),
        ..Streamed::default()
    };
    let mut events = resp.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.expect("well-formed SSE");
        if event.data == "[DONE]" {
            out.finished = true;
            assert!(events.next().await.is_none(), "nothing after [DONE]");
            break;
        }
        let data: Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(data["type"], event.event, "event name matches the type field");
        out.conversation_id = data["conversation_id"].as_str().unwrap().to_owned();
        match event.event.as_str() {
            "delta" => {
                out.text.push_str(data["text"].as_str().unwrap());
                out.deltas += 1;
            }
            "sources" => out.sources = data["sources"].as_array().unwrap().clone(),
            "done" => out.done = Some(data),
            "error" => out.error = Some(data),
            other => panic!("unexpected event {other}"),
        }
    }
    out
}

/// Whether a reply's sources include this page.
fn cites(reply: &Value, page: &str) -> bool {
    reply["sources"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x["url"].as_str().is_some_and(|u| u.ends_with(page))))
}

async fn chat(app: &TestApp, key: &str, bot_id: &str, body: Value) -> crate::harness::Reply {
    let mut body = body;
    if body.get("stream").is_none() {
        body["stream"] = json!(false);
    }
    app.post(&format!("/api/v1/bots/{bot_id}/chat"), key, body).await
}

fn write_shop(root: &std::path::Path) {
    let page = |title: &str, body: &str| {
        format!(
            "<!doctype html><html><head><title>{title}</title></head><body>\
             <nav><a href=\"index.html\">Home</a> <a href=\"plans.html\">Plans</a> \
             <a href=\"pricing.html\">Pricing</a> <a href=\"contact.html\">Contact</a></nav>\
             <main><h1>{title}</h1>{body}</main></body></html>"
        )
    };
    let files = [
        (
            "index.html",
            page(
                "Acme Cloud",
                "<p>Acme Cloud hosts websites for small businesses.</p>\
                 <p>Read about our <a href=\"plans.html\">plans</a> and <a href=\"pricing.html\">pricing</a>.</p>",
            ),
        ),
        (
            "plans.html",
            page(
                "Plans",
                "<p>We offer three plans: Starter, Team and Enterprise.</p>\
                 <p>The Enterprise plan adds single sign-on, audit logs and a dedicated account manager.</p>\
                 <p>The Team plan is made for groups of up to twenty people.</p>",
            ),
        ),
        (
            "pricing.html",
            page(
                "Pricing",
                "<p>The Starter plan costs 9 euros per month.</p>\
                 <p>The Team plan costs 49 euros per month.</p>\
                 <p>The Enterprise plan costs 990 euros per month, billed yearly.</p>",
            ),
        ),
        (
            "contact.html",
            page(
                "Contact",
                "<p>Write to support@acme.example or call +33 1 23 45 67 89 on weekdays.</p>",
            ),
        ),
    ];
    for (name, html) in files {
        std::fs::write(root.join(name), html).unwrap();
    }
}

/// A bot with a text source and a crawled four-page site, both ready.
async fn knowledgeable_bot(app: &TestApp, key: &str, site: &str, model: Value) -> (String, String, String) {
    let r = app
        .post(
            "/api/v1/bots",
            key,
            json!({"name": "Acme help", "persona": "You are Acme's friendly support assistant.", "model": model}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bot_id = r.body["id"].as_str().unwrap().to_owned();
    let text = add(
        app,
        key,
        &bot_id,
        json!({"type": "text", "title": "Shipping policy",
               "body": "# Shipping\n\nOrders ship within 3 business days. Shipping is free for orders above 50 euros.\n\n\
                        # Returns\n\nYou can return any item within 30 days for a full refund."}),
    )
    .await;
    let crawl = add(
        app,
        key,
        &bot_id,
        json!({"type": "sitemap", "url": format!("{site}/index.html")}),
    )
    .await;
    for source in [&text, &crawl] {
        let done = app.settled_source(key, &bot_id, source, 180).await;
        assert_eq!(done["status"], "ready", "{done}");
    }
    (bot_id, text, crawl)
}

pub async fn grounded_chat(backend: Backend) {
    let dir = tempdir("shop");
    write_shop(&dir);
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let (bot_id, text_source, _crawl) = knowledgeable_bot(&app, &a.key, &site.base, json!({})).await;

    // A whole answer, from the text source.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How long does shipping take?", "visitor_id": "visitor-1", "metadata": {"page": "/cart"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let answer = r.body["answer"].as_str().unwrap();
    assert!(answer.contains("3 business days"), "{answer}");
    assert!(answer.contains("[1]"), "{answer}");
    assert_eq!(r.body["unanswered"], false);
    assert_eq!(r.body["provider"], "extractive");
    assert_eq!(r.body["sources"][0]["source_id"], text_source.as_str(), "{}", r.body);
    let first_conversation = r.body["conversation_id"].as_str().unwrap().to_owned();

    // Streamed, from the crawled site: the citation points at the pricing page.
    let s = stream_chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How much does the Starter plan cost per month?"}),
    )
    .await;
    assert!(s.content_type.starts_with("text/event-stream"), "{}", s.content_type);
    assert_eq!(s.cache_control, "no-cache");
    assert_eq!(s.accel, "no");
    assert!(s.finished, "ends with [DONE]");
    assert!(s.error.is_none(), "{:?}", s.error);
    assert!(s.deltas > 3, "streamed in pieces: {}", s.deltas);
    assert!(s.text.contains("9 euros"), "{}", s.text);
    assert!(s.text.contains("[1]"), "{}", s.text);
    assert!(
        s.sources[0]["url"].as_str().unwrap().ends_with("/pricing.html"),
        "{:?}",
        s.sources
    );
    let done = s.done.expect("done event");
    assert_eq!(done["unanswered"], false);
    let streamed_message = done["message_id"].as_str().unwrap().to_owned();

    // The stored conversation holds what was streamed.
    let conv = app
        .get(&format!("/api/v1/conversations/{}", s.conversation_id), &a.key)
        .await;
    assert_eq!(conv.status, StatusCode::OK, "{}", conv.body);
    let messages = conv.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["id"], streamed_message.as_str());
    assert_eq!(messages[1]["text"], s.text.as_str());
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["sources"], json!(s.sources));

    // Something the knowledge does not cover: the fallback, marked unanswered.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "Who won the football world cup in 1954?", "conversation_id": first_conversation}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["unanswered"], true, "{}", r.body);
    assert_eq!(r.body["handoff_offered"], true);
    assert_eq!(r.body["provider"], "fallback");
    assert_eq!(r.body["answer"], parley_api::config::DEFAULT_FALLBACK);
    assert_eq!(r.body["sources"], json!([]));
    let conv = app
        .get(&format!("/api/v1/conversations/{first_conversation}"), &a.key)
        .await;
    assert_eq!(conv.body["message_count"], 4);
    assert_eq!(conv.body["unanswered_count"], 1);
    assert_eq!(conv.body["visitor_id"], "visitor-1");
    assert_eq!(conv.body["messages"][0]["metadata"], json!({"page": "/cart"}));
    assert_eq!(conv.body["messages"][3]["unanswered"], true);

    // A follow-up leans on the previous question.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "What does the Enterprise plan include?"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let conversation = r.body["conversation_id"].as_str().unwrap().to_owned();
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "and how much is it?", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["unanswered"], false, "{}", r.body);
    assert!(cites(&r.body, "/pricing.html"), "{}", r.body);
    // "it" is the Enterprise plan of the previous question.
    assert!(r.body["answer"].as_str().unwrap().contains("990 euros"), "{}", r.body);

    // `messages[]` carries the history itself; system text is accepted.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Tell me about the Team plan"},
            {"role": "assistant", "content": "It is for groups of up to twenty people."},
            {"role": "user", "content": "and what does it cost?"}
        ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["answer"].as_str().unwrap().contains("49 euros"), "{}", r.body);

    // The debug search names the retrievers.
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "free shipping threshold", "limit": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let top = &r.body["results"][0];
    assert_eq!(top["source_id"], text_source.as_str(), "{}", r.body);
    assert!(top["text"].as_str().unwrap().contains("free for orders above 50 euros"));
    assert_eq!(top["found_by"], json!(["bm25", "vector"]), "{}", r.body);
    assert_eq!(top["bm25"]["rank"], 1);
    assert_eq!(r.body["relevant"], true);
    let bm25_only = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "free shipping threshold", "mode": "bm25"}),
        )
        .await;
    assert!(
        bm25_only.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["vector"].is_null() && r["found_by"] == json!(["bm25"])),
        "{}",
        bm25_only.body
    );
    let filtered = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "free shipping threshold", "source_ids": [_crawl]}),
        )
        .await;
    assert!(
        filtered.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["source_id"] == _crawl.as_str()),
        "{}",
        filtered.body
    );

    // Conversations list, newest first, scoped to the bot.
    let list = app
        .get(&format!("/api/v1/conversations?bot_id={bot_id}&limit=2"), &a.key)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let next = list.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/api/v1/conversations?bot_id={bot_id}&cursor={next}"), &a.key)
        .await;
    // Four conversations: shipping, the streamed one, the follow-up, `messages[]`.
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 2, "{}", rest.body);
    assert!(rest.body["next_cursor"].is_null());

    // Bad input.
    let path = format!("/api/v1/bots/{bot_id}/chat");
    let expect = |r: crate::harness::Reply, status: StatusCode, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.error_code(), code, "{}", r.body);
        r
    };
    expect(
        app.post(&path, &a.key, json!({"message": ""})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    expect(
        app.post(&path, &a.key, json!({"message": "   "})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    expect(
        app.post(&path, &a.key, json!({})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    expect(
        app.post(&path, &a.key, json!({"message": "x".repeat(10_001)})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    );
    let r = expect(
        app.post(
            &path,
            &a.key,
            json!({"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "abracadabra"}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    assert_eq!(r.body["error"]["details"][0]["field"], "messages[1].role");
    expect(
        app.post(
            &path,
            &a.key,
            json!({"messages": [{"role": "system", "content": "Be nice."}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    expect(
        app.post(&path, &a.key, json!({"messages": "hello"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    expect(
        app.post(
            &format!("/api/v1/bots/{}/chat", uuid::Uuid::now_v7()),
            &a.key,
            json!({"message": "hi"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "BOT_NOT_FOUND",
    );
    let other_bot = app.post("/api/v1/bots", &a.key, json!({"name": "Other"})).await;
    let other_bot = other_bot.body["id"].as_str().unwrap();
    expect(
        app.post(
            &format!("/api/v1/bots/{other_bot}/chat"),
            &a.key,
            json!({"message": "hi", "conversation_id": conversation}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "CONVERSATION_NOT_FOUND",
    );
    expect(
        app.post(
            &path,
            &a.key,
            json!({"message": "hi", "conversation_id": uuid::Uuid::now_v7()}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "CONVERSATION_NOT_FOUND",
    );
    // Another organization sees none of it.
    let b = app.create_org("Other Co").await;
    expect(
        app.post(&path, &b.key, json!({"message": "How long does shipping take?"}))
            .await,
        StatusCode::NOT_FOUND,
        "BOT_NOT_FOUND",
    );
    expect(
        app.get(&format!("/api/v1/conversations/{conversation}"), &b.key).await,
        StatusCode::NOT_FOUND,
        "CONVERSATION_NOT_FOUND",
    );
    let theirs = app.get("/api/v1/conversations", &b.key).await;
    assert_eq!(theirs.body["items"], json!([]));
    expect(
        app.post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &b.key,
            json!({"query": "shipping"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "BOT_NOT_FOUND",
    );

    // A deleted source stops being retrievable at once.
    let r = app
        .delete(&format!("/api/v1/bots/{bot_id}/sources/{text_source}"), &a.key)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "free shipping threshold"}),
        )
        .await;
    assert!(
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["source_id"] != text_source.as_str()),
        "{}",
        r.body
    );

    // An inactive bot does not answer.
    let r = app
        .patch(&format!("/api/v1/bots/{bot_id}"), &a.key, json!({"active": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    expect(
        app.post(&path, &a.key, json!({"message": "How much is the Team plan?"}))
            .await,
        StatusCode::NOT_FOUND,
        "BOT_NOT_FOUND",
    );

    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// What the fake model server saw and how it answers.
#[derive(Default)]
struct Upstream {
    requests: Mutex<Vec<Value>>,
}

fn chunk(text: &str) -> String {
    let body = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]});
    format!("data: {body}\n\n")
}

/// Speaks the chat-completions streaming protocol. The question picks the
/// behaviour: `error` answers 500, `stall` stops after one piece, `slow`
/// takes its time; anything else streams a short cited answer.
#[handler]
async fn completions(body: poem::web::Json<Value>, seen: Data<&Arc<Upstream>>) -> poem::Response {
    let question = body.0["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned();
    seen.0.requests.lock().unwrap().push(body.0.clone());
    if question.contains("error") {
        return poem::Response::builder()
            .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
            .content_type("application/json")
            .body(r#"{"error":{"message":"model overloaded","type":"server_error"}}"#);
    }
    let pieces: Vec<String> = if question.contains("slow") {
        (0..15).map(|i| format!("part{i} ")).collect()
    } else {
        ["The Team plan ", "costs 49 euros ", "per month [1]."]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let stall = question.contains("stall");
    let slow = question.contains("slow");
    let stream = async_stream::stream! {
        for (i, p) in pieces.iter().enumerate() {
            yield Ok::<_, std::io::Error>(bytes::Bytes::from(chunk(p)));
            if stall && i == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            tokio::time::sleep(Duration::from_millis(if slow { 150 } else { 20 })).await;
        }
        let usage = json!({"object": "chat.completion.chunk", "choices": [],
                           "usage": {"prompt_tokens": 321, "completion_tokens": 12, "total_tokens": 333}});
        yield Ok(bytes::Bytes::from(format!("data: {usage}\n\n")));
        yield Ok(bytes::Bytes::from_static(b"data: [DONE]\n\n"));
    };
    poem::Response::builder()
        .content_type("text/event-stream")
        .body(poem::Body::from_bytes_stream(stream))
}

pub async fn openai_provider(backend: Backend) {
    let upstream = Arc::new(Upstream::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    let app_route = poem::Route::new()
        .at("/v1/chat/completions", poem::post(completions))
        .data(upstream.clone());
    let server = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app_route).await;
    });

    let dir = tempdir("shop-openai");
    write_shop(&dir);
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.openai_base_url = format!("http://127.0.0.1:{port}/v1");
            s.openai_api_key = Some("sk-test".to_owned().into());
            s.openai_idle_timeout_secs = 3;
            s.max_streams_per_visitor = 1;
        })
        .await;
    let a = app.create_org("Acme").await;
    let (bot_id, _, _) = knowledgeable_bot(
        &app,
        &a.key,
        &site.base,
        json!({"provider": "openai", "model": "acme-test-model", "temperature": 0.1}),
    )
    .await;

    // Streamed token by token, with the prompt the provider needs.
    let s = stream_chat(&app, &a.key, &bot_id, json!({"message": "How much is the Team plan?"})).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text, "The Team plan costs 49 euros per month [1].");
    assert_eq!(s.deltas, 3);
    assert!(s.finished);
    let done = s.done.unwrap();
    assert_eq!(done["provider"], "openai");
    assert_eq!(done["usage"]["prompt_tokens"], 321);
    assert_eq!(done["usage"]["completion_tokens"], 12);
    assert!(
        cites(&json!({"sources": s.sources}), "/pricing.html"),
        "{:?}",
        s.sources
    );
    let sent = upstream.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(sent["model"], "acme-test-model");
    assert_eq!(sent["stream"], true);
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are Acme's friendly support assistant."),
        "{system}"
    );
    assert!(
        system.contains("[1]") && system.contains("49 euros per month"),
        "{system}"
    );

    // The conversation's history goes along with a follow-up.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "And the Starter plan?", "conversation_id": s.conversation_id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["model"], "acme-test-model");
    let sent = upstream.requests.lock().unwrap().last().cloned().unwrap();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(
        sent["messages"][2]["content"],
        "The Team plan costs 49 euros per month [1]."
    );

    // An upstream error: 502 when whole, an error event when streamed; stored as failed.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "Team plan price error please"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.error_code(), "PROVIDER_FAILED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model overloaded")
    );
    let s = stream_chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "Team plan price error please"}),
    )
    .await;
    let error = s.error.expect("error event");
    assert_eq!(error["error"]["code"], "PROVIDER_FAILED");
    assert!(s.finished, "[DONE] follows the error");
    let conv = app
        .get(&format!("/api/v1/conversations/{}", s.conversation_id), &a.key)
        .await;
    let last = conv.body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["error"]["code"], "PROVIDER_FAILED");

    // A stalled stream: heartbeats keep the connection, then an error with what was written.
    let started = std::time::Instant::now();
    let raw = app
        .client
        .post(format!("{}/api/v1/bots/{bot_id}/chat", app.base))
        .bearer_auth(&a.key)
        .json(&json!({"message": "Team plan price stall", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "the idle timeout ended it");
    assert!(raw.lines().any(|l| l == ":"), "heartbeat comments while waiting: {raw}");
    let events: Vec<eventsource_stream::Event> =
        futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(raw.clone()))])
            .eventsource()
            .map(|e| e.unwrap())
            .collect()
            .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["delta", "error", "message"], "{raw}");
    assert!(events[1].data.contains("stopped sending"), "{raw}");
    assert_eq!(events[2].data, "[DONE]");
    let conv_id = serde_json::from_str::<Value>(&events[0].data).unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conv = app.get(&format!("/api/v1/conversations/{conv_id}"), &a.key).await;
    let last = conv.body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["text"], "The Team plan ", "the partial answer is kept");

    // The client leaves mid-stream: the answer is still finished and stored.
    let resp = app
        .client
        .post(format!("{}/api/v1/bots/{bot_id}/chat", app.base))
        .bearer_auth(&a.key)
        .json(&json!({"message": "Team plan price slow", "stream": true}))
        .send()
        .await
        .unwrap();
    let mut events = resp.bytes_stream().eventsource();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, "delta");
    // One open stream per visitor here: a second one waits its turn.
    let second = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How much is the Team plan?", "stream": true}),
    )
    .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{}", second.body);
    assert_eq!(second.error_code(), "RATE_LIMITED");
    let conv_id = serde_json::from_str::<Value>(&first.data).unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(events);
    let path = format!("/api/v1/conversations/{conv_id}");
    app.eventually(20, "the abandoned answer is stored", || async {
        let conv = app.get(&path, &a.key).await;
        conv.body["messages"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
    let conv = app.get(&path, &a.key).await;
    let answer = &conv.body["messages"][1];
    assert_eq!(answer["status"], "complete");
    let expected: String = (0..15).map(|i| format!("part{i} ")).collect();
    assert_eq!(answer["text"], expected.as_str());
    // The client that left gave its place back.
    let again = stream_chat(&app, &a.key, &bot_id, json!({"message": "How much is the Team plan?"})).await;
    assert!(again.finished && again.error.is_none(), "{again:?}");

    // Replay gives the same conversation rows.
    let conversation_rows = |all: Vec<(&'static str, Vec<Value>)>| {
        all.into_iter()
            .filter(|(name, _)| matches!(*name, "conversations" | "messages"))
            .collect::<Vec<_>>()
    };
    let before = conversation_rows(app.snapshots().await);
    app.store.replay(None).await.unwrap();
    assert_eq!(
        before,
        conversation_rows(app.snapshots().await),
        "replayed rows equal live rows"
    );

    app.stop().await;
    env.cleanup().await;
    server.abort();
    let _ = std::fs::remove_dir_all(dir);
}

pub async fn handoff(backend: Backend) {
    let dir = tempdir("shop-handoff");
    write_shop(&dir);
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let (bot_id, _, _) = knowledgeable_bot(&app, &a.key, &site.base, json!({})).await;
    let conversation_path = |id: &str| format!("/api/v1/conversations/{id}");

    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How long does shipping take?"}),
    )
    .await;
    assert_eq!(r.body["escalated"], false, "{}", r.body);
    let cid = r.body["conversation_id"].as_str().unwrap().to_owned();
    let (first_answer, first_question) = (
        r.body["message_id"].as_str().unwrap().to_owned(),
        r.body["user_message_id"].as_str().unwrap().to_owned(),
    );

    // The visitor asks for a person: the bot says one is coming, and hands over.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "Can I talk to a human please?", "conversation_id": cid}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["provider"], "handoff");
    assert_eq!(r.body["answer"], parley_api::config::DEFAULT_HANDOFF);
    assert_eq!(r.body["escalated"], true);
    assert_eq!(
        app.get(&conversation_path(&cid), &a.key).await.body["status"],
        "escalated"
    );

    // While a person has it, the bot stays quiet; messages wait.
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How much is the Team plan?", "conversation_id": cid}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["escalated"], true);
    assert_eq!(r.body["answer"], "");
    assert!(r.body["message_id"].is_null(), "{}", r.body);
    let s = stream_chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "Hello?", "conversation_id": cid}),
    )
    .await;
    assert_eq!(s.deltas, 0);
    assert!(s.finished);
    assert_eq!(s.done.as_ref().unwrap()["escalated"], true, "{:?}", s.done);

    // A person replies; the reply is in the conversation.
    let r = app
        .post(
            &format!("{}/reply", conversation_path(&cid)),
            &a.key,
            json!({"text": "Hi, I'm Ana. The Team plan is 49 euros a month."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "agent");
    let conv = app.get(&conversation_path(&cid), &a.key).await;
    let roles: Vec<&str> = conv.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant", "user", "user", "agent"]
    );

    // Closed, then a visitor message reopens it and the bot answers again.
    let r = app
        .post(&format!("{}/close", conversation_path(&cid)), &a.key, json!({}))
        .await;
    assert_eq!(r.body["status"], "closed", "{}", r.body);
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "How much is the Starter plan per month?", "conversation_id": cid}),
    )
    .await;
    assert_eq!(r.body["escalated"], false, "{}", r.body);
    assert!(r.body["answer"].as_str().unwrap().contains("9 euros"), "{}", r.body);
    assert_eq!(app.get(&conversation_path(&cid), &a.key).await.body["status"], "open");

    // Two answers in a row the bot could not give: a person takes over.
    let r = chat(&app, &a.key, &bot_id, json!({"message": "Who painted the Mona Lisa?"})).await;
    let other = r.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (r.body["unanswered"].clone(), r.body["escalated"].clone()),
        (json!(true), json!(false))
    );
    let r = chat(
        &app,
        &a.key,
        &bot_id,
        json!({"message": "What is the boiling point of mercury?", "conversation_id": other}),
    )
    .await;
    assert_eq!(
        (r.body["unanswered"].clone(), r.body["escalated"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        app.get(&conversation_path(&other), &a.key).await.body["status"],
        "escalated"
    );

    // Escalation through the API, twice: one event.
    let r = chat(&app, &a.key, &bot_id, json!({"message": "When do orders ship?"})).await;
    let third = r.body["conversation_id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = app
            .post(&format!("{}/escalate", conversation_path(&third)), &a.key, json!({}))
            .await;
        assert_eq!(r.body["status"], "escalated", "{}", r.body);
    }
    let feed = app
        .get("/api/v1/events?type=conversation.escalated&limit=100", &a.key)
        .await;
    let reasons: Vec<&str> = feed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["visitor_request", "unanswered", "api"], "{}", feed.body);

    // Lists filter by status, unanswered questions and visitor.
    let list = |query: &str| {
        let path = format!("/api/v1/conversations?bot_id={bot_id}&{query}");
        let app = &app;
        let key = a.key.clone();
        async move {
            let r = app.get(&path, &key).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let mut ids: Vec<String> = r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut escalated = vec![other.clone(), third.clone()];
    escalated.sort();
    assert_eq!(list("status=escalated").await, escalated);
    assert_eq!(list("status=open").await, std::slice::from_ref(&cid));
    assert_eq!(list("unanswered=true").await, std::slice::from_ref(&other));
    assert!(list("status=closed").await.is_empty());
    let r = app.get("/api/v1/conversations?status=lost", &a.key).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(list("created_after=2099-01-01T00:00:00Z").await, Vec::<String>::new());

    // Tags: replace, add, remove, filter; bad tags are refused.
    let tags_path = format!("{}/tags", conversation_path(&cid));
    let r = app
        .call(
            Method::PUT,
            &tags_path,
            Some(&a.key),
            Some(json!({"tags": ["vip", "billing"]})),
        )
        .await;
    assert_eq!(r.body["tags"], json!(["billing", "vip"]), "{}", r.body);
    let r = app.post(&tags_path, &a.key, json!({"tags": ["refund", "vip"]})).await;
    assert_eq!(r.body["tags"], json!(["billing", "refund", "vip"]), "{}", r.body);
    let r = app.delete(&format!("{tags_path}/billing"), &a.key).await;
    assert_eq!(r.body["tags"], json!(["refund", "vip"]), "{}", r.body);
    assert_eq!(list("tag=vip").await, std::slice::from_ref(&cid));
    assert!(list("tag=billing").await.is_empty());
    let r = app.post(&tags_path, &a.key, json!({"tags": ["Not A Tag"]})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_code(), "VALIDATION_FAILED");
    let conv = app.get(&conversation_path(&cid), &a.key).await;
    assert_eq!(conv.body["tags"], json!(["refund", "vip"]));

    // Feedback on answers: shown on the message, counted per bot, filterable.
    let rate = |message: &str, body: serde_json::Value| {
        let path = format!("{}/messages/{message}/feedback", conversation_path(&cid));
        let (app, key) = (&app, a.key.clone());
        async move { app.post(&path, &key, body).await }
    };
    let r = rate(&first_answer, json!({"rating": "down"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = rate(&first_answer, json!({"rating": "up", "comment": "Clear and quick."})).await;
    assert_eq!(
        r.body["feedback"],
        json!({"rating": "up", "comment": "Clear and quick."}),
        "{}",
        r.body
    );
    let r = rate(&first_question, json!({"rating": "up"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "only the bot's answers: {}", r.body);
    assert_eq!(r.error_code(), "MESSAGE_NOT_FOUND");
    let r = rate(&first_answer, json!({"rating": "meh"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let fallback = app.get(&conversation_path(&other), &a.key).await.body["messages"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("{}/messages/{fallback}/feedback", conversation_path(&other)),
            &a.key,
            json!({"rating": "down"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let summary = app.get(&format!("/api/v1/bots/{bot_id}/feedback"), &a.key).await;
    assert_eq!(
        summary.body,
        json!({"up": 1, "down": 1, "ratio": 0.5}),
        "the latest rating counts"
    );
    let mut rated = vec![cid.clone(), other.clone()];
    rated.sort();
    assert_eq!(list("has_feedback=true").await, rated);
    assert_eq!(list("has_feedback=false").await, std::slice::from_ref(&third));

    // Exports: one conversation as CSV, transcript and JSON; a range as CSV.
    let download = |path: String| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.base);
        let key = a.key.clone();
        async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let header = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
            let (kind, disposition) = (header("content-type"), header("content-disposition"));
            (kind, disposition, r.text().await.unwrap())
        }
    };
    let messages = app.get(&conversation_path(&cid), &a.key).await.body["messages"]
        .as_array()
        .unwrap()
        .len();
    let (kind, disposition, csv) = download(format!("{}/export?format=csv", conversation_path(&cid))).await;
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(disposition, format!("attachment; filename=\"conversation-{cid}.csv\""));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), messages, "{csv}");
    assert_eq!(&rows[6][3], "agent");
    assert!(rows[6][4].contains("49 euros a month"));
    let (kind, _, text) = download(format!("{}/export?format=txt", conversation_path(&cid))).await;
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert!(text.contains("Visitor: Can I talk to a human please?"), "{text}");
    assert!(text.contains("Agent: Hi, I'm Ana."), "{text}");
    let (kind, _, json) = download(format!("{}/export", conversation_path(&cid))).await;
    assert!(kind.starts_with("application/json"), "{kind}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["messages"].as_array().unwrap().len(), messages);
    let (_, disposition, all) = download(format!(
        "/api/v1/conversations/export?bot_id={bot_id}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
    ))
    .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"conversations-20000101-21000101.csv\""
    );
    let mut reader = csv::Reader::from_reader(all.as_bytes());
    let bulk: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let conversations: std::collections::BTreeSet<String> = bulk.iter().map(|r| r[0].to_owned()).collect();
    assert_eq!(conversations.len(), 3, "{all}");
    // The streamed file holds each conversation's rows together, as its own export does.
    let of_this: Vec<&csv::StringRecord> = bulk.iter().filter(|r| &r[0] == cid.as_str()).collect();
    assert_eq!(of_this, rows.iter().collect::<Vec<_>>(), "{all}");
    let firsts: Vec<&str> = bulk.iter().map(|r| &r[0]).collect();
    let mut runs = firsts;
    runs.dedup();
    assert_eq!(runs.len(), 3, "one run of rows per conversation: {all}");
    let r = app
        .get(
            "/api/v1/conversations/export?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            &a.key,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Bad input and other organizations.
    let r = app
        .post(
            &format!("{}/reply", conversation_path(&cid)),
            &a.key,
            json!({"text": "  "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let b = app.create_org("Other").await;
    let r = app
        .post(
            &format!("{}/reply", conversation_path(&cid)),
            &b.key,
            json!({"text": "Hello"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.error_code(), "CONVERSATION_NOT_FOUND");
    let r = app
        .post(
            &format!("{}/close", conversation_path(&uuid::Uuid::now_v7().to_string())),
            &a.key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
