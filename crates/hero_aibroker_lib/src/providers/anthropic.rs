//! The native Anthropic driver (`kind: anthropic`; the built-in `anthropic` provider reads
//! `ANTHROPIC_API_KEY(S)`): `POST {base_url}/messages` with `x-api-key` and
//! `anthropic-version`.
//!
//! - A Messages client's request passes straight through: its own body with only `model`
//!   replaced (unknown fields, `cache_control`, thinking blocks and their signatures kept byte
//!   for byte) and its `anthropic-beta` header; the reply, JSON or stream, goes back
//!   untouched ([`Wire::Messages`]).
//! - Any other client's (Chat, Responses) request is translated to Messages
//!   ([`crate::translate::chat_request_to_messages`]) and the reply back to Chat
//!   (`messages_reply_to_chat`, `messages_stream_to_chat`), so the relay sees the Chat wire.
//! - 429 and 529 `overloaded_error` (and other 5xx) with `retry-after` feed the same key
//!   health and circuits as every provider; 401/403 mark the key.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::Usage;
use hero_aibroker_sdk::admin::KeyCheck;
use hero_aibroker_sdk::sse::SseParser;
use indexmap::IndexMap;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{ByteStream, Chunk, ClientRequest, Driver, Verdict, Wire, openai_compat};
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::health::pool::Instance;
use crate::translate::{chat_request_to_messages, messages_reply_to_chat, messages_stream_to_chat};

/// The kind name in `modelsconfig.yml` (`kind: anthropic`).
pub const KIND: &str = "anthropic";

/// The API version the broker speaks.
pub const VERSION: &str = "2023-06-01";

/// Longest Anthropic event the translation buffers.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct Anthropic;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, format!("{e}"))
}

/// The client's Messages body with `model` replaced, every other field kept as sent.
pub fn pass_through(body: &[u8], model_id: &str) -> Result<Vec<u8>, ApiError> {
    let mut fields: IndexMap<String, Box<RawValue>> =
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("The body is not valid JSON: {e}"),
            )
        })?;
    let model = serde_json::value::to_raw_value(model_id).map_err(internal)?;
    fields.insert("model".into(), model);
    serde_json::to_vec(&fields).map_err(internal)
}

impl Driver for Anthropic {
    fn request(
        &self,
        client: &reqwest::Client,
        instance: &Instance,
        req: &dyn ClientRequest,
        model_id: &str,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        if req.endpoint() != Endpoint::Chat {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "provider {} speaks Anthropic Messages, which has no {} endpoint",
                    instance.provider,
                    req.endpoint().name()
                ),
            ));
        }
        let mut rb = client
            .post(format!("{}/messages", instance.base_url))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                ACCEPT,
                HeaderValue::from_static(if req.stream() {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            )
            .header("anthropic-version", VERSION);
        let body = match req.native_messages() {
            Some(native) => {
                if let Some(beta) = &native.beta {
                    rb = rb.header("anthropic-beta", beta.as_str());
                }
                pass_through(&native.body, model_id)?
            }
            None => {
                let chat: Value =
                    serde_json::from_slice(&req.openai_body(model_id, true)?).map_err(internal)?;
                let t = chat_request_to_messages::translate(&chat, model_id)?;
                serde_json::to_vec(&t.body).map_err(internal)?
            }
        };
        if let Some(key) = &instance.key {
            rb = rb.header("x-api-key", key.expose());
        }
        Ok(rb.body(body))
    }

    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        openai_compat::classify(status, headers)
    }

    fn chunk(&self, data: &str) -> Chunk {
        openai_compat::chunk(data)
    }

    fn left_out(&self, req: &dyn ClientRequest) -> Vec<String> {
        if req.native_messages().is_some() {
            return Vec::new();
        }
        // The same translation as the request's (only for a request Anthropic answered).
        req.openai_body("", true)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|chat| chat_request_to_messages::translate(&chat, "").ok())
            .map(|t| t.dropped)
            .unwrap_or_default()
    }

    fn reply_wire(&self, req: &dyn ClientRequest) -> Wire {
        if req.native_messages().is_some() {
            Wire::Messages
        } else {
            Wire::Chat
        }
    }

    fn adapt_json(&self, body: Bytes, req: &dyn ClientRequest) -> Result<Bytes, String> {
        if self.reply_wire(req) == Wire::Messages {
            return Ok(body);
        }
        let msg: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the Anthropic reply is not JSON ({e})"))?;
        let chat = messages_reply_to_chat::translate(&msg).map_err(|e| e.message)?;
        Ok(Bytes::from(chat.to_string()))
    }

    fn adapt_error(&self, body: Bytes, req: &dyn ClientRequest) -> Bytes {
        if self.reply_wire(req) == Wire::Messages {
            return body;
        }
        messages_reply_to_chat::error(&body).map_or(body, |e| Bytes::from(e.to_string()))
    }

    fn adapt_stream(&self, body: ByteStream, req: &dyn ClientRequest) -> ByteStream {
        if self.reply_wire(req) == Wire::Messages {
            return body;
        }
        chat_stream(body)
    }

    fn check_key<'a>(
        &'a self,
        client: &'a reqwest::Client,
        instance: &'a Instance,
    ) -> BoxFuture<'a, KeyCheck> {
        openai_compat::check_models_with(client, instance, |rb, key| {
            rb.header("x-api-key", key.expose())
                .header("anthropic-version", VERSION)
        })
        .boxed()
    }
}

