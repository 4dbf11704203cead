//! The fake provider speaking Anthropic Messages (`POST /v1/messages`), from the recorded
//! fixtures in `fixtures/anthropic/`: a text answer (JSON, or a stream shaped like the
//! recordings: `message_start`, `ping`, deltas, `message_delta` with usage, `message_stop`),
//! the recorded tool-use answer and stream, the recorded thinking stream (with the
//! `output_tokens` the recording leaves out, as real streams send it), the agent behaviour
//! (see `agent.rs`), and errors in Anthropic's shape (529 replays `error-overloaded.json`).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{CHAT_TEXT, COMPLETION_TOKENS, PROMPT_TOKENS};

const TOOL_USE: &str = include_str!("../fixtures/anthropic/messages-response-tool-use.json");
const TOOL_USE_STREAM: &str = include_str!("../fixtures/anthropic/messages-stream-tool-use.sse");
const THINKING_STREAM: &str = include_str!("../fixtures/anthropic/messages-stream-thinking.sse");
const OVERLOADED: &str = include_str!("../fixtures/anthropic/error-overloaded.json");

/// Which answer to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    ToolUse,
    Thinking,
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A recorded stream with its model replaced (and `output_tokens` added where missing).
fn replay(sse: &str, model: &str) -> Vec<Bytes> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("{}");
            let mut v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            if name == "message_start" {
                v["message"]["model"] = model.into();
                if v["message"]["usage"].is_null() {
                    v["message"]["usage"] =
                        json!({"input_tokens": PROMPT_TOKENS, "output_tokens": 1});
                }
            }
            if name == "message_delta" && v["usage"]["output_tokens"].is_null() {
                v["usage"] = json!({"output_tokens": COMPLETION_TOKENS});
            }
            event(name, &v)
        })
        .collect()
}

fn text_message(model: &str, text: &str, usage: &Value) -> Value {
    json!({"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
           "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
           "stop_sequence": null, "usage": usage})
}

fn default_usage() -> Value {
    json!({"input_tokens": PROMPT_TOKENS, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": 0, "output_tokens": COMPLETION_TOKENS})
}

/// A text answer streamed word by word, the events of Anthropic's wire.
fn text_stream(model: &str, text: &str, blocks_before: &[Value], usage: &Value) -> Vec<Bytes> {
    let input = json!({"input_tokens": usage["input_tokens"], "output_tokens": 1,
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"]});
    let mut out = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_fake01", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": input}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    for b in blocks_before {
        out.extend(tool_use_block(index, b));
        index += 1;
    }
    let stop = if blocks_before.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    if !text.is_empty() {
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}),
        ));
        for word in text.split_inclusive(' ') {
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": word}}),
            ));
        }
        out.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(event(
        "message_delta",
        &json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": usage["output_tokens"]}}),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}

/// A `tool_use` block's events, its input in small `input_json_delta` pieces.
fn tool_use_block(index: usize, b: &Value) -> Vec<Bytes> {
    let mut out = vec![event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index,
        "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}),
    )];
    let input = b["input"].to_string();
    let chars: Vec<char> = input.chars().collect();
    for piece in chars.chunks(8) {
        let piece: String = piece.iter().collect();
        out.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece}}),
        ));
    }
    out.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    ));
    out
}

/// The frames of an answer of `kind` (one JSON body when not streamed).
pub(crate) fn render(kind: Kind, model: &str, stream: bool) -> Vec<Bytes> {
    match (kind, stream) {
        (Kind::Text, false) => vec![Bytes::from(
            text_message(model, CHAT_TEXT, &default_usage()).to_string(),
        )],
        (Kind::Text, true) => text_stream(model, CHAT_TEXT, &[], &default_usage()),
        (Kind::ToolUse, false) => {
            let mut v: Value = serde_json::from_str(TOOL_USE).unwrap_or(Value::Null);
            v["model"] = model.into();
            vec![Bytes::from(v.to_string())]
        }
        (Kind::ToolUse, true) => replay(TOOL_USE_STREAM, model),
        (Kind::Thinking, true) => replay(THINKING_STREAM, model),
        (Kind::Thinking, false) => {
            let mut v = text_message(model, "27 * 453 = 12,231", &default_usage());
            v["content"] = json!([{"type": "thinking", "thinking": "27 * 453 = 27 * 400 + 27 * 53",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},
                {"type": "text", "text": "27 * 453 = 12,231"}]);
            vec![Bytes::from(v.to_string())]
        }
    }
}

/// The agent behaviour on Anthropic's wire: tool results in the last user turn are answered
/// with text quoting them; otherwise the first offered scripted tool is called.
pub(crate) fn agent(body: &[u8], script: &[(String, String)], stream: bool) -> Option<Vec<Bytes>> {
    let req: Value = serde_json::from_slice(body).ok()?;
    let model = req.get("model").and_then(Value::as_str).unwrap_or("");
    let turns = req.get("messages")?.as_array()?;
    let last_results: Vec<String> = turns
        .last()
        .and_then(|m| m["content"].as_array())
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| match &b["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
            other => other.to_string(),
        })
        .collect();
    let offered: Vec<&str> = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let prompt = (body.len() / 4) as u64;
    let usage = |out: u64| {
        json!({"input_tokens": prompt, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 0, "output_tokens": out})
    };
    if let Some(result) = last_results.last() {
        let result: String = result.chars().take(400).collect();
        let text = format!("Tool result: {}", result.trim());
        let u = usage((text.len() / 4).max(1) as u64);
        return Some(if stream {
            text_stream(model, &text, &[], &u)
        } else {
            vec![Bytes::from(text_message(model, &text, &u).to_string())]
        });
    }
    let Some((name, args)) = script.iter().find(|(n, _)| offered.contains(&n.as_str())) else {
        let text = "No scripted tool was offered.";
        return Some(if stream {
            text_stream(model, text, &[], &usage(6))
        } else {
            vec![Bytes::from(
                text_message(model, text, &usage(6)).to_string(),
            )]
        });
    };
    let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
    let block = json!({"type": "tool_use", "id": format!("toolu_agent{:04}", turns.len()), "name": name, "input": input});
    if stream {
        return Some(text_stream(model, "", &[block], &usage(12)));
    }
    let mut m = text_message(model, "", &usage(12));
    m["content"] = json!([block]);
    m["stop_reason"] = "tool_use".into();
    Some(vec![Bytes::from(m.to_string())])
}

/// An error body in Anthropic's shape for `status` (529 replays the recording).
pub(crate) fn error_body(status: u16) -> Bytes {
    if status == 529 {
        return Bytes::from_static(OVERLOADED.as_bytes());
    }
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": format!("The fake Anthropic provider was scripted to answer {status}.")},
                      "request_id": "req_fake01"});
    Bytes::from(body.to_string())
}
