//! Anthropic Messages stream → OpenAI Chat stream, event by event, for the native Anthropic
//! provider.
//!
//! `message_start` gives the role chunk (and the input usage); `text_delta` becomes
//! `content`; each `tool_use` block becomes a tool call (`index` counting tool calls, the
//! block's id and name first, then every `input_json_delta` as an `arguments` piece as it
//! arrives); `thinking_delta` becomes `reasoning` (with a `reasoning_details` entry) and
//! `signature_delta` a `reasoning_details` entry carrying the signature byte for byte.
//! `message_delta` gives the finish chunk; `message_stop` the usage chunk (`choices: []`,
//! counted as in [`super::messages_reply_to_chat::usage`]) and `[DONE]`. `ping` gives
//! nothing; an `error` event becomes an in-band `{"error": {...}}` chunk.

use serde_json::{Value, json};

use super::messages_reply_to_chat::{finish_reason, reasoning_detail, usage};

/// The translator of one stream.
#[derive(Debug, Default)]
pub struct ChatStream {
    id: String,
    model: String,
    created: u64,
    /// Anthropic's usage so far (message_start's, updated by message_delta's).
    usage: serde_json::Map<String, Value>,
    /// Tool calls seen so far; the Chat `index` of the open `tool_use` block.
    tools: u64,
    open_tool: Option<u64>,
    ended: bool,
}

impl ChatStream {
    /// A new translator.
    pub fn new() -> Self {
        ChatStream {
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            ..ChatStream::default()
        }
    }

    fn chunk(&self, out: &mut String, delta: Value, finish: Option<&str>) {
        let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        data(out, &c.to_string());
    }

    fn merge_usage(&mut self, u: &Value) {
        for (k, v) in u.as_object().into_iter().flatten() {
            if v.is_number() {
                self.usage.insert(k.clone(), v.clone());
            }
        }
    }

    /// Translates one Anthropic event's `data` payload into Chat `data:` events on `out`.
    pub fn feed(&mut self, payload: &str, out: &mut String) {
        if self.ended {
            return;
        }
        let Ok(ev) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = &ev["message"];
                self.id = m["id"].as_str().unwrap_or("").to_owned();
                self.model = m["model"].as_str().unwrap_or("").to_owned();
                self.merge_usage(&m["usage"]);
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            Some("content_block_start") => {
                let b = &ev["content_block"];
                if b["type"] == "tool_use" {
                    let i = self.tools;
                    self.tools += 1;
                    self.open_tool = Some(i);
                    self.chunk(
                        out,
                        json!({"tool_calls": [{"index": i, "id": b["id"], "type": "function",
                        "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    );
                } else {
                    self.open_tool = None;
                }
            }
            Some("content_block_delta") => {
                let d = &ev["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => self.chunk(out, json!({"content": d["text"]}), None),
                    Some("input_json_delta") => {
                        let piece = d["partial_json"].as_str().unwrap_or("");
                        if let (Some(i), false) = (self.open_tool, piece.is_empty()) {
                            self.chunk(out, json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), None);
                        }
                    }
                    Some("thinking_delta") => {
                        let t = d["thinking"].as_str().unwrap_or("");
                        self.chunk(out, json!({"reasoning": t, "reasoning_details": [reasoning_detail(t, None)]}), None);
                    }
                    Some("signature_delta") => {
                        let sig = d["signature"].as_str();
                        self.chunk(out, json!({"reasoning": "", "reasoning_details": [reasoning_detail("", sig)]}), None);
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                self.merge_usage(&ev["usage"]);
                let f = finish_reason(ev["delta"]["stop_reason"].as_str());
                self.chunk(out, json!({}), Some(f));
            }
            Some("message_stop") => {
                self.ended = true;
                let u = usage(&Value::Object(self.usage.clone()));
                let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": u});
                data(out, &c.to_string());
                data(out, "[DONE]");
            }
            Some("error") => {
                self.ended = true;
                let e = &ev["error"];
                let c = json!({"error": {"message": e["message"].as_str().unwrap_or("The Anthropic stream failed."),
                    "type": e["type"], "code": e["type"]}});
                data(out, &c.to_string());
            }
            _ => {}
        }
    }
}

fn data(out: &mut String, payload: &str) {
    out.push_str("data: ");
    out.push_str(payload);
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sse: &str) -> Vec<Value> {
        let mut t = ChatStream::new();
        let mut out = String::new();
        for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
            t.feed(line, &mut out);
        }
        out.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    #[test]
    fn the_recorded_tool_use_stream_becomes_chat_chunks() {
        let sse = include_str!("../../tests/fixtures/wire/anthropic/messages-stream-tool-use.sse");
        let chunks = run(sse);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(text.starts_with("Okay, let's check the weather"), "{text}");
        let first_call = chunks
            .iter()
            .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].as_str());
        assert!(first_call.is_some_and(|id| id.starts_with("toolu_")));
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        let args: Value = serde_json::from_str(&args).expect("arguments survive whole");
        assert!(args.is_object());
        let finish = chunks
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"));
        let last = chunks.last().expect("usage chunk");
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 472);
        assert!(last["usage"]["completion_tokens"].as_u64() > Some(2));
    }

    #[test]
    fn the_recorded_thinking_stream_keeps_its_signature() {
        let sse = include_str!("../../tests/fixtures/wire/anthropic/messages-stream-thinking.sse");
        let chunks = run(sse);
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning"].as_str())
            .collect();
        assert!(reasoning.contains("27 * 453"), "{reasoning}");
        let sig: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_details"][0]["signature"].as_str())
            .collect();
        assert_eq!(
            sig,
            ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."]
        );
    }
}
