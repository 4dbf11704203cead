//! Handlers of the relayed OpenAI endpoints: chat completions, completions, embeddings.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hero_aibroker_sdk::ErrorCode;

use super::PeerInfo;
use crate::error::ApiError;
use crate::pipeline::relay::{Ctx, Hints, relay};
use crate::pipeline::router::Endpoint;
use crate::state::AppState;

type Peer = Option<Extension<ConnectInfo<PeerInfo>>>;

pub(super) async fn chat(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Chat, peer, &headers, body).await
}

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Completions, peer, &headers, body).await
}

pub(super) async fn embeddings(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Embeddings, peer, &headers, body).await
}

async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    peer: Peer,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Fast 503 instead of an unbounded queue when the broker is at its cap.
    let permit = state.inflight.clone().try_acquire_owned().map_err(|_| {
        state.telemetry.refused("overloaded");
        ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "The broker is handling its maximum of {} requests; retry shortly.",
                state.settings.max_concurrent
            ),
        )
        .retry_after(1)
    })?;
    let client = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(p))| p.client(),
    );
    let mut ctx = Ctx::new(state.clone(), endpoint, client, permit);
    match state.keys.authenticate(headers) {
        Ok(key) => ctx.key = key,
        Err(e) => return Err(ctx.fail(e)),
    }
    let body = match body {
        Ok(b) => b,
        Err(rej) => return Err(ctx.fail(body_error(&state, &rej))),
    };
    match hints(headers) {
        Ok(h) => ctx.hints = h,
        Err(e) => return Err(ctx.fail(e)),
    }
    relay(ctx, body).await
}

/// Routing hints from the request headers.
fn hints(headers: &HeaderMap) -> Result<Hints, ApiError> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let max_wait = match text("x-aibroker-max-wait-ms") {
        None => None,
        Some(v) => Some(Duration::from_millis(v.parse::<u64>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "The header x-aibroker-max-wait-ms must be a whole number of milliseconds.",
            )
        })?)),
    };
    Ok(Hints {
        session: text("x-session-id"),
        max_wait,
        referer: text("http-referer").or_else(|| text("referer")),
        title: text("x-title"),
    })
}

fn body_error(state: &AppState, rej: &BytesRejection) -> ApiError {
    if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "The request body exceeds the limit of {} bytes (MAX_BODY_BYTES).",
                state.settings.max_body_bytes
            ),
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Could not read the request body: {}", rej.body_text()),
        )
    }
}
