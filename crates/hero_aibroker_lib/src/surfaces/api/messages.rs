//! Anthropic Messages on `rest.sock`: `POST /v1/messages` (JSON and streamed) and
//! `POST /v1/messages/count_tokens`. A request is translated to
//! Chat ([`crate::translate`]) and relayed to any backend like a Chat request; the
//! answer is translated back, except from a native Anthropic upstream, which gets the
//! client's own request and whose answer passes through untouched. The ledger row says
//! `messages`. Errors come in Anthropic's shape:
//! `{"type": "error", "error": {"type", "message"}}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Caller;
use super::openai::{Peer, admit, read_body, run};
use super::translated::{
    is_event_stream, keep_broker_headers, parse_body, read_json, request_id, retry_after,
    stream_response,
};
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::pipeline::request::ParsedRequest;
use crate::providers::{NativeMessages, Wire};
use crate::state::AppState;
use crate::translate::chat_stream_to_messages::StreamTranslator;
use crate::translate::{chat_to_messages, messages_to_chat};

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
    // Beta flags ask Anthropic for features: a native Anthropic upstream gets them, an
    // OpenAI-compatible one has none of them (noted in the trace).
    let beta: Vec<&str> = req
        .headers()
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let beta = (!beta.is_empty()).then(|| beta.join(","));
    let betas: Vec<String> = beta
        .iter()
        .flat_map(|v| v.split(','))
        .map(|b| format!("anthropic-beta {}", b.trim()))
        .collect();
    let (mut ctx, body) = match admit(state, Endpoint::Chat, peer, caller, req).await {
        Ok(x) => x,
        Err(e) => return from_api(&e),
    };
    ctx.surface = Some("messages");
    let parsed = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return from_api(&ctx.fail(e)),
    };
    let streamed = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    let translated = match messages_to_chat::translate(&parsed) {
        Ok(t) => t,
        Err(e) => return from_api(&ctx.fail(e)),
    };
    ctx.dropped = translated.dropped;
    ctx.dropped.extend(betas);
    ctx.native = Some(NativeMessages { body, beta });
    let model = parsed["model"].as_str().unwrap_or_default().to_owned();
    let resp = match run(ctx, Bytes::from(translated.body.to_string())).await {
        Ok(r) => r,
        Err(e) => return from_api(&e),
    };
    if resp.extensions().get::<Wire>() == Some(&Wire::Messages) {
        // A native Anthropic upstream answered the client's own request: pass it on.
        return resp;
    }
    let (parts, body) = resp.into_parts();
    if streamed && parts.status.is_success() && is_event_stream(&parts) {
        return stream_response(&parts, body, StreamTranslator::new(&model));
    }
    let request_id = request_id(&parts);
    let answer = match read_json(body).await {
        Ok(a) => a,
        Err(message) => return anthropic(502, &message, request_id.as_deref(), None),
    };
    if !parts.status.is_success() {
        // An upstream's (or the broker's) OpenAI-shaped error, in Anthropic's shape.
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("The upstream refused the request.");
        return anthropic(
            parts.status.as_u16(),
            message,
            request_id.as_deref(),
            retry_after(&parts),
        );
    }
    match chat_to_messages::translate(&answer, &model) {
        Ok(msg) => {
            let mut r = (StatusCode::OK, axum::Json(msg)).into_response();
            keep_broker_headers(&parts.headers, r.headers_mut());
            r
        }
        Err(e) => anthropic(502, &e.message, request_id.as_deref(), None),
    }
}

/// `POST /v1/messages/count_tokens`: the broker's estimate of the prompt (the same estimate
/// routing and budgets use), as `{"input_tokens": n}`.
pub(super) async fn count_tokens(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let limit = (state.settings.max_body_bytes, "MAX_BODY_BYTES");
    let body = match read_body(&state, req.into_body(), limit).await {
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
