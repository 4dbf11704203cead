//! Anthropic Messages on `rest.sock`: `POST /v1/messages` (JSON and streamed) and
//! `POST /v1/messages/count_tokens`. A request is translated to
//! Chat ([`crate::pipeline::translate`]), relayed to any backend like a Chat request, and the
//! answer translated back; the ledger row says `messages`. Errors come in Anthropic's shape:
//! `{"type": "error", "error": {"type", "message"}}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::ErrorCode;
use serde_json::{Value, json};

use super::auth::Caller;
use super::openai::{Peer, admit, read_body, run};
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::pipeline::request::ParsedRequest;
use crate::pipeline::translate::chat_stream_to_messages::StreamTranslator;
use crate::pipeline::translate::{chat_to_messages, messages_to_chat};
use crate::state::AppState;

/// Anthropic's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 408 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's shape, keeping the broker's request id and `Retry-After`.
fn anthropic(status: u16, message: &str, request_id: Option<&str>, retry: Option<u64>) -> Response {
    let body = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        axum::Json(body),
    )
        .into_response();
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        r.headers_mut().insert("x-aibroker-request-id", id);
    }
    if let Some(s) = retry {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn from_api(e: &ApiError) -> Response {
    anthropic(
        e.code.http_status(),
        &e.message,
        e.request_id.as_deref(),
        e.retry_after,
    )
}

/// `POST /v1/messages`.
pub(super) async fn messages(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let (mut ctx, body) = match admit(state, Endpoint::Chat, peer, caller, req).await {
        Ok(x) => x,
        Err(e) => return from_api(&e),
    };
    ctx.surface = Some("messages");
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let err = ApiError::new(
                ErrorCode::InvalidJson,
                format!("The body is not valid JSON: {e}"),
            );
            return from_api(&ctx.fail(err));
        }
    };
    let streamed = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    let translated = match messages_to_chat::translate(&parsed) {
        Ok(t) => t,
        Err(e) => return from_api(&ctx.fail(e)),
    };
    if !translated.dropped.is_empty() {
        tracing::debug!(request = %ctx.id, dropped = ?translated.dropped, "Messages fields with no Chat form left out");
    }
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let resp = match run(ctx, Bytes::from(translated.body.to_string())).await {
        Ok(r) => r,
        Err(e) => return from_api(&e),
    };
    let (parts, body) = resp.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed && parts.status.is_success() && is_sse {
        return stream_response(parts, body, &model);
    }
    let request_id = parts
        .headers
        .get("x-aibroker-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return anthropic(
                502,
                &format!("The upstream's answer broke off: {e}"),
                request_id.as_deref(),
                None,
            );
        }
    };
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !parts.status.is_success() {
        // An upstream's (or the broker's) OpenAI-shaped error, in Anthropic's shape.
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("The upstream refused the request.");
        let retry = parts
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return anthropic(parts.status.as_u16(), message, request_id.as_deref(), retry);
    }
    match chat_to_messages::translate(&answer, &model) {
        Ok(msg) => {
            let mut r = (StatusCode::OK, axum::Json(msg)).into_response();
            for (k, v) in &parts.headers {
                if k.as_str().starts_with("x-aibroker-") {
                    r.headers_mut().insert(k.clone(), v.clone());
                }
            }
            r
        }
        Err(e) => anthropic(502, &e.message, request_id.as_deref(), None),
    }
}

/// `POST /v1/messages/count_tokens`: the broker's estimate of the prompt (the same estimate
/// routing and budgets use), as `{"input_tokens": n}`.
pub(super) async fn count_tokens(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let body = match read_body(&state, req.into_body()).await {
        Ok(b) => b,
        Err(e) => return from_api(&e),
    };
    let mut parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return anthropic(400, &format!("The body is not valid JSON: {e}"), None, None),
    };
    if parsed.is_object() && parsed.get("max_tokens").is_none() {
        parsed["max_tokens"] = json!(1);
    }
    let chat = match messages_to_chat::translate(&parsed) {
        Ok(t) => t.body,
        Err(e) => return from_api(&e),
    };
    match ParsedRequest::parse(Endpoint::Chat, chat.to_string().as_bytes()) {
        Ok(p) => axum::Json(json!({"input_tokens": p.needs().prompt_tokens})).into_response(),
        Err(e) => from_api(&e),
    }
}

/// The relayed Chat stream as an Anthropic Messages stream, translated event by event as the
/// upstream's events arrive (one write per upstream read, nothing buffered whole).
fn stream_response(
    parts: axum::http::response::Parts,
    body: axum::body::Body,
    model: &str,
) -> Response {
    use futures_util::StreamExt;
    use hero_aibroker_sdk::sse::SseParser;

    struct State {
        body: axum::body::BodyDataStream,
        parser: SseParser,
        translator: StreamTranslator,
        done: bool,
    }
    let state = State {
        body: body.into_data_stream(),
        parser: SseParser::default(),
        translator: StreamTranslator::new(model),
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
                // The body ended (or broke): close the message if the upstream did not.
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
    let mut r = Response::new(axum::body::Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (k, v) in &parts.headers {
        if k.as_str().starts_with("x-aibroker-") {
            r.headers_mut().insert(k.clone(), v.clone());
        }
    }
    r
}
