//! Mutation fuzzing on stable Rust, with a time budget per target
//! (`PARLEY_FUZZ_SECS`, default 20): inputs grown from the committed corpus
//! (`tests/fuzz-corpus`, seeded from the shared real documents) by byte
//! flips, cuts, repeats, splices and, for Word files, edits of the XML
//! inside the archive. Every input goes through the production entry point;
//! the properties: it answers, with a documented failure code when it
//! fails, within its time limit, and memory stays bounded. A parser panic or
//! a timeout (which that entry point turns into `CORRUPT_DOCUMENT` and
//! `PARSE_TIMEOUT` for the owner) is counted apart and fails the run, and
//! every seed, the crafted hostile files among them (a flate bomb, 200,000
//! nested `<div>`s, 5,000 nested Word tables), is also parsed once in the
//! sandboxed child process the worker uses, where a kill fails the run too.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parley_worker::ingest::parse::{Ended, Kind, ParseLimits, Sandbox, parse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Failure codes a parse may end with (README, "Sources").
const DOCUMENTED: &[&str] = &[
    "NO_TEXT",
    "CORRUPT_DOCUMENT",
    "ENCRYPTED_DOCUMENT",
    "UNSUPPORTED_TYPE",
    "PARSE_TIMEOUT",
    "TOO_LARGE",
];

fn budget() -> Duration {
    let secs = std::env::var("PARLEY_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join(kind);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One random edit of `bytes` (another seed may be spliced in).
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>, other: &[u8]) {
    if bytes.is_empty() {
        bytes.extend_from_slice(other);
        return;
    }
    let len = bytes.len();
    let at = rng.random_range(0..len);
    match rng.random_range(0..8) {
        0 => bytes[at] ^= 1 << rng.random_range(0..8),
        1 => bytes[at] = rng.random(),
        2 => {
            let end = (at + rng.random_range(1..=64)).min(len);
            bytes.drain(at..end);
        }
        3 => {
            let end = (at + rng.random_range(1..=256)).min(len);
            let piece = bytes[at..end].to_vec();
            let times = rng.random_range(1..=8);
            for _ in 0..times {
                bytes.splice(at..at, piece.iter().copied());
            }
        }
        4 => bytes.truncate(at),
        5 => {
            let from = rng.random_range(0..other.len().max(1));
            let end = (from + rng.random_range(1..=512)).min(other.len());
            bytes.splice(at..at, other.get(from..end).unwrap_or_default().iter().copied());
        }
        6 => {
            // Interesting values: huge numbers, nesting, odd delimiters.
            let tokens: &[&[u8]] = &[
                b"99999999999999999999",
                b"-1",
                b"<<<<<<<<",
                b">>>>",
                b"[[[[[[[[",
                b"obj",
                b"endobj",
                b"stream",
                b"/Length 0",
                b"<w:p>",
                b"</w:t>",
                b"&#0;",
                b"\x00\xff\xfe",
                b"<![CDATA[",
                b"</loc>",
                b"\\u0000",
                b"\\ud800",
            ];
            let token = tokens[rng.random_range(0..tokens.len())];
            bytes.splice(at..at, token.iter().copied());
        }
        _ => {
            let end = (at + rng.random_range(1..=32)).min(len);
            bytes[at..end].reverse();
        }
    }
}

/// A Word file with its XML parts edited and the archive written again
/// (byte edits of the compressed archive mostly fail its checksums).
fn mutate_docx(rng: &mut StdRng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(seed)) else {
        return seed.to_vec();
    };
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..archive.len() {
        let Ok(mut file) = archive.by_index(i) else { continue };
        let name = file.name().to_owned();
        let mut content = Vec::new();
        if file.read_to_end(&mut content).is_err() {
            continue;
        }
        if name.ends_with(".xml") && rng.random_bool(0.5) {
            // Mostly well-formed edits, which reach the reader's deeper code.
            let keep_xml = rng.random_bool(0.7);
            for _ in 0..rng.random_range(1..=6) {
                if keep_xml {
                    mutate_keeping_xml(rng, &mut content);
                } else {
                    mutate(rng, &mut content, other);
                }
            }
        }
        if rng.random_bool(0.02) {
            continue; // a part goes missing
        }
        if out.start_file(name, options).is_ok() {
            let _ = out.write_all(&content);
        }
    }
    out.finish().map(|c| c.into_inner()).unwrap_or_else(|_| seed.to_vec())
}

