//! Per-bot segments kept in memory. Each search first reads the generations
//! of the bot's live sources (one small query) and reloads only the sources
//! whose chunks changed; deleted sources drop out at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DbErr;
use uuid::Uuid;

use super::{Analyzer, ChunkMeta, Segment};
use crate::Store;
use crate::content;

type BotSlot = Arc<tokio::sync::Mutex<Vec<Arc<Segment>>>>;

#[derive(Default)]
pub struct IndexCache {
    analyzer: Arc<Analyzer>,
    bots: Mutex<HashMap<Uuid, BotSlot>>,
}

impl IndexCache {
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
        let slot = self
            .bots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(bot_id)
            .or_default()
            .clone();
        // One loader per bot at a time; other bots are not held up.
        let mut current = slot.lock().await;
        let mut next = Vec::with_capacity(generations.len());
        for (source_id, generation) in generations {
            if let Some(seg) = current
                .iter()
                .find(|s| s.key == source_id && s.generation == generation)
            {
                next.push(seg.clone());
                continue;
            }
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
        Ok(next)
    }
}
