//! Roles, generated from the OpenAPI spec: every operation of the secret
//! API is called on one organization's own resources with a key of each
//! role and with a member's session of each role. The role an operation
//! needs is read from its description (`Role: ...`); roles that have it get
//! through (reads succeed), the others get `403 FORBIDDEN`.

use parley_api::app::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestEnv};
use crate::isolation::{ALPHA_PASSWORD, Call, alpha, body_of, send};

const ROLES: [&str; 3] = ["agent", "admin", "owner"];

/// The least role an operation's description names.
fn documented_role(operation: &str, description: &str) -> &'static str {
    let line = description
        .lines()
        .find(|l| l.starts_with("Role: "))
        .unwrap_or_else(|| panic!("`{operation}` does not say which role it needs"));
    match line {
        "Role: `agent` or higher." => "agent",
        "Role: `admin` or `owner`." => "admin",
        "Role: `owner`." => "owner",
        other => panic!("`{operation}`: unknown role line {other:?}"),
    }
}

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

pub async fn role_matrix(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = alpha(&app).await;
    // The organization's first key is an owner's; an admin and an agent key beside it.
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("owner", a.key.clone());
    for role in ["admin", "agent"] {
        let created = app
            .post(
                "/api/v1/keys",
                &a.key,
                json!({"name": format!("{role} key"), "role": role}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(created.body["role"], role);
        keys.insert(role, created.body["key"].as_str().unwrap().to_owned());
    }

    // A key never gets more than its creator, nor revokes a higher one.
    let r = app
        .post(
            "/api/v1/keys",
            &keys["admin"],
            json!({"name": "escalation", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "FORBIDDEN");
    let owner_key_id = app.get("/api/v1/keys", &a.key).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/api/v1/keys/{owner_key_id}"), &keys["admin"])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app
        .post("/api/v1/keys", &keys["admin"], json!({"name": "helper"}))
        .await;
    assert_eq!(r.body["role"], "admin", "a new key is an admin's by default");

    // A member of each role, signed in.
    let mut sessions = std::collections::BTreeMap::new();
    sessions.insert("owner", app.sign_in("owner@alpha.example", ALPHA_PASSWORD).await);
    for role in ["admin", "agent"] {
        sessions.insert(
            role,
            app.join(
                &a.key,
                &format!("{role}-member@alpha.example"),
                role,
                ALPHA_PASSWORD,
                None,
            )
            .await,
        );
    }

    let spec: Value = serde_json::from_str(parley_api::spec::spec_json()).unwrap();
    let mut operations = Vec::new();
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let keyed = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("ApiKey").is_some()));
            if !keyed || template.starts_with("/api/v1/public/") {
                continue;
            }
            let both = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("Session").is_some()));
            assert!(both, "{template}: every keyed operation also takes a session");
            operations.push((template.clone(), method.clone(), op.clone()));
        }
    }
    // Deletions last, so that the other operations find what they name.
    operations.sort_by_key(|(_, method, _)| method == "delete");
    let (mut refused, mut allowed) = (0, 0);
    let mut needs = std::collections::BTreeMap::<&str, usize>::new();
    for (template, method, op) in &operations {
        let operation = op["operationId"].as_str().unwrap();
        let needed = documented_role(operation, op["description"].as_str().unwrap_or_default());
        *needs.entry(needed).or_default() += 1;
        // The attachment is in the visitor's conversation.
        let mut path = if template.contains("{attachment_id}") {
            template.replace("{conversation_id}", &a.ids["widget_conversation_id"])
        } else {
            template.clone()
        };
        for (name, id) in &a.ids {
            path = path.replace(&format!("{{{name}}}"), id);
        }
        assert!(!path.contains('{'), "no value for a parameter of {template}");
        let call = Call {
            method: method.to_uppercase().parse().unwrap(),
            path,
            operation,
            body: body_of(operation),
            multipart: op["requestBody"]["content"]["multipart/form-data"].is_object(),
        };
        // The lesser roles first: a refused call must not change anything.
        for (role, by_session) in ROLES.iter().flat_map(|r| [(*r, false), (*r, true)]) {
            let bearer = format!("Bearer {}", keys[role]);
            let session = &sessions[role];
            let origin = app.base.clone();
            let headers: Vec<(&str, &str)> = if by_session {
                vec![
                    ("Cookie", session.cookie.as_str()),
                    ("X-CSRF-Token", session.csrf.as_str()),
                    ("Origin", origin.as_str()),
                    ("Sec-Fetch-Site", "same-origin"),
                ]
            } else {
                vec![("Authorization", bearer.as_str())]
            };
            let role_label = if by_session {
                format!("{role} member")
            } else {
                format!("{role} key")
            };
            let role = role_label.split(' ').next().unwrap();
            let (status, text) = send(&app, &call, &headers).await;
            if rank(role) < rank(needed) {
                refused += 1;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{operation} with an {role_label}: {text}"
                );
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["error"]["code"], "FORBIDDEN", "{operation}: {text}");
                assert!(
                    body["error"]["message"].as_str().unwrap().contains(needed),
                    "{operation}: the refusal names the role needed: {text}"
                );
            } else {
                allowed += 1;
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED && !status.is_server_error(),
                    "{operation} with an {role_label}: {status} {text}"
                );
                if call.method == Method::GET {
                    assert!(status.is_success(), "{operation} with an {role_label}: {status} {text}");
                }
            }
        }
    }
    println!(
        "role matrix: {} operations ({needs:?}), {allowed} allowed and {refused} refused calls",
        operations.len()
    );
    assert!(operations.len() >= 59, "{}", operations.len());
    assert!(needs.get("agent").copied().unwrap_or(0) >= 20 && needs.get("admin").copied().unwrap_or(0) >= 20);
    app.stop().await;
    env.cleanup().await;
}
