//! OpenAI Chat stream → OpenAI Responses stream, event by event.
//!
//! The first chunk gives `response.created` and `response.in_progress`. Reasoning deltas
//! (`reasoning` / `reasoning_content`) open a `reasoning` item and stream as
//! `response.reasoning_text.delta`; text opens a `message` item (`output_item.added`,
//! `content_part.added`) and streams as `response.output_text.delta`; each tool call opens a
//! `function_call` item with its call id and name, and every piece of its arguments becomes a
//! `response.function_call_arguments.delta` as it arrives. Items carry their `output_index`,
//! so parallel calls whose pieces interleave stay apart. At the end every open item is closed
//! in order (`.done` events with the whole text or arguments, `output_item.done`) and
//! `response.completed` (or `response.incomplete` when the output hit its limit) carries the
//! whole response with usage. An upstream error event becomes `response.failed`. Every event
//! has an increasing `sequence_number`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::chat_to_responses::{envelope, id, reasoning_of, status, usage};
use super::responses_to_chat::split_namespaced;

#[derive(Debug)]
enum Kind {
    Reasoning,
    Message,
    Call {
        call_id: String,
        name: String,
        namespace: Option<String>,
    },
}

#[derive(Debug)]
struct Item {
    id: String,
    kind: Kind,
    /// The text, or the arguments so far (for the `.done` events and the final response).
    text: String,
    done: bool,
}

