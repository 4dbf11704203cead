//! OpenAI Chat stream → Anthropic Messages stream, event by event.
//!
//! The first chunk opens the message (`message_start`, then `ping`). Reasoning deltas go into
//! a `thinking` block as `thinking_delta`s; the upstream's signature (OpenRouter's
//! `reasoning_details[].signature`) is passed byte for byte as the block's last event, a
//! `signature_delta`. Text deltas go into one `text` block.
//! Each tool call opens its own `tool_use` block with the call's id and name, and every piece
//! of its arguments becomes an `input_json_delta` as it arrives; pieces are never buffered
//! whole. Parallel calls interleaved by `index` are kept apart: a block is closed when another
//! starts, and later pieces of a closed call are an error rather than mixed in. The finish
//! reason and the usage chunk (which comes after it) end the message with `message_delta`
//! (`stop_reason`, usage) and `message_stop`. An upstream error event becomes an `error` event.

use serde_json::{Value, json};

use super::chat_to_messages::{signature_of, stop_reason, usage};
use super::chat_to_responses::reasoning_of;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking,
    Text,
    Tool(u64),
}

/// The translator of one stream.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    started: bool,
    /// Index of the next content block.
    next: u64,
    open: Open,
    /// Tool-call indexes whose block was closed.
    closed_tools: Vec<u64>,
    finish: Option<String>,
    any_tool: bool,
    usage: Option<Value>,
    /// The upstream's signature of the open thinking block, sent when the block closes.
    signature: Option<String>,
    ended: bool,
}

