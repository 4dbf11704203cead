//! The OpenAI wire fixtures and the reply templates precomputed from them.
//!
//! Each reply is serialized once with a placeholder where the model goes and split around
//! it, so answering a request is a few memcpys of the requested model, not a serde round
//! trip. Streams are rendered into one buffer and sliced into per-event frames.
//!
//! Fixtures come verbatim from `/shared/wire/openai` (see its README) with two changes made
//! here so tests can compare against constants: every chat reply carries [`CHAT_TEXT`] (the
//! text of the stream recording) and reports [`PROMPT_TOKENS`]/[`COMPLETION_TOKENS`].
//! The legacy `/v1/completions` shapes are composed from the documented `text_completion`
//! object and reuse the same text, pieces and usage.
//!
//! `fixtures/openrouter/` comes verbatim from `/shared/wire/openrouter` and is replayed byte
//! for byte (only the model value is swapped), for [`crate::Behavior::Reasoning`].

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::{CHAT_TEXT, COMPLETION_TOKENS, EMBEDDING_PROMPT_TOKENS, PROMPT_TOKENS};

const CHAT_RESPONSE: &str = include_str!("../fixtures/chat-response.json");
const CHAT_STREAM: &str = include_str!("../fixtures/chat-stream.sse");
const CHAT_TOOLS_RESPONSE: &str = include_str!("../fixtures/chat-response-tool-calls.json");
const CHAT_TOOLS_STREAM: &str = include_str!("../fixtures/chat-stream-tool-calls.sse");
const EMBEDDINGS_RESPONSE: &str = include_str!("../fixtures/embeddings-response.json");
const MODELS_LIST: &str = include_str!("../fixtures/models-list.json");
const ERROR_429: &str = include_str!("../fixtures/error-429.json");
const ERROR_429_HEADERS: &str = include_str!("../fixtures/error-429.headers.txt");
const OPENROUTER_RESPONSE: &str = include_str!("../fixtures/openrouter/chat-response.json");
const OPENROUTER_REASONING_STREAM: &str =
    include_str!("../fixtures/openrouter/chat-stream-reasoning.sse");

/// Stands in for the model while templates are built; never sent.
const MODEL_SLOT: &str = "__hero_aibroker_fake_model__";
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// A reply with one hole for the JSON-encoded model string.
pub(crate) struct Slotted {
    head: Bytes,
    tail: Bytes,
}

/// A stream: the events always sent, plus the usage chunk sent only on request.
pub(crate) struct StreamTemplate {
    events: Vec<Slotted>,
    usage: Slotted,
    /// How many leading events carry no `finish_reason`.
    unfinished: usize,
}

/// A recorded stream replayed event by event: comments and `[DONE]` verbatim, JSON events
/// with the model swapped.
pub(crate) struct Replay {
    frames: Vec<ReplayFrame>,
}

enum ReplayFrame {
    Verbatim(Bytes),
    Model(Slotted),
}

/// One event of a rendered stream.
#[derive(Clone, Copy)]
enum Part<'a> {
    Model(&'a Slotted),
    Verbatim(&'a [u8]),
}

/// Every canned reply, built once per process.
pub(crate) struct Templates {
    pub(crate) chat: Slotted,
    pub(crate) chat_stream: StreamTemplate,
    pub(crate) chat_tools: Slotted,
    pub(crate) chat_tools_stream: StreamTemplate,
    pub(crate) completion: Slotted,
    pub(crate) completion_stream: StreamTemplate,
    pub(crate) embeddings: Slotted,
    pub(crate) models: Bytes,
    pub(crate) error_429: Bytes,
    /// `x-request-id` and `x-ratelimit-*` from `error-429.headers.txt`.
    pub(crate) error_429_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) error_event_sse: Bytes,
    pub(crate) error_event_json: Bytes,
    /// OpenRouter's `chat-response.json` (usage with cost, cached and reasoning tokens).
    pub(crate) reasoning: Slotted,
    /// OpenRouter's `chat-stream-reasoning.sse`.
    pub(crate) reasoning_stream: Replay,
}