impl Item {
    fn json(&self, status: &str) -> Value {
        match &self.kind {
            Kind::Reasoning => json!({"type": "reasoning", "id": self.id, "summary": [],
                "content": [{"type": "reasoning_text", "text": self.text}], "status": status}),
            Kind::Message => {
                json!({"type": "message", "id": self.id, "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}]})
            }
            Kind::Call {
                call_id,
                name,
                namespace,
            } => {
                let mut item = json!({"type": "function_call", "id": self.id,
                    "call_id": call_id, "name": name, "arguments": self.text, "status": status});
                if let Some(ns) = namespace {
                    item["namespace"] = ns.as_str().into();
                }
                item
            }
        }
    }
}

/// The translator of one stream.
#[derive(Debug)]
pub struct ResponsesStream {
    req: Value,
    created_at: u64,
    seq: u64,
    response_id: Option<String>,
    chat_id: String,
    items: Vec<Item>,
    /// The open reasoning or message item (only one at a time; calls stay open to the end).
    open: Option<usize>,
    /// Chat tool-call index → item.
    calls: HashMap<u64, usize>,
    finish: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl ResponsesStream {
    /// A translator for the request `req` (its settings are echoed in the response object).
    pub fn new(req: &Value, created_at: u64) -> Self {
        let mut req = req.clone();
        if let Some(o) = req.as_object_mut() {
            o.remove("input");
        }
        ResponsesStream {
            req,
            created_at,
            seq: 0,
            response_id: None,
            chat_id: String::new(),
            items: Vec::new(),
            open: None,
            calls: HashMap::new(),
            finish: None,
            usage: None,
            ended: false,
        }
    }

    fn event(&mut self, out: &mut String, mut data: Value) {
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push_str("event: ");
        out.push_str(data["type"].as_str().unwrap_or(""));
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    }

    fn response(&self, status: &str) -> Value {
        let id = self.response_id.as_deref().unwrap_or("resp_");
        envelope(&self.req, id, self.created_at, status)
    }

    fn close(&mut self, out: &mut String, i: usize) {
        if self.items[i].done {
            return;
        }
        self.items[i].done = true;
        let (item_id, text) = (self.items[i].id.clone(), self.items[i].text.clone());
        match &self.items[i].kind {
            Kind::Reasoning => self.event(
                out,
                json!({"type": "response.reasoning_text.done",
                "item_id": item_id, "output_index": i, "content_index": 0, "text": text}),
            ),
            Kind::Message => {
                self.event(
                    out,
                    json!({"type": "response.output_text.done", "item_id": item_id,
                    "output_index": i, "content_index": 0, "text": text, "logprobs": []}),
                );
                self.event(out, json!({"type": "response.content_part.done", "item_id": item_id,
                    "output_index": i, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}));
            }
            Kind::Call { name, .. } => {
                let name = name.clone();
                self.event(
                    out,
                    json!({"type": "response.function_call_arguments.done",
                    "item_id": item_id, "output_index": i, "name": name, "arguments": text}),
                );
            }
        }
        let item = self.items[i].json("completed");
        self.event(
            out,
            json!({"type": "response.output_item.done", "output_index": i, "item": item}),
        );
    }

    fn add(&mut self, out: &mut String, item: Item) -> usize {
        let i = self.items.len();
        let added = item.json("in_progress");
        let (item_id, is_message) = (item.id.clone(), matches!(item.kind, Kind::Message));
        self.items.push(item);
        let mut added = added;
        if is_message {
            added["content"] = json!([]);
        } else if let Some(a) = added.get_mut("content") {
            *a = json!([]);
        }
        self.event(
            out,
            json!({"type": "response.output_item.added", "output_index": i, "item": added}),
        );
        if is_message {
            self.event(
                out,
                json!({"type": "response.content_part.added", "item_id": item_id,
                "output_index": i, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            );
        }
        i
    }

    /// The open reasoning or message item of this kind, opened if needed.
    fn open_item(&mut self, out: &mut String, message: bool) -> usize {
        if let Some(i) = self.open {
            if matches!(self.items[i].kind, Kind::Message) == message {
                return i;
            }
            self.close(out, i);
        }
        let (prefix, kind) = if message {
            ("msg_", Kind::Message)
        } else {
            ("rs_", Kind::Reasoning)
        };
        let n = self.items.len();
        let item_id = id(prefix, &format!("{}_{n}", self.chat_id));
        let i = self.add(
            out,
            Item {
                id: item_id,
                kind,
                text: String::new(),
                done: false,
            },
        );
        self.open = Some(i);
        i
    }

    /// Translates one Chat event's `data` payload into Responses events appended to `out`.
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
            self.fail(out, err);
            return;
        }
        if self.response_id.is_none() {
            self.chat_id = chunk["id"].as_str().unwrap_or("").to_owned();
            self.response_id = Some(id("resp_", &self.chat_id));
            let r = self.response("in_progress");
            self.event(out, json!({"type": "response.created", "response": r}));
            self.event(out, json!({"type": "response.in_progress", "response": r}));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(r) = reasoning_of(delta) {
            let i = self.open_item(out, false);
            self.items[i].text.push_str(r);
            let item_id = self.items[i].id.clone();
            self.event(
                out,
                json!({"type": "response.reasoning_text.delta", "item_id": item_id,
                "output_index": i, "content_index": 0, "delta": r}),
            );
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let i = self.open_item(out, true);
            self.items[i].text.push_str(text);
            let item_id = self.items[i].id.clone();
            self.event(
                out,
                json!({"type": "response.output_text.delta", "item_id": item_id,
                "output_index": i, "content_index": 0, "delta": text, "logprobs": []}),
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            let i = match self.calls.get(&index) {
                Some(&i) => i,
                None => {
                    if let Some(o) = self.open.take() {
                        self.close(out, o);
                    }
                    let call_id = call["id"].as_str().unwrap_or("").to_owned();
                    let chat_name = call["function"]["name"].as_str().unwrap_or("");
                    let (namespace, name) = split_namespaced(&self.req, chat_name);
                    let item = Item {
                        id: id("fc_", &call_id),
                        kind: Kind::Call {
                            call_id,
                            name: name.to_owned(),
                            namespace,
                        },
                        text: String::new(),
                        done: false,
                    };
                    let i = self.add(out, item);
                    self.calls.insert(index, i);
                    i
                }
            };
            if let Some(piece) = call["function"]["arguments"]
                .as_str()
                .filter(|p| !p.is_empty())
            {
                self.items[i].text.push_str(piece);
                let item_id = self.items[i].id.clone();
                self.event(
                    out,
                    json!({"type": "response.function_call_arguments.delta",
                    "item_id": item_id, "output_index": i, "delta": piece}),
                );
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn fail(&mut self, out: &mut String, err: &Value) {
        self.ended = true;
        let message = err["message"]
            .as_str()
            .unwrap_or("The upstream stream failed.");
        let mut r = self.response("failed");
        r["error"] = json!({"code": "server_error", "message": message});
        r["output"] = Value::Array(self.items.iter().map(|i| i.json("incomplete")).collect());
        if self.response_id.is_none() {
            self.event(
                out,
                json!({"type": "response.created", "response": self.response("in_progress")}),
            );
        }
        self.event(out, json!({"type": "response.failed", "response": r}));
    }

    /// Ends the response (on `[DONE]`, or when the upstream body ends). A body that ends
    /// before the upstream said why it stopped is a failed response, not a completed one.
    pub fn end(&mut self, out: &mut String) {
        if self.ended {
            return;
        }
        if self.finish.is_none() {
            self.fail(
                out,
                &json!({"message": "The upstream stream ended before it finished."}),
            );
            return;
        }
        self.ended = true;
        for i in 0..self.items.len() {
            self.close(out, i);
        }
        let (status, incomplete) = status(self.finish.as_deref());
        let mut r = self.response(status);
        r["completed_at"] = json!(self.created_at);
        r["incomplete_details"] = incomplete;
        r["output"] = Value::Array(self.items.iter().map(|i| i.json("completed")).collect());
        r["usage"] = self.usage.as_ref().map_or(Value::Null, usage);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(out, json!({"type": kind, "response": r}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sse: &str) -> Vec<Value> {
        let mut t = ResponsesStream::new(&json!({"model": "agent", "input": "x"}), 5);
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

    fn kinds(events: &[Value]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn the_recorded_tool_call_stream_becomes_function_call_items() {
        let events = run(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-stream-tool-calls.sse"
        ));
        let k = kinds(&events);
        assert_eq!(k[..2], ["response.created", "response.in_progress"]);
        assert_eq!(k[k.len() - 1], "response.completed");
        for (n, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], n, "sequence numbers count up");
        }
        let done = &events[events.len() - 1]["response"];
        let calls = done["output"].as_array().expect("output");
        assert!(calls.len() >= 2, "parallel calls: {calls:?}");
        for (i, c) in calls.iter().enumerate() {
            assert_eq!(c["type"], "function_call");
            // The deltas of this item reassemble its arguments, which are valid JSON.
            let joined: String = events
                .iter()
                .filter(|e| {
                    e["type"] == "response.function_call_arguments.delta" && e["output_index"] == i
                })
                .map(|e| e["delta"].as_str().unwrap_or(""))
                .collect();
            assert_eq!(joined, c["arguments"].as_str().expect("arguments"));
            serde_json::from_str::<Value>(&joined).expect("arguments survive whole");
            assert!(
                c["call_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("call_"))
            );
        }
        assert!(done["usage"]["output_tokens"].as_u64() > Some(0), "{done}");
    }

    #[test]
    fn the_recorded_text_stream_becomes_one_message_item() {
        let events = run(include_str!(
            "../../../hero_aibroker_testkit/fixtures/chat-stream.sse"
        ));
        let k = kinds(&events);
        assert_eq!(
            k.iter()
                .filter(|k| **k == "response.output_item.added")
                .count(),
            1
        );
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap_or(""))
            .collect();
        let done = &events[events.len() - 1]["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], text);
        assert_eq!(done["status"], "completed");
    }

    #[test]
    fn reasoning_streams_as_its_own_item_before_the_text() {
        let events = run(include_str!(
            "../../tests/fixtures/wire/openrouter/chat-stream-reasoning.sse"
        ));
        let done = &events[events.len() - 1]["response"];
        assert_eq!(done["output"][0]["type"], "reasoning");
        assert!(
            !done["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        );
        assert_eq!(done["output"][1]["type"], "message");
    }

    #[test]
    fn a_cut_or_failed_stream_is_a_failed_response() {
        let mut t = ResponsesStream::new(&json!({"model": "m"}), 1);
        let mut out = String::new();
        t.feed(
            r#"{"id":"x","choices":[{"delta":{"content":"Hi"}}]}"#,
            &mut out,
        );
        t.end(&mut out);
        assert!(out.contains("response.failed"), "{out}");
        assert!(!out.contains("response.completed"), "{out}");
        let mut t = ResponsesStream::new(&json!({"model": "m"}), 1);
        let mut out = String::new();
        t.feed(r#"{"error":{"message":"overloaded"}}"#, &mut out);
        assert!(
            out.contains("response.created") && out.contains("overloaded"),
            "{out}"
        );
    }

    #[test]
    fn a_length_finish_is_an_incomplete_response() {
        let mut t = ResponsesStream::new(&json!({"model": "m"}), 1);
        let mut out = String::new();
        t.feed(
            r#"{"id":"x","choices":[{"delta":{"content":"Hi"},"finish_reason":"length"}]}"#,
            &mut out,
        );
        t.feed("[DONE]", &mut out);
        assert!(out.contains("event: response.incomplete"), "{out}");
        assert!(out.contains("max_output_tokens"), "{out}");
    }
}
