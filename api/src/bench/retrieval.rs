//! `parley bench retrieval`: retrieval quality on BEIR SciFact (nDCG@10 and
//! recall@100 on the test split for BM25, vectors and hybrid, with the fusion
//! tuned on the train split only) and search latency at 1k, 10k and 100k
//! chunks, printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_domain::retrieval::eval::{ndcg_at, recall_at};
use parley_domain::retrieval::{Analyzer, Bm25Params, ChunkMeta, Fusion, Mode, Query, Segment, search};
use parley_worker::ingest::embed::{Arena, BATCH, MiniLm};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::Settings;

#[derive(Deserialize)]
struct CorpusDoc {
    #[serde(rename = "_id")]
    id: String,
    title: String,
    text: String,
}

#[derive(Deserialize)]
struct QueryLine {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

type Qrels = HashMap<String, HashMap<String, u32>>;

pub(crate) fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", path.display())))
        .collect()
}

fn read_qrels(path: &Path) -> anyhow::Result<Qrels> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out: Qrels = HashMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            continue;
        }
        out.entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), cols[2].trim().parse().unwrap_or(0));
    }
    Ok(out)
}

/// Embeddings of `texts`, cached on disk under a key of the texts and model.
pub(crate) fn embed_cached(
    model: &MiniLm,
    texts: &[String],
    cache: &Path,
    label: &str,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut key = sha2::Sha256::default();
    for t in texts {
        sha2::Digest::update(&mut key, t.as_bytes());
        sha2::Digest::update(&mut key, [0u8]);
    }
    let key = hex::encode(sha2::Digest::finalize(key));
    let path = cache.join(format!("{label}-{}.f32", &key[..16]));
    if let Ok(bytes) = std::fs::read(&path) {
        let flat = parley_domain::store::content::decode_vector(&bytes);
        if !texts.is_empty() && flat.len().is_multiple_of(texts.len()) {
            let dim = flat.len() / texts.len();
            return Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect());
        }
    }
    let started = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for (i, batch) in texts.chunks(256).enumerate() {
        out.extend(model.embed_blocking(batch, BATCH).map_err(anyhow::Error::msg)?);
        if i % 4 == 3 {
            eprintln!("  embedded {} of {} {label} texts", out.len(), texts.len());
        }
    }
    println!(
        "  embedded {} {label} texts in {:.1} s ({:.1}/s)",
        texts.len(),
        started.elapsed().as_secs_f64(),
        texts.len() as f64 / started.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(cache)?;
    let flat: Vec<f32> = out.iter().flatten().copied().collect();
    std::fs::write(&path, parley_domain::store::content::encode_vector(&flat))?;
    Ok(out)
}

struct Evaluated {
    ndcg10: f64,
    recall100: f64,
}

struct Setup<'a> {
    segments: &'a [Arc<Segment>],
    analyzer: &'a Analyzer,
    queries: &'a HashMap<String, (String, Vec<f32>)>,
}

