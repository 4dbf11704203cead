//! Anthropic Messages response → OpenAI Chat completion, for the native Anthropic provider.
//!
//! - `text` blocks become the message's content; each `tool_use` block a tool call with the
//!   same id and name and its `input` serialised as the arguments.
//! - `thinking` becomes `reasoning` plus a `reasoning_details` entry carrying the signature
//!   byte for byte (OpenRouter's shape, so a client can pass it back); `redacted_thinking`
//!   an encrypted entry.
//! - `finish_reason`: `tool_use` → `tool_calls`, `max_tokens` → `length`, `refusal` →
//!   `content_filter`, anything else → `stop`.
//! - Usage, one accounting rule: Anthropic's `input_tokens` excludes the cache, so
//!   `prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`,
//!   with `prompt_tokens_details.cached_tokens` = the reads and `cache_write_tokens` = the
//!   writes (each priced at its own rate); `completion_tokens = output_tokens`.

use serde_json::{Value, json};

use super::refuse;
use crate::error::ApiError;

/// The Chat `finish_reason` of a Messages `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The Chat `usage` of a Messages `usage`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
    );
    let prompt = n("input_tokens") + read + write;
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    })
}

/// The reasoning detail of a thinking block (`reasoning.text` with its signature).
pub fn reasoning_detail(thinking: &str, signature: Option<&str>) -> Value {
    json!({"type": "reasoning.text", "text": thinking, "signature": signature,
           "format": "anthropic-claude-v1", "index": 0})
}

/// Translates a Messages response into a Chat completion.
pub fn translate(msg: &Value) -> Result<Value, ApiError> {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("the upstream's message has no content list"))?;
    let (mut text, mut reasoning) = (String::new(), String::new());
    let (mut calls, mut details) = (Vec::new(), Vec::new());
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b.get("input").unwrap_or(&json!({})).to_string()},
            })),
            Some("thinking") => {
                let t = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                reasoning.push_str(t);
                details.push(reasoning_detail(t, b.get("signature").and_then(Value::as_str)));
            }
            Some("redacted_thinking") => details.push(json!({
                "type": "reasoning.encrypted", "data": b["data"], "format": "anthropic-claude-v1",
            })),
            // Server-tool blocks (web search results, …) have no Chat form; the text that
            // cites them is kept.
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !details.is_empty() {
        message["reasoning"] = reasoning.into();
        message["reasoning_details"] = Value::Array(details);
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "id": msg["id"],
        "object": "chat.completion",
        "created": created,
        "model": msg["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(msg["stop_reason"].as_str())}],
        "usage": usage(&msg["usage"]),
    }))
}

/// An Anthropic error body (`{"type":"error","error":{type,message}}`) in OpenAI's shape;
/// `None` when the body is not one.
pub fn error(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    Some(json!({"error": {
        "message": e.get("message").and_then(Value::as_str).unwrap_or("The Anthropic upstream refused the request."),
        "type": e.get("type").and_then(Value::as_str).unwrap_or("api_error"),
        "param": null,
        "code": e.get("type").and_then(Value::as_str),
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_tool_use_message_becomes_a_chat_completion() {
        let msg: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/wire/anthropic/messages-response-tool-use.json"
        ))
        .expect("fixture");
        let c = translate(&msg).expect("translates");
        let m = &c["choices"][0]["message"];
        assert_eq!(
            m["content"],
            "I'll check the current weather in San Francisco for you."
        );
        assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
        let args: Value = serde_json::from_str(
            m["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .expect("string"),
        )
        .expect("json");
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        // 472 uncached + 1500 read from the cache: each counted once.
        assert_eq!(c["usage"]["prompt_tokens"], 1972);
        assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 1500);
        assert_eq!(c["usage"]["completion_tokens"], 89);
    }

    #[test]
    fn thinking_keeps_its_signature_and_errors_change_shape() {
        let msg = json!({"id": "msg_1", "model": "c", "stop_reason": "max_tokens", "usage": {"input_tokens": 5, "output_tokens": 7},
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "EqQB+/=="}, {"type": "text", "text": "Hi"}]});
        let c = translate(&msg).expect("translates");
        assert_eq!(c["choices"][0]["message"]["reasoning"], "hmm");
        assert_eq!(
            c["choices"][0]["message"]["reasoning_details"][0]["signature"],
            "EqQB+/=="
        );
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        let e = error(include_bytes!(
            "../../tests/fixtures/wire/anthropic/error-overloaded.json"
        ))
        .expect("an error");
        assert_eq!(e["error"]["type"], "overloaded_error");
        assert_eq!(e["error"]["message"], "Overloaded");
    }
}
