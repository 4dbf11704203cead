//! OpenAI Responses request → OpenAI Chat request (stateless use).
//!
//! - `instructions` becomes the first `system` message; `input` is a string (one user
//!   message) or a list of items.
//! - `message` items (with or without `type`) keep their role (`developer` becomes `system`);
//!   `input_text` / `output_text` parts become text, `input_image` an `image_url` part.
//! - `function_call` items become `tool_calls` of one assistant message (consecutive calls are
//!   merged into the same message, and into the assistant text just before them), with the
//!   same `call_id`; each `function_call_output` becomes a `tool` message linked by that id.
//! - `tools` (functions), `tool_choice`, `parallel_tool_calls`, `max_output_tokens`
//!   (→ `max_tokens`), `temperature`, `top_p`, `user`, `reasoning.effort`
//!   (→ `reasoning_effort`), `text.format` (→ `response_format`) and `stream` map one to one.
//! - `reasoning` items of earlier turns, `reasoning.summary`, `include`, `store: false`,
//!   `metadata`, `truncation`, `service_tier`, `prompt_cache_key`, `safety_identifier` and
//!   `text.verbosity` have no Chat form: left out and named in [`Translated::dropped`].
//! - The functions of a `namespace` tool become Chat functions named `namespace__name`
//!   (and calls of them come back as that name in that namespace).
//! - Hosted tools (`web_search`, `file_search`, …) run on OpenAI's own servers: offered, they
//!   are left out and noted; forced by `tool_choice`, the request is refused.
//! - `previous_response_id`, `conversation`, `store: true` and `background: true` need stored
//!   responses, which the broker does not keep; `custom` tools and unknown item types have no
//!   Chat form: all are refused with a 400 naming them.

use serde_json::{Map, Value, json};

use super::messages_to_chat::Translated;
use super::{note, note_unmapped, refuse};
use crate::error::ApiError;

/// Fields with no Chat form that are left out (and noted) rather than refused.
const HINTS: &[&str] = &[
    "include",
    "metadata",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
    "stream_options",
];

/// Fields that map one to one or are handled below.
const MAPPED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "user",
    "reasoning",
    "text",
    "stream",
    "store",
    "previous_response_id",
    "conversation",
    "background",
];

/// The Chat content of a message item's `content`.
fn content(c: &Value) -> Result<Value, ApiError> {
    let Value::Array(parts) = c else {
        return match c {
            Value::String(_) => Ok(c.clone()),
            other => Err(refuse(format!(
                "a message's content must be a string or parts, not {other}"
            ))),
        };
    };
    let mut out = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(
                    json!({"type": "text", "text": p.get("text").cloned().unwrap_or(Value::Null)}),
                );
            }
            Some("refusal") => {
                out.push(json!({"type": "text", "text": p.get("refusal").cloned().unwrap_or(Value::Null)}));
            }
            Some("input_image") => {
                let url = p
                    .get("image_url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        refuse("an input_image part needs an image_url (file_id needs OpenAI's file store)")
                    })?;
                let mut image = json!({"url": url});
                if let Some(d) = p.get("detail") {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => {
                return Err(refuse(format!(
                    "a content part of type {} cannot be carried to a Chat upstream",
                    other.unwrap_or("(none)")
                )));
            }
        }
    }
    // A message of text parts only is sent as one string: every Chat upstream takes that.
    if out.iter().all(|p| p["type"] == "text") {
        let text: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(text.join("")));
    }
    Ok(Value::Array(out))
}

/// Tools that run on OpenAI's own servers: a Chat upstream cannot run them, so they are left
/// out (and noted) when offered, and refused when `tool_choice` forces one.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer_use_preview",
    "mcp",
];

/// The Chat name of a function `name` in the namespace `ns`: `ns__name`.
pub fn namespaced(ns: &str, name: &str) -> String {
    format!("{ns}__{name}")
}

/// Splits a Chat function name back into its namespace and name, when the request `req`
/// declared it in a `namespace` tool.
pub fn split_namespaced<'a>(req: &Value, chat_name: &'a str) -> (Option<String>, &'a str) {
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if t.get("type").and_then(Value::as_str) != Some("namespace") {
            continue;
        }
        let Some(ns) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(rest) = chat_name
            .strip_prefix(ns)
            .and_then(|r| r.strip_prefix("__"))
        else {
            continue;
        };
        let mut declared = t
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        if declared.any(|f| f.get("name").and_then(Value::as_str) == Some(rest)) {
            return (Some(ns.to_owned()), rest);
        }
    }
    (None, chat_name)
}

fn function(t: &Value, name: Value) -> Value {
    let mut f = json!({
        "name": name,
        "parameters": t.get("parameters").cloned().unwrap_or(json!({"type": "object"})),
    });
    if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
        f["description"] = d.clone();
    }
    if let Some(s) = t.get("strict").filter(|s| !s.is_null()) {
        f["strict"] = s.clone();
    }
    json!({"type": "function", "function": f})
}