static TEMPLATES: LazyLock<Templates> = LazyLock::new(Templates::build);

pub(crate) fn templates() -> &'static Templates {
    &TEMPLATES
}

/// Build the templates now rather than on the first request.
pub(crate) fn warm_up() {
    LazyLock::force(&TEMPLATES);
}

/// The model as a JSON string literal, quotes included.
pub(crate) enum ModelJson<'a> {
    /// Nothing to escape: written as `"` + model + `"` without allocating.
    Plain(&'a str),
    Escaped(String),
}

impl<'a> ModelJson<'a> {
    pub(crate) fn new(model: &'a str) -> ModelJson<'a> {
        // serde_json escapes exactly these bytes; anything else is copied through.
        if model.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            ModelJson::Escaped(Value::from(model).to_string())
        } else {
            ModelJson::Plain(model)
        }
    }

    fn len(&self) -> usize {
        match self {
            ModelJson::Plain(m) => m.len() + 2,
            ModelJson::Escaped(s) => s.len(),
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        match self {
            ModelJson::Plain(m) => {
                buf.put_u8(b'"');
                buf.put_slice(m.as_bytes());
                buf.put_u8(b'"');
            }
            ModelJson::Escaped(s) => buf.put_slice(s.as_bytes()),
        }
    }
}

impl Slotted {
    /// Serialize `value` (whose model is [`MODEL_SLOT`]) and split it around the slot.
    fn new(value: &Value, prefix: &str, suffix: &str) -> Slotted {
        let text = value.to_string();
        let slot = format!("\"{MODEL_SLOT}\"");
        let (head, tail) = text
            .split_once(&slot)
            .expect("every template sets its model to MODEL_SLOT");
        debug_assert!(!tail.contains(&slot), "a template has one model slot");
        Slotted {
            head: Bytes::from(format!("{prefix}{head}")),
            tail: Bytes::from(format!("{tail}{suffix}")),
        }
    }

    fn len(&self, model: &ModelJson<'_>) -> usize {
        self.head.len() + model.len() + self.tail.len()
    }

    fn put(&self, buf: &mut BytesMut, model: &ModelJson<'_>) {
        buf.put_slice(&self.head);
        model.put(buf);
        buf.put_slice(&self.tail);
    }

    /// The reply for `model`.
    pub(crate) fn render(&self, model: &ModelJson<'_>) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.len(model));
        self.put(&mut buf, model);
        buf.freeze()
    }

    /// Split a recorded JSON text around the value of its first `"model"` key, keeping every
    /// other byte as recorded; `None` if it has none.
    fn at_model(text: &str, suffix: &str) -> Option<Slotted> {
        const KEY: &str = "\"model\"";
        let after_key = text.find(KEY)? + KEY.len();
        let colon = after_key + text[after_key..].find(':')?;
        let rest = &text[colon + 1..];
        let start = colon + 1 + (rest.len() - rest.trim_start().len());
        let mut value = serde_json::Deserializer::from_str(&text[start..]).into_iter::<String>();
        value.next()?.ok()?;
        let end = start + value.byte_offset();
        Some(Slotted {
            head: Bytes::copy_from_slice(&text.as_bytes()[..start]),
            tail: Bytes::from(format!("{}{suffix}", &text[end..])),
        })
    }
}

impl Part<'_> {
    fn len(self, model: &ModelJson<'_>) -> usize {
        match self {
            Part::Model(s) => s.len(model),
            Part::Verbatim(b) => b.len(),
        }
    }

    fn put(self, buf: &mut BytesMut, model: &ModelJson<'_>) {
        match self {
            Part::Model(s) => s.put(buf, model),
            Part::Verbatim(b) => buf.put_slice(b),
        }
    }
}

