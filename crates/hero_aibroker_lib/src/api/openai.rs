//! Handlers of the relayed OpenAI endpoints: chat completions, completions, embeddings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use hero_aibroker_sdk::ErrorCode;

use crate::error::ApiError;
use crate::relay::relay;
use crate::router::Endpoint;
use crate::state::AppState;

pub(super) async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Chat, body).await
}

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Completions, body).await
}

pub(super) async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Embeddings, body).await
}

async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Fast 503 instead of an unbounded queue when the broker is at its cap.
    let permit = state.inflight.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "The broker is handling its maximum of {} requests; retry shortly.",
                state.settings.max_concurrent
            ),
        )
        .retry_after(1)
    })?;
    let body = body.map_err(|rej| body_error(&state, &rej))?;
    relay(state, endpoint, body, permit).await
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