/// The Chat tools of one Responses tool: a function, the functions of a `namespace` (named
/// `namespace__name`), or none for a hosted tool (noted).
fn tools(t: &Value, out: &mut Vec<Value>, dropped: &mut Vec<String>) -> Result<(), ApiError> {
    match t.get("type").and_then(Value::as_str) {
        Some("function") => out.push(function(t, t.get("name").cloned().unwrap_or(Value::Null))),
        Some("namespace") => {
            let ns = t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| refuse("a namespace tool needs its name"))?;
            for f in t
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if f.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(refuse(format!(
                        "the namespace {ns} holds a tool that is not a function; only functions can be carried to a Chat upstream"
                    )));
                }
                let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                out.push(function(f, namespaced(ns, name).into()));
            }
        }
        Some(hosted) if HOSTED_TOOLS.contains(&hosted) => {
            note(
                dropped,
                &format!("{hosted} tool (runs on OpenAI's servers)"),
            );
        }
        other => {
            return Err(refuse(format!(
                "a {} tool cannot be carried to a Chat upstream; only function tools can",
                other.unwrap_or("typeless")
            )));
        }
    }
    Ok(())
}

fn tool_choice(c: &Value) -> Result<Value, ApiError> {
    match c {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(c.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => Ok(
            json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}}),
        ),
        Value::Object(o)
            if o.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| HOSTED_TOOLS.contains(&t)) =>
        {
            Err(refuse(format!(
                "tool_choice forces the {} tool, which runs on OpenAI's own servers and cannot be carried to a Chat upstream",
                o.get("type").and_then(Value::as_str).unwrap_or("")
            )))
        }
        other => Err(refuse(format!(
            "tool_choice {other} cannot be carried to a Chat upstream"
        ))),
    }
}

fn response_format(format: &Value) -> Result<Option<Value>, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(k) {
                    schema.insert(k.into(), v.clone());
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": Value::Object(schema)}),
            ))
        }
        Some(other) => Err(refuse(format!(
            "text.format of type {other} cannot be carried to a Chat upstream"
        ))),
    }
}

/// Turns `input` items into Chat messages.
fn items(input: &[Value], out: &mut Vec<Value>, dropped: &mut Vec<String>) -> Result<(), ApiError> {
    for item in input {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer" | "system") => "system",
                    Some(r @ ("user" | "assistant")) => r,
                    other => {
                        return Err(refuse(format!(
                            "a message's role must be user, assistant, system or developer, not {}",
                            other.unwrap_or("(none)")
                        )));
                    }
                };
                out.push(json!({"role": role, "content": content(item.get("content").unwrap_or(&Value::Null))?}));
            }
            "function_call" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| refuse("a function_call item needs its call_id"))?;
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                let name = match item.get("namespace").and_then(Value::as_str) {
                    Some(ns) => namespaced(ns, name),
                    None => name.to_owned(),
                };
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}"),
                    },
                });
                // Calls of one turn go into one assistant message, after its text.
                let merge = out.last().is_some_and(|m| {
                    m["role"] == "assistant"
                        && (m["content"].is_string() || m.get("tool_calls").is_some())
                });
                match out.last_mut().filter(|_| merge) {
                    Some(m) => match m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        Some(calls) => calls.push(call),
                        None => m["tool_calls"] = json!([call]),
                    },
                    None => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| refuse("a function_call_output item needs its call_id"))?;
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .map(|p| match p.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text" | "text") => {
                                Ok(p.get("text").and_then(Value::as_str).unwrap_or("").to_owned())
                            }
                            other => Err(refuse(format!(
                                "a function_call_output part of type {} cannot be carried to a Chat upstream",
                                other.unwrap_or("(none)")
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(""),
                    _ => String::new(),
                };
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            }
            "reasoning" => note(dropped, "reasoning items"),
            other => {
                return Err(refuse(format!(
                    "an input item of type {other} cannot be carried to a Chat upstream"
                )));
            }
        }
    }
    Ok(())
}