/// The events for `model`, one `Bytes` per event, all slices of one allocation.
fn render_parts<'a>(
    parts: impl Iterator<Item = Part<'a>> + Clone,
    model: &ModelJson<'_>,
) -> Vec<Bytes> {
    let total = parts.clone().map(|p| p.len(model)).sum::<usize>();
    let mut buf = BytesMut::with_capacity(total);
    let mut lens = Vec::with_capacity(parts.size_hint().0);
    for part in parts {
        let before = buf.len();
        part.put(&mut buf, model);
        lens.push(buf.len() - before);
    }
    let mut all = buf.freeze();
    lens.into_iter().map(|len| all.split_to(len)).collect()
}

impl StreamTemplate {
    /// The SSE events for `model`, ending with `[DONE]`.
    pub(crate) fn render(&self, model: &ModelJson<'_>, include_usage: bool) -> Vec<Bytes> {
        let usage = include_usage.then_some(&self.usage);
        let parts = self.events.iter().chain(usage).map(Part::Model);
        render_parts(
            parts.chain(std::iter::once(Part::Verbatim(DONE_EVENT))),
            model,
        )
    }

    /// The first `n` events for `model`, stopping before the one with a `finish_reason`:
    /// no usage, no `[DONE]`.
    pub(crate) fn render_unfinished(&self, model: &ModelJson<'_>, n: usize) -> Vec<Bytes> {
        let events = &self.events[..n.min(self.unfinished)];
        render_parts(events.iter().map(Part::Model), model)
    }
}

impl Replay {
    /// Events separated by blank lines; those with a `"model"` get the slot.
    fn new(fixture: &str) -> Replay {
        let frames = fixture
            .split("\n\n")
            .filter(|event| !event.trim().is_empty())
            .map(|event| match Slotted::at_model(event, "\n\n") {
                Some(slotted) => ReplayFrame::Model(slotted),
                None => ReplayFrame::Verbatim(Bytes::from(format!("{event}\n\n"))),
            })
            .collect();
        Replay { frames }
    }

    /// The recording for `model`, one `Bytes` per event.
    pub(crate) fn render(&self, model: &ModelJson<'_>) -> Vec<Bytes> {
        let parts = self.frames.iter().map(|f| match f {
            ReplayFrame::Model(s) => Part::Model(s),
            ReplayFrame::Verbatim(b) => Part::Verbatim(b),
        });
        render_parts(parts, model)
    }
}

impl Templates {
    fn build() -> Templates {
        let chat = Slotted::new(&chat_response(), "", "");
        let mut tools = parse(CHAT_TOOLS_RESPONSE);
        prepare(&mut tools);
        let (events, usage) = parse_stream(CHAT_STREAM);
        let chat_stream = stream_template(&events, &usage);
        let (tool_events, tool_usage) = parse_stream(CHAT_TOOLS_STREAM);
        let chat_tools_stream = stream_template(&tool_events, &tool_usage);
        let (completion_events, completion_usage) = completion_stream(&events);
        let mut embeddings = parse(EMBEDDINGS_RESPONSE);
        embeddings["model"] = json!(MODEL_SLOT);
        embeddings["usage"] = json!({
            "prompt_tokens": EMBEDDING_PROMPT_TOKENS,
            "total_tokens": EMBEDDING_PROMPT_TOKENS,
        });
        let error_event = json!({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": null,
            "code": null,
        }});
        let reasoning = Slotted::at_model(OPENROUTER_RESPONSE, "")
            .expect("the OpenRouter reply names its model");
        Templates {
            chat,
            chat_stream,
            chat_tools: Slotted::new(&tools, "", ""),
            chat_tools_stream,
            completion: Slotted::new(&completion_response(), "", ""),
            completion_stream: stream_template(&completion_events, &completion_usage),
            embeddings: Slotted::new(&embeddings, "", ""),
            models: Bytes::from_static(MODELS_LIST.as_bytes()),
            error_429: Bytes::from_static(ERROR_429.as_bytes()),
            error_429_headers: error_429_headers(),
            error_event_sse: Bytes::from(format!("data: {error_event}\n\n")),
            error_event_json: Bytes::from(error_event.to_string()),
            reasoning,
            reasoning_stream: Replay::new(OPENROUTER_REASONING_STREAM),
        }
    }
}

