//! MCP tools on `rest.sock`: `GET /mcp/tools`, `POST /mcp/tools/{name}` (JSON arguments → the
//! tool's result) and `/mcp/sse` (the aggregator's MCP streamable-HTTP endpoint, proxied, so
//! MCP clients can use the broker's socket). Behind the authentication layer like every
//! non-open route: with keys in use, only a key or the admin token reaches a tool.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::ErrorCode;
use serde_json::Value;

use super::PeerInfo;
use super::auth::Caller;
use crate::error::ApiError;
use crate::mcp::{McpError, status_of};
use crate::state::AppState;

type Peer = Option<Extension<ConnectInfo<PeerInfo>>>;

/// Who is calling, for the aggregator's audit: `key:<id>` with a broker key, `admin` with the
/// admin token, else the peer.
fn who(caller: &Caller, peer: &Peer) -> String {
    match caller {
        Caller::Key(k) => format!("key:{}", k.id),
        Caller::Admin => "admin".to_owned(),
        Caller::Anyone => peer.as_ref().map_or_else(
            || "unknown".to_owned(),
            |Extension(ConnectInfo(p))| p.client(),
        ),
    }
}

/// An aggregator failure as the REST caller sees it: its own OpenAI-shaped error with its
/// status, or a 503 when it is not running.
fn failure(e: McpError) -> Response {
    let status = status_of(&e);
    match e {
        McpError::Status { body, .. } if body.get("error").is_some() => {
            (status, Json(body)).into_response()
        }
        McpError::Status { .. } => {
            ApiError::new(ErrorCode::UpstreamFailed, e.message()).into_response()
        }
        McpError::Unavailable { .. } => ApiError::new(ErrorCode::McpUnavailable, e.message())
            .retry_after(1)
            .into_response(),
    }
}

pub(super) async fn tools(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(match state.mcp.get("/tools").await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failure(e),
    })
}

pub(super) async fn call(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = who(&caller, &peer);
    let body = body.map_err(|rej| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Could not read the request body: {}", rej.body_text()),
        )
    })?;
    let arguments = parse_arguments(&body)?;
    Ok(match state.mcp.call_tool(&name, &arguments, &who).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failure(e),
    })
}

/// The body of `POST /mcp/tools/{name}`: a JSON object of arguments; empty means `{}`.
pub(crate) fn parse_arguments(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The body must be a JSON object of the tool's arguments, e.g. {\"text\": \"hi\"}.",
        )),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("The body is not valid JSON: {e}"),
        )),
    }
}

/// The aggregator's path for a request on `/mcp/sse` or `/mcp/message`: a `GET /mcp/sse`
/// without an `mcp-session-id` opens a session of the deprecated HTTP+SSE transport (whose
/// endpoint, `/mcp/message`, is posted to here too); anything else on `/mcp/sse` is streamable
/// HTTP (`/mcp`).
fn aggregator_path(req: &Request) -> &'static str {
    match (req.method(), req.uri().path()) {
        (_, "/mcp/message") => "/mcp/message",
        (&Method::GET, _) if !req.headers().contains_key("mcp-session-id") => "/mcp/sse",
        _ => "/mcp",
    }
}

/// Any method on `/mcp/sse`, and `POST /mcp/message`: the aggregator's MCP endpoints, streamed
/// both ways.
pub(super) async fn proxy(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    let who = who(&caller, &peer);
    let target = aggregator_path(&req);
    let req = req.map(Body::new);
    Ok(match state.mcp.proxy(req, target, &who).await {
        Ok(resp) => resp,
        Err(e) => failure(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_an_object() {
        assert_eq!(parse_arguments(b"").expect("empty"), serde_json::json!({}));
        assert_eq!(
            parse_arguments(br#"{"a":1}"#).expect("object"),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            parse_arguments(b"[1]").expect_err("array").code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            parse_arguments(b"{").expect_err("broken").code,
            ErrorCode::InvalidJson
        );
    }
}