/// Translates a Responses request body into a Chat request body.
pub fn translate(req: &Value) -> Result<Translated, ApiError> {
    let obj = req
        .as_object()
        .ok_or_else(|| refuse("the body must be a JSON object"))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("model is required"))?;
    for (field, why) in [
        (
            "previous_response_id",
            "previous_response_id needs stored responses, which this broker does not keep: send the whole conversation in input",
        ),
        (
            "conversation",
            "conversation needs stored conversations, which this broker does not keep: send the whole conversation in input",
        ),
    ] {
        if obj.get(field).is_some_and(|v| !v.is_null()) {
            return Err(refuse(why));
        }
    }
    if obj.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(refuse(
            "store: true needs stored responses, which this broker does not keep: send store: false (the conversation goes in input)",
        ));
    }
    if obj.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(refuse(
            "background: true needs stored responses, which this broker does not keep",
        ));
    }
    let mut dropped = Vec::new();
    let mut messages = Vec::new();
    if let Some(i) = obj.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": i}));
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(list)) => items(list, &mut messages, &mut dropped)?,
        _ => return Err(refuse("input is required (a string or a list of items)")),
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
        ("parallel_tool_calls", "parallel_tool_calls"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            body.insert(to.into(), v.clone());
        }
    }
    let mut chat_tools = Vec::new();
    for t in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        tools(t, &mut chat_tools, &mut dropped)?;
    }
    if !chat_tools.is_empty() {
        body.insert("tools".into(), Value::Array(chat_tools));
    }
    if let Some(c) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        body.insert("tool_choice".into(), tool_choice(c)?);
    }
    if let Some(r) = obj.get("reasoning").filter(|v| !v.is_null()) {
        if let Some(e) = r.get("effort").filter(|v| !v.is_null()) {
            body.insert("reasoning_effort".into(), e.clone());
        }
        if r.get("summary").is_some_and(|v| !v.is_null()) {
            note(&mut dropped, "reasoning.summary");
        }
    }
    if let Some(t) = obj.get("text").filter(|v| !v.is_null()) {
        if let Some(f) = t.get("format").map(response_format).transpose()?.flatten() {
            body.insert("response_format".into(), f);
        }
        if t.get("verbosity").is_some_and(|v| !v.is_null()) {
            note(&mut dropped, "text.verbosity");
        }
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
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
            "../../tests/fixtures/wire/responses/request-function-tools.json"
        ))
        .expect("fixture");
        let t = translate(&req).expect("translates");
        assert_eq!(
            t.body,
            json!({
                "model": "gpt-5.4",
                "messages": [{"role": "user", "content": "What is the weather like in Boston today?"}],
                "tools": [{"type": "function", "function": {
                    "name": "get_current_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": req["tools"][0]["parameters"],
                }}],
                "tool_choice": "auto",
                "reasoning_effort": "medium",
            })
        );
        assert_eq!(t.dropped, vec!["reasoning.summary"]);
    }

    #[test]
    fn a_function_call_round_trip_keeps_call_ids_and_merges_parallel_calls() {
        let req = json!({
            "model": "m", "instructions": "Be brief.", "store": false,
            "include": ["reasoning.encrypted_content"],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Paris and Rome?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]}
            ],
            "max_output_tokens": 50, "stream": true, "parallel_tool_calls": true
        });
        let t = translate(&req).expect("translates");
        let m = t.body["messages"].as_array().expect("messages");
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(m[1], json!({"role": "user", "content": "Paris and Rome?"}));
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(m[2]["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            m[2]["tool_calls"][1]["function"]["arguments"],
            "{\"city\":\"Rome\"}"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"})
        );
        assert_eq!(
            m[4],
            json!({"role": "tool", "tool_call_id": "call_2", "content": "21C"})
        );
        assert_eq!(m.len(), 5);
        assert_eq!(t.body["max_tokens"], 50);
        assert_eq!(t.body["stream_options"], json!({"include_usage": true}));
        assert_eq!(t.dropped, vec!["reasoning items", "include"]);
    }

    #[test]
    fn what_needs_openais_servers_is_refused_by_name() {
        for (req, named) in [
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "input": "x", "store": true}),
                "store: true",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}],
                       "tool_choice": {"type": "web_search"}}),
                "web_search tool",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}),
                "a custom tool",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
                "item_reference",
            ),
            (json!({"model": "m"}), "input is required"),
        ] {
            let e = translate(&req).expect_err("refused");
            assert!(e.message.contains(named), "{named}: {}", e.message);
        }
    }

    #[test]
    fn namespaced_functions_round_trip_and_hosted_tools_are_noted() {
        let req = json!({"model": "m", "input": [
                {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "spawn", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"}
            ],
            "tools": [{"type": "web_search"},
                      {"type": "namespace", "name": "agents", "description": "Sub-agents",
                       "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]}]});
        let t = translate(&req).expect("translates");
        assert_eq!(t.body["tools"][0]["function"]["name"], "agents__spawn");
        assert_eq!(
            t.body["messages"][0]["tool_calls"][0]["function"]["name"],
            "agents__spawn"
        );
        assert_eq!(
            t.dropped,
            vec!["web_search tool (runs on OpenAI's servers)"]
        );
        assert_eq!(
            split_namespaced(&req, "agents__spawn"),
            (Some("agents".into()), "spawn")
        );
        assert_eq!(
            split_namespaced(&req, "agents__other"),
            (None, "agents__other")
        );
    }

    #[test]
    fn text_format_becomes_response_format() {
        let req = json!({"model": "m", "input": "x", "text": {"format": {
            "type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}});
        let t = translate(&req).expect("translates");
        assert_eq!(
            t.body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
        );
    }
}