fn parse(fixture: &str) -> Value {
    serde_json::from_str(fixture).expect("fixtures are valid JSON (checked by unit tests)")
}

/// Put the model slot and the shared usage numbers into a reply or chunk.
fn prepare(value: &mut Value) {
    value["model"] = json!(MODEL_SLOT);
    if let Some(usage) = value.get_mut("usage").and_then(Value::as_object_mut) {
        usage.insert("prompt_tokens".into(), json!(PROMPT_TOKENS));
        usage.insert("completion_tokens".into(), json!(COMPLETION_TOKENS));
        usage.insert(
            "total_tokens".into(),
            json!(PROMPT_TOKENS + COMPLETION_TOKENS),
        );
    }
}

/// `chat-response.json` carrying the streamed text, so JSON and SSE replies agree.
fn chat_response() -> Value {
    let mut value = parse(CHAT_RESPONSE);
    prepare(&mut value);
    value["choices"][0]["message"]["content"] = json!(CHAT_TEXT);
    value
}

/// The chunks of an SSE fixture: the regular ones, and the usage chunk (`choices: []`).
fn parse_stream(fixture: &str) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    let mut usage = None;
    for data in fixture
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
    {
        if data == "[DONE]" {
            continue;
        }
        let mut chunk = parse(data);
        prepare(&mut chunk);
        if chunk["choices"].as_array().is_some_and(Vec::is_empty) && chunk.get("usage").is_some() {
            usage = Some(chunk);
        } else {
            events.push(chunk);
        }
    }
    (
        events,
        usage.expect("stream fixtures end with a usage chunk"),
    )
}

fn stream_template(events: &[Value], usage: &Value) -> StreamTemplate {
    let event = |v: &Value| Slotted::new(v, "data: ", "\n\n");
    let finished = |v: &Value| {
        v["choices"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| !c["finish_reason"].is_null()))
    };
    StreamTemplate {
        events: events.iter().map(event).collect(),
        usage: event(usage),
        unfinished: events.iter().take_while(|e| !finished(e)).count(),
    }
}

const COMPLETION_ID: &str = "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7";
const COMPLETION_CREATED: u64 = 1_589_478_378;
const COMPLETION_FINGERPRINT: &str = "fp_44709d6fcb";

/// A `text_completion` object (composed from the documented shape).
fn completion_object(choices: Value) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "text_completion",
        "created": COMPLETION_CREATED,
        "model": MODEL_SLOT,
        "system_fingerprint": COMPLETION_FINGERPRINT,
        "choices": choices,
    })
}

