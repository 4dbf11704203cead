//! OpenAI Chat request → Anthropic Messages request, for the native Anthropic provider.
//!
//! - Leading `system` / `developer` messages become `system`; later ones stay `system`
//!   messages in place (the Messages API takes them mid-conversation).
//! - User text and `image_url` parts (data URLs as base64 sources, others as URL sources)
//!   become blocks.
//! - `cache_control` markers on text parts (OpenRouter's way through the Chat wire) are kept.
//! - Assistant text becomes a `text` block; each tool call a `tool_use` block with the same id
//!   (an id Anthropic would reject is mapped by [`tool_id`], the same for its result) and its
//!   arguments parsed into `input` (arguments that are not a JSON object are refused);
//!   reasoning the client passes back with an Anthropic signature (`reasoning_details`)
//!   becomes a `thinking` block, text and signature byte for byte.
//! - `tool` messages become `tool_result` blocks; consecutive results (parallel calls) and the
//!   user text after them go into **one** user turn, in order, each linked by its id.
//! - `max_tokens` / `max_completion_tokens` (4096 when absent: Anthropic requires one),
//!   `temperature`, `top_p`, `stop` (→ `stop_sequences`), `user` (→ `metadata.user_id`),
//!   `stream`, `tools`, `tool_choice` (`required` → `any`), `parallel_tool_calls: false`
//!   (→ `disable_parallel_tool_use`) and `response_format` `json_schema` (→ `output_format`)
//!   map one to one.
//! - `n` > 1, `logprobs` and `response_format` `json_object` have no Messages form: refused
//!   with a 400 naming them. Sampling hints Anthropic lacks (`frequency_penalty`,
//!   `presence_penalty`, `seed`, `logit_bias`, `reasoning_effort`, …) are left out and named
//!   in [`Translated::dropped`].

use serde_json::{Map, Value, json};

use super::messages_to_chat::Translated;
use super::{note_unmapped, refuse};
use crate::error::ApiError;

/// Max tokens when the Chat request gives none (the Messages API requires a value).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Chat fields with no Messages form that are left out (and noted).
const HINTS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "reasoning_effort",
    "service_tier",
    "store",
    "metadata",
    "verbosity",
    "prediction",
    "modalities",
    "audio",
    "web_search_options",
    "stream_options",
    "top_logprobs",
    "plugins",
];

const MAPPED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "user",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "n",
    "logprobs",
];

/// A tool-call id in the form Anthropic accepts (`^[a-zA-Z0-9_-]{1,64}$`): unchanged when it
/// already is one; otherwise the offending characters become `_` and a hash of the original
/// is appended, so the mapping is deterministic, distinct ids stay distinct, and a call and
/// its result (mapped by the same function) stay linked.
pub fn tool_id(id: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.len() <= 64 && id.chars().all(valid) {
        return id.to_owned();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let clean: String = id
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .take(40)
        .collect();
    format!("{clean}_{h:016x}")
}

/// A text block, keeping the client's `cache_control` marker (OpenRouter's way of asking
/// Anthropic to cache a prefix through the Chat wire).
fn text_block(part: &Value) -> Value {
    let mut b = json!({"type": "text", "text": part.get("text").cloned().unwrap_or(Value::Null)});
    if let Some(c) = part.get("cache_control") {
        b["cache_control"] = c.clone();
    }
    b
}

/// The text blocks of a system message (its parts' `cache_control` kept).
fn system_blocks(content: &Value) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(text_block(p)),
                other => Err(refuse(format!(
                    "a {} part cannot be carried in a system message to an Anthropic upstream",
                    other.unwrap_or("typeless")
                ))),
            })
            .collect(),
        _ => Ok(vec![json!({"type": "text", "text": text_of(content)?})]),
    }
}

fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(p
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()),
                other => Err(refuse(format!(
                    "a {} part cannot be carried in this place to an Anthropic upstream",
                    other.unwrap_or("typeless")
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|t| t.join("")),
        other => Err(refuse(format!(
            "content must be a string or parts, not {other}"
        ))),
    }
}

