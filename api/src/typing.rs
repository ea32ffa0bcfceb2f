//! Typing indicators: short-lived signals, not events. A visitor typing
//! shows on the team's live streams; a member typing shows in the visitor's
//! conversation. With Redis they travel between API processes by pub/sub;
//! on the embedded tier they stay in the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// How long one signal shows someone as typing.
pub const TYPING_FOR: Duration = Duration::from_secs(6);

/// Someone typing in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingSignal {
    pub org_id: Uuid,
    pub conversation_id: Uuid,
    /// `visitor` or `agent`.
    pub who: String,
    /// A member's display name (agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Who (`visitor` or `agent`) types in which conversation: until when, and their name.
type Recent = HashMap<(Uuid, String), (Instant, Option<String>)>;

pub struct Typing {
    tx: broadcast::Sender<TypingSignal>,
    /// Signals of every process (once subscribed).
    recent: Mutex<Recent>,
    redis: Option<(redis::Client, String)>,
    subscribed: AtomicBool,
}

impl Typing {
    /// In-process only, or through Redis (`channel` prefixed like the queues).
    pub fn new(redis_url: Option<&str>, namespace: Option<&str>) -> Arc<Typing> {
        let redis = redis_url.and_then(|url| redis::Client::open(url).ok()).map(|client| {
            let channel = match namespace {
                Some(ns) => format!("{ns}:parley:typing"),
                None => "parley:typing".to_owned(),
            };
            (client, channel)
        });
        Arc::new(Typing {
            tx: broadcast::channel(1024).0,
            recent: Mutex::default(),
            redis,
            subscribed: AtomicBool::new(false),
        })
    }

    fn remember(&self, signal: &TypingSignal) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        recent.retain(|_, (until, _)| *until > now);
        recent.insert(
            (signal.conversation_id, signal.who.clone()),
            (now + TYPING_FOR, signal.name.clone()),
        );
    }

    /// Listens to other processes' signals (once, from the first use on).
    fn ensure_subscribed(self: &Arc<Self>) {
        if self.subscribed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some((client, channel)) = self.redis.clone() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if pubsub.subscribe(&channel).await.is_ok() {
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let Ok(payload) = msg.get_payload::<String>() else {
                                    continue;
                                };
                                if let Ok(signal) = serde_json::from_str::<TypingSignal>(&payload) {
                                    me.remember(&signal);
                                    let _ = me.tx.send(signal);
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "typing signals: no Redis subscription; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Someone types: every process's streams and polls learn of it.
    pub async fn signal(self: &Arc<Self>, signal: TypingSignal) {
        self.ensure_subscribed();
        match &self.redis {
            Some((client, channel)) => {
                let payload = serde_json::to_string(&signal).unwrap_or_default();
                let published: Result<(), String> = async {
                    let mut conn = client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| e.to_string())?;
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                .await;
                if let Err(e) = published {
                    // Redis is down: this process still shows it.
                    tracing::warn!(error = %e, "typing signal not published");
                    self.remember(&signal);
                    let _ = self.tx.send(signal);
                }
            }
            None => {
                self.remember(&signal);
                let _ = self.tx.send(signal);
            }
        }
    }

    /// Signals from now on, for a live stream.
    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<TypingSignal> {
        self.ensure_subscribed();
        self.tx.subscribe()
    }

    /// Whether `who` is typing in the conversation now, and their name.
    pub fn typing(self: &Arc<Self>, conversation_id: Uuid, who: &str) -> Option<Option<String>> {
        self.ensure_subscribed();
        let recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent
            .get(&(conversation_id, who.to_owned()))
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, name)| name.clone())
    }
}
