//! `parley bench answerability`: does the bot answer what its knowledge
//! answers, and say it does not know otherwise? A site (the Rust Book, or
//! any folder of HTML pages with a list of the pages to index) is crawled
//! through the real API; each question of a JSON-lines set (`answerable`
//! with the pages that answer it, `offtopic`, `unanswerable`) is searched
//! and asked. Printed: answerable questions refused, the others answered,
//! answers citing an accepted page, and the same rates for the previous rule
//! (the closest passage's cosine at 0.35). With `--fit`, the gate's weights
//! are fitted on these questions (use a training set only) and printed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use parley_domain::retrieval::answerable::{Evidence, Gate, fit};
use serde::Deserialize;

use crate::bench::retrieval::read_jsonl;
use crate::bench::{BenchApp, find_book, post_json, serve_dir};
use crate::config::Settings;

#[derive(Deserialize)]
struct Question {
    question: String,
    kind: String,
    #[serde(default)]
    pages: Vec<String>,
}

/// One question's outcome.
struct Row {
    answerable: bool,
    evidence: Evidence,
    answered: bool,
    cited_accepted: bool,
    found_accepted: bool,
}

/// Pages to index: the listed ones, or every real page of the folder
/// (redirect stubs of under 3 KB, `print.html` and `toc.html` left out).
fn pages_of(site: &Path, list: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if let Some(list) = list {
        let text = std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(site)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let real = name.ends_with(".html")
            && !matches!(
                name.as_str(),
                "print.html" | "toc.html" | "404.html" | "index.html" | "title-page.html"
            )
            && std::fs::metadata(&path).map(|m| m.len() > 3000).unwrap_or(false);
        if real {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn accepted(url: &str, pages: &[String]) -> bool {
    pages.iter().any(|p| url.ends_with(&format!("/{p}")))
}

pub async fn answerability(
    settings: &Settings,
    site: Option<PathBuf>,
    questions: PathBuf,
    pages: Option<PathBuf>,
    fit_gate: bool,
) -> anyhow::Result<()> {
    let site = site.or_else(find_book).context("no site: pass --site DIR")?;
    let questions: Vec<Question> = read_jsonl(&questions)?;
    let pages = pages_of(&site, pages.as_deref())?;
    // A copy of the pages to index with a sitemap of them.
    let dir = std::env::temp_dir().join(format!("parley-answerability-{}", uuid::Uuid::new_v4().simple()));
    for p in &pages {
        let to = dir.join(p);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(site.join(p), &to).with_context(|| format!("copying {p}"))?;
    }
    let (base, server) = serve_dir(dir.clone()).await?;
    let urls: String = pages
        .iter()
        .map(|p| format!("<url><loc>{base}/{p}</loc></url>"))
        .collect();
    std::fs::write(
        dir.join("sitemap.xml"),
        format!("<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">{urls}</urlset>"),
    )?;
    println!("parley bench answerability: {} ({} pages)", site.display(), pages.len());
    let app = BenchApp::start(settings).await?;
    let source = app
        .add_source(&serde_json::json!({"type": "sitemap", "url": format!("{base}/sitemap.xml"), "max_pages": 5000}))
        .await?;
    println!(
        "knowledge: {} pages, {} chunks ({})",
        source["pages"], source["chunks"], source["status"]
    );
    let (search_url, chat_url) = (
        format!("{}/bots/{}/search", app.api, app.bot_id),
        format!("{}/bots/{}/chat", app.api, app.bot_id),
    );
    let mut rows = Vec::new();
    let mut took: Vec<f64> = Vec::new();
    // PARLEY_BENCH_DUMP=FILE: each question's evidence and best passages, as
    // JSON lines, with the cross-encoder's score of each of the five best
    // passages (to study the gate's features offline).
    let mut dump = match std::env::var_os("PARLEY_BENCH_DUMP") {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    let reranker = parley_worker::ingest::rerank::Reranker::installed(Path::new(&settings.models_dir)).then(|| {
        parley_worker::ingest::rerank::Reranker::new(PathBuf::from(&settings.models_dir), 2, settings.arena())
    });
    for q in &questions {
        let found = post_json(
            &app.client,
            &search_url,
            &app.key,
            &serde_json::json!({"query": q.question, "limit": 5}),
        )
        .await?;
        took.push(found["took_ms"].as_f64().unwrap_or(0.0));
        let a = &found["answerability"];
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) as f32;
        let evidence = Evidence {
            similarity: num(&a["similarity"]),
            coverage: num(&a["coverage"]),
            unknown: num(&a["unknown_terms"]),
            relevance: a["relevance"].as_f64().map(|r| r as f32),
        };
        let found_accepted = found["results"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .any(|r| accepted(r["url"].as_str().unwrap_or(""), &q.pages));
        let answer = post_json(
            &app.client,
            &chat_url,
            &app.key,
            &serde_json::json!({"message": q.question, "stream": false}),
        )
        .await?;
        let answered = answer["unanswered"] != true;
        let cited_accepted = answered
            && answer["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| accepted(s["url"].as_str().unwrap_or(""), &q.pages));
        if let Some(dump) = &mut dump {
            use std::io::Write;
            let results: Vec<&serde_json::Value> = found["results"].as_array().into_iter().flatten().take(5).collect();
            let scored: Vec<String> = results
                .iter()
                .map(|r| {
                    let context = parley_domain::chunking::context(
                        r["title"].as_str(),
                        r["heading_path"].as_str().unwrap_or_default(),
                    );
                    parley_domain::chunking::embedding_text(&context, r["text"].as_str().unwrap_or_default())
                })
                .collect();
            let ce = match &reranker {
                Some(reranker) => reranker.score(&q.question, scored).await.map_err(anyhow::Error::msg)?,
                None => vec![],
            };
            let accepted_rank = results
                .iter()
                .position(|r| accepted(r["url"].as_str().unwrap_or(""), &q.pages))
                .map(|i| i + 1);
            let passages: Vec<serde_json::Value> = found["results"]
                .as_array()
                .into_iter()
                .flatten()
                .take(3)
                .map(|r| {
                    serde_json::json!({
                        "title": r["title"], "heading_path": r["heading_path"], "text": r["text"],
                        "url": r["url"], "score": r["score"],
                    })
                })
                .collect();
            let line = serde_json::json!({
                "question": q.question, "kind": q.kind, "answered": answered,
                "similarity": evidence.similarity, "coverage": evidence.coverage, "unknown": evidence.unknown,
                "relevance": evidence.relevance,
                "ce": ce, "accepted_rank": accepted_rank,
                "passages": passages,
            });
            writeln!(dump, "{line}")?;
        }
        if std::env::var_os("PARLEY_BENCH_VERBOSE").is_some() {
            println!(
                "{:<13} {} sim {:.3} cov {:.3} unk {:.3} rel {:>6.2} p {:.3}  {}",
                q.kind,
                if answered { "answered" } else { "refused " },
                evidence.similarity,
                evidence.coverage,
                evidence.unknown,
                evidence.relevance.unwrap_or(f32::NAN),
                num(&a["probability"]),
                q.question
            );
        }
        rows.push(Row {
            answerable: q.kind == "answerable",
            evidence,
            answered,
            cited_accepted,
            found_accepted,
        });
    }
    app.stop().await;
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);

    let answerable: Vec<&Row> = rows.iter().filter(|r| r.answerable).collect();
    let others: Vec<&Row> = rows.iter().filter(|r| !r.answerable).collect();
    let pct = |n: usize, d: usize| n as f64 * 100.0 / d.max(1) as f64;
    let report = |label: &str, answers: &dyn Fn(&Row) -> bool| {
        let refused = answerable.iter().filter(|r| !answers(r)).count();
        let wrongly = others.iter().filter(|r| answers(r)).count();
        println!(
            "{label:<34} answerable refused {refused:>3}/{} ({:>5.1}%)   others answered {wrongly:>3}/{} ({:>5.1}%)",
            answerable.len(),
            pct(refused, answerable.len()),
            others.len(),
            pct(wrongly, others.len())
        );
    };
    println!();
    report("the product (answerability gate)", &|r| r.answered);
    report("previous rule (cosine >= 0.35)", &|r| r.evidence.similarity >= 0.35);
    took.sort_by(f64::total_cmp);
    let at = |q: f64| {
        took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)))
            .copied()
    };
    println!(
        "search with its evidence (the question embedded, both retrievers, the cross-encoder when installed): p50 {:.0} ms, p90 {:.0} ms",
        at(0.5).unwrap_or(0.0),
        at(0.9).unwrap_or(0.0)
    );
    let found = answerable.iter().filter(|r| r.found_accepted).count();
    let cited = answerable.iter().filter(|r| r.cited_accepted).count();
    println!(
        "answerable: an accepted page in the search's top 3 {found}/{} ({:.1}%), cited by the answer {cited}/{} ({:.1}%)",
        answerable.len(),
        pct(found, answerable.len()),
        answerable.len(),
        pct(cited, answerable.len())
    );
    if fit_gate {
        let samples: Vec<(Vec<f32>, bool)> = rows.iter().map(|r| (r.evidence.features(), r.answerable)).collect();
        let weights = fit(&samples, 20_000);
        println!();
        println!("fitted weights (bias, similarity, coverage, unknown[, relevance]): {weights:?}");
        let gate = match weights.len() {
            5 => Gate {
                weights: weights.clone().try_into().unwrap_or(Gate::DEFAULT.weights),
                ..Gate::DEFAULT
            },
            _ => Gate {
                fallback: weights.clone().try_into().unwrap_or(Gate::DEFAULT.fallback),
                ..Gate::DEFAULT
            },
        };
        for threshold in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
            let gate = Gate { threshold, ..gate };
            report(&format!("fitted, threshold {threshold}"), &|r| {
                gate.answers(&r.evidence)
            });
        }
    }
    Ok(())
}
