//! [`Behavior::Agent`](crate::Behavior::Agent): a chat upstream that acts like a tool-using
//! model, for the round trips of real agents (Claude Code, Codex) and SDK tool loops.
//!
//! - When the conversation ends with tool results (`tool` messages), it answers text that
//!   quotes them: `Tool result: <the last result>` (finish `stop`).
//! - Otherwise, when the request offers a tool named in the script, it calls the first such
//!   tool with the scripted arguments (finish `tool_calls`); the call id is derived from the
//!   conversation's length, so each turn's id is new and stable.
//! - Otherwise it answers `No scripted tool was offered.`
//!
//! Replies follow OpenAI's wire: a JSON `chat.completion`, or an SSE stream with a role chunk,
//! the call's `id`/`name` first and its arguments in small pieces (or text in words), the
//! finish chunk, a usage chunk when `stream_options.include_usage` asks, and `[DONE]`.

use bytes::Bytes;
use serde_json::{Value, json};

/// What the agent does with a request body; `None` when the body is not a Chat request.
pub(crate) fn reply(body: &[u8], script: &[(String, String)], stream: bool) -> Option<Vec<Bytes>> {
    let req: Value = serde_json::from_slice(body).ok()?;
    let messages = req.get("messages")?.as_array()?;
    let model = req.get("model").and_then(Value::as_str).unwrap_or("");
    let offered: Vec<&str> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    let last = messages.last();
    let (text, call) = if last.is_some_and(|m| m["role"] == "tool") {
        let result = match &last.expect("checked")["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let result: String = result.chars().take(400).collect();
        (Some(format!("Tool result: {}", result.trim())), None)
    } else if let Some((name, args)) = script.iter().find(|(n, _)| offered.contains(&n.as_str())) {
        let id = format!("call_agent{:04}", messages.len());
        (None, Some((id, name.clone(), args.clone())))
    } else {
        (Some("No scripted tool was offered.".to_owned()), None)
    };
    let prompt = (body.len() / 4) as u64;
    let completion = text.as_ref().map_or(12, |t| (t.len() / 4).max(1) as u64);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                       "total_tokens": prompt + completion});
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let id = format!("chatcmpl-agent{}", messages.len());
    if !stream {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some((cid, name, args)) = &call {
            message["tool_calls"] = json!([{"id": cid, "type": "function",
                "function": {"name": name, "arguments": args}}]);
        }
        let out = json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage});
        return Some(vec![Bytes::from(out.to_string())]);
    }
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(text) = &text {
        for word in text.split_inclusive(' ') {
            frames.push(chunk(json!({"content": word}), Value::Null));
        }
    }
    if let Some((cid, name, args)) = &call {
        frames.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": cid, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let chars: Vec<char> = args.chars().collect();
        for piece in chars.chunks(8) {
            let piece: String = piece.iter().collect();
            frames.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    frames.push(chunk(json!({}), json!(finish)));
    if req["stream_options"]["include_usage"] == true {
        let u = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [], "usage": usage});
        frames.push(Bytes::from(format!("data: {u}\n\n")));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Vec<(String, String)> {
        vec![("Bash".into(), r#"{"command":"echo hi"}"#.into())]
    }

    #[test]
    fn it_calls_the_scripted_tool_then_quotes_its_result() {
        let ask = json!({"model": "m", "messages": [{"role": "user", "content": "go"}],
            "tools": [{"type": "function", "function": {"name": "Read"}},
                      {"type": "function", "function": {"name": "Bash"}}]});
        let out = reply(ask.to_string().as_bytes(), &script(), false).expect("reply");
        let v: Value = serde_json::from_slice(&out[0]).expect("json");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "Bash");
        assert_eq!(call["function"]["arguments"], r#"{"command":"echo hi"}"#);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

        let back = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "go"},
                         {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c", "content": "hi\n"}]});
        let frames = reply(back.to_string().as_bytes(), &script(), true).expect("reply");
        let all: String = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let text: String = all
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Tool result: hi");
        assert!(all.contains("\"usage\"") && all.ends_with("data: [DONE]\n\n"));
    }
}
