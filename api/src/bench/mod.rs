//! `parley bench ...`: benchmarks that print numbers (one file per bench).
//!
//! This file: `parley bench ingest`, ingestion throughput on this machine.
//! Crawl pages/s (the Rust Book on loopback), PDF and DOCX parse rates on the
//! shared files, embedding chunks/s and tokens/s beside the raw ONNX Runtime
//! rate for the same chunks and batch size, and the time from "source added"
//! to "ready" through the real application.

pub mod answerability;
pub mod crawl;
pub mod documents;
pub mod gate;
pub mod hostile;
pub mod index_cache;
pub mod pdf;
pub mod retrieval;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_domain::aggregates::source::SourceSpec;
use parley_domain::chunking::{ChunkConfig, chunk};
use parley_domain::document::Document;
use parley_worker::ingest::crawl::crawl_site;
use parley_worker::ingest::embed::{BATCH, Embedder};
use parley_worker::ingest::parse::{self, Kind, ParseLimits};
use parley_worker::ingest::pipeline::{Ingest, IngestSettings};
use parley_worker::net::NetPolicy;

use crate::app::{Application, Roles};
use crate::config::Settings;

/// Where to find the inputs.
pub struct BenchInputs {
    pub book: Option<PathBuf>,
    pub docs: PathBuf,
    pub chunks: usize,
}