fn image_block(part: &Value) -> Result<Value, ApiError> {
    let url = part["image_url"]["url"]
        .as_str()
        .or_else(|| part["image_url"].as_str())
        .ok_or_else(|| refuse("an image_url part needs its url"))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or_else(|| {
            refuse("an image data URL must be base64 (data:<type>;base64,<data>)")
        })?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
        );
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, ApiError> {
    let Value::Array(parts) = content else {
        return Ok(vec![json!({"type": "text", "text": text_of(content)?})]);
    };
    parts
        .iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("text") => Ok(text_block(p)),
            Some("image_url") => image_block(p),
            other => Err(refuse(format!(
                "a {} part cannot be carried to an Anthropic upstream",
                other.unwrap_or("typeless")
            ))),
        })
        .collect()
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>, ApiError> {
    let mut blocks = Vec::new();
    // Reasoning passed back with Anthropic's signature: the thinking block, byte for byte.
    for d in m
        .get("reasoning_details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match (d.get("type").and_then(Value::as_str), d.get("signature").and_then(Value::as_str)) {
            (Some("reasoning.text"), Some(sig)) if !sig.is_empty() => blocks.push(json!({
                "type": "thinking",
                "thinking": m.get("reasoning").and_then(Value::as_str).or_else(|| d.get("text").and_then(Value::as_str)).unwrap_or(""),
                "signature": sig,
            })),
            (Some("reasoning.encrypted"), _) => {
                blocks.push(json!({"type": "redacted_thinking", "data": d.get("data").cloned().unwrap_or(Value::Null)}));
            }
            _ => {}
        }
    }
    let text = text_of(m.get("content").unwrap_or(&Value::Null))?;
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for c in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let args = c["function"]["arguments"].as_str().unwrap_or("");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                refuse(format!(
                    "the arguments of tool call {} are not JSON ({e})",
                    c["id"]
                ))
            })?
        };
        if !input.is_object() {
            return Err(refuse(format!(
                "the arguments of tool call {} must be a JSON object for an Anthropic upstream",
                c["id"]
            )));
        }
        let id = tool_id(c["id"].as_str().unwrap_or(""));
        blocks.push(
            json!({"type": "tool_use", "id": id, "name": c["function"]["name"], "input": input}),
        );
    }
    Ok(blocks)
}

/// Appends `blocks` as a turn of `role`, merged into the previous turn when it has the same
/// role (tool results and the user text after them are one user turn).
fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    out.push(json!({"role": role, "content": blocks}));
}

