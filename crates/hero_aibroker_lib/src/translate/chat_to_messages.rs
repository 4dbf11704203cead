//! OpenAI Chat response → Anthropic Messages response (not streamed).
//!
//! - Reasoning (`reasoning` / `reasoning_content`) becomes a `thinking` block first, with the
//!   upstream's signature byte for byte (`reasoning_details[].signature`), else an empty one.
//! - The message's text becomes a `text` block, and each tool call a `tool_use` block with
//!   the same id and name. The call's arguments are parsed back into `input`; arguments that
//!   are not a JSON object are an upstream error, never guessed at.
//! - `stop_reason`: any tool call gives `tool_use`; `length` gives `max_tokens`;
//!   `content_filter` gives `refusal`; anything else gives `end_turn`.
//! - Usage, one accounting rule: Anthropic's `input_tokens` excludes cache reads, so
//!   `input_tokens = prompt_tokens − cached_tokens` and `cache_read_input_tokens =
//!   cached_tokens`; `output_tokens = completion_tokens` (reasoning tokens are part of it on
//!   both wires).

use serde_json::{Value, json};

use super::chat_to_responses::reasoning_of;
use super::refuse;
use crate::error::ApiError;

/// The signature an upstream gave its reasoning (OpenRouter's `reasoning_details[].signature`,
/// Anthropic's own bytes), passed on byte for byte; `None` when it gave none (the broker never
/// makes one up).
pub fn signature_of(m: &Value) -> Option<&str> {
    m.get("reasoning_details")?
        .as_array()?
        .iter()
        .find_map(|d| d.get("signature").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The Messages `stop_reason` of a Chat `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    if has_tool_calls {
        return "tool_use";
    }
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ => "end_turn",
    }
}

/// The Messages `usage` of a Chat `usage`.
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = n(&u["prompt_tokens"]);
    let cached = n(&u["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    json!({
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": n(&u["completion_tokens"]),
    })
}

/// Translates a Chat completion into a Messages response for `model` (the name the client
/// asked for).
pub fn translate(chat: &Value, model: &str) -> Result<Value, ApiError> {
    let choice = chat["choices"]
        .get(0)
        .ok_or_else(|| refuse("the upstream answered without a choice"))?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(thinking) = reasoning_of(msg) {
        content.push(json!({"type": "thinking", "thinking": thinking,
                            "signature": signature_of(msg).unwrap_or("")}));
    }
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
    for c in &calls {
        let args = c["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                refuse(format!(
                    "the upstream's arguments for the tool call {} are not JSON ({e})",
                    c["id"]
                ))
            })?
        };
        if !input.is_object() {
            return Err(refuse(format!(
                "the upstream's arguments for the tool call {} are not a JSON object",
                c["id"]
            )));
        }
        content.push(json!({
            "type": "tool_use",
            "id": c["id"],
            "name": c["function"]["name"],
            "input": input,
        }));
    }
    let id = chat["id"].as_str().unwrap_or("");
    Ok(json!({
        "id": if id.starts_with("msg_") { id.to_owned() } else { format!("msg_{id}") },
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str(), !calls.is_empty()),
        "stop_sequence": null,
        "usage": usage(&chat["usage"]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_tool_call_answer_becomes_a_tool_use_message() {
        let chat: Value = serde_json::from_str(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-response-tool-calls.json"
        ))
        .expect("fixture");
        let m = translate(&chat, "gpt-4o-mini").expect("translates");
        assert_eq!(
            m,
            json!({
                "id": "msg_chatcmpl-abc123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini",
                "content": [{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                             "input": {"location": "Boston, MA"}}],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 82, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 17},
            })
        );
    }

    #[test]
    fn stop_reasons_and_cached_tokens_map_exactly() {
        assert_eq!(stop_reason(Some("stop"), false), "end_turn");
        assert_eq!(stop_reason(Some("length"), false), "max_tokens");
        assert_eq!(stop_reason(Some("stop"), true), "tool_use");
        assert_eq!(stop_reason(Some("content_filter"), false), "refusal");
        let u = usage(&json!({"prompt_tokens": 2000, "completion_tokens": 30,
                              "prompt_tokens_details": {"cached_tokens": 1500}}));
        assert_eq!(u["input_tokens"], 500);
        assert_eq!(u["cache_read_input_tokens"], 1500);
        assert_eq!(u["output_tokens"], 30);
    }

    #[test]
    fn reasoning_becomes_a_thinking_block_with_its_signature_unchanged() {
        let chat: Value = serde_json::from_str(include_str!(
            "../../../hero_aibroker_testkit/fixtures/openrouter/chat-response.json"
        ))
        .expect("fixture");
        let mut chat = chat;
        chat["choices"][0]["message"]["reasoning"] = json!("Paris is the capital.");
        chat["choices"][0]["message"]["reasoning_details"] = json!([{"type": "reasoning.text", "text": "Paris is the capital.", "signature": "EqQBCgIYAh+/=="}]);
        let m = translate(&chat, "m").expect("translates");
        assert_eq!(
            m["content"][0],
            json!({"type": "thinking", "thinking": "Paris is the capital.", "signature": "EqQBCgIYAh+/=="})
        );
        assert_eq!(m["content"][1]["type"], "text");
    }

    #[test]
    fn broken_tool_arguments_are_an_error_not_a_guess() {
        let chat = json!({"id": "x", "choices": [{"message": {"tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": "{\"a\": "}}
        ]}, "finish_reason": "tool_calls"}]});
        assert!(
            translate(&chat, "m")
                .expect_err("refused")
                .message
                .contains("not JSON")
        );
    }
}
