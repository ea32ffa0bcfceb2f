//! `parley bench documents`: which document answers a question, when many
//! documents share one vocabulary. The product's parser, chunker, model and
//! search index a folder of documents (one source each, as uploads are);
//! each question names a fact of one document, and the benchmark prints how
//! often that document is among the first three documents found, and the
//! mean reciprocal rank, with and without the document's title in the
//! indexes, by retriever and by split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use parley_domain::chunking::{ChunkConfig, chunk};
use parley_domain::retrieval::{Analyzer, Bm25Params, ChunkMeta, Mode, Query, Segment, search};
use parley_worker::ingest::embed::{Arena, MiniLm};
use parley_worker::ingest::parse::{Kind, detect, parse_sync};
use serde::Deserialize;
use uuid::Uuid;

use crate::bench::retrieval::{embed_cached, read_jsonl};
use crate::config::Settings;
use parley_domain::retrieval::FUSION;

#[derive(Deserialize)]
struct Question {
    question: String,
    doc: String,
    split: String,
}

/// How much of the document's identity the indexes see.
#[derive(Clone, Copy, PartialEq)]
enum TitleIn {
    /// Neither index sees the title.
    None,
    /// The title is in the BM25 text only (Parley before chunks carried it).
    Bm25Only,
    /// The title is in the BM25 text and in the embedded text.
    Both,
}

impl TitleIn {
    fn label(self) -> &'static str {
        match self {
            TitleIn::None => "no title",
            TitleIn::Bm25Only => "title in BM25 only",
            TitleIn::Both => "title in BM25 and vectors",
        }
    }
}

struct Parsed {
    file: String,
    title: String,
    chunks: Vec<parley_domain::chunking::Chunk>,
}

pub async fn documents(settings: &Settings, dir: PathBuf, questions: PathBuf, prefix: String) -> anyhow::Result<()> {
    let models_dir = PathBuf::from(&settings.models_dir);
    let cache = models_dir.parent().unwrap_or(Path::new(".")).join("cache");
    tokio::task::spawn_blocking(move || run(&models_dir, &cache, &dir, &questions, &prefix)).await?
}

fn run(models_dir: &Path, cache: &Path, dir: &Path, questions: &Path, prefix: &str) -> anyhow::Result<()> {
    let model = MiniLm::load(models_dir, 2, Arena::default()).map_err(anyhow::Error::msg)?;
    let questions: Vec<Question> = read_jsonl(questions)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    println!(
        "parley bench documents ({} documents, {} questions)",
        files.len(),
        questions.len()
    );
    let mut docs = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bytes = std::fs::read(path)?;
        let kind = detect(&bytes, &file).unwrap_or(Kind::Text);
        let doc = match parse_sync(kind, &bytes, None) {
            Ok(d) => d,
            Err(e) => {
                println!("  {file}: {} {}", e.code, e.message);
                continue;
            }
        };
        // The title an upload gets: the parsed one, else the file name.
        let title = doc.title.clone().unwrap_or_else(|| file.clone());
        let mut titled = doc;
        titled.title = Some(title.clone());
        let chunks = chunk(&titled, &model.counter, ChunkConfig::default());
        println!("  {file}: {} chunks, title \"{title}\"", chunks.len());
        docs.push(Parsed { file, title, chunks });
    }
    let analyzer = Analyzer::default();
    let question_vectors = embed_cached(
        &model,
        &questions.iter().map(|q| q.question.clone()).collect::<Vec<_>>(),
        cache,
        "documents-questions",
    )?;
    for context in [TitleIn::None, TitleIn::Bm25Only, TitleIn::Both] {
        let texts: Vec<String> = docs
            .iter()
            .flat_map(|d| {
                d.chunks.iter().map(move |c| {
                    let mut c = c.clone();
                    if context != TitleIn::Both {
                        c.title = None;
                    }
                    c.embedding_text()
                })
            })
            .collect();
        let label = if context == TitleIn::Both {
            "documents-titled"
        } else {
            "documents-plain"
        };
        let mut vectors = embed_cached(&model, &texts, cache, label)?.into_iter();
        let segments: Vec<Arc<Segment>> = docs
            .iter()
            .map(|d| {
                let source = Uuid::new_v4();
                let items: Vec<(ChunkMeta, Vec<f32>)> = d
                    .chunks
                    .iter()
                    .map(|c| {
                        let meta = ChunkMeta {
                            id: Uuid::now_v7(),
                            source_id: source,
                            doc_key: d.file.clone(),
                            ordinal: c.ordinal as i32,
                            heading_path: c.heading_path.clone(),
                            text: c.text.clone(),
                            page: c.page.map(|p| p as i32),
                            url: None,
                            title: (context != TitleIn::None).then(|| d.title.clone()),
                        };
                        (meta, vectors.next().unwrap_or_default())
                    })
                    .collect();
                Arc::new(Segment::build(source, 1, &analyzer, items))
            })
            .collect();
        println!();
        println!("{}", context.label());
        println!(
            "{:<8} {:<7} {:>9} {:>9} {:>9}",
            "mode", "split", "top-1", "top-3", "MRR@10"
        );
        for (mode, name) in [(Mode::Bm25, "bm25"), (Mode::Vector, "vector"), (Mode::Hybrid, "hybrid")] {
            let mut by_split: HashMap<&str, (usize, usize, usize, f64)> = HashMap::new();
            for (q, qv) in questions.iter().zip(&question_vectors) {
                let mut terms = analyzer.terms(&q.question);
                terms.extend(terms.clone());
                let hits = search(
                    &segments,
                    &Query {
                        terms: &terms,
                        vector: Some(qv),
                        sources: None,
                        limit: 50,
                        candidates: 100,
                        mode,
                        fusion: FUSION,
                        bm25: Bm25Params::default(),
                    },
                );
                let mut ranked: Vec<&str> = Vec::new();
                for h in &hits {
                    let key = segments[h.segment].chunks[h.chunk].doc_key.as_str();
                    if !ranked.contains(&key) {
                        ranked.push(key);
                    }
                }
                let rank = ranked.iter().position(|d| *d == q.doc);
                for split in [q.split.as_str(), "all"] {
                    let e = by_split.entry(split).or_default();
                    e.0 += 1;
                    e.1 += usize::from(rank == Some(0));
                    e.2 += usize::from(rank.is_some_and(|r| r < 3));
                    e.3 += rank.filter(|r| *r < 10).map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
                }
            }
            for split in ["train", "test", "all"] {
                if let Some((n, top1, top3, rr)) = by_split.get(split) {
                    let n = *n as f64;
                    println!(
                        "{name:<8} {split:<7} {:>8.1}% {:>8.1}% {:>9.3}",
                        *top1 as f64 / n * 100.0,
                        *top3 as f64 / n * 100.0,
                        rr / n
                    );
                }
            }
        }
    }
    Ok(())
}
