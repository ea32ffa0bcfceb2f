//! `parley bench pdf`: PDF text quality and speed against poppler's
//! `pdftotext` on the same files. Per file: word precision, recall and F1
//! against the reference text (tokens are lowercase runs of letters and
//! digits, compared as multisets), the share of single-letter words in ours
//! and in the reference, and the time each tool takes; then a summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use parley_worker::ingest::parse::{Kind, parse_sync};

fn tokens(text: &str) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *out.entry(word.to_lowercase()).or_default() += 1;
    }
    out
}

/// Share of single-letter words (letter-spaced text shows as many).
pub fn single_letter_share(t: &HashMap<String, usize>) -> f64 {
    let all: usize = t.values().sum();
    let single: usize = t
        .iter()
        .filter(|(w, _)| w.chars().count() == 1 && w.chars().all(char::is_alphabetic))
        .map(|(_, n)| n)
        .sum();
    single as f64 / all.max(1) as f64
}

/// Precision, recall and F1 of `ours` against `reference`.
pub fn prf(ours: &HashMap<String, usize>, reference: &HashMap<String, usize>) -> (f64, f64, f64) {
    let overlap: usize = ours
        .iter()
        .map(|(w, n)| (*n).min(reference.get(w).copied().unwrap_or(0)))
        .sum();
    let (o, r) = (ours.values().sum::<usize>(), reference.values().sum::<usize>());
    let p = overlap as f64 / o.max(1) as f64;
    let rc = overlap as f64 / r.max(1) as f64;
    let f = if p + rc > 0.0 { 2.0 * p * rc / (p + rc) } else { 0.0 };
    (p, rc, f)
}

/// Runs `pdftotext` on a file: its text and time, None when it is not installed.
fn pdftotext(path: &Path) -> Option<(String, Duration)> {
    let start = Instant::now();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .ok()?;
    let took = start.elapsed();
    out.status
        .success()
        .then(|| (String::from_utf8_lossy(&out.stdout).into_owned(), took))
}

struct Row {
    name: String,
    pages: u32,
    p: f64,
    r: f64,
    f: f64,
    ours_single: f64,
    ref_single: f64,
    ours: Duration,
    poppler: Option<Duration>,
}

pub fn pdf(dirs: &[PathBuf], dump: Option<&Path>) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")))
            .collect();
        found.sort();
        files.extend(found);
    }
    println!("parley bench pdf ({} files, 1 thread)", files.len());
    println!(
        "{:<44} {:>5} {:>6} {:>6} {:>6} {:>7} {:>7} {:>9} {:>9}",
        "file", "pages", "P", "R", "F1", "1-let", "1-let*", "ours ms", "poppler"
    );
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bytes = std::fs::read(path)?;
        let start = Instant::now();
        let parsed = parse_sync(Kind::Pdf, &bytes, None);
        let ours_time = start.elapsed();
        let poppler = pdftotext(path);
        let stored = path.parent().map(|d| d.join("pdftotext").join(format!("{name}.txt")));
        let reference = match stored.as_deref().map(std::fs::read_to_string) {
            Some(Ok(text)) => Some(text),
            _ => poppler.as_ref().map(|(t, _)| t.clone()),
        };
        let Some(reference) = reference else {
            skipped.push(format!("{name}: no reference (install poppler-utils)"));
            continue;
        };
        let reference = tokens(&reference);
        if reference.values().sum::<usize>() < 50 {
            skipped.push(format!("{name}: the reference has no text layer"));
            continue;
        }
        let (text, pages) = match parsed {
            Ok(doc) => (
                doc.blocks
                    .iter()
                    .map(|b| b.to_markdown())
                    .collect::<Vec<_>>()
                    .join("\n"),
                doc.page_count.unwrap_or(0),
            ),
            Err(e) => (format!("{}: {}", e.code, e.message), 0),
        };
        if let Some(dump) = dump {
            std::fs::create_dir_all(dump)?;
            std::fs::write(dump.join(format!("{name}.txt")), &text)?;
        }
        let ours = tokens(&text);
        let (p, r, f) = prf(&ours, &reference);
        let row = Row {
            name,
            pages,
            p,
            r,
            f,
            ours_single: single_letter_share(&ours),
            ref_single: single_letter_share(&reference),
            ours: ours_time,
            poppler: poppler.map(|(_, d)| d),
        };
        println!(
            "{:<44} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>6.1}% {:>6.1}% {:>9.1} {:>9}",
            row.name.chars().take(44).collect::<String>(),
            row.pages,
            row.p,
            row.r,
            row.f,
            row.ours_single * 100.0,
            row.ref_single * 100.0,
            row.ours.as_secs_f64() * 1000.0,
            row.poppler
                .map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0)),
        );
        rows.push(row);
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len() as f64;
    let mean = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let worst = rows
        .iter()
        .min_by(|a, b| a.f.total_cmp(&b.f))
        .map(|r| (r.name.clone(), r.f));
    let below: Vec<&str> = rows.iter().filter(|r| r.f < 0.95).map(|r| r.name.as_str()).collect();
    let off: Vec<&str> = rows
        .iter()
        .filter(|r| (r.ours_single - r.ref_single).abs() > 0.02)
        .map(|r| r.name.as_str())
        .collect();
    let pages: u32 = rows.iter().map(|r| r.pages).sum();
    let ours_total: Duration = rows.iter().map(|r| r.ours).sum();
    println!();
    println!("files measured: {}", rows.len());
    println!(
        "mean precision {:.4}, recall {:.4}, F1 {:.4}",
        mean(&|r| r.p),
        mean(&|r| r.r),
        mean(&|r| r.f)
    );
    if let Some((name, f)) = worst {
        println!("lowest F1 {f:.4} ({name})");
    }
    println!("files under F1 0.95: {} {:?}", below.len(), below);
    println!(
        "single-letter words: ours {:.2}%, reference {:.2}% (mean); files more than 2 points off: {} {:?}",
        mean(&|r| r.ours_single) * 100.0,
        mean(&|r| r.ref_single) * 100.0,
        off.len(),
        off
    );
    println!(
        "parse time: ours {:.2} s ({:.0} pages/s)",
        ours_total.as_secs_f64(),
        f64::from(pages) / ours_total.as_secs_f64().max(1e-9)
    );
    if rows.iter().all(|r| r.poppler.is_some()) {
        let poppler: Duration = rows.iter().filter_map(|r| r.poppler).sum();
        println!(
            "parse time: pdftotext {:.2} s ({:.0} pages/s), one process per file",
            poppler.as_secs_f64(),
            f64::from(pages) / poppler.as_secs_f64().max(1e-9)
        );
    } else {
        println!("pdftotext not installed: apt-get install poppler-utils to time it");
    }
    Ok(())
}