fn completion_choice(text: &str, finish_reason: Option<&str>) -> Value {
    json!([{"text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason}])
}

fn usage_value() -> Value {
    json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    })
}

fn completion_response() -> Value {
    let mut value = completion_object(completion_choice(CHAT_TEXT, Some("stop")));
    value["usage"] = usage_value();
    value
}

/// Legacy completion chunks carrying the same text pieces as the chat stream.
fn completion_stream(chat_events: &[Value]) -> (Vec<Value>, Value) {
    let pieces = chat_events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .filter(|piece| !piece.is_empty());
    let mut events: Vec<Value> = pieces
        .map(|piece| completion_object(completion_choice(piece, None)))
        .collect();
    events.push(completion_object(completion_choice("", Some("stop"))));
    let mut usage = completion_object(json!([]));
    usage["usage"] = usage_value();
    (events, usage)
}

fn error_429_headers() -> Vec<(HeaderName, HeaderValue)> {
    ERROR_429_HEADERS
        .lines()
        .skip(1) // the status line
        .filter_map(|line| line.split_once(": "))
        // content-type is set per response; retry-after comes from the rule.
        .filter(|(name, _)| !matches!(*name, "content-type" | "retry-after"))
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).expect("fixture header names are valid"),
                HeaderValue::from_str(value).expect("fixture header values are valid"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_json(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| std::str::from_utf8(f).expect("utf-8"))
            .filter_map(|f| f.strip_prefix("data: ")?.strip_suffix("\n\n"))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("event is JSON"))
            .collect()
    }

    #[test]
    fn chat_stream_text_and_usage_match_the_constants() {
        let frames = templates().chat_stream.render(&ModelJson::new("m"), true);
        let events = events_json(&frames);
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, CHAT_TEXT);
        let usage = &events.last().expect("usage chunk")["usage"];
        assert_eq!(usage["prompt_tokens"], PROMPT_TOKENS);
        assert_eq!(usage["completion_tokens"], COMPLETION_TOKENS);
        assert_eq!(frames.last().map(|f| &f[..]), Some(DONE_EVENT));
        assert!(events.iter().all(|e| e["model"] == "m"));
    }

    #[test]
    fn completion_stream_carries_the_chat_text() {
        let frames = templates()
            .completion_stream
            .render(&ModelJson::new("m"), false);
        let events = events_json(&frames);
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(text, CHAT_TEXT);
        assert!(events.iter().all(|e| e["object"] == "text_completion"));
    }

    #[test]
    fn tool_call_stream_arguments_are_json() {
        let frames = templates()
            .chat_tools_stream
            .render(&ModelJson::new("m"), false);
        let mut args = [String::new(), String::new()];
        for event in events_json(&frames) {
            for call in event["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = usize::try_from(call["index"].as_u64().expect("index")).expect("small");
                args[index].push_str(call["function"]["arguments"].as_str().expect("arguments"));
            }
        }
        for a in &args {
            serde_json::from_str::<Value>(a).expect("arguments concatenate to JSON");
        }
    }

    #[test]
    fn openrouter_recordings_replay_byte_for_byte_but_the_model() {
        let model = ModelJson::new("x/y");
        let stream: Vec<u8> = templates().reasoning_stream.render(&model).concat();
        let expected = OPENROUTER_REASONING_STREAM.replace(
            "\"model\":\"anthropic/claude-sonnet-4.6\"",
            "\"model\":\"x/y\"",
        );
        assert_eq!(String::from_utf8(stream).expect("utf-8"), expected);
        let json = templates().reasoning.render(&model);
        let expected =
            OPENROUTER_RESPONSE.replace("\"model\": \"openai/gpt-4o\"", "\"model\": \"x/y\"");
        assert_eq!(std::str::from_utf8(&json).expect("utf-8"), expected);
    }

    #[test]
    fn unfinished_streams_stop_before_the_finish_chunk() {
        let t = templates();
        let model = ModelJson::new("m");
        let frames = t.chat_stream.render_unfinished(&model, usize::MAX);
        let events = events_json(&frames);
        assert_eq!(events.len(), frames.len(), "no [DONE]");
        assert!(
            events
                .iter()
                .all(|e| !e["choices"][0]["finish_reason"].is_string())
        );
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, CHAT_TEXT);
        assert_eq!(t.chat_stream.render_unfinished(&model, 2).len(), 2);
        let legacy = t.completion_stream.render_unfinished(&model, usize::MAX);
        assert!(
            events_json(&legacy)
                .iter()
                .all(|e| e["choices"][0]["finish_reason"].is_null())
        );
    }

    #[test]
    fn model_is_escaped_like_serde_json() {
        for model in ["gpt-4o", "a\"b\\c\nd", "ünï/cødé"] {
            let body = templates().chat.render(&ModelJson::new(model));
            let value: Value = serde_json::from_slice(&body).expect("reply is JSON");
            assert_eq!(value["model"], model);
        }
    }

    #[test]
    fn rate_limit_headers_come_from_the_fixture() {
        let names: Vec<&str> = templates()
            .error_429_headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(names.contains(&"x-ratelimit-remaining-tokens"));
        assert!(names.contains(&"x-request-id"));
        assert!(!names.contains(&"retry-after"));
    }
}
