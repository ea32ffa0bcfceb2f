//! Knowledge ingestion end to end: sources through the API, real files,
//! a real local site, the real embedding model.

use std::path::{Path, PathBuf};

use parley_api::app::Roles;
use parley_domain::store::entities::chunks;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::harness::{Backend, StaticSite, TestApp, TestEnv};

fn shared(path: &str) -> PathBuf {
    crate::harness::shared_dir().join("data/docs").join(path)
}

pub(crate) async fn bot(app: &TestApp, key: &str) -> String {
    let r = app.post("/api/v1/bots", key, json!({"name": "Knowledge"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

/// Adds a text source and waits until it is ready (asserted); its id.
pub(crate) async fn add_text_ready(app: &TestApp, key: &str, bot: &str, title: &str, body: &str) -> String {
    let source = add(app, key, bot, json!({"type": "text", "title": title, "body": body})).await;
    let done = app.settled_source(key, bot, &source, 120).await;
    assert_eq!(done["status"], "ready", "{done}");
    source
}

/// Adds a site source crawled from `site`'s index page.
pub(crate) async fn add_site(app: &TestApp, key: &str, bot: &str, site: &StaticSite) -> String {
    add(
        app,
        key,
        bot,
        json!({"type": "sitemap", "url": format!("{}/index.html", site.base)}),
    )
    .await
}

pub(crate) async fn add(app: &TestApp, key: &str, bot: &str, body: Value) -> String {
    let r = app.post(&format!("/api/v1/bots/{bot}/sources"), key, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    r.body["id"].as_str().expect("id").to_owned()
}

async fn chunk_texts(app: &TestApp, source_id: &str) -> Vec<chunks::Model> {
    chunks::Entity::find()
        .filter(chunks::Column::SourceId.eq(source_id.parse::<uuid::Uuid>().expect("uuid")))
        .all(app.store.db())
        .await
        .expect("chunks")
}

/// Waits for a source to be ready and checks it holds every one of its
/// `pages` pages and each chunk once (after a crash and a second run).
pub async fn assert_whole(app: &TestApp, key: &str, bot_id: &str, source: &str, pages: usize) {
    let done = app.settled_source(key, bot_id, source, 180).await;
    assert_eq!(done["status"], "ready", "{done}");
    let keys: Vec<&str> = done["page_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&str> = keys.iter().copied().collect();
    assert_eq!((keys.len(), unique.len()), (pages, pages), "every page once: {keys:?}");
    let chunks = chunk_texts(app, source).await;
    let distinct: std::collections::HashSet<(String, i32)> =
        chunks.iter().map(|c| (c.doc_key.clone(), c.ordinal)).collect();
    assert_eq!(distinct.len(), chunks.len(), "no duplicate chunks");
    assert_eq!(chunks.len() as i64, done["chunks"].as_i64().unwrap());
}

fn page<'a>(source: &'a Value, key_suffix: &str) -> Option<&'a Value> {
    source["page_list"]
        .as_array()?
        .iter()
        .find(|p| p["key"].as_str().is_some_and(|k| k.ends_with(key_suffix)))
}

pub async fn sources_from_texts_qa_and_files(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let b = app.create_org("Globex").await;
    let bot_id = bot(&app, &a.key).await;
    let sources = format!("/api/v1/bots/{bot_id}/sources");

    let text = add(&app, &a.key, &bot_id, json!({"type": "text", "title": "Pricing",
        "body": "# Plans\n\nThe Pro plan costs 20 EUR per month.\n\n## Refunds\n\nRefunds are possible within 30 days."})).await;
    let qa = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "qa", "pairs": [
        {"question": "Do you ship abroad?", "answer": "Yes, to every country of the EU."},
        {"question": "Can I pay by invoice?", "answer": "Yes, for annual plans."}]}),
    )
    .await;
    let pdf = app
        .upload(
            &a.key,
            &bot_id,
            "multi_page.pdf",
            std::fs::read(shared("pdf/multi_page.pdf")).unwrap(),
        )
        .await;
    assert_eq!(pdf.status, StatusCode::ACCEPTED, "{}", pdf.body);
    let docx = app
        .upload(
            &a.key,
            &bot_id,
            "word_sample.docx",
            std::fs::read(shared("docx/word_sample.docx")).unwrap(),
        )
        .await;
    assert_eq!(docx.status, StatusCode::ACCEPTED, "{}", docx.body);
    let corrupt = app
        .upload(&a.key, &bot_id, "broken.pdf", b"%PDF-1.7\nnot really a pdf".to_vec())
        .await;
    let empty = app.upload(&a.key, &bot_id, "empty.txt", vec![]).await;

    // Refused at once with their documented errors.
    let renamed = app
        .upload(
            &a.key,
            &bot_id,
            "manual.pdf",
            vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0xff, 0xfe],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", renamed.body);
    assert_eq!(renamed.error_code(), "UNSUPPORTED_MEDIA_TYPE");
    let oversized = app
        .upload(&a.key, &bot_id, "big.txt", vec![b'a'; 3 * 1024 * 1024])
        .await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", oversized.body);
    assert_eq!(oversized.error_code(), "PAYLOAD_TOO_LARGE");
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
    ] {
        let r = app.post(&sources, &a.key, json!({"type": "url", "url": url})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {}", r.body);
        assert_eq!(r.error_code(), "URL_NOT_ALLOWED", "{url}");
    }
    let r = app
        .post(
            &sources,
            &a.key,
            json!({"type": "text", "title": "Seventh", "body": "One too many."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        r.error_code(),
        "SOURCE_LIMIT_REACHED",
        "the test settings allow 6 sources per bot"
    );
    let r = app.post(&sources, &a.key, json!({"type": "qa", "pairs": []})).await;
    assert_eq!(r.error_code(), "VALIDATION_FAILED");
    let r = app
        .post(
            &sources,
            &a.key,
            json!({"type": "sitemap", "url": "http://127.0.0.1:9/", "include": ["[broken"]}),
        )
        .await;
    assert_eq!(r.error_code(), "VALIDATION_FAILED");
    let r = app
        .post(&sources, &a.key, json!({"type": "rss", "url": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Every accepted source reaches its final status.
    let text_done = app.settled_source(&a.key, &bot_id, &text, 120).await;
    assert_eq!(text_done["status"], "ready", "{text_done}");
    assert_eq!(text_done["pages"], 1);
    let chunks = chunk_texts(&app, &text).await;
    assert!(
        chunks
            .iter()
            .any(|c| c.text.contains("20 EUR") && c.heading_path == "Plans"),
        "{chunks:?}"
    );
    assert!(chunks.iter().any(|c| c.heading_path == "Plans > Refunds"));
    assert!(
        chunks.iter().all(|c| c.embedding.len() == 384 * 4),
        "384-dimension vectors"
    );

    let qa_done = app.settled_source(&a.key, &bot_id, &qa, 120).await;
    assert_eq!(qa_done["status"], "ready", "{qa_done}");
    let qa_chunks = chunk_texts(&app, &qa).await;
    assert!(
        qa_chunks
            .iter()
            .any(|c| c.heading_path == "Do you ship abroad?" && c.text.contains("EU"))
    );

    let pdf_id = pdf.body["id"].as_str().unwrap();
    let pdf_done = app.settled_source(&a.key, &bot_id, pdf_id, 180).await;
    assert_eq!(pdf_done["status"], "ready", "{pdf_done}");
    let pdf_page = &pdf_done["page_list"][0];
    assert!(pdf_page["page_count"].as_i64().unwrap_or(0) >= 2, "{pdf_page}");
    let pdf_chunks = chunk_texts(&app, pdf_id).await;
    assert!(
        pdf_chunks.iter().all(|c| c.page.is_some_and(|p| p >= 1)),
        "PDF chunks keep their page numbers"
    );
    assert!(
        pdf_chunks
            .iter()
            .map(|c| c.page)
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 2
    );

    let docx_id = docx.body["id"].as_str().unwrap();
    let docx_done = app.settled_source(&a.key, &bot_id, docx_id, 180).await;
    assert_eq!(docx_done["status"], "ready", "{docx_done}");
    assert!(docx_done["chunks"].as_i64().unwrap_or(0) >= 1);

    let corrupt_done = app
        .settled_source(&a.key, &bot_id, corrupt.body["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(corrupt_done["status"], "failed");
    assert_eq!(corrupt_done["error"]["code"], "CORRUPT_DOCUMENT", "{corrupt_done}");
    let empty_done = app
        .settled_source(&a.key, &bot_id, empty.body["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(empty_done["status"], "failed");
    assert_eq!(empty_done["error"]["code"], "NO_TEXT", "{empty_done}");

    // Lists filter by status and type; other organizations see nothing.
    let failed = app.get(&format!("{sources}?status=failed"), &a.key).await;
    assert_eq!(failed.body["data"].as_array().map(Vec::len), Some(2), "{}", failed.body);
    let docs = app.get(&format!("{sources}?type=document"), &a.key).await;
    assert_eq!(docs.body["data"].as_array().map(Vec::len), Some(4));
    assert_eq!(app.get(&sources, &b.key).await.error_code(), "BOT_NOT_FOUND");
    assert_eq!(
        app.get(&format!("{sources}/{text}"), &b.key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("{sources}/{text}"), &b.key).await.status,
        StatusCode::NOT_FOUND
    );
    let b_bot = bot(&app, &b.key).await;
    assert_eq!(
        app.get(&format!("/api/v1/bots/{b_bot}/sources/{text}"), &b.key)
            .await
            .error_code(),
        "SOURCE_NOT_FOUND"
    );

    // Refresh: unchanged content is not embedded again; a second refresh while running is refused.
    let refreshed = app
        .call(Method::POST, &format!("{sources}/{text}/refresh"), Some(&a.key), None)
        .await;
    assert_eq!(refreshed.status, StatusCode::ACCEPTED, "{}", refreshed.body);
    let busy = app
        .call(Method::POST, &format!("{sources}/{text}/refresh"), Some(&a.key), None)
        .await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(busy.error_code(), "SOURCE_BUSY");
    let again = app.settled_source(&a.key, &bot_id, &text, 120).await;
    assert_eq!(again["status"], "ready");
    assert_eq!(page(&again, "text").expect("page")["status"], "unchanged", "{again}");
    let events = app.get("/api/v1/events?type=source.indexed", &a.key).await;
    let last = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["stream_id"] == json!(text))
        .cloned()
        .unwrap();
    assert_eq!(last["data"]["embedded"], 0, "nothing re-embedded: {last}");

    // Schedules.
    let scheduled = app
        .patch(&format!("{sources}/{qa}"), &a.key, json!({"schedule": "daily"}))
        .await;
    assert_eq!(scheduled.status, StatusCode::OK, "{}", scheduled.body);
    assert_eq!(scheduled.body["schedule"], "daily");
    assert!(scheduled.body["next_refresh_at"].is_string());

    // Deleting a source: gone at once, its chunks purged by a job.
    assert_eq!(
        app.delete(&format!("{sources}/{text}"), &a.key).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("{sources}/{text}"), &a.key).await.error_code(),
        "SOURCE_NOT_FOUND"
    );
    let probe = app.store.clone();
    let text_id: uuid::Uuid = text.parse().unwrap();
    app.eventually(30, "chunks of the deleted source purged", || {
        let s = probe.clone();
        async move {
            chunks::Entity::find()
                .filter(chunks::Column::SourceId.eq(text_id))
                .count(s.db())
                .await
                .unwrap()
                == 0
        }
    })
    .await;

    // Storage of the deleted text is reclaimed; a live document keeps its file.
    let later = parley_domain::store::now() + chrono::TimeDelta::hours(2);
    let reclaimed = parley_domain::store::content::collect_garbage_blobs(&app.store, later)
        .await
        .unwrap();
    assert!(reclaimed >= 1, "the deleted text's stored body is reclaimed");
    let pdf_hash = pdf.body["spec"]["blob_hash"].as_str().unwrap();
    assert!(
        parley_domain::store::content::get_blob(&app.store, pdf_hash)
            .await
            .unwrap()
            .is_some()
    );

    // Storing bytes that are stored already makes them young again, so that
    // collection cannot take them between that write and its reference.
    let bytes = b"bytes stored twice, the second time long after the first";
    let hash = parley_domain::store::content::put_blob(&app.store, uuid::Uuid::now_v7(), bytes)
        .await
        .unwrap();
    let age = |hours: i64| parley_domain::store::now() - chrono::TimeDelta::hours(hours);
    parley_domain::store::entities::blobs::Entity::update_many()
        .col_expr(
            parley_domain::store::entities::blobs::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(age(3)),
        )
        .filter(parley_domain::store::entities::blobs::Column::Hash.eq(hash.as_str()))
        .exec(app.store.db())
        .await
        .unwrap();
    let again = parley_domain::store::content::put_blob(&app.store, uuid::Uuid::now_v7(), bytes)
        .await
        .unwrap();
    assert_eq!(again, hash);
    parley_domain::store::content::collect_garbage_blobs(&app.store, age(1))
        .await
        .unwrap();
    let kept = parley_domain::store::content::get_blob(&app.store, &hash)
        .await
        .unwrap();
    assert!(kept.is_some(), "bytes written again an instant ago are not collected");
    parley_domain::store::content::collect_garbage_blobs(&app.store, age(-1))
        .await
        .unwrap();
    let gone = parley_domain::store::content::get_blob(&app.store, &hash)
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "unreferenced bytes older than the cut-off are collected"
    );

    // The feed shows sources without repeating their bodies.
    let added = app.get("/api/v1/events?type=source.added", &a.key).await;
    let first = &added.body["data"][0]["data"];
    assert_eq!(first["spec"]["kind"], "text");
    assert!(first["spec"].get("body").is_none(), "{first}");

    // Deleting the bot deletes and purges its sources.
    assert_eq!(
        app.delete(&format!("/api/v1/bots/{bot_id}"), &a.key).await.status,
        StatusCode::NO_CONTENT
    );
    let bot_uuid: uuid::Uuid = bot_id.parse().unwrap();
    app.eventually(60, "every chunk of the deleted bot purged", || {
        let s = probe.clone();
        async move {
            chunks::Entity::find()
                .filter(chunks::Column::BotId.eq(bot_uuid))
                .count(s.db())
                .await
                .unwrap()
                == 0
        }
    })
    .await;
    app.eventually(60, "every source purged", || {
        let s = probe.clone();
        async move {
            s.read_log(None, 0, 1000, &["source.purged".to_owned()])
                .await
                .unwrap()
                .len()
                == 6
        }
    })
    .await;
    app.stop().await;
    env.cleanup().await;
}

/// A small site: a folder with pages, a PDF, robots.txt and a sitemap.
fn write_site(root: &Path) {
    let docs = root.join("docs");
    std::fs::create_dir_all(docs.join("secret")).unwrap();
    let page = |title: &str, body: &str, links: &[&str]| {
        let links: String = links
            .iter()
            .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
            .collect();
        format!(
            "<!doctype html><html><head><title>{title}</title></head><body><nav><ul>{links}</ul></nav><main><h1>{title}</h1><p>{body}</p></main></body></html>"
        )
    };
    std::fs::write(
        docs.join("index.html"),
        page(
            "Acme docs",
            "Welcome to the Acme documentation.",
            &[
                "a.html",
                "b.html",
                "secret/x.html",
                "print.html",
                "../outside.html",
                "manual.pdf",
            ],
        ),
    )
    .unwrap();
    std::fs::write(
        docs.join("a.html"),
        page(
            "Installing",
            "Run the installer and accept the licence.",
            &["index.html"],
        ),
    )
    .unwrap();
    std::fs::write(
        docs.join("b.html"),
        page("Pricing", "The Pro plan costs 20 EUR per month.", &["index.html"]),
    )
    .unwrap();
    std::fs::write(docs.join("secret/x.html"), page("Secret", "Not for robots.", &[])).unwrap();
    std::fs::write(docs.join("print.html"), page("Print", "Everything on one page.", &[])).unwrap();
    std::fs::write(root.join("outside.html"), page("Outside", "Not under /docs/.", &[])).unwrap();
    std::fs::copy(shared("pdf/multi_page.pdf"), docs.join("manual.pdf")).unwrap();
    std::fs::write(root.join("robots.txt"), "User-agent: *\nDisallow: /docs/secret\n").unwrap();
}

fn write_sitemap(root: &Path, base: &str, pages: &[&str]) {
    let urls: String = pages
        .iter()
        .map(|p| format!("<url><loc>{base}/{p}</loc></url>"))
        .collect();
    std::fs::write(
        root.join("sitemap.xml"),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">{urls}</urlset>"),
    )
    .unwrap();
}

fn keys(source: &Value) -> Vec<String> {
    let mut keys: Vec<String> = source["page_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] != "failed")
        .map(|p| p["key"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

pub async fn site_crawl_refresh_and_robots(backend: Backend) {
    let dir = tempdir("site");
    write_site(&dir);
    let site = StaticSite::serve(dir.clone()).await;
    write_sitemap(&dir, &site.base, &["docs/a.html", "docs/b.html", "docs/secret/x.html"]);
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;

    let crawl = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "sitemap", "url": format!("{}/docs/index.html", site.base),
        "exclude": ["**/print.html"]}),
    )
    .await;
    let done = app.settled_source(&a.key, &bot_id, &crawl, 180).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(
        keys(&done),
        ["a.html", "b.html", "index.html", "manual.pdf"],
        "robots, folder and pattern respected: {done}"
    );
    assert_eq!(done["pages"], 4);

    let from_sitemap = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "sitemap", "url": format!("{}/sitemap.xml", site.base)}),
    )
    .await;
    let done_map = app.settled_source(&a.key, &bot_id, &from_sitemap, 180).await;
    assert_eq!(done_map["status"], "ready", "{done_map}");
    assert_eq!(
        keys(&done_map),
        ["a.html", "b.html"],
        "robots.txt applies to sitemap URLs too"
    );

    // Change one page: exactly that page is embedded again.
    std::fs::write(
        dir.join("docs/b.html"),
        "<!doctype html><html><head><title>Pricing</title></head><body><main><h1>Pricing</h1><p>The Pro plan now costs 25 EUR per month.</p></main></body></html>",
    )
    .unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/bots/{bot_id}/sources/{crawl}/refresh"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let refreshed = app.settled_source(&a.key, &bot_id, &crawl, 180).await;
    let statuses: Vec<(String, String)> = refreshed["page_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().rsplit('/').next().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ready: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| s == "ready")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(ready, ["b.html"], "{statuses:?}");
    assert_eq!(statuses.iter().filter(|(_, s)| s == "unchanged").count(), 3);
    let chunks = chunk_texts(&app, &crawl).await;
    assert!(chunks.iter().any(|c| c.text.contains("25 EUR")) && !chunks.iter().any(|c| c.text.contains("20 EUR")));

    // A page that leaves the sitemap leaves the index.
    write_sitemap(&dir, &site.base, &["docs/b.html"]);
    app.call(
        Method::POST,
        &format!("/api/v1/bots/{bot_id}/sources/{from_sitemap}/refresh"),
        Some(&a.key),
        None,
    )
    .await;
    let shrunk = app.settled_source(&a.key, &bot_id, &from_sitemap, 180).await;
    assert_eq!(keys(&shrunk), ["b.html"], "{shrunk}");
    assert!(
        chunk_texts(&app, &from_sitemap)
            .await
            .iter()
            .all(|c| !c.doc_key.ends_with("a.html"))
    );
    let indexed = app.get("/api/v1/events?type=source.indexed", &a.key).await;
    let last = indexed.body["data"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["data"]["removed"].as_array().map(Vec::len), Some(1), "{last}");
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

pub(crate) fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The Rust Book from this machine's toolchain, crawled from its index.
pub async fn rust_book_crawl(backend: Backend) {
    let book = std::env::var("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".rustup"))
        .join("toolchains");
    let book = std::fs::read_dir(&book)
        .unwrap()
        .map(|e| e.unwrap().path().join("share/doc/rust/html/book"))
        .find(|p| p.join("index.html").exists())
        .expect("the Rust Book of an installed toolchain");
    let dir = tempdir("book");
    copy_dir(&book, &dir);
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;

    let crawl = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "sitemap", "url": format!("{}/index.html", site.base),
        "exclude": ["**/print.html"]}),
    )
    .await;
    let done = app.settled_source(&a.key, &bot_id, &crawl, 900).await;
    assert_eq!(done["status"], "ready", "{}", done["error"]);
    let pages = done["pages"].as_i64().unwrap();
    println!(
        "rust book: {pages} pages, {} chunks, {} tokens",
        done["chunks"], done["tokens"]
    );
    assert!(pages >= 110, "{pages} pages");
    assert!(keys(&done).iter().all(|k| k != "print.html"));

    // A sitemap the test writes, of some of the same pages.
    let some: Vec<String> = keys(&done)
        .into_iter()
        .filter(|k| k.starts_with("ch0"))
        .take(12)
        .collect();
    let refs: Vec<&str> = some.iter().map(String::as_str).collect();
    write_sitemap(&dir, &site.base, &refs);
    let mapped = add(
        &app,
        &a.key,
        &bot_id,
        json!({"type": "sitemap", "url": format!("{}/sitemap.xml", site.base)}),
    )
    .await;
    let mapped_done = app.settled_source(&a.key, &bot_id, &mapped, 600).await;
    assert_eq!(mapped_done["status"], "ready");
    assert_eq!(keys(&mapped_done), some);

    // Change one page: exactly that page is embedded again.
    let page_path = dir.join("ch01-01-installation.html");
    let html = std::fs::read_to_string(&page_path).unwrap();
    std::fs::write(
        &page_path,
        html.replacen(
            "<main>",
            "<main><p>Parley added this paragraph for the refresh test.</p>",
            1,
        ),
    )
    .unwrap();
    app.call(
        Method::POST,
        &format!("/api/v1/bots/{bot_id}/sources/{crawl}/refresh"),
        Some(&a.key),
        None,
    )
    .await;
    let refreshed = app.settled_source(&a.key, &bot_id, &crawl, 600).await;
    let ready: Vec<&str> = refreshed["page_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "ready")
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(ready[0].ends_with("ch01-01-installation.html"));
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The worker dies in the middle of a crawl; after a restart the source
/// still reaches `ready`, with each page and chunk once.
/// A site of an index page linking eleven pages, each with one fact.
pub(crate) fn eleven_page_site(name: &str) -> PathBuf {
    let dir = tempdir(name);
    let links: Vec<String> = (1..=11).map(|i| format!("p{i}.html")).collect();
    let anchors: String = links.iter().map(|l| format!("<a href=\"{l}\">{l}</a> ")).collect();
    std::fs::write(
        dir.join("index.html"),
        format!("<html><body><main><h1>Index</h1><p>{anchors}</p></main></body></html>"),
    )
    .unwrap();
    for (i, l) in links.iter().enumerate() {
        let body = format!(
            "<html><head><title>Page {i}</title></head><body><main><h1>Page {i}</h1><p>Fact number {i} about the product is stated here.</p></main></body></html>"
        );
        std::fs::write(dir.join(l), body).unwrap();
    }
    dir
}

pub async fn crawl_survives_a_killed_worker(backend: Backend) {
    let dir = eleven_page_site("slow-site");
    let site = StaticSite::serve(dir.clone()).await;
    let env = TestEnv::new(backend).await;
    // A slow crawl (one request at a time, 500 ms apart) so the kill lands in its middle.
    let slow = env
        .start_with(Roles::ALL, |s| {
            s.crawl_delay_ms = 500;
            s.crawl_concurrency = 1;
        })
        .await;
    let a = slow.create_org("Acme").await;
    let bot_id = bot(&slow, &a.key).await;
    let source = add_site(&slow, &a.key, &bot_id, &site).await;
    let path = format!("/api/v1/bots/{bot_id}/sources/{source}");
    let probe = (slow.client.clone(), format!("{}{path}", slow.base), a.key.clone());
    slow.eventually(30, "the crawl started", || {
        let (client, url, key) = probe.clone();
        async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            r.json::<Value>().await.unwrap()["status"] == "fetching"
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    slow.kill().await;

    let app = env.start(Roles::ALL).await;
    assert_whole(&app, &a.key, &bot_id, &source, 12).await;
    app.stop().await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The crawl reaches every page whatever its politeness settings (spider
/// alone stops after two or three pages when allowed one request at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_settings_do_not_lose_pages() {
    use parley_worker::ingest::crawl::crawl_site;
    use parley_worker::ingest::pipeline::{Ingest, IngestSettings};
    use parley_worker::net::NetPolicy;
    let dir = tempdir("settings-site");
    let links: Vec<String> = (1..=11).map(|i| format!("p{i}.html")).collect();
    let anchors: String = links.iter().map(|l| format!("<a href=\"{l}\">{l}</a> ")).collect();
    std::fs::write(
        dir.join("index.html"),
        format!("<html><body><main><p>{anchors}</p></main></body></html>"),
    )
    .unwrap();
    for l in &links {
        std::fs::write(dir.join(l), "<html><body><main><p>text</p></main></body></html>").unwrap();
    }
    let site = StaticSite::serve(dir.clone()).await;
    for (delay_ms, concurrency) in [(0u64, 4usize), (0, 1), (100, 1), (100, 2)] {
        let ingest = Ingest::new(IngestSettings {
            net: NetPolicy {
                allowed_private_hosts: vec!["127.0.0.1".into()],
            },
            crawl_delay: std::time::Duration::from_millis(delay_ms),
            crawl_concurrency: concurrency,
            ..Default::default()
        })
        .unwrap();
        let spec = parley_domain::aggregates::source::SourceSpec::Sitemap {
            url: format!("{}/index.html", site.base),
            include: vec![],
            exclude: vec![],
            max_pages: 100,
            max_depth: None,
        };
        let crawl = crawl_site(&ingest, &spec).await;
        assert_eq!(crawl.pages.len(), 12, "delay {delay_ms} ms, concurrency {concurrency}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A scheduled source refreshes itself when due. Time passing is simulated by
/// moving its `next_refresh_at` into the past.
pub async fn scheduled_refresh(backend: Backend) {
    use parley_domain::store::entities::sources;
    use sea_orm::{ActiveValue::Set, ActiveValue::Unchanged};
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;
    let source = add_text_ready(&app, &a.key, &bot_id, "T", "Opening hours: 9 to 5.").await;
    let r = app
        .patch(
            &format!("/api/v1/bots/{bot_id}/sources/{source}"),
            &a.key,
            json!({"schedule": "daily"}),
        )
        .await;
    let next: chrono::DateTime<chrono::Utc> = r.body["next_refresh_at"].as_str().unwrap().parse().unwrap();
    let last: chrono::DateTime<chrono::Utc> = r.body["last_indexed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next - last,
        chrono::TimeDelta::days(1),
        "due a day after the last indexing"
    );

    // A second dispatcher does nothing while the running worker holds the lease.
    let mut other = parley_worker::Dispatcher::new(app.store.clone(), app.queue.clone());
    assert_eq!(other.refresh_due_sources().await.unwrap(), 0);

    // A day later: the worker's dispatcher (checking every 30 s) requests the refresh.
    let id: uuid::Uuid = source.parse().unwrap();
    let past = parley_domain::store::now() - chrono::TimeDelta::minutes(1);
    sources::Entity::update(sources::ActiveModel {
        id: Unchanged(id),
        next_refresh_at: Set(Some(past)),
        ..Default::default()
    })
    .exec(app.store.db())
    .await
    .unwrap();
    let probe = app.store.clone();
    app.eventually(60, "a scheduled refresh", || {
        let s = probe.clone();
        async move {
            !s.read_log(None, 0, 100, &["source.refresh_requested".to_owned()])
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    let refreshed = app.settled_source(&a.key, &bot_id, &source, 120).await;
    assert_eq!(refreshed["status"], "ready");
    let requested = app.get("/api/v1/events?type=source.refresh_requested", &a.key).await;
    assert_eq!(
        requested.body["data"][0]["data"]["reason"], "scheduled",
        "{}",
        requested.body
    );
    let next_again: chrono::DateTime<chrono::Utc> = refreshed["next_refresh_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next_again > parley_domain::store::now(),
        "the next refresh moved a day ahead"
    );
    app.stop().await;
    env.cleanup().await;
}

/// Real PDFs that position every glyph on its own (Word and PDF printer
/// output of clinical-trial protocols) are uploaded through the API; a
/// sentence of each, as poppler's `pdftotext` reads it, is found by search
/// with its words intact, and the chunk is cited with the document's title.
pub async fn letter_spaced_real_pdfs(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Acme").await;
    let bot_id = bot(&app, &a.key).await;
    let files = [
        "nih-NCT06149832_Prot_000.pdf",
        "nih-NCT06153992_ICF_001.pdf",
        "nih-NCT06159946_Prot_000.pdf",
    ];
    let mut sources = Vec::new();
    for name in files {
        let r = app
            .upload(
                &a.key,
                &bot_id,
                name,
                std::fs::read(shared(&format!("realworld/{name}"))).unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        sources.push(r.body["id"].as_str().unwrap().to_owned());
    }
    for (name, source) in files.iter().zip(&sources) {
        let done = app.settled_source(&a.key, &bot_id, source, 600).await;
        assert_eq!(done["status"], "ready", "{name}: {}", done["error"]);
        // A sentence from the middle of the reference text: 10 to 20 words of letters.
        let reference = std::fs::read_to_string(shared(&format!("realworld/pdftotext/{name}.txt"))).unwrap();
        let lines: Vec<&str> = reference.lines().collect();
        let sentence = lines[lines.len() / 3..]
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| {
                (10..=20).contains(&w.len())
                    && w.iter()
                        .all(|w| w.chars().all(|c| c.is_ascii_alphabetic() || ",.;:()".contains(c)))
            })
            .map(|w| w[..8].join(" "))
            .expect("a sentence in the reference");
        let r = app
            .post(
                &format!("/api/v1/bots/{bot_id}/search"),
                &a.key,
                json!({"query": sentence, "limit": 5, "source_ids": [source]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let results = r.body["results"].as_array().unwrap();
        let normalized = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let hit = results
            .iter()
            .find(|h| normalized(h["text"].as_str().unwrap_or("")).contains(&sentence.to_lowercase()));
        assert!(hit.is_some(), "{name}: \"{sentence}\" not in {}", r.body);
        let title = hit.unwrap()["title"].as_str().unwrap_or("");
        assert!(
            !title.is_empty(),
            "{name}: a chunk without its document's title: {}",
            r.body
        );

        // The owner reads what was extracted and how it was cut.
        let doc = app
            .get(&format!("/api/v1/bots/{bot_id}/sources/{source}/document"), &a.key)
            .await;
        assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
        assert_eq!(doc.body["key"], *name);
        assert_eq!(doc.body["title"], title);
        assert!(
            doc.body["page_count"].as_i64().unwrap() > 1,
            "{}",
            doc.body["page_count"]
        );
        assert!(normalized(doc.body["text"].as_str().unwrap()).contains(&sentence.to_lowercase()));
        let chunks = doc.body["chunks"].as_array().unwrap();
        assert_eq!(chunks.len() as i64, done["chunks"].as_i64().unwrap());
        assert!(chunks.iter().enumerate().all(|(i, c)| {
            c["ordinal"] == i as i64
                && c["page"].as_i64().is_some()
                && c["context"]
                    .as_str()
                    .unwrap()
                    .starts_with(title.split(" > ").next().unwrap())
        }));
        let missing = app
            .get(
                &format!("/api/v1/bots/{bot_id}/sources/{source}/document?key=other.pdf"),
                &a.key,
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.error_code(), "DOCUMENT_NOT_FOUND");
    }

    // The owner renames a document: citations, the page list and what is
    // searched use the new title, and a refresh keeps it.
    let (name, source) = (files[0], &sources[0]);
    let document = format!("/api/v1/bots/{bot_id}/sources/{source}/document");
    for (body, status, code) in [
        (
            json!({"title": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"title": "x".repeat(301)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"title": "ok\u{0}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
    ] {
        let r = app.patch(&document, &a.key, body).await;
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.error_code(), code);
    }
    let r = app
        .patch(&format!("{document}?key=other.pdf"), &a.key, json!({"title": "Other"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.error_code(), "DOCUMENT_NOT_FOUND");
    let renamed = "Quokka   handbook\nof the trial";
    let r = app.patch(&document, &a.key, json!({ "title": renamed })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["key"], *name);
    assert_eq!(r.body["title"], "Quokka handbook of the trial");
    app.eventually(300, "the chunks embedded under the new title", || async {
        let doc = app.get(&document, &a.key).await;
        doc.body["title"] == "Quokka handbook of the trial"
            && doc.body["chunks"].as_array().is_some_and(|c| {
                !c.is_empty()
                    && c.iter().all(|c| {
                        c["context"]
                            .as_str()
                            .unwrap()
                            .starts_with("Quokka handbook of the trial")
                    })
            })
    })
    .await;
    // The title is searched: a word only the new title has finds the document.
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/search"),
            &a.key,
            json!({"query": "quokka handbook", "limit": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = &r.body["results"][0];
    assert_eq!(first["source_id"], source.as_str(), "{}", r.body);
    assert_eq!(first["title"], "Quokka handbook of the trial", "{}", r.body);
    // A refresh keeps the owner's title.
    let r = app
        .post(
            &format!("/api/v1/bots/{bot_id}/sources/{source}/refresh"),
            &a.key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let done = app.settled_source(&a.key, &bot_id, source, 600).await;
    assert_eq!(done["status"], "ready", "{}", done["error"]);
    assert_eq!(done["page_list"][0]["title"], "Quokka handbook of the trial", "{done}");
    let doc = app.get(&document, &a.key).await;
    assert_eq!(doc.body["title"], "Quokka handbook of the trial");
    app.stop().await;
    env.cleanup().await;
}

/// The real parser under its own limits: a document that needs more memory
/// than the address-space limit fails as `TOO_LARGE` (the allocation fails in
/// the child, which dies), and the same parser reads an ordinary page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_parser_runs_out_of_memory_alone() {
    use parley_worker::ingest::parse::{Kind, Sandbox, sandbox};
    let sandbox = Sandbox {
        program: crate::harness::parley_binary(),
        args: vec![sandbox::SUBCOMMAND.to_owned()],
        memory_bytes: 256 << 20,
        cpu_seconds: 30,
    };
    let deadline = std::time::Duration::from_secs(60);
    // 300 MB of text: reading it alone is more than the child may map.
    let huge = b"word ".repeat(60 << 20);
    let err = sandbox::parse_in_child(&sandbox, Kind::Text, huge, None, deadline)
        .await
        .unwrap_err();
    assert_eq!(err.code, "TOO_LARGE", "{err:?}");
    assert!(err.message.contains("256 MB"), "{err:?}");
    let page = b"<html><head><title>Fine</title></head><body><p>An ordinary page.</p></body></html>".to_vec();
    let doc = sandbox::parse_in_child(&sandbox, Kind::Html, page, Some("https://example.test/"), deadline)
        .await
        .unwrap();
    assert_eq!(doc.title.as_deref(), Some("Fine"));
}
