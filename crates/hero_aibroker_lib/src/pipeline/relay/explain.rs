//! `routing.explain`: the relay's own resolver run on a request without calling upstream.

use bytes::Bytes;
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::{ExplainQuery, RouteTrace};

use super::{decide, prepare, rejected};
use crate::error::ApiError;
use crate::pipeline::request::ParsedRequest;
use crate::pipeline::router::Endpoint;
use crate::state::AppState;

/// The decision a request like `q` would get right now (cursors and circuit probes are only
/// read, not taken). A request the router would refuse yields its trace with `error` set.
pub fn explain(state: &AppState, q: &ExplainQuery) -> Result<RouteTrace, ApiError> {
    let endpoint = match q.endpoint.as_deref().unwrap_or("chat") {
        "chat" => Endpoint::Chat,
        "completions" => Endpoint::Completions,
        "embeddings" => Endpoint::Embeddings,
        "audio.speech" => Endpoint::Speech,
        "audio.transcriptions" => Endpoint::Transcriptions,
        "audio.translations" => Endpoint::Translations,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "unknown endpoint {:?} (chat, completions, embeddings, audio.speech, audio.transcriptions or audio.translations)",
                    crate::error::printable(other)
                ),
            ));
        }
    };
    let mut body = match &q.request {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "`request` must be a JSON object (a request body)",
            ));
        }
    };
    body.insert("model".into(), q.model.clone().into());
    let (field, empty) = match endpoint {
        Endpoint::Chat => ("messages", serde_json::json!([])),
        Endpoint::Completions => ("prompt", serde_json::json!("")),
        Endpoint::Embeddings | Endpoint::Speech => ("input", serde_json::json!("")),
        Endpoint::Transcriptions | Endpoint::Translations => ("file", serde_json::json!("")),
    };
    body.entry(field).or_insert(empty);
    if endpoint != Endpoint::Chat && endpoint != Endpoint::Completions {
        body.remove("stream");
    }
    let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot encode the request: {e}"),
        )
    })?);
    let mut req = ParsedRequest::parse(endpoint, &bytes)?;
    if let Some(s) = &q.session {
        req.route.session = Some(s.clone());
    }
    let registry = state.registry.load_full();
    let needs = prepare(&mut req, &registry);
    Ok(match decide(state, &registry, &req, &needs, true) {
        Ok(d) => d.trace,
        Err(r) => rejected(r).1,
    })
}
