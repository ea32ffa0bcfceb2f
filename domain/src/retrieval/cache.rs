//! Per-bot segments kept in memory. Each search first reads the generations
//! of the bot's live sources (one small query) and reloads only the sources
//! whose chunks changed; deleted sources drop out at once. The cache has a
//! byte budget: past it, the bots searched least recently are dropped (and
//! loaded again when next searched), so chatting with many large bots never
//! grows a process without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::DbErr;
use uuid::Uuid;

use super::{Analyzer, ChunkMeta, Segment};
use crate::Store;
use crate::store::content;

type BotSlot = Arc<tokio::sync::Mutex<Vec<Arc<Segment>>>>;

struct Entry {
    slot: BotSlot,
    /// Bytes of its segments when last loaded.
    bytes: usize,
    /// When it was last searched (a counter, not a clock).
    used: u64,
}

pub struct IndexCache {
    analyzer: Arc<Analyzer>,
    bots: Mutex<HashMap<Uuid, Entry>>,
    ticks: AtomicU64,
    budget: usize,
    /// Sources' segments found current in memory.
    hits: AtomicU64,
    /// Sources' segments read from the database and built.
    misses: AtomicU64,
    /// Bots dropped to stay within the budget.
    evictions: AtomicU64,
}

/// What the cache holds and has done since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub bytes: usize,
    pub bots: usize,
    pub budget: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// The default budget: 1 GiB of segments.
pub const DEFAULT_BUDGET_BYTES: usize = 1 << 30;

impl Default for IndexCache {
    fn default() -> Self {
        IndexCache::new(DEFAULT_BUDGET_BYTES)
    }
}

impl IndexCache {
    /// A cache that keeps about `budget` bytes of segments (one bot's alone
    /// may be more: it is kept while it is searched).
    pub fn new(budget: usize) -> Self {
        IndexCache {
            analyzer: Arc::default(),
            bots: Mutex::default(),
            ticks: AtomicU64::new(0),
            budget,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Its size, budget and counts (for `/metrics`).
    pub fn stats(&self) -> CacheStats {
        let (bytes, bots) = self.held();
        CacheStats {
            bytes,
            bots,
            budget: self.budget,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Bytes of segments held, and how many bots they belong to.
    pub fn held(&self) -> (usize, usize) {
        let bots = self.bots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (bots.values().map(|e| e.bytes).sum(), bots.len())
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The current segments of a bot's live sources.
    pub async fn segments(&self, store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<Vec<Arc<Segment>>, DbErr> {
        let generations = content::chunk_generations(store, org_id, bot_id).await?;
        if generations.is_empty() {
            // Nothing to search (or a deleted bot): hold no memory for it.
            self.bots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&bot_id);
            return Ok(Vec::new());
        }
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        let slot = {
            let mut bots = self.bots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = bots.entry(bot_id).or_insert_with(|| Entry {
                slot: BotSlot::default(),
                bytes: 0,
                used: tick,
            });
            entry.used = tick;
            entry.slot.clone()
        };
        // One loader per bot at a time; other bots are not held up.
        let mut current = slot.lock().await;
        let mut next = Vec::with_capacity(generations.len());
        for (source_id, generation) in generations {
            if let Some(seg) = current
                .iter()
                .find(|s| s.key == source_id && s.generation == generation)
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                next.push(seg.clone());
                continue;
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
            // Chunks are read after their generation, so they are at least
            // that new; a later change bumps the generation again.
            let rows = content::source_chunks(store, source_id).await?;
            let analyzer = self.analyzer.clone();
            let segment = tokio::task::spawn_blocking(move || {
                let items = rows
                    .into_iter()
                    .map(|c| {
                        let vector = content::decode_vector(&c.embedding);
                        let meta = ChunkMeta {
                            id: c.id,
                            source_id: c.source_id,
                            doc_key: c.doc_key,
                            ordinal: c.ordinal,
                            heading_path: c.heading_path,
                            text: c.text,
                            page: c.page,
                            url: c.url,
                            title: c.title,
                        };
                        (meta, vector)
                    })
                    .collect();
                Segment::build(source_id, generation, &analyzer, items)
            })
            .await
            .map_err(|e| DbErr::Custom(format!("building a search segment failed: {e}")))?;
            next.push(Arc::new(segment));
        }
        *current = next.clone();
        drop(current);
        self.account(bot_id, next.iter().map(|s| s.bytes()).sum());
        Ok(next)
    }

    /// Records a bot's size and drops the least recently searched other
    /// bots while the cache is over its budget.
    fn account(&self, bot_id: Uuid, bytes: usize) {
        let mut bots = self.bots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = bots.get_mut(&bot_id) {
            entry.bytes = bytes;
        }
        let mut total: usize = bots.values().map(|e| e.bytes).sum();
        while total > self.budget {
            let Some((&oldest, entry)) = bots.iter().filter(|(id, _)| **id != bot_id).min_by_key(|(_, e)| e.used)
            else {
                break;
            };
            total -= entry.bytes;
            bots.remove(&oldest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(cache: &IndexCache, bot: Uuid, bytes: usize) {
        let tick = cache.ticks.fetch_add(1, Ordering::Relaxed);
        cache
            .bots
            .lock()
            .unwrap()
            .entry(bot)
            .or_insert_with(|| Entry {
                slot: BotSlot::default(),
                bytes: 0,
                used: tick,
            })
            .used = tick;
        cache.account(bot, bytes);
    }

    #[test]
    fn the_least_recently_searched_bots_go_first_past_the_budget() {
        let cache = IndexCache::new(100);
        let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        touch(&cache, a, 40);
        touch(&cache, b, 40);
        assert_eq!(cache.held(), (80, 2));
        // `a` is searched again, so `b` is the oldest when `c` comes.
        touch(&cache, a, 40);
        touch(&cache, c, 40);
        let bots = cache.bots.lock().unwrap();
        assert!(bots.contains_key(&a) && bots.contains_key(&c) && !bots.contains_key(&b));
        drop(bots);
        assert_eq!(cache.held(), (80, 2));
        // One bot over the whole budget is kept while it is searched; the others go.
        touch(&cache, b, 500);
        assert_eq!(cache.held(), (500, 1));
        let stats = cache.stats();
        assert_eq!((stats.bytes, stats.bots, stats.budget), (500, 1, 100));
        assert_eq!(stats.evictions, 3, "b, then a and c");
    }
}
