//! OpenAI Chat response → OpenAI Responses response (not streamed).
//!
//! - Reasoning the upstream returned (`reasoning` or `reasoning_content` on the message)
//!   becomes a `reasoning` item with a `reasoning_text` part, first.
//! - The message's text becomes a `message` item with one `output_text` part, and each tool
//!   call a `function_call` item whose `call_id` is the call's id, with its arguments as sent
//!   (a `namespace__name` of a declared namespace comes back as `name` in `namespace`).
//! - `status`: `length` gives `incomplete` (`max_output_tokens`), `content_filter` gives
//!   `incomplete` (`content_filter`); anything else `completed`.
//! - Usage, one accounting rule: both wires count cached tokens inside the input and
//!   reasoning tokens inside the output, so `input_tokens = prompt_tokens`,
//!   `input_tokens_details.cached_tokens = cached_tokens`, `output_tokens =
//!   completion_tokens`, `output_tokens_details.reasoning_tokens = reasoning_tokens`.
//! - The envelope echoes the request's settings (`instructions`, `tools`, `tool_choice`, …)
//!   as the Responses API does.

use serde_json::{Value, json};

use super::refuse;
use super::responses_to_chat::split_namespaced;
use crate::error::ApiError;

/// The Responses `usage` of a Chat `usage`.
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let input = n(&u["prompt_tokens"]);
    let output = n(&u["completion_tokens"]);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n(&u["prompt_tokens_details"]["cached_tokens"])},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n(&u["completion_tokens_details"]["reasoning_tokens"])},
        "total_tokens": input + output,
    })
}

/// The Responses `status` and `incomplete_details` of a Chat `finish_reason`.
pub fn status(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A Chat id made into an id with the Responses `prefix` (`resp_`, `msg_`, `rs_`, `fc_`).
pub fn id(prefix: &str, chat_id: &str) -> String {
    let bare: String = chat_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if bare.starts_with(prefix) {
        bare
    } else {
        format!("{prefix}{bare}")
    }
}

/// The response object around `output`, echoing the request's settings.
pub fn envelope(req: &Value, id: &str, created_at: u64, status: &str) -> Value {
    let pick = |k: &str, default: Value| req.get(k).cloned().unwrap_or(default);
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": pick("instructions", Value::Null),
        "max_output_tokens": pick("max_output_tokens", Value::Null),
        "model": pick("model", Value::Null),
        "output": [],
        "parallel_tool_calls": pick("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": null,
        "reasoning": pick("reasoning", json!({"effort": null, "summary": null})),
        "store": false,
        "temperature": pick("temperature", json!(1.0)),
        "text": pick("text", json!({"format": {"type": "text"}})),
        "tool_choice": pick("tool_choice", json!("auto")),
        "tools": pick("tools", json!([])),
        "top_p": pick("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": null,
        "user": pick("user", Value::Null),
        "metadata": pick("metadata", json!({})),
    })
}

/// The reasoning text of a Chat message or delta: `reasoning` (OpenRouter) or
/// `reasoning_content` (DeepSeek, vLLM).
pub fn reasoning_of(m: &Value) -> Option<&str> {
    m.get("reasoning")
        .and_then(Value::as_str)
        .or_else(|| m.get("reasoning_content").and_then(Value::as_str))
        .filter(|r| !r.is_empty())
}

/// Translates a Chat completion into a Responses response for the request `req`.
pub fn translate(chat: &Value, req: &Value, created_at: u64) -> Result<Value, ApiError> {
    let choice = chat["choices"]
        .get(0)
        .ok_or_else(|| refuse("the upstream answered without a choice"))?;
    let msg = &choice["message"];
    let chat_id = chat["id"].as_str().unwrap_or("");
    let mut output = Vec::new();
    if let Some(r) = reasoning_of(msg) {
        output.push(json!({
            "type": "reasoning", "id": id("rs_", chat_id), "summary": [],
            "content": [{"type": "reasoning_text", "text": r}], "status": "completed",
        }));
    }
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(json!({
            "type": "message", "id": id("msg_", chat_id), "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }));
    }
    for c in msg["tool_calls"].as_array().into_iter().flatten() {
        let call_id = c["id"]
            .as_str()
            .ok_or_else(|| refuse("the upstream sent a tool call without an id"))?;
        let (namespace, name) = split_namespaced(req, c["function"]["name"].as_str().unwrap_or(""));
        let mut item = json!({
            "type": "function_call", "id": id("fc_", call_id), "call_id": call_id,
            "name": name,
            "arguments": c["function"]["arguments"].as_str().unwrap_or("{}"),
            "status": "completed",
        });
        if let Some(ns) = namespace {
            item["namespace"] = ns.into();
        }
        output.push(item);
    }
    let (status, incomplete) = status(choice["finish_reason"].as_str());
    let mut r = envelope(req, &id("resp_", chat_id), created_at, status);
    r["completed_at"] = json!(created_at);
    r["incomplete_details"] = incomplete;
    r["output"] = Value::Array(output);
    r["usage"] = usage(&chat["usage"]);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_tool_call_answer_becomes_a_function_call_item() {
        let chat: Value = serde_json::from_str(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-response-tool-calls.json"
        ))
        .expect("fixture");
        let req = json!({"model": "agent", "input": "weather?", "tools": []});
        let r = translate(&chat, &req, 7).expect("translates");
        assert_eq!(r["id"], "resp_chatcmpl-abc123");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "agent");
        assert_eq!(
            r["output"],
            json!([{"type": "function_call", "id": "fc_call_abc123", "call_id": "call_abc123",
                    "name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}",
                    "status": "completed"}])
        );
        assert_eq!(
            r["usage"],
            json!({"input_tokens": 82, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": 17, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 99})
        );
    }

    #[test]
    fn reasoning_length_and_cached_tokens_map_exactly() {
        let chat = json!({"id": "c1", "choices": [{"message": {"role": "assistant",
            "reasoning": "think", "content": "Hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 2000, "completion_tokens": 30,
                      "prompt_tokens_details": {"cached_tokens": 1500},
                      "completion_tokens_details": {"reasoning_tokens": 12}}});
        let r = translate(&chat, &json!({"model": "m"}), 1).expect("translates");
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(r["output"][0]["type"], "reasoning");
        assert_eq!(r["output"][0]["content"][0]["text"], "think");
        assert_eq!(r["output"][1]["content"][0]["text"], "Hi");
        assert_eq!(r["usage"]["input_tokens"], 2000);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 1500);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 12);
    }
}