pub(crate) fn find_book() -> Option<PathBuf> {
    let home = std::env::var("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        .ok()?;
    std::fs::read_dir(home.join("toolchains"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("share/doc/rust/html/book"))
        .find(|p| p.join("index.html").exists())
}

pub(crate) async fn serve_dir(dir: PathBuf) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    let app = poem::endpoint::StaticFilesEndpoint::new(dir).index_file("index.html");
    let task = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok((format!("http://127.0.0.1:{port}"), task))
}

fn rate(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

pub async fn ingest(settings: &Settings, inputs: BenchInputs) -> anyhow::Result<()> {
    let book = inputs
        .book
        .or_else(find_book)
        .context("no Rust Book found: pass --book DIR")?;
    let (base, server) = serve_dir(book.clone()).await?;
    let models_dir = PathBuf::from(&settings.models_dir);
    let ingest_settings = IngestSettings {
        net: NetPolicy {
            allowed_private_hosts: vec!["127.0.0.1".into()],
        },
        models_dir: models_dir.clone(),
        crawl_delay: Duration::ZERO,
        crawl_concurrency: 4,
        ..IngestSettings::default()
    };
    let ingest = Ingest::new(ingest_settings)?;
    println!(
        "parley bench ingest ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Crawl.
    let spec = SourceSpec::Sitemap {
        url: format!("{base}/index.html"),
        include: vec![],
        exclude: vec!["**/print.html".into()],
        max_pages: 500,
        max_depth: None,
    };
    let started = Instant::now();
    let crawl = crawl_site(&ingest, &spec).await;
    let crawl_time = started.elapsed();
    if let Some((code, message)) = crawl.refused {
        bail!("crawl refused: {code} {message}");
    }
    let ok_pages: Vec<_> = crawl.pages.iter().filter(|p| (200..300).contains(&p.status)).collect();
    println!(
        "crawl            {:>8.1} pages/s   ({} pages of the Rust Book in {:.2} s, loopback, 4 in flight)",
        rate(ok_pages.len() as f64, crawl_time),
        ok_pages.len(),
        crawl_time.as_secs_f64()
    );

    // 2. Parsing, in sandboxed child processes as the worker does (and the
    // HTML pages once more on a thread of this process: the difference is
    // what the process boundary costs).
    let limits = ParseLimits {
        sandbox: settings.ingest().parse_sandbox,
        ..ParseLimits::default()
    };
    let started = Instant::now();
    let mut docs: Vec<Document> = Vec::new();
    for page in &ok_pages {
        if let Ok(doc) = parse::parse(Kind::Html, page.bytes.clone(), None, &limits).await {
            docs.push(doc);
        }
    }
    let html_time = started.elapsed();
    println!(
        "parse HTML       {:>8.1} pages/s   ({} pages in {:.2} s{})",
        rate(docs.len() as f64, html_time),
        docs.len(),
        html_time.as_secs_f64(),
        if limits.sandbox.is_some() {
            ", a child process each"
        } else {
            ""
        }
    );
    if limits.sandbox.is_some() {
        let in_process = ParseLimits::default();
        let started = Instant::now();
        for page in &ok_pages {
            let _ = parse::parse(Kind::Html, page.bytes.clone(), None, &in_process).await;
        }
        let thread_time = started.elapsed();
        println!(
            "  in process     {:>8.1} pages/s   (the process boundary costs {:.1} ms a document)",
            rate(ok_pages.len() as f64, thread_time),
            (html_time.as_secs_f64() - thread_time.as_secs_f64()) * 1e3 / ok_pages.len().max(1) as f64
        );
    }

    let mut pdf_pages = 0u32;
    let mut pdf_time = Duration::ZERO;
    let mut pdf_files = 0;
    for entry in sorted_files(&inputs.docs.join("pdf")) {
        let bytes = std::fs::read(&entry)?;
        let started = Instant::now();
        let parsed = parse::parse(Kind::Pdf, bytes, None, &limits).await;
        pdf_time += started.elapsed();
        match parsed {
            Ok(doc) => {
                pdf_pages += doc.page_count.unwrap_or(0);
                pdf_files += 1;
            }
            Err(e) => println!("  {}: {} ({})", entry.display(), e.code, e.message),
        }
    }
    println!(
        "parse PDF        {:>8.1} pages/s   ({pdf_pages} pages in {pdf_files} files, {:.2} s)",
        rate(f64::from(pdf_pages), pdf_time),
        pdf_time.as_secs_f64()
    );

    let mut docx_time = Duration::ZERO;
    let mut docx_bytes = 0usize;
    let mut docx_files = 0;
    for entry in sorted_files(&inputs.docs.join("docx")) {
        let bytes = std::fs::read(&entry)?;
        docx_bytes += bytes.len();
        let started = Instant::now();
        let parsed = parse::parse(Kind::Docx, bytes, None, &limits).await;
        let took = started.elapsed();
        docx_time += took;
        if entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("handbook-872p"))
        {
            println!(
                "parse DOCX       {:>8.1} pages/s   (the 872-page handbook in {:.3} s)",
                rate(872.0, took),
                took.as_secs_f64()
            );
        }
        match parsed {
            Ok(_) => docx_files += 1,
            Err(e) => println!("  {}: {} ({})", entry.display(), e.code, e.message),
        }
    }
    println!(
        "parse DOCX       {:>8.1} files/s   ({docx_files} files, {:.1} MB, {:.2} s)",
        rate(f64::from(docx_files), docx_time),
        docx_bytes as f64 / 1e6,
        docx_time.as_secs_f64()
    );

    // 3. Embedding, beside raw ONNX Runtime on the same chunks and batch size.
    let embedder = Arc::new(Embedder::new(
        models_dir.clone(),
        settings.worker_concurrency.max(2),
        settings.arena(),
    ));
    let model = embedder.model().await.map_err(anyhow::Error::msg)?;
    let mut texts: Vec<String> = Vec::new();
    let mut tokens = 0usize;
    for doc in &docs {
        for c in chunk(doc, &model.counter, ChunkConfig::default()) {
            if texts.len() >= inputs.chunks {
                break;
            }
            tokens += c.tokens as usize;
            texts.push(c.embedding_text());
        }
    }
    let _warm = embedder
        .embed(texts[..BATCH.min(texts.len())].to_vec())
        .await
        .map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    embedder.embed(texts.clone()).await.map_err(anyhow::Error::msg)?;
    let embed_time = started.elapsed();
    let pipeline_rate = rate(texts.len() as f64, embed_time);
    println!(
        "embed (Parley)   {:>8.1} chunks/s  {:>8.0} tokens/s  ({} chunks of {:.0} tokens on average, batch {BATCH}, {:.1} s)",
        pipeline_rate,
        rate(tokens as f64, embed_time),
        texts.len(),
        tokens as f64 / texts.len().max(1) as f64,
        embed_time.as_secs_f64()
    );
    match raw_onnx_runtime(&models_dir, &texts, settings.worker_concurrency.max(2)) {
        Ok(raw) => println!(
            "embed (raw ORT)  {:>8.1} chunks/s  (Python onnxruntime, same chunks, batch {BATCH}); Parley reaches {:.0}% of it",
            raw,
            100.0 * pipeline_rate / raw
        ),
        Err(e) => println!("embed (raw ORT)  unavailable: {e}"),
    }

    // 4. Source added → ready, through the real application (SQLite).
    let app = BenchApp::start(settings).await?;
    for (label, body) in [
        (
            "text (1 page)",
            serde_json::json!({"type": "text", "title": "Plans", "body": "# Plans\n\nThe Pro plan costs 20 EUR per month."}),
        ),
        (
            "site (20 pages)",
            serde_json::json!({"type": "sitemap", "url": format!("{base}/index.html"), "exclude": ["**/print.html"], "max_pages": 20}),
        ),
    ] {
        let started = Instant::now();
        let final_state = app.add_source(&body).await?;
        println!(
            "added → {:<7} {:>8.2} s         ({label}: {} chunks)",
            final_state["status"].as_str().unwrap_or_default(),
            started.elapsed().as_secs_f64(),
            final_state["chunks"]
        );
    }
    app.stop().await;
    server.abort();
    Ok(())
}

/// The real application on a fresh SQLite database, with one org and bot.
pub(crate) struct BenchApp {
    pub(crate) dir: PathBuf,
    pub(crate) client: reqwest::Client,
    pub(crate) api: String,
    pub(crate) key: String,
    pub(crate) bot_id: String,
    pub(crate) stop: tokio::sync::oneshot::Sender<()>,
    pub(crate) running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchApp {
    pub(crate) async fn start(settings: &Settings) -> anyhow::Result<BenchApp> {
        let dir = std::env::temp_dir().join(format!("parley-bench-{}", uuid::Uuid::new_v4().simple()));
        let mut app_settings = settings.clone();
        app_settings.listen = "127.0.0.1:0".into();
        app_settings.database_url = format!("sqlite://{}/bench.db", dir.display()).into();
        app_settings.redis_url = None;
        app_settings.allowed_private_hosts = "127.0.0.1".into();
        app_settings.crawl_delay_ms = 0;
        app_settings.crawl_concurrency = 4;
        // The benchmark polls and asks far more than a client should.
        app_settings.rate_limit_per_minute = 1_000_000;
        app_settings.crawl_limit = 1000;
        app_settings.plan_messages_per_month = 1_000_000;
        let app = Application::build(app_settings, Roles::ALL).await?;
        let port = app.port().context("no port")?;
        let store = app.state().store.clone();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until(async move {
            let _ = stop_rx.await;
        }));
        let org = crate::admin::create_org(&store, "Bench").await?;
        let client = reqwest::Client::new();
        let api = format!("http://127.0.0.1:{port}/api/v1");
        let bot = post_json(
            &client,
            &format!("{api}/bots"),
            &org.api_key,
            &serde_json::json!({"name": "Bench"}),
        )
        .await?;
        let bot_id = bot["id"].as_str().context("bot id")?.to_owned();
        Ok(BenchApp {
            dir,
            client,
            api,
            key: org.api_key,
            bot_id,
            stop,
            running,
        })
    }

    /// Adds a source and waits until it is ready or failed.
    pub(crate) async fn add_source(&self, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let (api, bot_id) = (&self.api, &self.bot_id);
        let source = post_json(&self.client, &format!("{api}/bots/{bot_id}/sources"), &self.key, body).await?;
        let id = source["id"].as_str().context("source id")?.to_owned();
        loop {
            let bytes = self
                .client
                .get(format!("{api}/bots/{bot_id}/sources/{id}"))
                .bearer_auth(&self.key)
                .send()
                .await?
                .bytes()
                .await?;
            let s: serde_json::Value = serde_json::from_slice(&bytes)?;
            if matches!(s["status"].as_str(), Some("ready" | "failed")) {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.running.await;
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

/// Questions about the Rust Book, asked in turn.
const QUESTIONS: &[&str] = &[
    "How do I install Rust with rustup?",
    "What is ownership?",
    "How do references and borrowing work?",
    "What is a slice?",
    "How do I define a struct?",
    "What does the match expression do?",
    "How do I read a line from standard input?",
    "What is shadowing?",
    "How do I create a new project with cargo?",
    "What are the scalar types in Rust?",
];

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// `parley bench chat`: time to the first SSE byte and to `[DONE]` for the
/// extractive provider, through the real API, over 40 pages of the Rust Book.
pub async fn chat(settings: &Settings, book: Option<PathBuf>, rounds: usize) -> anyhow::Result<()> {
    let book = book.or_else(find_book).context("no Rust Book found: pass --book DIR")?;
    let (base, server) = serve_dir(book).await?;
    println!(
        "parley bench chat ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let app = BenchApp::start(settings).await?;
    let source = app
        .add_source(
            &serde_json::json!({"type": "sitemap", "url": format!("{base}/index.html"),
                                         "exclude": ["**/print.html"], "max_pages": 40}),
        )
        .await?;
    println!(
        "knowledge: {} pages, {} chunks of the Rust Book",
        source["pages"], source["chunks"]
    );
    let url = format!("{}/bots/{}/chat", app.api, app.bot_id);
    let (mut first_bytes, mut dones, mut wholes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unanswered, mut retrieval_ms, mut generation_ms) = (0, 0u64, 0u64);
    for round in 0..=rounds {
        for q in QUESTIONS {
            let started = Instant::now();
            let resp = app
                .client
                .post(&url)
                .bearer_auth(&app.key)
                .json(&serde_json::json!({"message": q, "stream": true}))
                .send()
                .await?;
            let mut body = resp.bytes_stream();
            let mut first = None;
            let mut text = String::new();
            while let Some(bytes) = futures::StreamExt::next(&mut body).await {
                first.get_or_insert_with(|| started.elapsed());
                text.push_str(&String::from_utf8_lossy(&bytes?));
            }
            let done = started.elapsed();
            if !text.trim_end().ends_with("data: [DONE]") {
                bail!("the stream did not end with [DONE]: {text}");
            }
            let started = Instant::now();
            let whole = post_json(
                &app.client,
                &url,
                &app.key,
                &serde_json::json!({"message": q, "stream": false}),
            )
            .await?;
            let whole_time = started.elapsed();
            // The first round warms the index and the model up.
            if round > 0 {
                first_bytes.push(first.unwrap_or(done));
                dones.push(done);
                wholes.push(whole_time);
                unanswered += usize::from(whole["unanswered"] == true);
                retrieval_ms += whole["usage"]["retrieval_ms"].as_u64().unwrap_or(0);
                generation_ms += whole["usage"]["generation_ms"].as_u64().unwrap_or(0);
            }
        }
    }
    for v in [&mut first_bytes, &mut dones, &mut wholes] {
        v.sort();
    }
    let n = dones.len();
    println!(
        "first SSE byte   p50 {:>7.1} ms   p99 {:>7.1} ms   ({n} streamed questions)",
        percentile_ms(&first_bytes, 0.5),
        percentile_ms(&first_bytes, 0.99)
    );
    println!(
        "[DONE]           p50 {:>7.1} ms   p99 {:>7.1} ms",
        percentile_ms(&dones, 0.5),
        percentile_ms(&dones, 0.99)
    );
    println!(
        "whole JSON       p50 {:>7.1} ms   p99 {:>7.1} ms   ({unanswered} of {n} fell back to \"I don't know\")",
        percentile_ms(&wholes, 0.5),
        percentile_ms(&wholes, 0.99)
    );
    println!(
        "of which          retrieval {:.1} ms, composing the answer {:.1} ms (means, as the answers report them)",
        retrieval_ms as f64 / n.max(1) as f64,
        generation_ms as f64 / n.max(1) as f64
    );
    app.stop().await;
    server.abort();
    Ok(())
}

pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let bytes = client
        .post(url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await?
        .bytes()
        .await?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Raw ONNX Runtime throughput (Python onnxruntime) on the same texts.
fn raw_onnx_runtime(models_dir: &Path, texts: &[String], threads: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/reference_embeddings.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg("--models-dir")
        .arg(models_dir)
        .arg("--bench-batch")
        .arg(BATCH.to_string())
        .arg("--threads")
        .arg(threads.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(serde_json::to_string(texts)?.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("the reference script failed");
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    report["per_second"].as_f64().context("no rate")
}
