//! The embeddable widget in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/browser/widget.test.mjs`) against the real
//! application and a host page on another origin. This side sets up the bot
//! (knowledge, widget settings, allowed origin) and runs the script.

use std::process::Stdio;

use parley_api::app::Roles;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestEnv};
use crate::ingestion::add;

const QUICK_PROMPT: &str = "How long does shipping take?";
const XSS_QUESTION: &str = "What does the security notice say?";

pub async fn widget_in_a_real_browser(backend: Backend) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests/browser/widget.test.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: `apt-get install chromium` (scripts/services does)"
    );
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let r = app
        .post(
            "/api/v1/bots",
            &a.key,
            json!({"name": "Acme help", "welcome_message": "Hi! Ask me about shipping, returns or plans."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bot = r.body["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"type": "text", "title": "Shipping and returns",
               "body": "# Shipping\n\nOrders ship within 3 business days. Shipping is free for orders above 50 euros.\n\n\
                        # Returns\n\nYou can return any item within 30 days for a full refund."}),
        json!({"type": "text", "title": "Security notice",
               "body": "# Security notice\n\nThe security notice says that the text <img src=x onerror=window.__parleyXss=1> \
                        must always be shown as plain text and never run."}),
    ] {
        let source = add(&app, &a.key, &bot, body).await;
        let done = app.settled_source(&a.key, &bot, &source, 120).await;
        assert_eq!(done["status"], "ready", "{done}");
    }
    // The host page gets a port of its own, which the bot allows.
    let page_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = app
        .call(
            Method::PUT,
            &format!("/api/v1/bots/{bot}/widget-settings"),
            Some(&a.key),
            Some(json!({
                "title": "Acme support",
                "quick_prompts": [QUICK_PROMPT, "How do returns work?"],
                "allowed_origins": [format!("http://127.0.0.1:{page_port}")],
                "lead_capture": {"mode": "on_handoff", "fields": [
                    {"key": "email", "label": "Email", "type": "email", "required": true}
                ]}
            })),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{}", settings.body);
    let site_key = settings.body["site_key"].as_str().unwrap().to_owned();
    // A member who answers under her own name.
    parley_api::admin::add_owner(
        &app.store,
        &app.base,
        a.id,
        "owner@acme.example",
        Some("owner passphrase 2026"),
    )
    .await
    .expect("owner added");
    let member = app
        .join(
            &a.key,
            "ana@acme.example",
            "agent",
            "ana passphrase 2026",
            Some("Ana Lima"),
        )
        .await;
    let artifacts = std::env::var("PARLEY_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/widget-artifacts"));
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("PARLEY_API", &app.base)
        .env("PARLEY_KEY", &a.key)
        .env("PARLEY_BOT_ID", &bot)
        .env("PARLEY_SITE_KEY", &site_key)
        .env("PARLEY_MEMBER_COOKIE", &member.cookie)
        .env("PARLEY_MEMBER_CSRF", &member.csrf)
        .env("PARLEY_ARTIFACTS", &artifacts)
        .env("PARLEY_QUICK_PROMPT", QUICK_PROMPT)
        .env("PARLEY_XSS_QUESTION", XSS_QUESTION)
        .env("PARLEY_PAGE_PORT", page_port.to_string())
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(run.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    for shot in ["widget-desktop.png", "widget-mobile.png"] {
        let meta = std::fs::metadata(artifacts.join(shot)).expect("screenshot saved");
        assert!(meta.len() > 5_000, "{shot} is suspiciously small");
    }
    app.stop().await;
    env.cleanup().await;
}
