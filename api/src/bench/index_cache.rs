//! `parley bench index-cache`: the search index cache at its budget with
//! more bots than fit. Bots of generated chunks (random vectors, generated
//! words) are written to a throwaway SQLite database, then searched in turn,
//! twice around, through a cache with a small budget; after each bot the
//! bytes held, the bots held, the evictions and this process's resident
//! memory are printed.

use anyhow::Context;
use parley_domain::aggregates::source::{Schedule, Source, SourceCommand, SourceSpec};
use parley_domain::event::Metadata;
use parley_domain::retrieval::IndexCache;
use parley_domain::store::Execute;
use parley_domain::store::content::{self, DocRef, NewChunk};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::config::Settings;

const WORDS: &[&str] = &[
    "parcel",
    "refund",
    "invoice",
    "warehouse",
    "delivery",
    "account",
    "password",
    "subscription",
    "plan",
    "team",
    "widget",
    "carrier",
    "customs",
    "return",
    "exchange",
    "discount",
    "voucher",
    "shipping",
    "tracking",
    "support",
];

fn resident_mb() -> f64 {
    super::hostile::proc_memory_mib(None, "VmRSS").unwrap_or(0.0)
}

pub async fn index_cache(settings: &Settings, bots: usize, chunks: usize, budget_mb: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("parley-bench-index-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut settings = settings.clone();
    settings.database_url = format!("sqlite://{}/bench.db", dir.display()).into();
    let store = crate::app::open_store(&settings, true).await?;
    let org = crate::admin::create_org(&store, "Index cache benchmark").await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut ids = Vec::new();
    println!(
        "parley bench index-cache: {bots} bots of {chunks} chunks each (384-dimension vectors), budget {budget_mb} MB"
    );
    for b in 0..bots {
        let (bot_id, source_id) = (Uuid::now_v7(), Uuid::now_v7());
        store
            .execute::<Source>(Execute {
                org_id: org.org_id,
                stream_id: source_id,
                expected_version: None,
                command: SourceCommand::Add {
                    source_id,
                    org_id: org.org_id,
                    bot_id,
                    run_id: Uuid::now_v7(),
                    spec: SourceSpec::Text {
                        title: format!("Bot {b}"),
                        body: "generated".into(),
                    },
                    schedule: Schedule::Never,
                    max_pages_cap: 1,
                },
                metadata: Metadata::system("bench-index-cache"),
                idempotency: None,
            })
            .await?;
        let rows: Vec<NewChunk> = (0..chunks)
            .map(|i| {
                let text: Vec<&str> = (0..120).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
                let mut vector: Vec<f32> = (0..384).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
                vector.iter_mut().for_each(|x| *x /= norm);
                NewChunk {
                    ordinal: i32::try_from(i).unwrap_or(i32::MAX),
                    heading_path: format!("Bot {b} > Part {}", i / 50),
                    text: format!("Chunk {i} of bot {b}: {}", text.join(" ")),
                    tokens: 130,
                    page: None,
                    embedding: vector,
                }
            })
            .collect();
        let doc = DocRef {
            org_id: org.org_id,
            bot_id,
            source_id,
            doc_key: "text",
            url: None,
            title: Some("Generated"),
        };
        content::replace_chunks(&store, doc, "generated", rows)
            .await
            .context("writing chunks")?;
        ids.push(bot_id);
    }
    let cache = IndexCache::new(budget_mb << 20);
    let start = resident_mb();
    println!("resident before searching: {start:.0} MB");
    println!(
        "{:>5} {:>4} {:>12} {:>5} {:>6} {:>6} {:>10}",
        "round", "bot", "held (MB)", "bots", "misses", "evict", "RSS (MB)"
    );
    let mut most_held = 0usize;
    let mut most_rss: f64 = 0.0;
    for round in 1..=2 {
        for (b, bot_id) in ids.iter().enumerate() {
            let segments = cache.segments(&store, org.org_id, *bot_id).await?;
            anyhow::ensure!(!segments.is_empty(), "bot {b} has no segment");
            drop(segments);
            let stats = cache.stats();
            let rss = resident_mb();
            most_held = most_held.max(stats.bytes);
            most_rss = most_rss.max(rss);
            println!(
                "{round:>5} {b:>4} {:>12.1} {:>5} {:>6} {:>6} {rss:>10.0}",
                stats.bytes as f64 / 1048576.0,
                stats.bots,
                stats.misses,
                stats.evictions
            );
        }
    }
    let stats = cache.stats();
    println!(
        "most held {:.1} MB of a {budget_mb} MB budget ({} bots at the end, {} evictions, {} hits, {} misses); resident {start:.0} → at most {most_rss:.0} MB",
        most_held as f64 / 1048576.0,
        stats.bots,
        stats.evictions,
        stats.hits,
        stats.misses
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