/// Translates a Chat request body into a Messages request body for `model_id`.
pub fn translate(req: &Value, model_id: &str) -> Result<Translated, ApiError> {
    let obj = req
        .as_object()
        .ok_or_else(|| refuse("the body must be a JSON object"))?;
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(refuse(
            "n > 1 cannot be carried to an Anthropic upstream (one answer per request)",
        ));
    }
    if obj.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(refuse(
            "logprobs cannot be carried to an Anthropic upstream",
        ));
    }
    let mut dropped = Vec::new();
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("messages is required (a list)"))?
    {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") if turns.is_empty() => {
                system.extend(system_blocks(content)?);
            }
            Some("system" | "developer") => {
                turns.push(json!({"role": "system", "content": system_blocks(content)?}));
            }
            Some("user") => push_turn(&mut turns, "user", user_blocks(content)?),
            Some("assistant") => push_turn(&mut turns, "assistant", assistant_blocks(m)?),
            Some("tool") => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| refuse("a tool message needs its tool_call_id"))?;
                let block = json!({"type": "tool_result", "tool_use_id": tool_id(id), "content": text_of(content)?});
                push_turn(&mut turns, "user", vec![block]);
            }
            other => {
                return Err(refuse(format!(
                    "a message's role must be system, developer, user, assistant or tool, not {}",
                    other.unwrap_or("(none)")
                )));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model_id.into());
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(turns));
    let max = obj
        .get("max_completion_tokens")
        .or_else(|| obj.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    body.insert("max_tokens".into(), max.into());
    for k in ["temperature", "top_p"] {
        if let Some(v) = obj.get(k).filter(|v| !v.is_null()) {
            body.insert(k.into(), v.clone());
        }
    }
    match obj.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(v @ Value::Array(_)) => {
            body.insert("stop_sequences".into(), v.clone());
        }
        _ => {}
    }
    if let Some(u) = obj.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), true.into());
    }
    let mut tools = Vec::new();
    for t in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(refuse(format!(
                "a {} tool cannot be carried to an Anthropic upstream; only function tools can",
                t.get("type").and_then(Value::as_str).unwrap_or("typeless")
            )));
        }
        let f = &t["function"];
        let mut tool = json!({"name": f["name"], "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
        if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
            tool["description"] = d.clone();
        }
        tools.push(tool);
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => return Err(refuse(format!("tool_choice {other:?} is not known"))),
        }),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => {
                return Err(refuse(format!(
                    "tool_choice {v} cannot be carried to an Anthropic upstream"
                )));
            }
        },
    };
    if obj.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    if let Some(f) = obj.get("response_format").filter(|f| !f.is_null()) {
        match f.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_schema") => {
                let schema = f["json_schema"]
                    .get("schema")
                    .cloned()
                    .unwrap_or(json!({"type": "object"}));
                body.insert(
                    "output_format".into(),
                    json!({"type": "json_schema", "schema": schema}),
                );
            }
            other => {
                return Err(refuse(format!(
                    "response_format {} cannot be carried to an Anthropic upstream (use json_schema)",
                    other.unwrap_or("(typeless)")
                )));
            }
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
    fn the_recorded_chat_tools_request_becomes_the_messages_request() {
        let chat: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/wire/openai/chat-request-tools.json"
        ))
        .expect("fixture");
        let t = translate(&chat, "claude-x").expect("translates");
        let b = &t.body;
        assert_eq!(b["model"], "claude-x");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(b["messages"][0]["role"], "user");
        assert_eq!(b["tools"][0]["name"], chat["tools"][0]["function"]["name"]);
        assert_eq!(
            b["tools"][0]["input_schema"],
            chat["tools"][0]["function"]["parameters"]
        );
        assert_eq!(b["tool_choice"], json!({"type": "auto"}));
    }

    #[test]
    fn parallel_results_are_one_user_turn_and_ids_stay_linked() {
        let chat = json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Paris and Rome?"},
            {"role": "assistant", "content": null,
             "reasoning": "two calls",
             "reasoning_details": [{"type": "reasoning.text", "text": "two calls", "signature": "c2ln+/=="}],
             "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "21C"},
            {"role": "user", "content": "Thanks"}
        ], "parallel_tool_calls": false, "seed": 7});
        let t = translate(&chat, "m").expect("translates");
        let m = t.body["messages"].as_array().expect("messages");
        assert_eq!(
            t.body["system"],
            json!([{"type": "text", "text": "Be brief."}])
        );
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m[1]["content"][0],
            json!({"type": "thinking", "thinking": "two calls", "signature": "c2ln+/=="})
        );
        assert_eq!(m[1]["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(m[1]["content"][2]["id"], "toolu_2");
        assert_eq!(
            m[2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                   {"type": "tool_result", "tool_use_id": "toolu_2", "content": "21C"},
                   {"type": "text", "text": "Thanks"}])
        );
        assert_eq!(
            t.body["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(t.dropped, vec!["seed"]);
    }

    #[test]
    fn tool_ids_anthropic_rejects_are_mapped_deterministically_and_stay_linked() {
        assert_eq!(tool_id("call_abc-1"), "call_abc-1");
        let odd = "functions.get_weather:0";
        let mapped = tool_id(odd);
        assert!(
            mapped
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(mapped, tool_id(odd), "deterministic");
        assert_ne!(
            mapped,
            tool_id("functions.get_weather:1"),
            "distinct ids stay distinct"
        );
        let chat = json!({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": odd, "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": odd, "content": "ok"}]});
        let t = translate(&chat, "m").expect("translates");
        assert_eq!(t.body["messages"][0]["content"][0]["id"], mapped.as_str());
        assert_eq!(
            t.body["messages"][1]["content"][0]["tool_use_id"],
            mapped.as_str()
        );
    }

    #[test]
    fn cache_control_markers_reach_anthropic() {
        let chat = json!({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "Long doc", "cache_control": {"type": "ephemeral"}}]}]});
        let t = translate(&chat, "m").expect("translates");
        assert_eq!(
            t.body["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(
            t.body["messages"][0]["content"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
    }

    #[test]
    fn what_messages_cannot_carry_is_refused_by_name() {
        for (chat, named) in [
            (json!({"model": "m", "messages": [], "n": 2}), "n > 1"),
            (
                json!({"model": "m", "messages": [], "logprobs": true}),
                "logprobs",
            ),
            (
                json!({"model": "m", "messages": [], "response_format": {"type": "json_object"}}),
                "json_object",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
                "JSON object",
            ),
        ] {
            let e = translate(&chat, "m").expect_err("refused");
            assert!(e.message.contains(named), "{named}: {}", e.message);
        }
    }
}
