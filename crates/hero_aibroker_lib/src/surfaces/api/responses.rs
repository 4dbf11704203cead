//! OpenAI Responses on `rest.sock`: `POST /v1/responses` (JSON and streamed), stateless. A
//! request is translated to Chat ([`crate::translate`]), relayed to any backend like
//! a Chat request, and the answer translated back; the ledger row says `responses`. Errors
//! keep the OpenAI shape the Chat surface answers with.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::ErrorCode;
use serde_json::Value;

use super::auth::Caller;
use super::openai::{Peer, admit, run};
use super::translated::{
    is_event_stream, keep_broker_headers, parse_body, read_json, stream_response,
};
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::state::AppState;
use crate::translate::chat_stream_to_responses::ResponsesStream;
use crate::translate::{chat_to_responses, responses_to_chat};

/// `POST /v1/responses`.
pub(super) async fn responses(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut ctx, body) = admit(state, Endpoint::Chat, peer, caller, req).await?;
    ctx.surface = Some("responses");
    let parsed = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return Err(ctx.fail(e)),
    };
    let streamed = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    let translated = match responses_to_chat::translate(&parsed) {
        Ok(t) => t,
        Err(e) => return Err(ctx.fail(e)),
    };
    ctx.dropped = translated.dropped;
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let resp = run(ctx, Bytes::from(translated.body.to_string())).await?;
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        // The broker's and the upstream's errors are already in OpenAI's shape.
        return Ok(Response::from_parts(parts, body));
    }
    if streamed && is_event_stream(&parts) {
        return Ok(stream_response(
            &parts,
            body,
            ResponsesStream::new(&parsed, created_at),
        ));
    }
    let answer = read_json(body)
        .await
        .map_err(|m| ApiError::new(ErrorCode::UpstreamFailed, m))?;
    let out = chat_to_responses::translate(&answer, &parsed, created_at)
        .map_err(|e| ApiError::new(ErrorCode::UpstreamFailed, e.message))?;
    let mut r = (StatusCode::OK, axum::Json(out)).into_response();
    keep_broker_headers(&parts.headers, r.headers_mut());
    Ok(r)
}
