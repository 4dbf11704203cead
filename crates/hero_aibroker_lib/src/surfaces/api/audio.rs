//! The speech endpoints on `rest.sock`: `POST /v1/audio/speech` (JSON; audio back, streamed),
//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` (a multipart upload of at most
//! `AUDIO_MAX_BYTES`, 25 MiB by default; a transcript back). Admission, keys, routing, failover
//! and the ledger are the relay's; the wire is [`crate::pipeline::audio`]'s.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::multipart;

use super::auth::Caller;
use super::openai::{Peer, admit, run};
use crate::error::ApiError;
use crate::pipeline::audio::Upload;
use crate::pipeline::router::Endpoint;
use crate::state::AppState;

/// The speech formats OpenAI's API takes.
const SPEECH_FORMATS: &[&str] = &["mp3", "opus", "aac", "flac", "wav", "pcm"];

/// `POST /v1/audio/speech`.
pub(super) async fn speech(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    let (ctx, body) = admit(state, Endpoint::Speech, peer, caller, req).await?;
    if let Err(e) = check_speech(&body) {
        return Err(ctx.fail(e));
    }
    run(ctx, body).await
}

/// What the relay does not check of a speech request: a text `input`, a `voice`, a known
/// `response_format` and a `speed` in range, each refused by name.
fn check_speech(body: &[u8]) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidRequest, m);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // the relay's parser says what is wrong with the JSON
    };
    match v.get("input") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {}
        Some(_) => {
            return Err(invalid(
                "The field `input` must be a non-empty string.".into(),
            ));
        }
        None => return Ok(()), // the relay names the missing field
    }
    if v.get("voice").is_none_or(serde_json::Value::is_null) {
        return Err(invalid(
            "The field `voice` is missing (e.g. \"alloy\").".into(),
        ));
    }
    if let Some(format) = v.get("response_format").and_then(|f| f.as_str())
        && !SPEECH_FORMATS.contains(&format)
    {
        return Err(invalid(format!(
            "The field `response_format` must be one of {}, not {:?}.",
            SPEECH_FORMATS.join(", "),
            crate::error::printable(format)
        )));
    }
    if let Some(speed) = v.get("speed")
        && !speed.as_f64().is_some_and(|s| (0.25..=4.0).contains(&s))
    {
        return Err(invalid(
            "The field `speed` must be a number from 0.25 to 4.0.".into(),
        ));
    }
    Ok(())
}

/// `POST /v1/audio/transcriptions`.
pub(super) async fn transcriptions(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    upload(state, Endpoint::Transcriptions, peer, caller, req).await
}

/// `POST /v1/audio/translations`.
pub(super) async fn translations(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    upload(state, Endpoint::Translations, peer, caller, req).await
}

async fn upload(
    state: Arc<AppState>,
    endpoint: Endpoint,
    peer: Peer,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (mut ctx, body) = admit(state, endpoint, peer, caller, req).await?;
    let parts = match multipart::parse(&content_type, &body) {
        Ok(p) => p,
        Err(e) => {
            let err = ApiError::new(
                ErrorCode::InvalidRequest,
                format!("The body must be a multipart/form-data upload ({e})."),
            );
            return Err(ctx.fail(err));
        }
    };
    drop(body);
    match Upload::from_form(parts) {
        Ok((upload, routing)) => {
            ctx.upload = Some(Arc::new(upload));
            run(ctx, routing).await
        }
        Err(e) => Err(ctx.fail(e)),
    }
}
