//! People: the first owner from the command line, one-time links, sign-in
//! and its cookie, CSRF, invitations, roles of members, removal, throttling,
//! expiry and signing out everywhere, and no secret in the event feed.

use parley_api::app::Roles;
use parley_domain::store::entities::{invitations, sessions};
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::harness::{Backend, Session, TestApp, TestEnv};

const OWNER_PASSWORD: &str = "owner passphrase 2026";

/// A token from a one-time link (`...#token=...`).
fn token_of(link: &str) -> String {
    link.split_once("#token=")
        .expect("a token in the link's fragment")
        .1
        .to_owned()
}

async fn accept(app: &TestApp, token: &str, password: &str, name: Option<&str>) -> crate::harness::Reply {
    let mut body = json!({"token": token, "password": password});
    if let Some(name) = name {
        body["display_name"] = json!(name);
    }
    app.call(Method::POST, "/api/v1/invitations/accept", None, Some(body))
        .await
}

async fn invite(app: &TestApp, by: &Session, email: &str, role: &str) -> crate::harness::Reply {
    app.as_member(
        Method::POST,
        "/api/v1/invitations",
        by,
        Some(json!({"email": email, "role": role})),
    )
    .await
}

pub async fn people_and_sessions(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;

    // The first owner from the command line: a one-time link sets the password.
    let org = app.create_org("Acme").await;
    let owner = parley_api::admin::add_owner(&app.store, &app.base, org.id, "Olga@Acme.example", None)
        .await
        .unwrap();
    let link = owner.link.expect("a password link");
    assert!(
        link.url.starts_with(&format!("{}/set-password#token=pl_", app.base)),
        "{}",
        link.url
    );
    let no_password = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "olga@acme.example", "password": "anything at all 1"})),
        )
        .await;
    assert_eq!(no_password.status, StatusCode::UNAUTHORIZED);
    let weak = app
        .call(
            Method::POST,
            "/api/v1/password",
            None,
            Some(json!({"token": link.token, "password": "olga@acme.example"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", weak.body);
    let set = app
        .call(
            Method::POST,
            "/api/v1/password",
            None,
            Some(json!({"token": link.token, "password": OWNER_PASSWORD})),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    let again = app
        .call(
            Method::POST,
            "/api/v1/password",
            None,
            Some(json!({"token": link.token, "password": "another passphrase 1"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a link works once: {}", again.body);
    assert_eq!(again.error_code(), "LINK_INVALID");

    // Sign-in: the same answer for a wrong password and an unknown email.
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "olga@acme.example", "password": "not the passphrase"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "nobody@acme.example", "password": "not the passphrase"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error_code(), "SIGN_IN_FAILED");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body["error"]["message"], wrong.body["error"]["message"]);
    // A sign-in form posted from another site is refused.
    let forged = app
        .call_with(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "olga@acme.example", "password": OWNER_PASSWORD})),
            &[("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert_eq!(forged.error_code(), "CSRF_REJECTED");

    let signed = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "OLGA@acme.example", "password": OWNER_PASSWORD})),
        )
        .await;
    assert_eq!(signed.status, StatusCode::CREATED, "{}", signed.body);
    let cookie = signed.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(cookie.starts_with("parley_session=st_"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: no Secure: {cookie}");
    assert_eq!(signed.body["organization"]["role"], "owner");
    assert_eq!(signed.body["organization"]["organization_id"], org.id.to_string());
    let olga = Session::from_reply(&signed);

    // Every operation works with a session; changes need the CSRF token
    // and the same site.
    let bots = app.as_member(Method::GET, "/api/v1/bots", &olga, None).await;
    assert_eq!(bots.status, StatusCode::OK, "{}", bots.body);
    let no_token = app
        .call_with(
            Method::POST,
            "/api/v1/bots",
            None,
            Some(json!({"name": "Support"})),
            &[("Cookie", &olga.cookie)],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{}", no_token.body);
    assert_eq!(no_token.error_code(), "CSRF_REJECTED");
    let cross_site = app
        .call_with(
            Method::POST,
            "/api/v1/bots",
            None,
            Some(json!({"name": "Support"})),
            &[
                ("Cookie", &olga.cookie),
                ("X-CSRF-Token", &olga.csrf),
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN, "{}", cross_site.body);
    let created = app
        .as_member(Method::POST, "/api/v1/bots", &olga, Some(json!({"name": "Support"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let bot_id = created.body["id"].as_str().unwrap().to_owned();
    // The log names the member as the actor.
    let feed = app.get("/api/v1/events?type=bot.created", &org.key).await;
    let actor = &feed.body["data"][0]["actor"];
    assert_eq!(actor["kind"], "member", "{actor}");
    assert_eq!(actor["id"], olga.person_id);

    // Invitations: a link valid once; roles never above the inviter's.
    let invited = invite(&app, &olga, "Ana@Acme.example", "admin").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["email"], "ana@acme.example");
    let ana_token = token_of(invited.body["link"].as_str().unwrap());
    let short = accept(&app, &ana_token, "too short", None).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", short.body);
    let ana = accept(&app, &ana_token, "ana passphrase 2026", Some("Ana")).await;
    let ana = Session::from_reply(&ana);
    let reused = accept(&app, &ana_token, "ana passphrase 2026", Some("Ana")).await;
    assert_eq!(reused.status, StatusCode::NOT_FOUND, "{}", reused.body);
    assert_eq!(reused.error_code(), "LINK_INVALID");
    let escalation = invite(&app, &ana, "mallory@acme.example", "owner").await;
    assert_eq!(escalation.status, StatusCode::FORBIDDEN, "{}", escalation.body);
    let invited = invite(&app, &ana, "bo@acme.example", "agent").await;
    let bo_token = token_of(invited.body["link"].as_str().unwrap());
    // An expired link no longer works.
    let expiring = invite(&app, &ana, "late@acme.example", "agent").await;
    let row = invitations::Entity::find_by_id(expiring.body["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap())
        .one(app.store.db())
        .await
        .unwrap()
        .unwrap();
    let kept = row.expires_at;
    let mut aged: invitations::ActiveModel = row.into();
    aged.expires_at = Set(chrono::Utc::now() - chrono::Duration::minutes(1));
    let aged = aged.update(app.store.db()).await.unwrap();
    let late = accept(
        &app,
        &token_of(expiring.body["link"].as_str().unwrap()),
        "late passphrase 2026",
        None,
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND, "{}", late.body);
    assert_eq!(late.error_code(), "LINK_INVALID");
    // The read model again as the log has it (the replay check at the end compares).
    let mut restored: invitations::ActiveModel = aged.into();
    restored.expires_at = Set(kept);
    restored.update(app.store.db()).await.unwrap();
    let bo = Session::from_reply(&accept(&app, &bo_token, "bo passphrase 20266", Some("Bo")).await);

    // An agent reads but does not manage.
    let members = app.as_member(Method::GET, "/api/v1/members", &bo, None).await;
    assert_eq!(members.status, StatusCode::OK, "{}", members.body);
    let roles: Vec<(&str, &str)> = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("olga@acme.example", "owner"),
            ("ana@acme.example", "admin"),
            ("bo@acme.example", "agent")
        ]
    );
    let refused = app
        .as_member(Method::DELETE, &format!("/api/v1/bots/{bot_id}"), &bo, None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.error_code(), "FORBIDDEN");
    // Admins do not touch owners; the last owner stays one.
    let r = app
        .as_member(
            Method::PATCH,
            &format!("/api/v1/members/{}", olga.person_id),
            &ana,
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app
        .as_member(
            Method::PATCH,
            &format!("/api/v1/members/{}", olga.person_id),
            &olga,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_code(), "LAST_OWNER");
    // A role change takes effect on the next request.
    let r = app
        .as_member(
            Method::PATCH,
            &format!("/api/v1/members/{}", bo.person_id),
            &ana,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "admin");
    let hooks = app.as_member(Method::GET, "/api/v1/webhooks", &bo, None).await;
    assert_eq!(hooks.status, StatusCode::OK, "{}", hooks.body);
    // A removed member's session is refused on the next request.
    let r = app
        .as_member(Method::DELETE, &format!("/api/v1/members/{}", bo.person_id), &ana, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let gone = app.as_member(Method::GET, "/api/v1/bots", &bo, None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED, "{}", gone.body);

    // Sessions end when idle too long.
    let ana_row = sessions::Entity::find()
        .all(app.store.db())
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.person_id.to_string() == ana.person_id)
        .unwrap();
    let mut idle: sessions::ActiveModel = ana_row.into();
    idle.last_seen_at = Set(chrono::Utc::now() - chrono::Duration::hours(9));
    idle.update(app.store.db()).await.unwrap();
    let expired = app.as_member(Method::GET, "/api/v1/session", &ana, None).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);

    // Changing the password ends the other sessions; signing out everywhere ends all.
    let olga_phone = app.sign_in("olga@acme.example", OWNER_PASSWORD).await;
    let r = app
        .as_member(
            Method::PUT,
            "/api/v1/me/password",
            &olga,
            Some(json!({"current_password": OWNER_PASSWORD, "new_password": "a new owner passphrase"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        app.as_member(Method::GET, "/api/v1/session", &olga_phone, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.as_member(Method::GET, "/api/v1/session", &olga, None).await.status,
        StatusCode::OK
    );
    let laptop = app.sign_in("olga@acme.example", "a new owner passphrase").await;
    let r = app.as_member(Method::DELETE, "/api/v1/sessions", &olga, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    for session in [&olga, &laptop] {
        assert_eq!(
            app.as_member(Method::GET, "/api/v1/bots", session, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    // Repeated failures throttle the account, even with the right password then.
    for _ in 0..5 {
        let r = app
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"email": "ana@acme.example", "password": "guess guess guess"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let throttled = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "ana@acme.example", "password": "ana passphrase 2026"})),
        )
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Another account is not throttled by those failures.
    app.sign_in("olga@acme.example", "a new owner passphrase").await;

    // The failed sign-ins are recorded on the person's stream; nothing
    // secret reaches the organization's feed.
    let failures = app
        .store
        .read_stream(ana.person_id.parse().unwrap())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "person.sign_in_failed")
        .count();
    assert_eq!(failures, 5);
    let feed = app.get("/api/v1/events?limit=1000", &org.key).await;
    let text = feed.body.to_string();
    for secret in ["argon2", "token_hash", "password_hash", &ana_token, "pl_"] {
        assert!(!text.contains(secret), "the feed shows {secret}");
    }
    let types: Vec<&str> = feed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "member.added",
        "invitation.created",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let _: Value = feed.body;
    // The audit log: what one member did.
    let by_ana = app
        .get(
            &format!("/api/v1/events?actor_kind=member&actor_id={}", ana.person_id),
            &org.key,
        )
        .await;
    assert_eq!(by_ana.status, StatusCode::OK, "{}", by_ana.body);
    let items = by_ana.body["data"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|e| e["actor"]["id"] == ana.person_id.as_str()),
        "{}",
        by_ana.body
    );
    let by_keys = app.get("/api/v1/events?actor_kind=api_key", &org.key).await;
    assert!(
        by_keys.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"]["kind"] == "api_key"),
        "{}",
        by_keys.body
    );
    app.stop().await;
    env.cleanup().await;
}

/// Visitor calls of one conversation.
struct Visitor {
    bot: String,
    site_key: String,
    conversation: String,
    token: String,
}

impl Visitor {
    async fn messages(&self, app: &TestApp) -> Value {
        let r = app
            .call_with(
                Method::GET,
                &format!(
                    "/api/v1/public/bots/{}/conversations/{}/messages",
                    self.bot, self.conversation
                ),
                None,
                None,
                &[
                    ("X-Parley-Site-Key", &self.site_key),
                    ("X-Parley-Conversation-Token", &self.token),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    async fn send(&self, app: &TestApp, text: &str) -> crate::harness::Reply {
        app.call_with(
            Method::POST,
            &format!(
                "/api/v1/public/bots/{}/conversations/{}/messages",
                self.bot, self.conversation
            ),
            None,
            Some(json!({"text": text, "stream": false})),
            &[
                ("X-Parley-Site-Key", &self.site_key),
                ("X-Parley-Conversation-Token", &self.token),
            ],
        )
        .await
    }
}

pub async fn agent_workflow(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let org = app.create_org("Shop").await;
    parley_api::admin::add_owner(
        &app.store,
        &app.base,
        org.id,
        "owner@shop.example",
        Some(OWNER_PASSWORD),
    )
    .await
    .unwrap();
    let owner = app.sign_in("owner@shop.example", OWNER_PASSWORD).await;
    let invited = invite(&app, &owner, "ana@shop.example", "agent").await;
    let ana = Session::from_reply(
        &accept(
            &app,
            &token_of(invited.body["link"].as_str().unwrap()),
            "ana passphrase 2026",
            Some("Ana Lima"),
        )
        .await,
    );
    let bot = app.post("/api/v1/bots", &org.key, json!({"name": "Shop help"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    crate::ingestion::add_text_ready(
        &app,
        &org.key,
        &bot_id,
        "Shipping",
        "Parcels ship within 2 days. Returns are free for 30 days.",
    )
    .await;
    let site_key = app.site_key(&org.key, &bot_id).await;
    let started = app
        .call_with(
            Method::POST,
            &format!("/api/v1/public/bots/{bot_id}/conversations"),
            None,
            Some(json!({"visitor_token": "v_workflow-visitor-01", "message": "How long does shipping take?"})),
            &[("X-Parley-Site-Key", &site_key)],
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let visitor = Visitor {
        bot: bot_id.clone(),
        site_key,
        conversation: started.body["conversation_id"].as_str().unwrap().to_owned(),
        token: started.body["token"].as_str().unwrap().to_owned(),
    };
    let id = visitor.conversation.clone();

    // The queue: nobody's conversations.
    let queue = app
        .as_member(Method::GET, "/api/v1/conversations?assignee=none", &ana, None)
        .await;
    assert!(
        queue.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{}",
        queue.body
    );
    // A key is no person: it cannot claim.
    let r = app
        .post(&format!("/api/v1/conversations/{id}/claim"), &org.key, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Ana claims it: a person has it now, and it is hers.
    let claimed = app
        .as_member(Method::POST, &format!("/api/v1/conversations/{id}/claim"), &ana, None)
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.body);
    assert_eq!(claimed.body["status"], "escalated");
    assert_eq!(claimed.body["assignee_id"], ana.person_id);
    let r = app
        .as_member(Method::POST, &format!("/api/v1/conversations/{id}/claim"), &owner, None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_code(), "ALREADY_ASSIGNED");
    let mine = app
        .as_member(Method::GET, "/api/v1/conversations?assignee=me", &ana, None)
        .await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1, "{}", mine.body);
    let others = app
        .as_member(Method::GET, "/api/v1/conversations?assignee=me", &owner, None)
        .await;
    assert_eq!(others.body["items"].as_array().unwrap().len(), 0, "{}", others.body);
    // Assigning to someone who is not a member is refused.
    let r = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{id}/assign"),
            &ana,
            Some(json!({"member_id": uuid::Uuid::now_v7()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.error_code(), "MEMBER_NOT_FOUND");

    // A note for the team, and a reply under Ana's name.
    let note = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{id}/notes"),
            &ana,
            Some(json!({"text": "internal-only: loyal customer since 2019"})),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.body);
    assert_eq!(note.body["author_id"], ana.person_id);
    let notes = app.get(&format!("/api/v1/conversations/{id}/notes"), &org.key).await;
    assert_eq!(notes.body["data"].as_array().unwrap().len(), 1);
    let reply = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{id}/reply"),
            &ana,
            Some(json!({"text": "Hi, Ana here: it ships tomorrow."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["author"], "Ana Lima");
    let seen = visitor.messages(&app).await;
    let agent = seen["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "agent")
        .expect("the reply reaches the visitor");
    assert_eq!(agent["author"], "Ana Lima");
    // The note reaches neither the visitor API nor the transcript export.
    assert!(!seen.to_string().contains("internal-only"), "{seen}");
    let export = app
        .client
        .get(format!("{}/api/v1/conversations/{id}/export", app.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(export.contains("it ships tomorrow"), "{export}");
    assert!(!export.contains("internal-only"), "{export}");
    // While a person has it, the bot stays quiet.
    let r = visitor.send(&app, "And do returns cost anything?").await;
    assert!(r.status.is_success(), "{}", r.body);
    let quiet = visitor.messages(&app).await;
    assert_eq!(
        quiet["messages"].as_array().unwrap().last().unwrap()["role"],
        "user",
        "{quiet}"
    );

    // Assign to the owner, then hand back: the bot answers again.
    let r = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{id}/assign"),
            &ana,
            Some(json!({"member_id": owner.person_id})),
        )
        .await;
    assert_eq!(r.body["assignee_id"], owner.person_id, "{}", r.body);
    let back = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{id}/hand-back"),
            &owner,
            None,
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(back.body["status"], "open");
    assert!(back.body.get("assignee_id").is_none_or(Value::is_null), "{}", back.body);
    let r = visitor.send(&app, "How long does shipping take?").await;
    assert!(r.status.is_success(), "{}", r.body);
    let answered = visitor.messages(&app).await;
    assert_eq!(
        answered["messages"].as_array().unwrap().last().unwrap()["role"],
        "assistant",
        "{answered}"
    );

    // The visitor rates the conversation once a person closed it.
    let rate = |score: u8| {
        let app = &app;
        let visitor = &visitor;
        async move {
            app.call_with(
                Method::POST,
                &format!(
                    "/api/v1/public/bots/{}/conversations/{}/satisfaction",
                    visitor.bot, visitor.conversation
                ),
                None,
                Some(json!({"score": score, "comment": "Quick and kind"})),
                &[
                    ("X-Parley-Site-Key", &visitor.site_key),
                    ("X-Parley-Conversation-Token", &visitor.token),
                ],
            )
            .await
        }
    };
    let early = rate(5).await;
    assert_eq!(
        early.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not closed yet: {}",
        early.body
    );
    let r = app
        .as_member(Method::POST, &format!("/api/v1/conversations/{id}/close"), &owner, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(rate(9).await.status, StatusCode::BAD_REQUEST);
    let rated = rate(5).await;
    assert_eq!(rated.status, StatusCode::OK, "{}", rated.body);
    assert_eq!(rated.body["satisfaction"], 5);
    let detail = app.get(&format!("/api/v1/conversations/{id}"), &org.key).await;
    assert_eq!(detail.body["satisfaction"], 5);
    assert_eq!(detail.body["satisfaction_comment"], "Quick and kind");
    let insights = app.get(&format!("/api/v1/bots/{bot_id}/insights"), &org.key).await;
    assert_eq!(insights.body["satisfaction"]["ratings"], 1, "{}", insights.body);
    assert_eq!(
        insights.body["satisfaction"]["by_member"][0]["member_id"],
        ana.person_id
    );
    // A bot that does not ask refuses ratings.
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/bots/{bot_id}/widget-settings"),
            Some(&org.key),
            Some(json!({"satisfaction_survey": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(rate(4).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Saved replies: shared, found by shortcut prefix, shortcuts unique.
    let saved = app
        .as_member(
            Method::POST,
            "/api/v1/saved-replies",
            &ana,
            Some(json!({"shortcut": "/Refund", "text": "Refunds reach your card within 5 working days."})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    assert_eq!(saved.body["shortcut"], "refund");
    let twice = app
        .as_member(
            Method::POST,
            "/api/v1/saved-replies",
            &owner,
            Some(json!({"shortcut": "refund", "text": "Another text"})),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    app.post(
        "/api/v1/saved-replies",
        &org.key,
        json!({"shortcut": "hours", "text": "9 to 5"}),
    )
    .await;
    let found = app.get("/api/v1/saved-replies?q=/ref", &org.key).await;
    let shortcuts: Vec<&str> = found.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap())
        .collect();
    assert_eq!(shortcuts, vec!["refund"]);
    let saved_id = saved.body["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/saved-replies/{saved_id}"),
            &org.key,
            json!({"text": "Refunds take 5 days."}),
        )
        .await;
    assert_eq!(r.body["text"], "Refunds take 5 days.", "{}", r.body);
    let r = app.delete(&format!("/api/v1/saved-replies/{saved_id}"), &org.key).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.delete(&format!("/api/v1/saved-replies/{saved_id}"), &org.key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "SAVED_REPLY_NOT_FOUND");

    // Live chat without the bot: an acknowledgement, and the conversation waits for a person.
    let live_chat = app
        .post(
            "/api/v1/bots",
            &org.key,
            json!({"name": "Live chat", "human_only": true, "auto_reply": "Thanks! A person replies within the hour."}),
        )
        .await;
    assert_eq!(live_chat.status, StatusCode::CREATED, "{}", live_chat.body);
    assert_eq!(live_chat.body["human_only"], true);
    let live_id = live_chat.body["id"].as_str().unwrap().to_owned();
    crate::ingestion::add_text_ready(&app, &org.key, &live_id, "Shipping", "Parcels ship within 2 days.").await;
    let live_key = app.site_key(&org.key, &live_id).await;
    let opened = app
        .call_with(
            Method::POST,
            &format!("/api/v1/public/bots/{live_id}/conversations"),
            None,
            Some(json!({"visitor_token": "v_live-chat-visitor-01", "message": "How long does shipping take?"})),
            &[("X-Parley-Site-Key", &live_key)],
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["auto_reply"], "Thanks! A person replies within the hour.");
    assert_eq!(opened.body["status"], "escalated");
    let roles: Vec<&str> = opened.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["user"], "no AI answer: {}", opened.body);
    let chat = app
        .post(
            &format!("/api/v1/bots/{live_id}/chat"),
            &org.key,
            json!({"message": "How long does shipping take?", "stream": false}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.body);
    assert_eq!(chat.body["escalated"], true, "{}", chat.body);
    assert_eq!(chat.body["answer"], "", "no AI answer: {}", chat.body);
    let r = app
        .patch(
            &format!("/api/v1/bots/{live_id}"),
            &org.key,
            json!({"auto_reply": null}),
        )
        .await;
    assert!(r.body.get("auto_reply").is_none_or(Value::is_null), "{}", r.body);
    let plain = app.post("/api/v1/bots", &org.key, json!({"name": "Plain"})).await;
    assert_eq!(plain.body["human_only"], false);

    // The log says who did what.
    let feed = app
        .get(
            "/api/v1/events?type=conversation.assigned&type=conversation.note_added&type=conversation.handed_back",
            &org.key,
        )
        .await;
    let seen: Vec<(String, String)> = feed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["actor"]["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("conversation.assigned".to_owned(), ana.person_id.clone()),
            ("conversation.note_added".to_owned(), ana.person_id.clone()),
            ("conversation.assigned".to_owned(), ana.person_id.clone()),
            ("conversation.handed_back".to_owned(), owner.person_id.clone()),
        ]
    );
    app.stop().await;
    env.cleanup().await;
}

/// Frames of a live stream, read until `want` says enough (or 20 s pass).
async fn frames_until(
    events: &mut (
             impl futures::Stream<
        Item = Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
    > + Unpin
         ),
    want: impl Fn(&[eventsource_stream::Event]) -> bool,
) -> Vec<eventsource_stream::Event> {
    use futures::StreamExt;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !want(&got) {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => got.push(event),
            Ok(Some(Err(e))) => panic!("stream error: {e}"),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    got
}

pub async fn live_stream(backend: Backend) {
    use eventsource_stream::Eventsource;
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let org = app.create_org("Live").await;
    let other = app.create_org("Elsewhere").await;
    parley_api::admin::add_owner(
        &app.store,
        &app.base,
        org.id,
        "owner@live.example",
        Some(OWNER_PASSWORD),
    )
    .await
    .unwrap();
    let owner = app.sign_in("owner@live.example", OWNER_PASSWORD).await;
    let invited = invite(&app, &owner, "agent@live.example", "agent").await;
    let agent = Session::from_reply(
        &accept(
            &app,
            &token_of(invited.body["link"].as_str().unwrap()),
            "agent passphrase 2026",
            None,
        )
        .await,
    );
    // An agent's stream, opened with the session cookie only (as EventSource does).
    let open = |session: &Session, last: Option<String>| {
        let mut req = app
            .client
            .get(format!("{}/api/v1/stream", app.base))
            .header("Cookie", &session.cookie);
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last);
        }
        req.send()
    };
    let resp = open(&agent, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        resp.headers()
    );
    let mut events = resp.bytes_stream().eventsource();
    // A bot (not for agents), another organization's bot, then a conversation.
    let bot = app.post("/api/v1/bots", &org.key, json!({"name": "Live help"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/bots", &other.key, json!({"name": "Not yours"})).await;
    let chat = app
        .post(
            &format!("/api/v1/bots/{bot_id}/chat"),
            &org.key,
            json!({"message": "I want to talk to a human", "stream": false, "visitor_id": "live-visitor"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.body);
    let conversation = chat.body["conversation_id"].as_str().unwrap().to_owned();
    let got = frames_until(&mut events, |got| {
        got.iter().any(|e| e.event == "conversation.escalated")
    })
    .await;
    let types: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert!(types.contains(&"conversation.started"), "{types:?}");
    assert!(types.contains(&"conversation.escalated"), "{types:?}");
    assert!(
        !types.iter().any(|t| t.starts_with("bot.")),
        "an agent sees no bot events: {types:?}"
    );
    for frame in &got {
        let data: Value = serde_json::from_str(&frame.data).unwrap();
        assert_eq!(data["type"], frame.event);
        assert_eq!(data["position"].to_string(), frame.id, "the id is the log position");
        assert_eq!(
            data["stream_id"],
            conversation.as_str(),
            "only this organization's conversation"
        );
    }
    // Resuming after the first frame gives the rest again, in order.
    let first = got[0].id.clone();
    let again = open(&agent, Some(first)).await.unwrap();
    let mut replayed = again.bytes_stream().eventsource();
    let rest = frames_until(&mut replayed, |r| r.len() >= got.len() - 1).await;
    let ids = |frames: &[eventsource_stream::Event]| frames.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rest), ids(&got[1..]));
    // The owner sees every event, bots included.
    let mut all = open(&owner, Some("0".into()))
        .await
        .unwrap()
        .bytes_stream()
        .eventsource();
    let everything = frames_until(&mut all, |f| f.iter().any(|e| e.event == "bot.created")).await;
    assert!(everything.iter().any(|e| e.event == "bot.created"));
    // A malformed Last-Event-ID is refused.
    let bad = open(&agent, Some("yesterday".into())).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Typing, both ways: the visitor's shows on the team's stream, the
    // agent's in the visitor's conversation.
    let site_key = app.site_key(&org.key, &bot_id).await;
    let started = app
        .call_with(
            Method::POST,
            &format!("/api/v1/public/bots/{bot_id}/conversations"),
            None,
            Some(json!({"visitor_token": "v_typing-visitor-0001"})),
            &[("X-Parley-Site-Key", &site_key)],
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let widget_conversation = started.body["conversation_id"].as_str().unwrap().to_owned();
    let visitor_headers = [
        ("X-Parley-Site-Key", site_key.clone()),
        (
            "X-Parley-Conversation-Token",
            started.body["token"].as_str().unwrap().to_owned(),
        ),
    ];
    let headers: Vec<(&str, &str)> = visitor_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let typed = app
        .call_with(
            Method::POST,
            &format!("/api/v1/public/bots/{bot_id}/conversations/{widget_conversation}/typing"),
            None,
            None,
            &headers,
        )
        .await;
    assert_eq!(typed.status, StatusCode::NO_CONTENT, "{}", typed.body);
    let signals = frames_until(&mut events, |f| f.iter().any(|e| e.event == "typing")).await;
    let signal = signals.iter().find(|e| e.event == "typing").expect("a typing frame");
    let data: Value = serde_json::from_str(&signal.data).unwrap();
    assert_eq!(data["who"], "visitor");
    assert_eq!(data["conversation_id"], widget_conversation.as_str());
    assert!(signal.id.is_empty() || signal.id == got.last().unwrap().id || signal.id.parse::<i64>().is_ok());
    let messages = format!("/api/v1/public/bots/{bot_id}/conversations/{widget_conversation}/messages");
    let quiet = app.call_with(Method::GET, &messages, None, None, &headers).await;
    assert!(
        quiet.body.get("agent_typing").is_none_or(Value::is_null),
        "{}",
        quiet.body
    );
    let r = app
        .as_member(
            Method::POST,
            &format!("/api/v1/conversations/{widget_conversation}/typing"),
            &agent,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let busy = app.call_with(Method::GET, &messages, None, None, &headers).await;
    assert_eq!(busy.body["agent_typing"], "agent", "{}", busy.body);
    drop(events);
    drop(replayed);
    drop(all);
    app.stop().await;
    env.cleanup().await;
}

pub async fn availability_and_auto_assignment(backend: Backend) {
    use chrono::Datelike;
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let org = app.create_org("Hours").await;
    parley_api::admin::add_owner(
        &app.store,
        &app.base,
        org.id,
        "owner@hours.example",
        Some(OWNER_PASSWORD),
    )
    .await
    .unwrap();
    let owner = app.sign_in("owner@hours.example", OWNER_PASSWORD).await;
    let mut agents = Vec::new();
    for name in ["ana", "bo"] {
        let invited = invite(&app, &owner, &format!("{name}@hours.example"), "agent").await;
        agents.push(Session::from_reply(
            &accept(
                &app,
                &token_of(invited.body["link"].as_str().unwrap()),
                "agent passphrase 2026",
                Some(name),
            )
            .await,
        ));
    }
    let (ana, bo) = (&agents[0], &agents[1]);
    // Open only on a day that is not today (UTC): closed now.
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    let other_day = days[(today + 3) % 7];
    let bot = app
        .post(
            "/api/v1/bots",
            &org.key,
            json!({"name": "Hours help", "handoff": {
                "business_hours": {"time_zone": "UTC", "spans": [{"day": other_day, "opens": "09:00", "closes": "17:00"}]},
                "offline_message": "Our team is away right now; leave your email and we will write back",
                "auto_assign": true, "max_open_per_member": 1}}),
        )
        .await;
    assert_eq!(bot.status, StatusCode::CREATED, "{}", bot.body);
    assert_eq!(bot.body["handoff"]["auto_assign"], true);
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let bad = app
        .patch(
            &format!("/api/v1/bots/{bot_id}"),
            &org.key,
            json!({"handoff": {"business_hours": {"time_zone": "Mars/Olympus", "spans": [{"day": "mon", "opens": "18:00", "closes": "09:00"}]}}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let fields: Vec<&str> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "handoff.business_hours.time_zone",
            "handoff.business_hours.spans[0].closes"
        ]
    );
    crate::ingestion::add_text_ready(&app, &org.key, &bot_id, "Shipping", "Parcels ship within 2 days.").await;
    let site_key = app.site_key(&org.key, &bot_id).await;
    let config = || {
        let app = &app;
        let (bot_id, site_key) = (bot_id.clone(), site_key.clone());
        async move {
            app.call_with(
                Method::GET,
                &format!("/api/v1/public/bots/{bot_id}/config"),
                None,
                None,
                &[("X-Parley-Site-Key", &site_key)],
            )
            .await
            .body["availability"]
                .clone()
        }
    };
    let closed = config().await;
    assert_eq!(closed["person_available"], false, "{closed}");
    assert_eq!(closed["within_hours"], false);
    assert!(closed["next_opening"].is_string(), "{closed}");
    let ask = |visitor: &'static str| {
        let app = &app;
        let (bot_id, site_key) = (bot_id.clone(), site_key.clone());
        async move {
            let r = app
                .call_with(
                    Method::POST,
                    &format!("/api/v1/public/bots/{bot_id}/conversations"),
                    None,
                    Some(json!({"visitor_token": visitor, "message": "I want to talk to a human"})),
                    &[("X-Parley-Site-Key", &site_key)],
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body
        }
    };
    // Outside the hours: the bot says when the team is back; the conversation waits.
    let outside = ask("v_hours-visitor-0001").await;
    let answer = outside["messages"][1]["text"].as_str().unwrap();
    assert!(answer.starts_with("Our team is away right now"), "{answer}");
    assert!(answer.contains("We are back"), "{answer}");
    assert_eq!(outside["status"], "escalated");
    // Its assignment job has looked for someone (nobody online) before anyone comes online.
    app.eventually(30, "the first auto_assign job to run", || async {
        let metrics = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .any(|l| l.starts_with("parley_jobs_total{job=\"auto_assign\",outcome=\"succeeded\"}"))
    })
    .await;

    // Open every day, all day: with Ana online, a person is available.
    let always: Vec<Value> = days
        .iter()
        .map(|d| json!({"day": d, "opens": "00:00", "closes": "23:59"}))
        .collect();
    let r = app
        .patch(
            &format!("/api/v1/bots/{bot_id}"),
            &org.key,
            json!({"handoff": {"business_hours": {"time_zone": "UTC", "spans": always}, "auto_assign": true, "max_open_per_member": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let away = config().await;
    assert_eq!(away["within_hours"], true, "{away}");
    let nobody_online = chrono::Utc::now().format("%H:%M").to_string() == "23:59" || away["person_available"] == false;
    assert!(nobody_online, "nobody is online yet: {away}");
    let online = app
        .as_member(
            Method::PUT,
            "/api/v1/me/availability",
            ana,
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(online.status, StatusCode::OK, "{}", online.body);
    let members = app.get("/api/v1/members", &org.key).await;
    let ana_row = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == ana.person_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(ana_row["availability"], "online");
    if chrono::Utc::now().format("%H:%M").to_string() != "23:59" {
        assert_eq!(config().await["person_available"], true);
    }
    // The conversation goes to the online member; over her cap, the next one waits.
    let assignee_of = |id: String| {
        let app = &app;
        let key = org.key.clone();
        async move {
            app.get(&format!("/api/v1/conversations/{id}"), &key).await.body["assignee_id"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let first = ask("v_hours-visitor-0002").await;
    let first_id = first["conversation_id"].as_str().unwrap().to_owned();
    assert!(
        !first["messages"][1]["text"].as_str().unwrap().contains("We are back"),
        "{first}"
    );
    app.eventually(30, "the conversation to be assigned to Ana", || {
        let id = first_id.clone();
        let ana = ana.person_id.clone();
        async move { assignee_of(id).await.as_deref() == Some(ana.as_str()) }
    })
    .await;
    let second = ask("v_hours-visitor-0003").await;
    let second_id = second["conversation_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(assignee_of(second_id).await, None, "Ana is at her cap; Bo is offline");
    app.as_member(
        Method::PUT,
        "/api/v1/me/availability",
        bo,
        Some(json!({"status": "online"})),
    )
    .await;
    let third = ask("v_hours-visitor-0004").await;
    let third_id = third["conversation_id"].as_str().unwrap().to_owned();
    app.eventually(30, "the next conversation to be assigned to Bo", || {
        let id = third_id.clone();
        let bo = bo.person_id.clone();
        async move { assignee_of(id).await.as_deref() == Some(bo.as_str()) }
    })
    .await;
    let feed = app.get("/api/v1/events?type=conversation.assigned", &org.key).await;
    assert!(
        feed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["data"]["how"] == "auto" && e["actor"]["kind"] == "system"),
        "{}",
        feed.body
    );
    app.stop().await;
    env.cleanup().await;
}