/// An Anthropic event stream as a Chat event stream, translated as the events arrive.
fn chat_stream(body: ByteStream) -> ByteStream {
    struct St {
        body: ByteStream,
        parser: SseParser,
        t: messages_stream_to_chat::ChatStream,
        done: bool,
    }
    let st = St {
        body,
        parser: SseParser::with_limit(MAX_EVENT),
        t: messages_stream_to_chat::ChatStream::new(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(st, |mut st| async move {
        loop {
            let mut out = String::new();
            loop {
                match st.parser.next_event() {
                    Ok(Some(ev)) => st.t.feed(&ev.data, &mut out),
                    Ok(None) => break,
                    Err(e) => {
                        st.done = true;
                        let err = serde_json::json!({"error": {"message": format!("the Anthropic stream is not valid SSE: {e}")}});
                        out.push_str(&format!("data: {err}\n\n"));
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.parser.push(&chunk),
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    if let Ok(Some(ev)) = st.parser.finish() {
                        st.t.feed(&ev.data, &mut out);
                    }
                    if out.is_empty() {
                        return None;
                    }
                    return Some((Ok(Bytes::from(out)), st));
                }
            }
        }
    }))
}

/// What one event of a passed-through Messages stream says.
pub fn classify_event(data: &str) -> Chunk {
    let Ok(ev) = serde_json::from_str::<Value>(data) else {
        return Chunk::Data {
            finish: false,
            text: false,
        };
    };
    match ev.get("type").and_then(Value::as_str) {
        Some("message_stop") => Chunk::Done,
        Some("error") => Chunk::Error(
            ev["error"]["message"]
                .as_str()
                .unwrap_or("The Anthropic stream failed.")
                .to_owned(),
        ),
        Some("message_delta") => Chunk::Data {
            finish: !ev["delta"]["stop_reason"].is_null(),
            text: false,
        },
        Some("content_block_delta") => Chunk::Data {
            finish: false,
            text: true,
        },
        _ => Chunk::Data {
            finish: false,
            text: false,
        },
    }
}

/// Merges the usage counts of one Messages event (`message_start`'s, `message_delta`'s) into
/// `acc`; true when it carried any.
pub fn merge_event_usage(data: &str, acc: &mut Map<String, Value>) -> bool {
    if memchr::memmem::find(data.as_bytes(), b"\"usage\"").is_none() {
        return false;
    }
    let Ok(ev) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    let u = match ev.get("type").and_then(Value::as_str) {
        Some("message_start") => &ev["message"]["usage"],
        Some("message_delta") => &ev["usage"],
        _ => return false,
    };
    let mut any = false;
    for (k, v) in u.as_object().into_iter().flatten() {
        if v.is_number() {
            acc.insert(k.clone(), v.clone());
            any = true;
        }
    }
    any
}

/// The broker's usage (Chat's counting rule) of Anthropic usage counts.
pub fn usage(anthropic: &Map<String, Value>) -> Option<Usage> {
    serde_json::from_value(messages_reply_to_chat::usage(&Value::Object(
        anthropic.clone(),
    )))
    .ok()
}

/// The usage and id of a Messages JSON reply.
pub fn reply_usage(body: &[u8]) -> (Option<Usage>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let u = v["usage"].as_object().and_then(usage);
    (u, v["id"].as_str().map(str::to_owned))
}

/// The id of a Messages stream's `message_start`.
pub fn stream_id(data: &str) -> Option<String> {
    let v: Value = serde_json::from_str(data).ok()?;
    v["message"]["id"].as_str().map(str::to_owned)
}

/// An error event in Anthropic's shape (`event: error`), for a passed-through stream the
/// broker must end.
pub fn error_event(kind: &str, message: &str) -> String {
    let body = serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
    format!("event: error\ndata: {body}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_keeps_every_field_byte_for_byte_but_the_model() {
        let body = br#"{"model":"claude","max_tokens":5,"x_unknown":{"a":1},"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"EqQB+/\u003d\u003d"}]}]}"#;
        let out = pass_through(body, "claude-sonnet-4-5").expect("passes");
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.starts_with(r#"{"model":"claude-sonnet-4-5","#), "{s}");
        assert!(s.contains(r#""x_unknown":{"a":1}"#), "{s}");
        // The signature's bytes, escapes included, are not re-serialised.
        assert!(s.contains(r#""signature":"EqQB+/\u003d\u003d""#), "{s}");
    }

    #[test]
    fn overloaded_and_rate_limits_try_the_next_candidate() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert!(matches!(
            Anthropic.classify(StatusCode::from_u16(529).expect("status"), &h),
            Verdict::Retry { retry_after: Some(d), .. } if d.as_secs() == 3
        ));
        assert!(matches!(
            Anthropic.classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Verdict::Retry {
                rate_limited: true,
                ..
            }
        ));
        assert_eq!(
            Anthropic.classify(StatusCode::UNAUTHORIZED, &HeaderMap::new()),
            Verdict::AuthFailed
        );
    }

    #[test]
    fn passed_through_stream_events_are_classified_and_counted() {
        let sse = include_str!("../../tests/fixtures/wire/anthropic/messages-stream-tool-use.sse");
        let mut acc = Map::new();
        let mut kinds = Vec::new();
        for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
            merge_event_usage(data, &mut acc);
            kinds.push(classify_event(data));
        }
        assert_eq!(kinds.last(), Some(&Chunk::Done));
        assert!(kinds.contains(&Chunk::Data {
            finish: true,
            text: false
        }));
        let u = usage(&acc).expect("usage");
        assert_eq!(u.prompt_tokens, 472);
        assert!(u.completion_tokens > 2, "the final count wins: {u:?}");
    }
}