fn evaluate(setup: &Setup, qrels: &Qrels, mode: Mode, fusion: Fusion) -> Evaluated {
    let (mut ndcg, mut recall) = (0.0, 0.0);
    let mut n = 0;
    for (qid, judged) in qrels {
        let Some((text, vector)) = setup.queries.get(qid) else {
            continue;
        };
        let terms = setup.analyzer.terms(text);
        let hits = search(
            setup.segments,
            &Query {
                terms: &terms,
                vector: Some(vector),
                sources: None,
                limit: 100,
                candidates: 1000,
                mode,
                fusion,
                bm25: Bm25Params::default(),
            },
        );
        let ranked: Vec<String> = hits
            .iter()
            .map(|h| setup.segments[h.segment].chunks[h.chunk].doc_key.clone())
            .collect();
        ndcg += ndcg_at(&ranked, judged, 10);
        recall += recall_at(&ranked, judged, 100);
        n += 1;
    }
    Evaluated {
        ndcg10: ndcg / n.max(1) as f64,
        recall100: recall / n.max(1) as f64,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn chunk_meta(source_id: Uuid, doc_key: String, title: &str, text: &str) -> ChunkMeta {
    ChunkMeta {
        id: Uuid::now_v7(),
        source_id,
        doc_key,
        ordinal: 0,
        heading_path: String::new(),
        text: text.to_owned(),
        page: None,
        url: None,
        title: Some(title.to_owned()),
    }
}

pub async fn retrieval(settings: &Settings, scifact: PathBuf, sizes: Vec<usize>) -> anyhow::Result<()> {
    let models_dir = PathBuf::from(&settings.models_dir);
    let cache = models_dir.parent().unwrap_or(Path::new(".")).join("cache");
    tokio::task::spawn_blocking(move || run(&models_dir, &cache, &scifact, &sizes)).await?
}

fn run(models_dir: &Path, cache: &Path, scifact: &Path, sizes: &[usize]) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("parley bench retrieval ({cores} cores)");
    let corpus: Vec<CorpusDoc> = read_jsonl(&scifact.join("corpus.jsonl"))?;
    let query_lines: Vec<QueryLine> = read_jsonl(&scifact.join("queries.jsonl"))?;
    let test = read_qrels(&scifact.join("qrels/test.tsv"))?;
    let train = read_qrels(&scifact.join("qrels/train.tsv"))?;
    if corpus.is_empty() || test.is_empty() {
        bail!("empty SciFact data under {}", scifact.display());
    }
    let model = MiniLm::load(models_dir, cores, Arena::default()).map_err(anyhow::Error::msg)?;
    let doc_texts: Vec<String> = corpus.iter().map(|d| format!("{}\n{}", d.title, d.text)).collect();
    let doc_vectors = embed_cached(&model, &doc_texts, cache, "scifact-corpus")?;
    let wanted: Vec<&QueryLine> = query_lines
        .iter()
        .filter(|q| test.contains_key(&q.id) || train.contains_key(&q.id))
        .collect();
    let query_texts: Vec<String> = wanted.iter().map(|q| q.text.clone()).collect();
    let query_vectors = embed_cached(&model, &query_texts, cache, "scifact-queries")?;
    let queries: HashMap<String, (String, Vec<f32>)> = wanted
        .iter()
        .zip(query_vectors)
        .map(|(q, v)| (q.id.clone(), (q.text.clone(), v)))
        .collect();

    let analyzer = Analyzer::default();
    let source = Uuid::now_v7();
    let items: Vec<(ChunkMeta, Vec<f32>)> = corpus
        .iter()
        .zip(doc_vectors.iter())
        .map(|(d, v)| (chunk_meta(source, d.id.clone(), &d.title, &d.text), v.clone()))
        .collect();
    let segments = vec![Arc::new(Segment::build(source, 1, &analyzer, items))];
    let setup = Setup {
        segments: &segments,
        analyzer: &analyzer,
        queries: &queries,
    };

    // Fusion is chosen on the train split; the test split only measures.
    println!(
        "SciFact: {} documents, {} test queries, {} train queries",
        corpus.len(),
        test.len(),
        train.len()
    );
    let mut candidates = vec![("rrf k=60".to_owned(), Fusion::Rrf { k: 60.0 })];
    for alpha in [0.3f32, 0.4, 0.5, 0.6, 0.7] {
        candidates.push((format!("convex alpha={alpha}"), Fusion::Convex { alpha }));
    }
    let mut best: Option<(String, Fusion, f64)> = None;
    for (name, fusion) in candidates {
        let e = evaluate(&setup, &train, Mode::Hybrid, fusion);
        println!("  train  hybrid {name:<20} nDCG@10 {:.4}", e.ndcg10);
        if best.as_ref().is_none_or(|b| e.ndcg10 > b.2) {
            best = Some((name, fusion, e.ndcg10));
        }
    }
    let (best_name, best_fusion, _) = best.context("no fusion evaluated")?;
    println!("test split (fusion chosen on train: {best_name})");
    for (label, mode, fusion) in [
        ("BM25", Mode::Bm25, best_fusion),
        ("vector", Mode::Vector, best_fusion),
        ("hybrid rrf k=60", Mode::Hybrid, Fusion::Rrf { k: 60.0 }),
        ("hybrid (chosen)", Mode::Hybrid, best_fusion),
    ] {
        let e = evaluate(&setup, &test, mode, fusion);
        println!("  {label:<18} nDCG@10 {:.4}   recall@100 {:.4}", e.ndcg10, e.recall100);
    }

    // Latency: chunks cycle through the corpus, 1,000 per source.
    let test_queries: Vec<&(String, Vec<f32>)> = test.keys().filter_map(|q| queries.get(q)).collect();
    let mut embed_times = Vec::new();
    for (text, _) in test_queries.iter().take(100) {
        let started = Instant::now();
        model
            .embed_blocking(std::slice::from_ref(text), 1)
            .map_err(anyhow::Error::msg)?;
        embed_times.push(started.elapsed());
    }
    embed_times.sort();
    println!(
        "query embedding    p50 {:>6.2} ms   p99 {:>6.2} ms",
        percentile(&embed_times, 0.5),
        percentile(&embed_times, 0.99)
    );
    for &size in sizes {
        let mut segments = Vec::new();
        let mut i = 0;
        let build_started = Instant::now();
        while i < size {
            let source = Uuid::now_v7();
            let n = (size - i).min(1000);
            let items = (i..i + n)
                .map(|j| {
                    let d = &corpus[j % corpus.len()];
                    (
                        chunk_meta(source, format!("{}#{j}", d.id), &d.title, &d.text),
                        doc_vectors[j % corpus.len()].clone(),
                    )
                })
                .collect();
            segments.push(Arc::new(Segment::build(source, 1, &analyzer, items)));
            i += n;
        }
        let build = build_started.elapsed();
        let mut times = Vec::new();
        for round in 0..2 {
            for (text, vector) in &test_queries {
                let started = Instant::now();
                let terms = analyzer.terms(text);
                let hits = search(
                    &segments,
                    &Query {
                        terms: &terms,
                        vector: Some(vector),
                        sources: None,
                        limit: 8,
                        candidates: 100,
                        mode: Mode::Hybrid,
                        fusion: best_fusion,
                        bm25: Bm25Params::default(),
                    },
                );
                let elapsed = started.elapsed();
                if round == 1 {
                    times.push(elapsed);
                }
                std::hint::black_box(hits);
            }
        }
        times.sort();
        println!(
            "search {size:>7} chunks   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} queries, hybrid, {} sources; index built in {:.1} s)",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.len(),
            segments.len(),
            build.as_secs_f64()
        );
    }
    Ok(())
}
