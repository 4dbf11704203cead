//! Anthropic Messages request → OpenAI Chat request.
//!
//! - `system` (a string or text blocks) becomes the first `system` message.
//! - User turns: text and image blocks become content parts. Every `tool_result` becomes a
//!   `tool` message; they come first, in order, so a turn of parallel results keeps each one
//!   linked to its call.
//! - Assistant turns: text becomes the content, `tool_use` blocks become `tool_calls` with the
//!   same ids and the input serialised as the arguments.
//! - `tools`, `tool_choice` (`auto`, `any` → `required`, `tool` → that function, `none`),
//!   `disable_parallel_tool_use`, `stop_sequences`, `max_tokens`, `temperature`, `top_p`,
//!   `metadata.user_id` and `stream` map one to one.
//! - Mid-conversation `system` messages become `system` messages; `output_format`
//!   (`json_schema`) becomes `response_format`.
//! - Thinking blocks of earlier turns go on as OpenRouter's `reasoning_details` on the
//!   assistant message (signatures byte for byte); a driver whose upstream knows no such field
//!   leaves them out and names them in the trace.
//! - `thinking` (the setting), `cache_control` markers,
//!   `top_k`, `context_management`, `output_config`, `service_tier`, tool fields other than
//!   name, description and schema (`defer_loading`, …) and unknown fields have no Chat form:
//!   they are left out and named in [`Translated::dropped`].
//! - `mcp_servers` and `container` need Anthropic's own servers: refused by name.
//! - Anything else the target cannot carry (a document block, an unknown block type) is
//!   refused with a 400 naming it.

use serde_json::{Map, Value, json};

use super::{note, note_unmapped, refuse};
use crate::error::ApiError;

/// Fields with no Chat form that are left out (and noted) rather than refused: hints to
/// Anthropic's servers about how to think, cache or manage the context.
const HINTS: &[&str] = &[
    "thinking",
    "top_k",
    "context_management",
    "output_config",
    "service_tier",
];

/// Fields mapped below (or refused there).
const MAPPED: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "output_format",
    "mcp_servers",
    "container",
];

/// A translated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The Chat request body.
    pub body: Value,
    /// What the Chat surface cannot carry and was left out, for the request's trace.
    pub dropped: Vec<String>,
}

fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => Ok(b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()),
                other => Err(refuse(format!(
                    "a {} block cannot be carried in this place by an OpenAI-compatible upstream",
                    other.unwrap_or("typeless")
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join("\n")),
        Value::Null => Ok(String::new()),
        other => Err(refuse(format!(
            "content must be a string or blocks, not {other}"
        ))),
    }
}

fn image_part(block: &Value) -> Result<Value, ApiError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            source.get("data").and_then(Value::as_str).unwrap_or("")
        ),
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        other => {
            return Err(refuse(format!(
                "an image source of type {} cannot be carried to an OpenAI-compatible upstream",
                other.unwrap_or("(none)")
            )));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

struct Turns<'a> {
    out: Vec<Value>,
    dropped: &'a mut Vec<String>,
}

