//! OpenAI-compatible wire types as the broker speaks them. Every struct keeps unknown fields in a
//! flattened `extra` map, so fields an upstream adds tomorrow survive a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stream_options` of a chat or completions request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One chat message; `content` is a string, an array of parts, or null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// A message with plain text content.
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        ChatMessage {
            role: role.to_owned(),
            content: Some(Value::String(text.into())),
            extra: Map::new(),
        }
    }

    /// The text of the content when it is a plain string.
    pub fn content_text(&self) -> Option<&str> {
        self.content.as_ref().and_then(Value::as_str)
    }
}

/// `chat.completion` response. `provider` names the backend that answered (OpenRouter style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `chat.completion.chunk`, one SSE event of a streamed chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a stream chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    #[serde(default)]
    pub delta: Map<String, Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage; `cost` (USD) is added by the broker from its registry prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Cached prompt tokens (`prompt_tokens_details.cached_tokens`), 0 when absent.
    pub fn cached_tokens(&self) -> u64 {
        self.detail("prompt_tokens_details", "cached_tokens")
    }

    /// Prompt tokens written to the provider's cache
    /// (`prompt_tokens_details.cache_write_tokens`: OpenRouter's name, and the broker's for
    /// Anthropic's `cache_creation_input_tokens`), 0 when absent.
    pub fn cache_write_tokens(&self) -> u64 {
        self.detail("prompt_tokens_details", "cache_write_tokens")
    }

    /// Reasoning tokens (`completion_tokens_details.reasoning_tokens`), 0 when absent.
    pub fn reasoning_tokens(&self) -> u64 {
        self.detail("completion_tokens_details", "reasoning_tokens")
    }

    fn detail(&self, group: &str, key: &str) -> u64 {
        self.extra
            .get(group)
            .and_then(|g| g.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

/// `POST /v1/embeddings` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /v1/models` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelObject>,
}

/// One model as the broker lists it: the OpenAI fields plus what the registry knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelObject {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// True when at least one backend has a configured provider with keys.
    #[serde(default)]
    pub servable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<ModelBackend>,
    /// The model's own routing strategy (`strategy:` in the models file); absent when
    /// `BACKEND_STRATEGY` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One backend of a listed model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelBackend {
    pub provider: String,
    pub model_id: String,
    pub priority: u32,
    /// USD per million input tokens.
    pub input_cost: f64,
    /// USD per million output tokens.
    pub output_cost: f64,
    /// Provider instances (keys) configured for this backend.
    pub instances: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"x"}],"temperature":0.2,"vendor_knob":{"a":1}}"#;
        let req: ChatCompletionRequest = serde_json::from_str(raw).expect("parses");
        assert_eq!(req.extra["vendor_knob"]["a"], 1);
        assert_eq!(req.messages[0].extra["name"], "x");
        let back: Value = serde_json::to_value(&req).expect("serializes");
        assert_eq!(back, serde_json::from_str::<Value>(raw).expect("valid"));
    }

    #[test]
    fn usage_details_are_read_from_extra() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
                "prompt_tokens_details":{"cached_tokens":4},
                "completion_tokens_details":{"reasoning_tokens":2}}"#,
        )
        .expect("parses");
        assert_eq!((u.cached_tokens(), u.reasoning_tokens()), (4, 2));
    }
}
