//! Crawling a site for a `sitemap` source: from a sitemap.xml (or a sitemap
//! index), or by following links from a start page with spider. Our own
//! client (the network guard) fetches everything; our own checks decide what
//! is in scope before any request: same host, under the start URL's folder,
//! include/exclude globs on the path, robots.txt (RFC 9309), the page limit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{Glob, GlobSet, GlobSetBuilder};
use parley_domain::aggregates::source::{PageRecord, SourceSpec};
use parley_domain::store::content::{self, FetchedDoc};
use parley_domain::store::{Store, StoreError};
use spider::fetch_engine::{EngineError, EngineRequest, EngineResponse, HttpFetchEngine};
use spider::reqwest;
use url::Url;
use uuid::Uuid;

use super::context::Ingest;
use super::parse::{self, Kind};
use crate::error::JobError;
use crate::net;

/// What a crawl fetched.
pub struct Crawled {
    pub fetched: u32,
    pub failures: Vec<PageRecord>,
}

/// The most of a robots.txt that is read.
const ROBOTS_MAX_BYTES: usize = 512 * 1024;

/// The robots.txt token Parley answers to.
pub const ROBOTS_AGENT: &str = "ParleyBot";

/// robots.txt of a site: missing (4xx) allows everything; unreachable or 5xx
/// disallows everything, as RFC 9309 asks.
pub enum Robots {
    AllowAll,
    DisallowAll,
    Rules(texting_robots::Robot),
}

impl Robots {
    pub async fn fetch(client: &reqwest::Client, origin: &Url) -> Robots {
        let Ok(url) = origin.join("/robots.txt") else {
            return Robots::DisallowAll;
        };
        match client.get(url).send().await {
            Ok(mut r) if r.status().is_success() => {
                // RFC 9309: at least 500 KiB are read; what comes after is ignored.
                let mut body = Vec::new();
                loop {
                    match r.chunk().await {
                        Ok(Some(chunk)) => {
                            let room = ROBOTS_MAX_BYTES - body.len();
                            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                            if body.len() == ROBOTS_MAX_BYTES {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => return Robots::DisallowAll,
                    }
                }
                texting_robots::Robot::new(ROBOTS_AGENT, &body).map_or(Robots::AllowAll, Robots::Rules)
            }
            Ok(r) if r.status().is_client_error() => Robots::AllowAll,
            _ => Robots::DisallowAll,
        }
    }

    pub fn allowed(&self, url: &str) -> bool {
        match self {
            Robots::AllowAll => true,
            Robots::DisallowAll => false,
            Robots::Rules(robot) => robot.allowed(url),
        }
    }
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p).map_err(|e| format!("`{p}`: {e}"))?);
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// Which URLs a crawl may fetch.
pub struct Scope {
    origin: Url,
    prefix: String,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    robots: Robots,
    policy: net::NetPolicy,
}

/// Why a URL was left out, or None when it is in scope.
impl Scope {
    pub fn refusal(&self, raw: &str) -> Option<&'static str> {
        let Ok(u) = Url::parse(raw) else { return Some("invalid") };
        if u.scheme() != self.origin.scheme()
            || u.host_str() != self.origin.host_str()
            || u.port_or_known_default() != self.origin.port_or_known_default()
        {
            return Some("off-site");
        }
        if net::check_literal(&u, &self.policy).is_err() {
            return Some("not allowed");
        }
        let path = u.path();
        if !path.starts_with(&self.prefix) {
            return Some("outside the start folder");
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(path))
            || self.exclude.as_ref().is_some_and(|g| g.is_match(path))
        {
            return Some("excluded by a pattern");
        }
        if !self.robots.allowed(raw) {
            return Some("disallowed by robots.txt");
        }
        None
    }
}

/// A page as fetched.
pub struct Page {
    pub requested: String,
    pub final_url: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub error: Option<String>,
    /// The code of `error` (`TOO_LARGE` past the download limit, else
    /// `FETCH_FAILED`).
    pub error_code: Option<&'static str>,
}

/// The URL without its fragment: the key of a page.
fn page_key(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => raw.to_owned(),
    }
}