impl Turns<'_> {
    fn note(&mut self, what: &str) {
        note(self.dropped, what);
    }

    fn user(&mut self, content: &Value) -> Result<(), ApiError> {
        let Value::Array(blocks) = content else {
            self.out
                .push(json!({"role": "user", "content": text_of(content)?}));
            return Ok(());
        };
        let mut parts = Vec::new();
        for b in blocks {
            if b.get("cache_control").is_some() {
                self.note("cache_control");
            }
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(
                    json!({"type": "text", "text": b.get("text").cloned().unwrap_or(Value::Null)}),
                ),
                Some("image") => parts.push(image_part(b)?),
                Some("tool_result") => {
                    let id = b
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| refuse("a tool_result block needs its tool_use_id"))?;
                    let mut text = text_of(b.get("content").unwrap_or(&Value::Null))?;
                    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                        text = format!("Error: {text}");
                    }
                    // Tool results answer the previous assistant turn: they go first.
                    self.out
                        .push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                }
                other => {
                    return Err(refuse(format!(
                        "a {} block in a user turn cannot be carried to an OpenAI-compatible upstream",
                        other.unwrap_or("typeless")
                    )));
                }
            }
        }
        if !parts.is_empty() {
            self.out.push(json!({"role": "user", "content": parts}));
        }
        Ok(())
    }

    fn assistant(&mut self, content: &Value) -> Result<(), ApiError> {
        let Value::Array(blocks) = content else {
            self.out
                .push(json!({"role": "assistant", "content": text_of(content)?}));
            return Ok(());
        };
        let mut text = Vec::new();
        let mut calls = Vec::new();
        let (mut reasoning, mut details) = (String::new(), Vec::new());
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push(
                    b.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ),
                Some("tool_use") => calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": b.get("input").unwrap_or(&json!({})).to_string(),
                    },
                })),
                // Signed thinking goes on as OpenRouter's `reasoning_details` (signature byte for
                // byte), which OpenRouter hands back to Anthropic; drivers of upstreams that
                // know no such field leave it out and say so in the trace.
                Some("thinking") => {
                    let t = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                    reasoning.push_str(t);
                    details.push(json!({"type": "reasoning.text", "text": t,
                        "signature": b.get("signature").cloned().unwrap_or(Value::Null),
                        "format": "anthropic-claude-v1", "index": details.len()}));
                }
                Some("redacted_thinking") => details.push(json!({"type": "reasoning.encrypted",
                    "data": b.get("data").cloned().unwrap_or(Value::Null),
                    "format": "anthropic-claude-v1", "index": details.len()})),
                other => {
                    return Err(refuse(format!(
                        "a {} block in an assistant turn cannot be carried to an OpenAI-compatible upstream",
                        other.unwrap_or("typeless")
                    )));
                }
            }
        }
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text.join("")) }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        if !details.is_empty() {
            msg["reasoning"] = reasoning.into();
            msg["reasoning_details"] = Value::Array(details);
        }
        self.out.push(msg);
        Ok(())
    }
}

