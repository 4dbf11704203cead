//! Handlers of the relayed OpenAI endpoints: chat completions, completions, embeddings.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hero_aibroker_sdk::ErrorCode;
use http_body_util::BodyExt;

use super::PeerInfo;
use super::auth::Caller;
use crate::error::ApiError;
use crate::pipeline::relay::{Ctx, Hints, relay};
use crate::pipeline::router::Endpoint;
use crate::state::AppState;

pub(super) type Peer = Option<Extension<ConnectInfo<PeerInfo>>>;

pub(super) async fn chat(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Chat, peer, caller, req).await
}

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Completions, peer, caller, req).await
}

pub(super) async fn embeddings(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    handle(state, Endpoint::Embeddings, peer, caller, req).await
}

/// Admission, then the body: the in-flight permit and the client's and key's slots are taken
/// *before* a byte of the body is read, so a flood of large or slow uploads holds no memory
/// beyond the cap; the body is then read with its size limit and its read timeout.
async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    peer: Peer,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let (ctx, body) = admit(state, endpoint, peer, caller, req).await?;
    run(ctx, body).await
}

/// Admission and the body: the in-flight permit, the client's and key's slots, then the body
/// with its limits, and the routing hints of the headers.
pub(super) async fn admit(
    state: Arc<AppState>,
    endpoint: Endpoint,
    peer: Peer,
    caller: Caller,
    req: Request,
) -> Result<(Ctx, Bytes), ApiError> {
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
    let slot = state.clients.admit(&client).inspect_err(|_| {
        state.telemetry.refused("client_limit");
    })?;
    let mut ctx = Ctx::new(state.clone(), endpoint, client, permit, slot);
    ctx.key = caller.key().cloned();
    if let Some(k) = &ctx.key {
        ctx.running.set_key(&k.id);
        match k.enter() {
            Ok(s) => ctx.key_slot = Some(s),
            Err(e) => return Err(ctx.fail(e)),
        }
    }
    let (parts, body) = req.into_parts();
    let limit = if matches!(endpoint, Endpoint::Transcriptions | Endpoint::Translations) {
        (state.settings.audio_max_bytes, "AUDIO_MAX_BYTES")
    } else {
        (state.settings.max_body_bytes, "MAX_BODY_BYTES")
    };
    let body = match read_body(&state, body, limit).await {
        Ok(b) => b,
        Err(e) => return Err(ctx.fail(e)),
    };
    match hints(&parts.headers).and_then(|h| check_chain(&state, &h.chain).map(|()| h)) {
        Ok(h) => ctx.hints = h,
        Err(e) => return Err(ctx.fail(e)),
    }
    Ok((ctx, body))
}

/// Relays an admitted request. The operator's cancel (`requests.cancel`) drops the relay,
/// which ends the request as cancelled; a stream already answering watches the same token.
pub(super) async fn run(ctx: Ctx, body: Bytes) -> Result<Response, ApiError> {
    let running = ctx.running.entry();
    tokio::select! {
        r = relay(ctx, body) => r,
        () = std::future::poll_fn(|cx| running.poll_cancelled(cx)) => Err(ApiError::new(
            ErrorCode::Cancelled,
            "The operator cancelled this request.",
        )),
    }
}

/// Reads a request body whole, refusing it beyond `limit` (bytes, and the setting that sets
/// it: `MAX_BODY_BYTES`, or `AUDIO_MAX_BYTES` for uploads) with 413, or when the client takes
/// longer than `BODY_READ_TIMEOUT_MS` to send it (408).
pub(super) async fn read_body(
    state: &AppState,
    body: Body,
    (limit, setting): (usize, &str),
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(state.settings.body_read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("The request body exceeds the limit of {limit} bytes ({setting})."),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Could not read the request body: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::BodyTimeout,
            format!(
                "The request body did not arrive within {} ms (BODY_READ_TIMEOUT_MS).",
                state.settings.body_read_timeout.as_millis()
            ),
        )),
    }
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
    let chain: Vec<String> = text(crate::providers::mother::CHAIN_HEADER)
        .map(|c| {
            c.split(',')
                .map(|id| crate::error::printable(id.trim()))
                .filter(|id| !id.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Hints {
        session: text("x-session-id"),
        max_wait,
        referer: text("http-referer").or_else(|| text("referer")),
        title: text("x-title"),
        chain,
    })
}

/// Refuses a cascaded request that already passed through this broker (a loop) or through
/// more brokers than `CASCADE_MAX_HOPS`, before any upstream call.
fn check_chain(state: &AppState, chain: &[String]) -> Result<(), ApiError> {
    if chain.iter().any(|id| id == &state.broker_id) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "Cascade loop: this request already passed through this broker (chain {}); check the mothers of the brokers in it.",
                chain.join(" → ")
            ),
        ));
    }
    if chain.len() >= state.settings.cascade_max_hops {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "Cascade too deep: the request passed through {} brokers; this broker allows {} (CASCADE_MAX_HOPS).",
                chain.len(),
                state.settings.cascade_max_hops
            ),
        ));
    }
    Ok(())
}
