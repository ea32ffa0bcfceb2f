//! The job dashboard (apalis-board) on its own port: Basic credentials,
//! read-only, showing the queue and the jobs an ingestion ran.

use parley_api::app::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, TestEnv};
use crate::ingestion::add_text_ready;

const PASSWORD: &str = "correct horse battery staple";

pub async fn job_dashboard(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env
        .start_with(Roles::ALL, |s| {
            s.board_listen = Some("127.0.0.1:0".into());
            s.board_password = Some(PASSWORD.to_owned().into());
        })
        .await;
    let board = app.board.clone().expect("the dashboard listens");
    let a = app.create_org("Acme").await;
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Jobs"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let source = add_text_ready(&app, &a.key, &bot_id, "Hours", "We are open from 9 to 5.").await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, password: Option<&str>| {
        let mut req = client.get(format!("{board}{path}"));
        if let Some(p) = password {
            req = req.basic_auth("admin", Some(p));
        }
        req.send()
    };

    // Credentials are required, and must be right.
    let r = get("/", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let r = get("/api/v1/queues", Some("wrong password here")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The UI is served from the binary.
    let r = get("/", Some(PASSWORD)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains(".wasm"), "{html}");

    // The queue, its counts and the jobs the ingestion ran.
    let name = app.queue.name().to_owned();
    let queues: Value = get("/api/v1/queues", Some(PASSWORD))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queue = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} in {queues}"));
    assert!(!queue["stats"].as_array().unwrap().is_empty(), "{queue}");
    let r = get(&format!("/api/v1/queues/{name}/stats"), Some(PASSWORD))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats: Value = r.json().await.unwrap();
    assert!(stats.as_array().is_some_and(|s| !s.is_empty()), "{stats}");
    // The last job is marked done just after the source turns ready.
    let path = format!("/api/v1/queues/{name}/tasks?status=Done&page=1&page_size=50");
    let mut tasks = String::new();
    for _ in 0..50 {
        let r = get(&path, Some(PASSWORD)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        tasks = r.text().await.unwrap();
        if tasks.contains("embed_source") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for step in ["fetch_source", "parse_source", "embed_source"] {
        assert!(tasks.contains(step), "{step} in {tasks}");
    }
    let listed: Value = serde_json::from_str(&tasks).unwrap();
    assert!(
        listed.as_array().unwrap().iter().all(|t| t["ctx"]["status"] == "Done"),
        "{tasks}"
    );
    assert!(tasks.contains(&source), "the jobs of this source: {tasks}");

    // Read-only: no enqueueing through the dashboard.
    let r = client
        .put(format!("{board}/api/v1/queues/{name}/tasks"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    // `/jobs` on the API points there.
    let r = client.get(format!("{}/jobs", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{board}/"));

    app.stop().await;
    env.cleanup().await;
}