async fn fetch_page(client: &reqwest::Client, url: &str, max_bytes: usize) -> Page {
    let mut page = Page {
        requested: url.to_owned(),
        final_url: url.to_owned(),
        status: 0,
        content_type: None,
        bytes: vec![],
        error: None,
        error_code: None,
    };
    let mut response = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            page.error = Some(e.to_string());
            page.error_code = Some("FETCH_FAILED");
            return page;
        }
    };
    page.status = response.status().as_u16();
    page.final_url = response.url().to_string();
    page.content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if page.bytes.len() + chunk.len() > max_bytes {
                    page.error = Some(format!("larger than {max_bytes} bytes"));
                    page.error_code = Some("TOO_LARGE");
                    page.bytes.clear();
                    break;
                }
                page.bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                page.error = Some(e.to_string());
                page.error_code = Some("FETCH_FAILED");
                break;
            }
        }
    }
    page
}

/// spider's transport: every request passes the scope check first, and every
/// response is handed to the crawl loop.
struct Engine {
    client: reqwest::Client,
    scope: Arc<Scope>,
    max_pages: usize,
    max_bytes: usize,
    started: AtomicUsize,
    seen: Mutex<HashSet<String>>,
    /// Requests in flight on the host: the crawl's concurrency limit.
    slots: tokio::sync::Semaphore,
    /// To the crawl loop, which stores each page. Bounded: a fetch waits
    /// while the pages before it are being stored, so pages never pile up
    /// in memory when storage is slower than the site.
    out: tokio::sync::mpsc::Sender<Page>,
}

#[async_trait::async_trait]
impl HttpFetchEngine for Engine {
    async fn fetch(&self, req: EngineRequest<'_>) -> Result<EngineResponse, EngineError> {
        if self.scope.refusal(req.url).is_some() {
            return Err(EngineError::Status(403));
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !seen.insert(page_key(req.url)) {
                return Err(EngineError::Status(403));
            }
        }
        if self.started.fetch_add(1, Ordering::SeqCst) >= self.max_pages {
            return Err(EngineError::Status(403));
        }
        let page = {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| EngineError::Other("crawl closed".into()))?;
            fetch_page(&self.client, req.url, self.max_bytes).await
        };
        let status = reqwest::StatusCode::from_u16(page.status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
        let final_url = (page.final_url != req.url).then(|| page.final_url.clone());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(ct) = page
            .content_type
            .as_deref()
            .and_then(|c| reqwest::header::HeaderValue::from_str(c).ok())
        {
            headers.insert(reqwest::header::CONTENT_TYPE, ct);
        }
        let body = page.bytes.clone();
        let failed = page.error.is_some() && page.status == 0;
        let _ = self.out.send(page).await;
        if failed {
            return Err(EngineError::Other("fetch failed".into()));
        }
        Ok(EngineResponse {
            status_code: status,
            final_url,
            headers,
            body,
            served: true,
            ..Default::default()
        })
    }
}

/// Whether bytes are a sitemap or a sitemap index.
fn is_sitemap(bytes: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).to_ascii_lowercase();
    head.contains("<urlset") || head.contains("<sitemapindex")
}

/// What one sitemap lists: page URLs and (for an index) other sitemaps.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SitemapEntries {
    pub pages: Vec<String>,
    pub sitemaps: Vec<String>,
}

/// Reads one sitemap or sitemap index; malformed entries are skipped.
pub fn parse_sitemap(bytes: &[u8]) -> SitemapEntries {
    let mut entries = SitemapEntries::default();
    for entity in sitemap::reader::SiteMapReader::new(bytes) {
        match entity {
            sitemap::reader::SiteMapEntity::Url(u) => {
                if let Some(loc) = u.loc.get_url() {
                    entries.pages.push(loc.to_string());
                }
            }
            sitemap::reader::SiteMapEntity::SiteMap(s) => {
                if let Some(loc) = s.loc.get_url() {
                    entries.sitemaps.push(loc.to_string());
                }
            }
            sitemap::reader::SiteMapEntity::Err(_) => {}
        }
    }
    entries
}