fn event(out: &mut String, name: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

impl StreamTranslator {
    /// A translator answering as `model` (the name the client asked for).
    pub fn new(model: &str) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            started: false,
            next: 0,
            open: Open::None,
            closed_tools: Vec::new(),
            finish: None,
            any_tool: false,
            usage: None,
            signature: None,
            ended: false,
        }
    }

    fn close(&mut self, out: &mut String) {
        if self.open == Open::Thinking {
            // The signature ends the thinking block, as on Anthropic's own wire.
            if let Some(sig) = self.signature.take() {
                event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": self.next - 1,
                            "delta": {"type": "signature_delta", "signature": sig}}),
                );
            }
        }
        if self.open != Open::None {
            event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.next - 1}),
            );
            if let Open::Tool(i) = self.open {
                self.closed_tools.push(i);
            }
            self.open = Open::None;
        }
    }

    fn open_block(&mut self, out: &mut String, open: Open, block: Value) {
        self.close(out);
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next, "content_block": block}),
        );
        self.next += 1;
        self.open = open;
    }

    /// Translates one Chat event's `data` payload into Messages events appended to `out`.
    pub fn feed(&mut self, data: &str, out: &mut String) {
        if self.ended {
            return;
        }
        if data.trim() == "[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(err) = chunk.get("error") {
            self.close(out);
            let message = err["message"]
                .as_str()
                .unwrap_or("The upstream stream failed.");
            event(
                out,
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            );
            self.ended = true;
            return;
        }
        if !self.started {
            self.started = true;
            let id = chunk["id"].as_str().unwrap_or("");
            event(
                out,
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": if id.starts_with("msg_") { id.to_owned() } else { format!("msg_{id}") },
                    "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            );
            // Anthropic sends a ping right after the start; clients expect to see one.
            event(out, "ping", &json!({"type": "ping"}));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(thinking) = reasoning_of(delta) {
            if self.open != Open::Thinking {
                self.open_block(
                    out,
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
            }
            event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": self.next - 1,
                        "delta": {"type": "thinking_delta", "thinking": thinking}}),
            );
        }
        if let Some(sig) = signature_of(delta) {
            if self.open != Open::Thinking {
                self.open_block(
                    out,
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
            }
            self.signature = Some(sig.to_owned());
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.open_block(out, Open::Text, json!({"type": "text", "text": ""}));
            }
            event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": self.next - 1,
                        "delta": {"type": "text_delta", "text": text}}),
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap_or(0);
            self.any_tool = true;
            if self.open != Open::Tool(i) {
                if self.closed_tools.contains(&i) {
                    // A piece of a call whose block was closed: mixing it into another block
                    // would corrupt both, so the stream ends with an error instead.
                    self.close(out);
                    event(
                        out,
                        "error",
                        &json!({"type": "error", "error": {"type": "api_error",
                        "message": "The upstream interleaved the arguments of parallel tool calls; they cannot be streamed as separate blocks."}}),
                    );
                    self.ended = true;
                    return;
                }
                self.open_block(
                    out,
                    Open::Tool(i),
                    json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}}),
                );
            }
            if let Some(piece) = call["function"]["arguments"]
                .as_str()
                .filter(|p| !p.is_empty())
            {
                event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": self.next - 1,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}),
                );
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    /// Ends the message (on `[DONE]`, or when the upstream body ends after its finish).
    pub fn end(&mut self, out: &mut String) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.close(out);
        let u = self.usage.as_ref().map_or_else(|| json!({}), usage);
        event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(self.finish.as_deref(), self.any_tool), "stop_sequence": null},
                    "usage": u}),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sse: &str) -> Vec<Value> {
        let mut t = StreamTranslator::new("agent");
        let mut out = String::new();
        for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
            t.feed(line, &mut out);
        }
        t.end(&mut out);
        out.split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    #[test]
    fn the_recorded_tool_call_stream_becomes_tool_use_blocks() {
        let events = run(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-stream-tool-calls.sse"
        ));
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds[0], "message_start");
        assert_eq!(kinds[kinds.len() - 2..], ["message_delta", "message_stop"]);
        // Each call: its own block, its arguments reassembled from the pieces are valid JSON.
        let starts: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .collect();
        assert!(starts.len() >= 2, "parallel calls: {starts:?}");
        for s in &starts {
            assert_eq!(s["content_block"]["type"], "tool_use");
            let index = &s["index"];
            let json: String = events
                .iter()
                .filter(|e| e["type"] == "content_block_delta" && &e["index"] == index)
                .map(|e| e["delta"]["partial_json"].as_str().unwrap_or(""))
                .collect();
            serde_json::from_str::<Value>(&json).expect("arguments survive whole");
        }
        let end = &events[events.len() - 2];
        assert_eq!(end["delta"]["stop_reason"], "tool_use");
        assert!(end["usage"]["output_tokens"].as_u64() > Some(0), "{end}");
    }

    #[test]
    fn the_recorded_text_stream_becomes_one_text_block() {
        let events = run(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-stream.sse"
        ));
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| e["delta"]["text"].as_str().unwrap_or(""))
            .collect();
        assert!(!text.is_empty());
        assert_eq!(
            events
                .iter()
                .filter(|e| e["type"] == "content_block_start")
                .count(),
            1
        );
        assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn the_recorded_reasoning_stream_becomes_a_signed_thinking_block() {
        let sse = include_str!("../../tests/fixtures/wire/openrouter/chat-stream-reasoning.sse");
        let events = run(sse);
        let start = events
            .iter()
            .find(|e| e["type"] == "content_block_start")
            .expect("a block");
        assert_eq!(start["content_block"]["type"], "thinking");
        let thinking: String = events
            .iter()
            .filter_map(|e| e["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thinking, "The user asks for the capital of France.");
        let sig: Vec<&str> = events
            .iter()
            .filter_map(|e| e["delta"]["signature"].as_str())
            .collect();
        // Byte for byte the recording's signature, once, before the block closes.
        assert_eq!(
            sig,
            ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."]
        );
        let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).expect("event");
        assert!(
            at(&|e| e["delta"]["type"] == "signature_delta")
                < at(&|e| e["type"] == "content_block_stop")
        );
        let text_start = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .nth(1)
            .expect("a text block");
        assert_eq!(text_start["content_block"]["type"], "text");
    }

    #[test]
    fn an_upstream_error_event_ends_the_stream_with_an_error() {
        let mut t = StreamTranslator::new("m");
        let mut out = String::new();
        t.feed(
            r#"{"id":"x","choices":[{"delta":{"content":"Hi"}}]}"#,
            &mut out,
        );
        t.feed(
            r#"{"error":{"message":"overloaded","code":"stream_interrupted"}}"#,
            &mut out,
        );
        t.end(&mut out);
        assert!(out.contains("event: error"), "{out}");
        assert!(!out.contains("message_stop"), "{out}");
    }
}