/// An edit that keeps XML well formed: characters of a text node or an
/// attribute value replaced, or a whole element repeated or removed.
fn mutate_keeping_xml(rng: &mut StdRng, xml: &mut Vec<u8>) {
    let len = xml.len();
    if len < 8 {
        return;
    }
    let at = rng.random_range(0..len);
    if rng.random_bool(0.6) {
        // Inside text or a quoted value: between `>`/`"` and the next `<`/`"`.
        let Some(start) = xml[at..]
            .iter()
            .position(|&b| b == b'>' || b == b'"')
            .map(|p| at + p + 1)
        else {
            return;
        };
        let Some(end) = xml[start..]
            .iter()
            .position(|&b| b == b'<' || b == b'"')
            .map(|p| start + p)
        else {
            return;
        };
        let replacement: Vec<u8> = match rng.random_range(0..4) {
            0 => b"99999999999".to_vec(),
            1 => b"-1".to_vec(),
            2 => "\u{202e}é日本🙂".as_bytes().to_vec(),
            _ => (0..rng.random_range(0..64))
                .map(|_| rng.random_range(b'0'..=b'z'))
                .collect(),
        };
        let replacement: Vec<u8> = replacement
            .into_iter()
            .filter(|b| !matches!(b, b'<' | b'&' | b'"' | b'>'))
            .collect();
        xml.splice(start..end, replacement);
    } else {
        // A whole element `<tag ...>...</tag>` found from a start tag.
        let Some(open) = xml[at..].iter().position(|&b| b == b'<').map(|p| at + p) else {
            return;
        };
        let Some(name_end) = xml[open + 1..]
            .iter()
            .position(|&b| b == b' ' || b == b'>' || b == b'/')
            .map(|p| open + 1 + p)
        else {
            return;
        };
        let name = xml[open + 1..name_end].to_vec();
        if name.is_empty() || matches!(name[0], b'/' | b'?' | b'!') {
            return;
        }
        let mut close = b"</".to_vec();
        close.extend_from_slice(&name);
        close.push(b'>');
        let Some(end) = xml[open..]
            .windows(close.len())
            .position(|w| w == close.as_slice())
            .map(|p| open + p + close.len())
        else {
            return;
        };
        let element = xml[open..end].to_vec();
        if rng.random_bool(0.5) {
            for _ in 0..rng.random_range(1..=20) {
                xml.splice(end..end, element.iter().copied());
            }
        } else {
            xml.drain(open..end);
        }
    }
}

/// Peak memory of this process so far (VmHWM), in MB.
fn peak_rss_mb() -> u64 {
    parley_api::bench::hostile::peak_rss_mib() as u64
}

struct Stats {
    cases: u64,
    parsed: u64,
    failures: std::collections::BTreeMap<String, u64>,
    slowest: Duration,
    /// Inputs on which the parser's code panicked somewhere not expected.
    panics: u64,
    /// Panics at the expected places, by place.
    expected_panics: std::collections::BTreeMap<String, u64>,
    /// Inputs that ran past the time limit.
    timeouts: u64,
    /// Seeds whose sandboxed parser process was killed (signal, memory,
    /// stack) or answered nonsense.
    kills: u64,
}

/// Where parser panics may come from and still be expected: docx-rs's
/// reader reads many numeric attributes with `expect` (`should read
/// width.`), so a well-formed Word file with a malformed number panics there.
/// That code is upstream; the panic is contained (a panic guard on the
/// thread, and in the sandboxed child) and the owner sees
/// `CORRUPT_DOCUMENT`. Any other panic fails the run.
const EXPECTED_PANICS: &[&str] = &["/docx-rs-0.4.22/src/reader/"];

/// The places of the panics seen since the hook was installed.
static PANICKED_AT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records where each panic happens (and still prints it as before).
fn record_panic_places() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(place) = info.location() {
                PANICKED_AT
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(format!("{}:{}", place.file(), place.line()));
            }
            previous(info);
        }));
    });
}

/// Saves an input that broke a property and says where.
fn keep(name: &str, what: &str, case: u64, input: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("parley-fuzz-{name}-{what}-{case}.bin"));
    let _ = std::fs::write(&path, input);
    path.display().to_string()
}