/// Page URLs of a sitemap that `keep` accepts, at most `limit` of them,
/// following sitemap indexes (at most 50 sitemaps); reading stops once
/// `limit` are found.
async fn sitemap_urls(
    client: &reqwest::Client,
    first: Vec<u8>,
    policy: &net::NetPolicy,
    max_bytes: usize,
    limit: usize,
    mut keep: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut urls = Vec::new();
    let mut queue = vec![first];
    let mut fetched_maps = 0;
    while let Some(bytes) = queue.pop() {
        let entries = tokio::task::spawn_blocking(move || parse_sitemap(&bytes))
            .await
            .unwrap_or_default();
        urls.extend(entries.pages.into_iter().filter(|u| keep(u)).take(limit - urls.len()));
        if urls.len() >= limit {
            break;
        }
        for child in entries.sitemaps {
            if fetched_maps >= 50 || net::check_url(&child, policy).await.is_err() {
                continue;
            }
            fetched_maps += 1;
            let page = fetch_page(client, &child, max_bytes).await;
            if (200..300).contains(&page.status) && is_sitemap(&page.bytes) {
                queue.push(page.bytes);
            }
        }
    }
    urls
}

/// Stores one fetched page; a failure becomes a page record.
async fn keep_page(
    store: &Store,
    org_id: Uuid,
    source_id: Uuid,
    run_id: Uuid,
    page: Page,
) -> Result<Option<PageRecord>, JobError> {
    let key = page_key(&page.final_url);
    if let Some(error) = page.error.filter(|_| page.bytes.is_empty()) {
        let code = page.error_code.unwrap_or("FETCH_FAILED");
        return Ok(Some(PageRecord::failed(&key, Some(&key), code, &error)));
    }
    if !(200..300).contains(&page.status) {
        return Ok(Some(PageRecord::failed(
            &key,
            Some(&key),
            "FETCH_FAILED",
            &format!("the server answered {}", page.status),
        )));
    }
    let kind = page
        .content_type
        .as_deref()
        .and_then(Kind::from_content_type)
        .filter(|k| matches!(k, Kind::Pdf | Kind::Docx | Kind::Html))
        .or_else(|| parse::detect(&page.bytes, &page.final_url).ok());
    let Some(kind) = kind else {
        return Ok(Some(PageRecord::failed(
            &key,
            Some(&key),
            "UNSUPPORTED_TYPE",
            "not HTML, PDF, DOCX or text",
        )));
    };
    let db = |e| JobError::from(StoreError::Db(e));
    let hash = content::put_blob(store, org_id, &page.bytes).await.map_err(db)?;
    let doc = FetchedDoc {
        doc_key: key.clone(),
        url: Some(key),
        title: None,
        content_type: kind.content_type().into(),
        raw_hash: hash,
    };
    content::record_fetched(store, source_id, run_id, doc)
        .await
        .map_err(db)?;
    Ok(None)
}

/// What a crawl found: pages (fetched or failed) and why nothing could start.
pub struct SiteCrawl {
    pub pages: Vec<Page>,
    /// Set when the crawl could not start at all (code, message).
    pub refused: Option<(&'static str, String)>,
}

/// Where a crawl hands each page as it arrives, so a crawl of thousands
/// of pages never holds more than the pages in flight.
#[async_trait::async_trait]
pub trait PageSink: Send {
    async fn accept(&mut self, page: Page) -> Result<(), JobError>;
}

/// Pages kept in memory (benchmarks and tests of the crawler).
#[async_trait::async_trait]
impl PageSink for Vec<Page> {
    async fn accept(&mut self, page: Page) -> Result<(), JobError> {
        self.push(page);
        Ok(())
    }
}

/// Crawls a site source, keeping every page in memory.
pub async fn crawl_site(ingest: &Ingest, spec: &SourceSpec) -> SiteCrawl {
    let mut pages = Vec::new();
    match crawl_site_into(ingest, spec, &mut pages).await {
        Ok(refused) => SiteCrawl { pages, refused },
        // A Vec accepts every page.
        Err(e) => SiteCrawl {
            pages,
            refused: Some(("FETCH_FAILED", e.to_string())),
        },
    }
}

/// Counts what a crawl hands on: the page limit and the pages' keys (for
/// the PDF links found after), never their bytes.
struct Handed<'a> {
    sink: &'a mut dyn PageSink,
    keys: HashSet<String>,
    max_pages: usize,
}

