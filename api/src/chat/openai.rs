//! Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM,
//! llama.cpp server), streamed: each `choices[0].delta.content` is passed on
//! as it arrives.

use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::provider::{AnswerProvider, AnswerRequest, Generated, ProviderError};

/// Longest error body kept from the upstream.
const ERROR_BODY_CHARS: usize = 300;
/// Conversation turns sent with the question.
const HISTORY_TURNS: usize = 10;

pub struct OpenAi {
    pub client: reqwest::Client,
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub default_model: String,
    /// Until the response headers arrive.
    pub timeout: Duration,
    /// Between two streamed chunks.
    pub idle_timeout: Duration,
}

/// The system prompt: persona, rules, then the numbered passages.
pub(crate) fn system_prompt(req: &AnswerRequest) -> String {
    let mut prompt = req.persona.trim().to_owned();
    if let Some(extra) = req.system.as_deref().filter(|s| !s.trim().is_empty()) {
        prompt.push_str("\n\n");
        prompt.push_str(extra.trim());
    }
    prompt.push_str(
        "\n\nAnswer only from the numbered passages below. Cite the passages you use with their \
         markers, like [1] or [2]. If the passages do not contain the answer, say that you do not \
         know and offer to connect the visitor with a person. Be brief.",
    );
    if let Some(lang) = req.language.as_deref() {
        prompt.push_str(&format!(" Answer in the language `{lang}`."));
    }
    prompt.push_str("\n\nPassages:\n");
    for (i, p) in req.passages.iter().enumerate() {
        let title = p.title.as_deref().unwrap_or("");
        let heading = if p.heading_path.is_empty() {
            String::new()
        } else {
            format!(" > {}", p.heading_path)
        };
        prompt.push_str(&format!("\n[{}] {title}{heading}\n{}\n", i + 1, p.text.trim()));
    }
    prompt
}

fn request_body(req: &AnswerRequest, model: &str) -> Value {
    let mut messages = vec![json!({"role": "system", "content": system_prompt(req)})];
    let skip = req.history.len().saturating_sub(HISTORY_TURNS);
    for turn in req.history.iter().skip(skip) {
        messages.push(json!({"role": turn.role, "content": turn.text}));
    }
    messages.push(json!({"role": "user", "content": req.question}));
    json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": req.temperature,
        "max_tokens": req.max_tokens,
    })
}

fn failed(message: String, partial: &str) -> ProviderError {
    ProviderError {
        message,
        partial: partial.to_owned(),
    }
}

#[async_trait]
impl AnswerProvider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn answer(&self, req: &AnswerRequest, out: &mpsc::Sender<String>) -> Result<Generated, ProviderError> {
        let model = req.model.clone().unwrap_or_else(|| self.default_model.clone());
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let mut request = self.client.post(&url).json(&request_body(req, &model));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| {
                failed(
                    format!("the model server did not answer within {} s", self.timeout.as_secs()),
                    "",
                )
            })?
            .map_err(|e| failed(format!("the model server could not be reached: {e}"), ""))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(ERROR_BODY_CHARS).collect();
            return Err(failed(format!("the model server answered {status}: {body}"), ""));
        }
        let mut events = response.bytes_stream().eventsource();
        let mut text = String::new();
        let mut usage = (0u32, 0u32);
        let mut finished = false;
        loop {
            let next = tokio::time::timeout(self.idle_timeout, events.next())
                .await
                .map_err(|_| {
                    failed(
                        format!("the model server stopped sending for {} s", self.idle_timeout.as_secs()),
                        &text,
                    )
                })?;
            let Some(event) = next else { break };
            let event = event.map_err(|e| failed(format!("the model server's stream broke: {e}"), &text))?;
            if event.data.trim() == "[DONE]" {
                finished = true;
                break;
            }
            let chunk: Value = serde_json::from_str(&event.data)
                .map_err(|e| failed(format!("the model server sent malformed data: {e}"), &text))?;
            if let Some(error) = chunk.get("error") {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(failed(format!("the model server reported an error: {message}"), &text));
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                let field = |name: &str| u.get(name).and_then(Value::as_u64).unwrap_or(0) as u32;
                usage = (field("prompt_tokens"), field("completion_tokens"));
            }
            let delta = chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !delta.is_empty() {
                text.push_str(delta);
                // A closed receiver means the client left; keep reading so the
                // whole answer is stored.
                let _ = out.send(delta.to_owned()).await;
            }
        }
        if !finished {
            return Err(failed("the model server closed the stream before [DONE]".into(), &text));
        }
        // Every passage was offered under its number, so markers match them.
        let cited = (0..req.passages.len()).collect();
        Ok(Generated {
            text,
            cited,
            prompt_tokens: usage.0,
            completion_tokens: usage.1,
            model: Some(model),
        })
    }
}
