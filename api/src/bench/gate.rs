//! `parley bench gate`: the answerability gate fitted on the evidence that
//! `parley bench answerability` dumps (`PARLEY_BENCH_DUMP`), over one or more
//! training sites, and its error rates on every dump given. Only training
//! sites may be passed to `--fit`; held-out sites are only measured.
//!
//! `--passages K` studies how many of the best passages the cross-encoder
//! should read: the relevance feature becomes the best of the first K
//! scores the dump holds (the bench scores the five best).

use std::path::PathBuf;

use anyhow::Context;
use parley_domain::retrieval::answerable::{Evidence, Gate, fit};
use serde::Deserialize;

#[derive(Deserialize)]
struct Dumped {
    kind: String,
    similarity: f32,
    coverage: f32,
    unknown: f32,
    relevance: Option<f32>,
    #[serde(default)]
    ce: Vec<f32>,
}

struct Site {
    name: String,
    rows: Vec<(Evidence, bool)>,
}

fn read(path: &PathBuf, passages: Option<usize>) -> anyhow::Result<Site> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let d: Dumped = serde_json::from_str(line)?;
        let relevance = match passages {
            Some(k) if !d.ce.is_empty() => d.ce.iter().take(k).copied().reduce(f32::max),
            Some(_) | None => d.relevance,
        };
        let evidence = Evidence {
            similarity: d.similarity,
            coverage: d.coverage,
            unknown: d.unknown,
            relevance,
        };
        rows.push((evidence, d.kind == "answerable"));
    }
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    Ok(Site { name, rows })
}

/// Answerable refused and others answered, as counts and shares.
fn rates(gate: &Gate, site: &Site) -> String {
    let answerable = site.rows.iter().filter(|(_, a)| *a).count();
    let others = site.rows.len() - answerable;
    let refused = site.rows.iter().filter(|(e, a)| *a && !gate.answers(e)).count();
    let answered = site.rows.iter().filter(|(e, a)| !*a && gate.answers(e)).count();
    let pct = |n: usize, d: usize| n as f64 * 100.0 / d.max(1) as f64;
    format!(
        "refused {refused:>2}/{answerable} ({:>4.1}%)  answered {answered:>2}/{others} ({:>4.1}%)",
        pct(refused, answerable),
        pct(answered, others)
    )
}

pub fn gate(fit_on: &[PathBuf], measure: &[PathBuf], passages: Option<usize>) -> anyhow::Result<()> {
    let training: Vec<Site> = fit_on
        .iter()
        .map(|p| read(p, passages))
        .collect::<anyhow::Result<_>>()?;
    let measured: Vec<Site> = measure
        .iter()
        .map(|p| read(p, passages))
        .collect::<anyhow::Result<_>>()?;
    let with: Vec<(Vec<f32>, bool)> = training
        .iter()
        .flat_map(|s| s.rows.iter())
        .filter(|(e, _)| e.relevance.is_some())
        .map(|(e, a)| (e.features(), *a))
        .collect();
    let without: Vec<(Vec<f32>, bool)> = training
        .iter()
        .flat_map(|s| s.rows.iter())
        .map(|(e, a)| (Evidence { relevance: None, ..*e }.features(), *a))
        .collect();
    let mut gate = Gate::DEFAULT;
    if with.len() == without.len() && !with.is_empty() {
        let w = fit(&with, 20_000);
        gate.weights = w.clone().try_into().unwrap_or(gate.weights);
        println!("fitted with the cross-encoder (bias, similarity, coverage, unknown, relevance): {w:?}");
    }
    let f = fit(&without, 20_000);
    gate.fallback = f.clone().try_into().unwrap_or(gate.fallback);
    println!("fitted without it (bias, similarity, coverage, unknown): {f:?}");
    println!(
        "relevance: {}",
        match passages {
            Some(k) => format!("the best of the first {k} passages' cross-encoder scores"),
            None => "as the product computed it".to_owned(),
        }
    );
    for threshold in [0.3, 0.4, 0.5, 0.6] {
        let gate = Gate { threshold, ..gate };
        println!("threshold {threshold}");
        let roles = training.iter().map(|s| ("fit on", s));
        for (role, site) in roles.chain(measured.iter().map(|s| ("measured", s))) {
            println!("  {:<24} {:<8} {}", site.name, role, rates(&gate, site));
        }
    }
    println!("the product's gate today");
    for site in training.iter().chain(&measured) {
        println!("  {:<24} {}", site.name, rates(&Gate::DEFAULT, site));
    }
    Ok(())
}