impl Handed<'_> {
    fn full(&self) -> bool {
        self.keys.len() >= self.max_pages
    }

    async fn hand(&mut self, scope: &Scope, page: Page) -> Result<(), JobError> {
        // A redirect may leave the allowed scope: such pages are not kept.
        if self.full() || scope.refusal(&page.final_url).is_some() {
            return Ok(());
        }
        self.keys.insert(page_key(&page.requested));
        self.sink.accept(page).await
    }
}

/// Crawls a site spec: a sitemap (or index), or links from a start page.
/// Crawls a site source, handing each page to `sink` as it arrives.
/// Returns why the crawl could not start at all (code, message), if so.
pub async fn crawl_site_into(
    ingest: &Ingest,
    spec: &SourceSpec,
    sink: &mut dyn PageSink,
) -> Result<Option<(&'static str, String)>, JobError> {
    let SourceSpec::Sitemap {
        url,
        include,
        exclude,
        max_pages,
        max_depth,
    } = spec
    else {
        return Ok(Some(("INVALID_SOURCE", "not a site source".into())));
    };
    let settings = &ingest.settings;
    let refuse = |code: &'static str, message: String| Ok(Some((code, message)));
    let start = match net::check_url(url, &settings.net).await {
        Ok(u) => u,
        Err(e) => return refuse("URL_NOT_ALLOWED", e.0),
    };
    let (include, exclude) = match (globset(include), globset(exclude)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) | (_, Err(e)) => return refuse("INVALID_PATTERN", e),
    };
    let robots = Robots::fetch(&ingest.client, &start).await;
    let first = fetch_page(&ingest.client, url, settings.max_download_bytes).await;
    if !(200..300).contains(&first.status) {
        let why = first
            .error
            .clone()
            .unwrap_or_else(|| format!("the server answered {}", first.status));
        return refuse("FETCH_FAILED", why);
    }
    let max_pages = *max_pages as usize;

    if is_sitemap(&first.bytes) {
        // The sitemap's folder is not a scope: a sitemap lists the site's pages.
        let scope = Scope {
            origin: start.clone(),
            prefix: "/".into(),
            include,
            exclude,
            robots,
            policy: settings.net.clone(),
        };
        let mut seen = HashSet::new();
        let urls = sitemap_urls(
            &ingest.client,
            first.bytes,
            &settings.net,
            settings.max_download_bytes,
            max_pages,
            |u| scope.refusal(u).is_none() && seen.insert(page_key(u)),
        )
        .await;
        let mut handed = Handed {
            sink,
            keys: HashSet::new(),
            max_pages,
        };
        for (i, u) in urls.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(settings.crawl_delay).await;
            }
            let page = fetch_page(&ingest.client, u, settings.max_download_bytes).await;
            handed.hand(&scope, page).await?;
        }
        return Ok(None);
    }

    // Link following from the start page, inside the start URL's folder.
    let path = start.path();
    let prefix = match path.rfind('/') {
        Some(i) => path[..=i].to_owned(),
        None => "/".to_owned(),
    };
    let depth = max_depth.map(|d| prefix.split('/').filter(|s| !s.is_empty()).count() + d as usize);
    let scope = Arc::new(Scope {
        origin: start.clone(),
        prefix,
        include,
        exclude,
        robots,
        policy: settings.net.clone(),
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel(settings.crawl_concurrency.max(1));
    let engine = Engine {
        client: ingest.client.clone(),
        scope: scope.clone(),
        max_pages,
        max_bytes: settings.max_download_bytes,
        started: AtomicUsize::new(0),
        seen: Mutex::new(HashSet::new()),
        slots: tokio::sync::Semaphore::new(settings.crawl_concurrency.max(1)),
        out: tx,
    };
    let mut website = spider::website::Website::new(url);
    website
        .with_fetch_engine(engine)
        .with_respect_robots_txt(false)
        .with_ignore_sitemap(true)
        .with_subdomains(false)
        .with_tld(false)
        .with_depth(depth.unwrap_or(0))
        .with_limit(u32::try_from(max_pages.saturating_mul(4).max(16)).unwrap_or(u32::MAX))
        // spider stops early with fewer than a few slots; the engine's
        // semaphore is what limits requests to the host.
        .with_concurrency_limit(Some(settings.crawl_concurrency.max(4)))
        .with_delay(settings.crawl_delay.as_millis() as u64)
        .with_user_agent(Some(net::USER_AGENT))
        .with_retry(0);
    website.set_http_client(ingest.client.clone());

    let mut pdf_links: Vec<String> = Vec::new();
    let mut handed = Handed {
        sink,
        keys: HashSet::new(),
        max_pages,
    };
    {
        let crawl = website.crawl();
        tokio::pin!(crawl);
        loop {
            tokio::select! {
                _ = &mut crawl => break,
                Some(page) = rx.recv() => {
                    if let Some(p) = keep_crawled(page, &mut pdf_links).await {
                        handed.hand(&scope, p).await?;
                    }
                }
            }
        }
    }
    while let Ok(page) = rx.try_recv() {
        if let Some(p) = keep_crawled(page, &mut pdf_links).await {
            handed.hand(&scope, p).await?;
        }
    }
    for link in pdf_links {
        if handed.full() {
            break;
        }
        if scope.refusal(&link).is_some() || handed.keys.contains(&page_key(&link)) {
            continue;
        }
        tokio::time::sleep(settings.crawl_delay).await;
        let page = fetch_page(&ingest.client, &link, settings.max_download_bytes).await;
        handed.hand(&scope, page).await?;
    }
    Ok(None)
}

/// Keeps a page spider reported (not the scope refusals), collecting the
/// PDF links of HTML pages, which spider does not follow. The HTML is read
/// on a blocking thread, off the async runtime.
async fn keep_crawled(page: Page, pdf_links: &mut Vec<String>) -> Option<Page> {
    if page.status == 403 && page.bytes.is_empty() && page.error.is_none() {
        return None;
    }
    if page.content_type.as_deref().and_then(Kind::from_content_type) != Some(Kind::Html) {
        return Some(page);
    }
    let (page, links) = tokio::task::spawn_blocking(move || {
        let links = pdf_links_of(&page);
        (page, links)
    })
    .await
    .ok()?;
    pdf_links.extend(links);
    Some(page)
}

fn pdf_links_of(page: &Page) -> Vec<String> {
    let html = String::from_utf8_lossy(&page.bytes);
    let hrefs: Vec<String> = if crate::ingest::parse::too_deep(&html) {
        // The tree builder takes time in the square of the depth: such a
        // page's links are read by the tokenizer alone.
        hrefs_in(&html)
    } else {
        let dom = scraper::Html::parse_document(&html);
        let Ok(sel) = scraper::Selector::parse("a[href]") else {
            return vec![];
        };
        dom.select(&sel)
            .filter_map(|a| a.value().attr("href"))
            .map(str::to_owned)
            .collect()
    };
    let base = Url::parse(&page.final_url).ok();
    hrefs
        .iter()
        .filter_map(|href| base.as_ref().and_then(|b| b.join(href).ok()))
        .filter(|abs| abs.path().to_ascii_lowercase().ends_with(".pdf"))
        .map(|abs| abs.to_string())
        .collect()
}

/// Every `href` of the links of a page, from html5ever's tokenizer alone
/// (linear in the page; its tree builder is what deep nesting slows down).
fn hrefs_in(html: &str) -> Vec<String> {
    use html5ever::tokenizer::{BufferQueue, StartTag, TagToken, Token, TokenSink, TokenSinkResult, Tokenizer};
    struct Links(std::cell::RefCell<Vec<String>>);
    impl TokenSink for Links {
        type Handle = ();
        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            if let TagToken(tag) = token
                && tag.kind == StartTag
                && &*tag.name == "a"
                && let Some(href) = tag.attrs.iter().find(|a| &*a.name.local == "href")
            {
                self.0.borrow_mut().push(href.value.to_string());
            }
            TokenSinkResult::Continue
        }
    }
    let input = BufferQueue::default();
    input.push_back(html.into());
    let tokenizer = Tokenizer::new(Links(Default::default()), Default::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.into_inner()
}

/// Crawls a `sitemap` source into the run's documents.
pub async fn crawl_source(
    store: &Store,
    ingest: &Ingest,
    org_id: Uuid,
    source_id: Uuid,
    run_id: Uuid,
    spec: &SourceSpec,
) -> Result<Crawled, JobError> {
    /// Stores each page as it arrives.
    struct Keep<'a> {
        store: &'a parley_domain::store::Store,
        org_id: Uuid,
        source_id: Uuid,
        run_id: Uuid,
        fetched: u32,
        failures: Vec<PageRecord>,
    }
    #[async_trait::async_trait]
    impl PageSink for Keep<'_> {
        async fn accept(&mut self, page: Page) -> Result<(), JobError> {
            match keep_page(self.store, self.org_id, self.source_id, self.run_id, page).await? {
                None => self.fetched += 1,
                Some(f) => {
                    // Kept with the run, so that its page list says why.
                    content::record_unfetched(
                        self.store,
                        self.source_id,
                        self.run_id,
                        &f.doc_key,
                        f.url.as_deref(),
                        f.error_code.as_deref().unwrap_or("FETCH_FAILED"),
                        f.error_message.as_deref().unwrap_or_default(),
                    )
                    .await?;
                    self.failures.push(f);
                }
            }
            Ok(())
        }
    }
    let mut sink = Keep {
        store,
        org_id,
        source_id,
        run_id,
        fetched: 0,
        failures: Vec::new(),
    };
    if let Some((code, message)) = crawl_site_into(ingest, spec, &mut sink).await? {
        let url = match spec {
            SourceSpec::Sitemap { url, .. } => url.as_str(),
            SourceSpec::Url { .. } | SourceSpec::Text { .. } | SourceSpec::Qa { .. } | SourceSpec::Document { .. } => {
                ""
            }
        };
        return Ok(Crawled {
            fetched: 0,
            failures: vec![PageRecord::failed(url, Some(url), code, &message)],
        });
    }
    Ok(Crawled {
        fetched: sink.fetched,
        failures: sink.failures,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_of_a_page_too_deep_for_the_tree_builder_are_found() {
        let html = format!(
            "<html><body>{}<a href=\"guide.pdf\">guide</a><a HREF = 'a&amp;b.pdf'>x</a> <a href=c.pdf>c</a>{}</body></html>",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        );
        let page = super::Page {
            requested: "http://h/docs/deep.html".into(),
            final_url: "http://h/docs/deep.html".into(),
            status: 200,
            content_type: Some("text/html".into()),
            bytes: html.into_bytes(),
            error: None,
            error_code: None,
        };
        let started = std::time::Instant::now();
        let links = super::pdf_links_of(&page);
        assert_eq!(
            links,
            [
                "http://h/docs/guide.pdf",
                "http://h/docs/a&b.pdf",
                "http://h/docs/c.pdf"
            ],
            "in {:?}",
            started.elapsed()
        );
    }

    use super::*;

    #[test]
    fn scope_checks_host_folder_patterns_and_robots() {
        let robots = texting_robots::Robot::new(ROBOTS_AGENT, b"User-agent: *\nDisallow: /book/appendix-\n").unwrap();
        let scope = Scope {
            origin: Url::parse("http://127.0.0.1:9/book/index.html").unwrap(),
            prefix: "/book/".into(),
            include: None,
            exclude: globset(&["**/print.html".into()]).unwrap(),
            robots: Robots::Rules(robots),
            policy: net::NetPolicy {
                allowed_private_hosts: vec!["127.0.0.1".into()],
            },
        };
        assert_eq!(scope.refusal("http://127.0.0.1:9/book/ch01.html"), None);
        assert_eq!(
            scope.refusal("http://127.0.0.1:9/book/print.html"),
            Some("excluded by a pattern")
        );
        assert_eq!(
            scope.refusal("http://127.0.0.1:9/book/appendix-01.html"),
            Some("disallowed by robots.txt")
        );
        assert_eq!(
            scope.refusal("http://127.0.0.1:9/other/x.html"),
            Some("outside the start folder")
        );
        assert_eq!(scope.refusal("http://example.com/book/x.html"), Some("off-site"));
    }
}
