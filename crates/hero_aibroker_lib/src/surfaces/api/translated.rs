//! What the translated surfaces (Anthropic Messages, OpenAI Responses) share: relaying the
//! Chat stream back translated event by event, reading a relayed JSON answer, and keeping the
//! broker's `x-aibroker-*` headers on the translated reply.

use axum::body::{Body, Bytes};
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::Value;

/// A translator of a Chat event stream into another surface's events.
pub(super) trait EventTranslator: Send + 'static {
    /// Translates one Chat event's `data` payload, appending the new events to `out`.
    fn feed(&mut self, data: &str, out: &mut String);
    /// Ends the translated stream when the upstream body ends (or breaks).
    fn end(&mut self, out: &mut String);
}

impl EventTranslator for crate::translate::chat_stream_to_messages::StreamTranslator {
    fn feed(&mut self, data: &str, out: &mut String) {
        Self::feed(self, data, out);
    }
    fn end(&mut self, out: &mut String) {
        Self::end(self, out);
    }
}

impl EventTranslator for crate::translate::chat_stream_to_responses::ResponsesStream {
    fn feed(&mut self, data: &str, out: &mut String) {
        Self::feed(self, data, out);
    }
    fn end(&mut self, out: &mut String) {
        Self::end(self, out);
    }
}

/// Copies the broker's `x-aibroker-*` headers.
pub(super) fn keep_broker_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if k.as_str().starts_with("x-aibroker-") {
            to.insert(k.clone(), v.clone());
        }
    }
}

/// Whether a relayed answer is an event stream.
pub(super) fn is_event_stream(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The broker's request id of a relayed answer.
pub(super) fn request_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("x-aibroker-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `Retry-After` seconds of a relayed answer.
pub(super) fn retry_after(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The client's body as JSON, or the 400 saying why it is not.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, crate::error::ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ApiError::new(
            hero_aibroker_sdk::ErrorCode::InvalidJson,
            format!("The body is not valid JSON: {e}"),
        )
    })
}

/// Reads a relayed (already size-bounded) JSON answer whole; `Null` when it is not JSON.
pub(super) async fn read_json(body: Body) -> Result<Value, String> {
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .map_err(|e| format!("The upstream's answer broke off: {e}"))?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The relayed Chat stream translated by `translator` event by event as the upstream's
/// events arrive (one write per upstream read, nothing buffered whole).
pub(super) fn stream_response<T: EventTranslator>(
    parts: &Parts,
    body: Body,
    translator: T,
) -> Response {
    use futures_util::StreamExt;
    use hero_aibroker_sdk::sse::SseParser;

    struct State<T> {
        body: axum::body::BodyDataStream,
        parser: SseParser,
        translator: T,
        done: bool,
    }
    let state = State {
        body: body.into_data_stream(),
        parser: SseParser::default(),
        translator,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut out = String::new();
        loop {
            while let Ok(Some(ev)) = st.parser.next_event() {
                st.translator.feed(&ev.data, &mut out);
            }
            if !out.is_empty() {
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), st));
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.parser.push(&chunk),
                // The body ended (or broke): close the translated stream.
                Some(Err(_)) | None => {
                    if let Ok(Some(ev)) = st.parser.finish() {
                        st.translator.feed(&ev.data, &mut out);
                    }
                    st.translator.end(&mut out);
                    st.done = true;
                    return (!out.is_empty()).then(|| (Ok(Bytes::from(out)), st));
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    keep_broker_headers(&parts.headers, r.headers_mut());
    r
}