/// Every seed once through the worker's sandbox (this build's `parley
/// parse-document`, the worker's limits): none may be killed, panic or
/// time out; each answers as the parsers answer on a thread.
async fn seeds_in_the_sandbox(kind: Kind, name: &str, seeds: &[Vec<u8>], stats: &mut Stats) {
    let limits = ParseLimits {
        timeout: Duration::from_secs(90),
        sandbox: Some(std::sync::Arc::new(Sandbox {
            program: crate::harness::parley_binary(),
            args: vec![parley_worker::ingest::parse::sandbox::SUBCOMMAND.to_owned()],
            memory_bytes: 2 << 30,
            cpu_seconds: 60,
        })),
    };
    for (i, seed) in seeds.iter().enumerate() {
        match parse(kind, seed.clone(), None, &limits).await {
            Ok(_) => {}
            Err(failure) => match failure.ended {
                Ended::Refused => assert!(
                    DOCUMENTED.contains(&failure.code),
                    "{name}: seed {i} in the sandbox: undocumented code {}",
                    failure.code
                ),
                Ended::Killed => {
                    stats.kills += 1;
                    println!(
                        "fuzz {name}: seed {i}'s parser process was killed ({}); saved to {}",
                        failure.message,
                        keep(name, "killed", i as u64, seed)
                    );
                }
                Ended::Panicked => {
                    stats.panics += 1;
                    println!("fuzz {name}: seed {i}'s parser panicked in the sandbox");
                }
                Ended::TimedOut => {
                    stats.timeouts += 1;
                    println!("fuzz {name}: seed {i} timed out in the sandbox ({})", failure.message);
                }
            },
        }
    }
}

