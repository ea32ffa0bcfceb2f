//! `parley bench crawl`: the resident memory of one `parley serve` process
//! (a child of the benchmark, on a throwaway SQLite database) while it
//! crawls a generated local site through its sitemap: `pages` pages of
//! `page_mb` MB each (a short text and a large inline script, as bloated
//! real pages are). Memory is read from `/proc` every 100 ms and reported
//! per stage of the source (fetching, parsing, embedding) against the idle
//! process. The site is served by this process, so its memory is not counted.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use poem::web::Path;
use poem::{Body, Route, get, handler};

/// What the generated site serves.
struct Site {
    pages: usize,
    filler: bytes::Bytes,
}

fn sitemap(site: &Site, base: &str) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#,
    );
    for i in 0..site.pages {
        xml.push_str(&format!("<url><loc>{base}/p/{i}.html</loc></url>"));
    }
    xml.push_str("</urlset>");
    xml
}

/// Page `i`: a title and a sentence of its own, then the shared filler
/// inside a script (streamed, never copied).
fn page(site: &Site, i: usize) -> Body {
    let head = format!(
        "<!doctype html><html><head><title>Page {i}</title></head><body><main><h1>Page {i}</h1>\
         <p>Page {i} says that parcel {i} ships on weekday {}.</p></main><script>var filler = \"",
        i % 5
    );
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(head)),
        Ok(site.filler.clone()),
        Ok(bytes::Bytes::from_static(b"\";</script></body></html>")),
    ];
    Body::from_bytes_stream(futures::stream::iter(chunks))
}

/// By stage: the highest resident memory seen (MB), the first and the last sample.
type Peaks = BTreeMap<String, (f64, Instant, Instant)>;

/// Resident memory of a process (`VmRSS`), in MB.
fn rss_mb(pid: u32) -> Option<f64> {
    super::hostile::proc_memory_mib(Some(pid), "VmRSS")
}

/// A `parley serve` of the benchmark's own, killed when dropped.
struct Serve {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn crawl(pages: usize, page_mb: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let site = Arc::new(Site {
        pages,
        filler: bytes::Bytes::from(vec![b'x'; page_mb << 20]),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let site_port = listener.local_addr()?.port();
    drop(listener);
    let base = format!("http://127.0.0.1:{site_port}");
    let routes = {
        let (for_map, for_pages, base) = (site.clone(), site.clone(), base.clone());
        #[handler]
        fn sitemap_xml(poem::web::Data(state): poem::web::Data<&(Arc<Site>, String)>) -> String {
            sitemap(&state.0, &state.1)
        }
        #[handler]
        fn page_html(Path(name): Path<String>, poem::web::Data(site): poem::web::Data<&Arc<Site>>) -> poem::Response {
            match name.strip_suffix(".html").and_then(|n| n.parse::<usize>().ok()) {
                Some(i) if i < site.pages => poem::Response::builder()
                    .content_type("text/html; charset=utf-8")
                    .body(page(site, i)),
                _ => poem::Response::builder()
                    .status(poem::http::StatusCode::NOT_FOUND)
                    .finish(),
            }
        }
        use poem::EndpointExt;
        Route::new()
            .at("/sitemap.xml", get(sitemap_xml).data((for_map, base)))
            .at("/p/:name", get(page_html).data(for_pages))
    };
    let server = tokio::spawn(
        poem::Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{site_port}"))).run(routes),
    );

    // The process under measure, on a database of its own.
    let dir = std::env::temp_dir().join(format!("parley-bench-crawl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let envs = [
        ("PARLEY_DATABASE_URL", format!("sqlite://{}/parley.db", dir.display())),
        ("PARLEY_LISTEN", format!("127.0.0.1:{port}")),
        ("PARLEY_ALLOWED_PRIVATE_HOSTS", "127.0.0.1".to_owned()),
        ("PARLEY_CRAWL_DELAY_MS", "0".to_owned()),
        ("PARLEY_MAX_PAGES_CAP", pages.max(1).to_string()),
        ("PARLEY_LOG_LEVEL", "warn".to_owned()),
    ];
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(&exe)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "parley {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(&["migrate"])?;
    let created = run(&["admin", "create-org", "--name", "Crawl benchmark"])?;
    let key = created
        .split_whitespace()
        .find_map(|w| w.find("pk_").map(|at| w[at..].to_owned()))
        .context("no API key in the output of create-org")?;
    let serve = Serve {
        child: std::process::Command::new(&exe)
            .arg("serve")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
        dir,
    };
    let pid = serve.child.id();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(up, "parley serve did not start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(pid).context("cannot read the process's memory")?;
    println!(
        "parley bench crawl: {pages} pages of {page_mb} MB ({:.1} GB) from a local sitemap, crawled by one `parley serve` (SQLite, no crawl delay)",
        (pages * (page_mb << 20)) as f64 / 1e9
    );
    println!("idle: {idle:.0} MB resident");

    let bot: serde_json::Value = client
        .post(format!("{api}/bots"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "Crawl benchmark"}))
        .send()
        .await?
        .json()
        .await?;
    let bot_id = bot["id"].as_str().context("no bot id")?.to_owned();
    let added: serde_json::Value = client
        .post(format!("{api}/bots/{bot_id}/sources"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"type": "sitemap", "url": format!("{base}/sitemap.xml"), "max_pages": pages}))
        .send()
        .await?
        .json()
        .await?;
    let source_id = added["id"]
        .as_str()
        .with_context(|| format!("no source: {added}"))?
        .to_owned();

    // Memory every 100 ms, attributed to the stage the source is in.
    let stage = Arc::new(Mutex::new(String::from("pending")));
    let peaks: Arc<Mutex<Peaks>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stage, peaks, done) = (stage.clone(), peaks.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_mb(pid) {
                    let now = Instant::now();
                    let name = stage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                    let mut peaks = peaks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let entry = peaks.entry(name).or_insert((rss, now, now));
                    entry.0 = entry.0.max(rss);
                    entry.2 = now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let finished = loop {
        let source: serde_json::Value = client
            .get(format!("{api}/bots/{bot_id}/sources/{source_id}"))
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        let status = source["status"].as_str().unwrap_or("?").to_owned();
        *stage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = status.clone();
        if status == "ready" || status == "failed" {
            break source;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(4 * 3600),
            "the source did not settle in 4 hours"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    server.abort();
    let peaks = peaks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    for stage in ["pending", "fetching", "parsing", "embedding"] {
        if let Some((peak, from, to)) = peaks.get(stage) {
            println!(
                "{stage:<10} {:>7.1} s   peak {peak:>6.0} MB resident ({:+.0} MB over idle)",
                to.duration_since(*from).as_secs_f64(),
                peak - idle
            );
        }
    }
    let ready_pages = finished["page_list"]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p["status"] == "ready").count());
    println!(
        "{}: {ready_pages} of {pages} pages ready, {} chunks, in {:.0} s",
        finished["status"].as_str().unwrap_or("?"),
        finished["chunks"],
        started.elapsed().as_secs_f64()
    );
    if let Some((fetching, ..)) = peaks.get("fetching") {
        println!(
            "goal: crawling stays under 300 MB over idle: {:.0} MB ({})",
            fetching - idle,
            if fetching - idle < 300.0 { "met" } else { "NOT met" }
        );
    }
    drop(serve);
    Ok(())
}
