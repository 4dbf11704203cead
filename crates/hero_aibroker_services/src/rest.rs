//! The plain JSON API on `mcp.sock`, for the broker: `GET /tools`, `POST /tools/{name}` and
//! `GET /calls`. Errors are `{"error": {"message", "type", "code", "server", "tool"}}`, with
//! status, `type` and `code` from the one error table ([`ErrorCode`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hero_aibroker_host::PeerInfo;
use hero_aibroker_sdk::ErrorCode;
use rmcp::model::{CallToolRequestParams, CallToolResponse, JsonObject};
use serde_json::{Value, json};

use crate::audit::{CallQuery, Via};
use crate::hub::{Hub, RouteError, caller};
use crate::supervisor::CallError;

/// An error answer of this API.
#[derive(Debug)]
pub struct ApiError {
    /// The table's status, unless the failure has a more exact one (413 for a body too large).
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub server: Option<String>,
    pub tool: Option<String>,
}

impl ApiError {
    fn new(code: ErrorCode, message: String) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
            server: None,
            tool: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.code.error_type(),
            "code": self.code.as_str(),
            "server": self.server,
            "tool": self.tool,
        }});
        (self.status, Json(body)).into_response()
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::UnknownTool { tool } => ApiError {
                tool: Some(tool.clone()),
                ..ApiError::new(
                    ErrorCode::ToolNotFound,
                    format!(
                        "No tool named {tool:?} on any ready MCP server. GET /tools lists the tools; GET /servers shows which servers are not ready."
                    ),
                )
            },
            RouteError::Call {
                tool,
                server,
                error,
            } => {
                let hint = match &error {
                    CallError::UnknownServer(_) => "GET /tools lists the tools",
                    CallError::NotReady { .. } => "retry once GET /servers shows it ready",
                    CallError::Died { .. } => {
                        "retry when it is ready again (GET /servers); its log says why it died"
                    }
                    CallError::Timeout { .. } => {
                        "raise its timeout_secs in mcp_servers.json if the tool needs longer"
                    }
                    CallError::Mcp(_) => {
                        "check the arguments against the tool's inputSchema (GET /tools)"
                    }
                    CallError::Transport { .. } => "retry; GET /servers shows the server's state",
                };
                let code = error.code();
                let detail = match &error {
                    CallError::Mcp(e) => format!("MCP server {server:?} refused it: {}", e.message),
                    other => other.to_string(),
                };
                ApiError {
                    server: Some(server.clone()),
                    tool: Some(tool.clone()),
                    ..ApiError::new(
                        code,
                        format!("Tool {tool:?} (server {server:?}) failed: {detail}; {hint}."),
                    )
                }
            }
        }
    }
}

/// `GET /tools`: every exposed tool as MCP lists it, plus its `server`.
pub async fn tools(State(hub): State<Arc<Hub>>) -> Json<Value> {
    let tools: Vec<Value> = hub
        .listing()
        .into_iter()
        .map(|l| {
            let mut tool = l.tool;
            tool.name = l.name.into();
            let mut v = serde_json::to_value(&tool).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("server".into(), Value::String(l.server));
            }
            v
        })
        .collect();
    Json(json!({ "tools": tools }))
}

/// `POST /tools/{name}`: the body is the JSON object of arguments (empty means `{}`); the
/// answer is the tool's `CallToolResult`, also when the tool reports an error (`isError`).
pub async fn call(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<PeerInfo>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |message: String| ApiError {
        tool: Some(name.clone()),
        ..ApiError::new(ErrorCode::InvalidArguments, message)
    };
    let body = body.map_err(|e| ApiError {
        status: e.status(),
        ..invalid(format!("Cannot read the arguments of {name:?}: {e}."))
    })?;
    let arguments: JsonObject = if body.iter().all(u8::is_ascii_whitespace) {
        JsonObject::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(invalid(format!(
                    "The body of POST /tools/{name} must be a JSON object of arguments, not {}.",
                    kind(&other)
                )));
            }
            Err(e) => {
                return Err(invalid(format!(
                    "The body of POST /tools/{name} is not valid JSON ({e}); send a JSON object of arguments."
                )));
            }
        }
    };
    let who = caller(&headers, peer.as_ref().map(|Extension(c)| c));
    let mut params = CallToolRequestParams::new(name.clone());
    params.arguments = Some(arguments);
    match hub.call_tool(params, &who, Via::Rest).await? {
        CallToolResponse::Complete(mut result) => {
            // Older protocol versions have no resultType; a REST answer is always complete.
            result.result_type = None;
            result.is_error.get_or_insert(false);
            Ok(Json(serde_json::to_value(&result).unwrap_or(Value::Null)))
        }
        _ => Err(ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: ErrorCode::ToolFailed,
            message: format!(
                "Tool {name:?} asked for client input or answered with a task, which POST /tools cannot carry; call it through an MCP session on /mcp."
            ),
            server: None,
            tool: Some(name),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `GET /calls?limit=&server=&tool=&caller=&since_ms=`: the recorded tool calls, newest first.
///
/// Read from the audit database: a call finished in the last ~20 ms (the writer's linger) may
/// not be committed yet, and then is not listed until it is.
pub async fn calls(
    State(hub): State<Arc<Hub>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let q = parse_query(&params)?;
    let rows = hub.audit.calls(&q).await.map_err(|e| {
        tracing::error!(error = %e, "GET /calls: cannot read the audit database");
        ApiError::new(
            ErrorCode::AuditUnavailable,
            "Cannot read the audit database right now; the log says why. Retry shortly.".into(),
        )
    })?;
    Ok(Json(json!({ "calls": rows })))
}

fn parse_query(params: &HashMap<String, String>) -> Result<CallQuery, ApiError> {
    let bad = |message: String| ApiError::new(ErrorCode::InvalidQuery, message);
    let mut q = CallQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "limit" => {
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=crate::audit_db::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit must be a whole number from 1 to {}, not {v:?}.",
                            crate::audit_db::MAX_LIMIT
                        ))
                    })?;
                q.limit = Some(n);
            }
            "since_ms" => {
                q.since_ms = Some(v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                    bad(format!(
                        "since_ms must be unix time in milliseconds, not {v:?}."
                    ))
                })?);
            }
            "server" => q.server = Some(v.clone()),
            "tool" => q.tool = Some(v.clone()),
            "caller" => q.caller = Some(v.clone()),
            other => {
                return Err(bad(format!(
                    "Unknown query parameter {other:?}; GET /calls takes limit, server, tool, caller and since_ms."
                )));
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<CallQuery, ApiError> {
        parse_query(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn query_parameters_are_checked() {
        let ok = q(&[("limit", "5"), ("server", "a"), ("since_ms", "10")]).expect("valid");
        assert_eq!(ok.limit, Some(5));
        assert_eq!(ok.server.as_deref(), Some("a"));
        assert_eq!(ok.since_ms, Some(10));
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "x"),
            ("since_ms", "-1"),
            ("colour", "red"),
        ] {
            let e = q(&[bad]).expect_err("invalid");
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery)
            );
        }
    }
}