/// Translates a Messages request body into a Chat request body.
pub fn translate(req: &Value) -> Result<Translated, ApiError> {
    let obj = req
        .as_object()
        .ok_or_else(|| refuse("the body must be a JSON object"))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("model is required"))?;
    let max_tokens = obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| refuse("max_tokens is required (a positive integer)"))?;
    let mut dropped = Vec::new();
    let mut turns = Turns {
        out: Vec::new(),
        dropped: &mut dropped,
    };
    if let Some(system) = obj.get("system") {
        if system
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b.get("cache_control").is_some()))
        {
            turns.note("cache_control");
        }
        turns
            .out
            .push(json!({"role": "system", "content": text_of(system)?}));
    }
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("messages is required (a list)"))?
    {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str) {
            Some("user") => turns.user(content)?,
            Some("assistant") => turns.assistant(content)?,
            // Mid-conversation system messages (Claude Code sends them): Chat has the role.
            Some("system") => {
                if content
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b.get("cache_control").is_some()))
                {
                    turns.note("cache_control");
                }
                turns
                    .out
                    .push(json!({"role": "system", "content": text_of(content)?}));
            }
            other => {
                return Err(refuse(format!(
                    "a message's role must be user, assistant or system, not {}",
                    other.unwrap_or("(none)")
                )));
            }
        }
    }
    let messages = turns.out;
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), max_tokens.into());
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ] {
        if let Some(v) = obj.get(from) {
            body.insert(to.into(), v.clone());
        }
    }
    if let Some(user) = obj.get("metadata").and_then(|m| m.get("user_id")) {
        body.insert("user".into(), user.clone());
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out = Vec::new();
        for t in tools {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty != "custom")
            {
                return Err(refuse(format!(
                    "the server tool {} cannot be carried to an OpenAI-compatible upstream",
                    t.get("type").and_then(Value::as_str).unwrap_or("")
                )));
            }
            for (k, _) in t.as_object().into_iter().flatten() {
                match k.as_str() {
                    "name" | "description" | "input_schema" | "type" => {}
                    "cache_control" => note(&mut dropped, "cache_control"),
                    _ => note(&mut dropped, &format!("tools[].{k}")),
                }
            }
            out.push(json!({"type": "function", "function": {
                "name": t.get("name").cloned().unwrap_or(Value::Null),
                "description": t.get("description").cloned().unwrap_or(Value::Null),
                "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"})),
            }}));
        }
        body.insert("tools".into(), Value::Array(out));
    }
    if let Some(choice) = obj.get("tool_choice") {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or(Value::Null)}})
            }
            other => {
                return Err(refuse(format!(
                    "tool_choice of type {} is not known",
                    other.unwrap_or("(none)")
                )));
            }
        };
        body.insert("tool_choice".into(), mapped);
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            body.insert("parallel_tool_calls".into(), false.into());
        }
    }
    if let Some(format) = obj.get("output_format").filter(|f| !f.is_null()) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                body.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {
                        "name": "output", "strict": true,
                        "schema": format.get("schema").cloned().unwrap_or(json!({"type": "object"})),
                    }}),
                );
            }
            other => {
                return Err(refuse(format!(
                    "output_format of type {} cannot be carried to an OpenAI-compatible upstream",
                    other.unwrap_or("(none)")
                )));
            }
        }
    }
    for needs_anthropic in ["mcp_servers", "container"] {
        if obj.get(needs_anthropic).is_some_and(|v| !v.is_null()) {
            return Err(refuse(format!(
                "{needs_anthropic} runs on Anthropic's own servers and cannot be carried to an OpenAI-compatible upstream"
            )));
        }
    }
    note_unmapped(obj, MAPPED, HINTS, &mut dropped);
    Ok(Translated {
        body: Value::Object(body),
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_tools_request_becomes_a_chat_request() {
        let req: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/wire/anthropic/messages-request-tools.json"
        ))
        .expect("fixture");
        let t = translate(&req).expect("translates");
        assert_eq!(
            t.body,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "What is the weather like in San Francisco?"}],
                "max_tokens": 1024,
                "tools": [{"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": req["tools"][0]["input_schema"],
                }}],
                "tool_choice": "required",
            })
        );
        assert!(t.dropped.is_empty());
    }

    #[test]
    fn a_tool_round_trip_keeps_ids_and_parallel_results_in_order() {
        let req = json!({
            "model": "m", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "two calls", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "w", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no data"}], "is_error": true},
                    {"type": "text", "text": "Thanks"}
                ]}
            ],
            "stream": true
        });
        let t = translate(&req).expect("translates");
        let m = t.body["messages"].as_array().expect("messages");
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            m[2]["tool_calls"][1]["function"]["arguments"],
            "{\"city\":\"Rome\"}"
        );
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"})
        );
        assert_eq!(
            m[4],
            json!({"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"})
        );
        assert_eq!(
            m[5],
            json!({"role": "user", "content": [{"type": "text", "text": "Thanks"}]})
        );
        assert_eq!(t.body["stream_options"], json!({"include_usage": true}));
        // The signed thinking goes on as OpenRouter's reasoning details, signature unchanged.
        assert_eq!(m[2]["reasoning"], "two calls");
        assert_eq!(
            m[2]["reasoning_details"],
            json!([{"type": "reasoning.text", "text": "two calls", "signature": "sig",
                    "format": "anthropic-claude-v1", "index": 0}])
        );
        assert_eq!(t.dropped, vec!["cache_control", "thinking"]);
    }

    #[test]
    fn what_chat_cannot_carry_is_refused_by_name() {
        let doc = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": ""}}
        ]}]});
        let e = translate(&doc).expect_err("refused");
        assert!(e.message.contains("document block"), "{}", e.message);
        let no_max = json!({"model": "m", "messages": []});
        assert!(
            translate(&no_max)
                .expect_err("refused")
                .message
                .contains("max_tokens")
        );
    }
}