async fn fuzz_documents(kind: Kind, name: &str, seed_dir: &str) {
    let seeds = corpus(seed_dir);
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + seeds.len() as u64);
    // On a thread of this process: the parsers themselves are under test,
    // and a process per input would spend the budget on process starts.
    let limits = ParseLimits {
        timeout: Duration::from_secs(10),
        sandbox: None,
    };
    let mut stats = Stats {
        cases: 0,
        parsed: 0,
        failures: Default::default(),
        slowest: Duration::ZERO,
        panics: 0,
        expected_panics: Default::default(),
        timeouts: 0,
        kills: 0,
    };
    record_panic_places();
    seeds_in_the_sandbox(kind, name, &seeds, &mut stats).await;
    let started = Instant::now();
    // Every seed once as it is, then mutants until the budget is spent.
    let mut i = 0usize;
    while i < seeds.len() || started.elapsed() < budget() {
        let seed = &seeds[i % seeds.len()];
        let other = &seeds[rng.random_range(0..seeds.len())];
        let input = if i < seeds.len() {
            seed.clone()
        } else if kind == Kind::Docx {
            mutate_docx(&mut rng, seed, other)
        } else {
            let mut bytes = seed.clone();
            for _ in 0..rng.random_range(1..=8) {
                mutate(&mut rng, &mut bytes, other);
            }
            bytes
        };
        i += 1;
        let t = Instant::now();
        let result = parse(kind, input.clone(), None, &limits).await;
        let took = t.elapsed();
        stats.cases += 1;
        stats.slowest = stats.slowest.max(took);
        if took > Duration::from_secs(5) {
            let path = std::env::temp_dir().join(format!("parley-fuzz-{name}-slow-{}.bin", stats.cases));
            let _ = std::fs::write(&path, &input);
            println!(
                "fuzz {name}: input {} took {took:?}, saved to {}",
                stats.cases,
                path.display()
            );
        }
        assert!(
            took < limits.timeout + Duration::from_secs(2),
            "{name}: a parse ran past its limit ({took:?})"
        );
        match result {
            Ok(doc) => {
                stats.parsed += 1;
                // Whatever was read is text that chunking can take.
                let _ = doc.has_text();
            }
            Err(failure) if failure.ended == Ended::Panicked => {
                let place = PANICKED_AT
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop()
                    .unwrap_or_default();
                if EXPECTED_PANICS.iter().any(|p| place.contains(p)) {
                    let short = place.rsplit_once("/src/").map_or(place.as_str(), |(_, f)| f).to_owned();
                    *stats.expected_panics.entry(short).or_default() += 1;
                } else {
                    stats.panics += 1;
                    println!(
                        "fuzz {name}: the parser panicked at {place} on input {}; saved to {}",
                        stats.cases,
                        keep(name, "panic", stats.cases, &input)
                    );
                }
            }
            Err(failure) if failure.ended == Ended::TimedOut => {
                stats.timeouts += 1;
                println!(
                    "fuzz {name}: input {} ran past the time limit; saved to {}",
                    stats.cases,
                    keep(name, "timeout", stats.cases, &input)
                );
            }
            Err(failure) => {
                if !DOCUMENTED.contains(&failure.code) {
                    let path = std::env::temp_dir().join(format!("parley-fuzz-{name}-{}.bin", stats.cases));
                    let _ = std::fs::write(&path, &input);
                    panic!(
                        "{name}: undocumented failure code {} ({}); input saved to {}",
                        failure.code,
                        failure.message,
                        path.display()
                    );
                }
                *stats.failures.entry(failure.code.to_owned()).or_default() += 1;
            }
        }
    }
    let peak = peak_rss_mb();
    println!(
        "fuzz {name}: {} inputs in {:.1} s, {} parsed, failures {:?}, parser panics {} (and {:?} at \
         expected places), timeouts {}, sandbox kills {} (of {} seeds), slowest {:?}, peak memory {peak} MB",
        stats.cases,
        started.elapsed().as_secs_f64(),
        stats.parsed,
        stats.failures,
        stats.panics,
        stats.expected_panics,
        stats.timeouts,
        stats.kills,
        seeds.len(),
        stats.slowest
    );
    assert!(stats.cases > seeds.len() as u64, "{name}: mutants ran");
    assert_eq!(
        (stats.panics, stats.timeouts, stats.kills),
        (0, 0, 0),
        "{name}: no parser panic, timeout or killed parser process is expected of this corpus"
    );
    assert!(peak < 4096, "{name}: memory stayed bounded ({peak} MB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_parser() {
    fuzz_documents(Kind::Pdf, "pdf", "pdf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docx_parser() {
    fuzz_documents(Kind::Docx, "docx", "docx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_parser() {
    fuzz_documents(Kind::Html, "html", "html").await;
}

#[test]
fn sitemap_parser() {
    let seeds = corpus("sitemap");
    let mut rng = StdRng::seed_from_u64(0x5173);
    let started = Instant::now();
    let (mut cases, mut pages) = (0u64, 0usize);
    while started.elapsed() < budget() {
        let seed = &seeds[cases as usize % seeds.len()];
        let mut bytes = seed.clone();
        for _ in 0..rng.random_range(0..=8) {
            let other = rng.random_range(0..seeds.len());
            mutate(&mut rng, &mut bytes, &seeds[other]);
        }
        let entries = std::panic::catch_unwind(|| parley_worker::ingest::crawl::parse_sitemap(&bytes))
            .unwrap_or_else(|_| panic!("the sitemap reader panicked on {:?}", String::from_utf8_lossy(&bytes)));
        // Only absolute URLs come out.
        for url in entries.pages.iter().chain(&entries.sitemaps) {
            assert!(url::Url::parse(url).is_ok(), "{url}");
        }
        pages += entries.pages.len();
        cases += 1;
    }
    println!("fuzz sitemap: {cases} inputs, {pages} page URLs read, no panic");
    assert!(cases > 100);
}

/// Request bodies: mutated JSON sent to the operations that take the
/// richest bodies, on both tiers (PostgreSQL refuses some text SQLite
/// takes); the server answers every one with a status below 500 and, when
/// it refuses, the documented error shape.
pub async fn json_request_bodies(backend: crate::harness::Backend) {
    use parley_api::app::Roles;
    use serde_json::{Value, json};
    let env = crate::harness::TestEnv::new(backend).await;
    let app = env.start(Roles::ALL).await;
    let a = app.create_org("Fuzz").await;
    let bot = app.post("/api/v1/bots", &a.key, json!({"name": "Fuzz"})).await;
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    let site_key = app.site_key(&a.key, &bot_id).await;
    let targets: Vec<(reqwest::Method, String, bool)> = vec![
        (reqwest::Method::POST, format!("/api/v1/bots/{bot_id}/chat"), false),
        (reqwest::Method::POST, format!("/api/v1/bots/{bot_id}/search"), false),
        (reqwest::Method::POST, format!("/api/v1/bots/{bot_id}/sources"), false),
        (
            reqwest::Method::PUT,
            format!("/api/v1/bots/{bot_id}/widget-settings"),
            false,
        ),
        (reqwest::Method::PATCH, format!("/api/v1/bots/{bot_id}"), false),
        (reqwest::Method::POST, "/api/v1/webhooks".to_owned(), false),
        (
            reqwest::Method::POST,
            format!("/api/v1/public/bots/{bot_id}/conversations"),
            true,
        ),
    ];
    let seeds = corpus("json");
    let mut rng = StdRng::seed_from_u64(0x150e);
    let started = Instant::now();
    let mut by_status: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut cases = 0u64;
    while started.elapsed() < budget() {
        let (method, path, public) = &targets[cases as usize % targets.len()];
        let mut body = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(0..=6) {
            let other = rng.random_range(0..seeds.len());
            mutate(&mut rng, &mut body, &seeds[other]);
        }
        let mut req = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .header("Content-Type", "application/json")
            .body(body.clone());
        req = if *public {
            req.header("X-Parley-Site-Key", &site_key)
        } else {
            req.bearer_auth(&a.key)
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status < 500,
            "{method} {path} answered {status} to {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{text}"
            );
        }
        *by_status.entry(status).or_default() += 1;
        cases += 1;
    }
    println!("fuzz JSON bodies: {cases} requests, by status {by_status:?}");
    assert!(cases > 50);
    app.stop().await;
    env.cleanup().await;
}
