//! The one table of hero_aibroker's error codes, for every surface: each code declares once
//! its HTTP status (REST on `rest.sock`, the aggregator's JSON API on `mcp.sock`), its OpenAI
//! error `type` and `code` string, and its JSON-RPC code (`rpc.sock`). Clients turn a body's
//! `error.code` back into the enum with [`ErrorCode::from_code`]; `openrpc.json` lists the
//! JSON-RPC codes (`components.errors`) and a test keeps the two in step.

use serde::{Deserialize, Serialize};

/// One row of the table.
struct Row {
    code: ErrorCode,
    http: u16,
    kind: &'static str,
    name: &'static str,
    rpc: i32,
}

/// JSON-RPC's own codes (the spec's), which our table reuses where they fit.
const PARSE_ERROR: i32 = -32700;
const INVALID_PARAMS: i32 = -32602;
const INTERNAL_ERROR: i32 = -32603;

/// Every error the broker and the aggregator can answer with. Adding a variant means adding
/// its row to [`TABLE`]; a test checks that every variant has exactly one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Body is not valid JSON, or a field has the wrong type.
    InvalidJson,
    /// A required field is missing or a value is out of range.
    InvalidRequest,
    /// The requested model is not in the registry.
    ModelNotFound,
    /// The route (or the thing an RPC method names: key, provider, instance) does not exist.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    BodyTooLarge,
    /// The client did not send its whole body within the body-read timeout.
    BodyTimeout,
    /// No broker API key, or an unknown or revoked one; on `rpc.sock`, a missing or wrong
    /// admin token for a mutating method.
    Unauthorized,
    /// The key may not use this model.
    ModelNotAllowed,
    /// The key's requests or tokens per minute are used up.
    RateLimited,
    /// The key's budget is spent.
    BudgetExceeded,
    /// The model exists but no configured provider can serve it (no keys).
    NoBackend,
    /// The broker is at its concurrency cap or shutting down.
    Overloaded,
    /// The operator cancelled the request (`requests.cancel`).
    Cancelled,
    /// Every candidate upstream failed.
    UpstreamFailed,
    /// Every candidate upstream timed out.
    UpstreamTimeout,
    /// Every candidate upstream was rate limited.
    UpstreamRateLimited,
    /// A stream broke after bytes reached the client.
    StreamInterrupted,
    /// A new configuration is invalid; the old one keeps serving.
    InvalidConfig,
    /// The store failed.
    Store,
    /// The MCP aggregator (`hero_aibroker_services` on `mcp.sock`) is not running.
    McpUnavailable,
    /// A tool's arguments are not a JSON object.
    InvalidArguments,
    /// No ready MCP server offers a tool of that name.
    ToolNotFound,
    /// The tool's server is starting or restarting.
    ServerNotReady,
    /// The tool's server died during the call.
    ServerDied,
    /// The tool did not answer within its server's `timeout_secs`.
    ToolTimeout,
    /// The server refused the call or the transport failed.
    ToolFailed,
    /// A filter of a listing (`GET /calls`) is out of range or unknown.
    InvalidQuery,
    /// The MCP audit database cannot be read right now.
    AuditUnavailable,
    /// A bug or an unexpected condition inside the broker.
    Internal,
}

/// The table. JSON-RPC codes: the spec's where they fit (-32700 parse, -32602 params, -32603
/// internal), -32001 for authorization, -32004 for "does not exist", -32010.. for the broker's
/// own conditions, -32030/-32031 for MCP. Codes a JSON-RPC method never answers with still get
/// one, so any error can cross any surface.
const TABLE: &[Row] = &[
    row(
        ErrorCode::InvalidJson,
        400,
        INVALID,
        "invalid_json",
        PARSE_ERROR,
    ),
    row(
        ErrorCode::InvalidRequest,
        400,
        INVALID,
        "invalid_request",
        INVALID_PARAMS,
    ),
    row(
        ErrorCode::ModelNotFound,
        404,
        INVALID,
        "model_not_found",
        -32004,
    ),
    row(ErrorCode::NotFound, 404, INVALID, "not_found", -32004),
    row(
        ErrorCode::MethodNotAllowed,
        405,
        INVALID,
        "method_not_allowed",
        -32601,
    ),
    row(
        ErrorCode::BodyTooLarge,
        413,
        INVALID,
        "body_too_large",
        INVALID_PARAMS,
    ),
    row(
        ErrorCode::BodyTimeout,
        408,
        INVALID,
        "body_timeout",
        INVALID_PARAMS,
    ),
    row(
        ErrorCode::Unauthorized,
        401,
        "authentication_error",
        "invalid_api_key",
        -32001,
    ),
    row(
        ErrorCode::ModelNotAllowed,
        403,
        "permission_error",
        "model_not_allowed",
        -32003,
    ),
    row(
        ErrorCode::RateLimited,
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        -32029,
    ),
    row(
        ErrorCode::BudgetExceeded,
        402,
        "insufficient_quota",
        "budget_exceeded",
        -32002,
    ),
    row(
        ErrorCode::NoBackend,
        503,
        UPSTREAM,
        "no_backend_available",
        -32040,
    ),
    row(ErrorCode::Overloaded, 503, UPSTREAM, "overloaded", -32050),
    row(
        ErrorCode::Cancelled,
        503,
        SERVER,
        "request_cancelled",
        -32051,
    ),
    row(
        ErrorCode::UpstreamFailed,
        502,
        UPSTREAM,
        "upstream_failed",
        -32041,
    ),
    row(
        ErrorCode::UpstreamTimeout,
        504,
        UPSTREAM,
        "upstream_timeout",
        -32042,
    ),
    row(
        ErrorCode::UpstreamRateLimited,
        503,
        UPSTREAM,
        "upstream_rate_limited",
        -32043,
    ),
    row(
        ErrorCode::StreamInterrupted,
        502,
        UPSTREAM,
        "stream_interrupted",
        -32044,
    ),
    row(
        ErrorCode::InvalidConfig,
        400,
        INVALID,
        "invalid_config",
        -32010,
    ),
    row(ErrorCode::Store, 500, SERVER, "store_error", -32020),
    row(
        ErrorCode::McpUnavailable,
        503,
        SERVER,
        "mcp_unavailable",
        -32030,
    ),
    row(
        ErrorCode::InvalidArguments,
        400,
        INVALID,
        "invalid_arguments",
        INVALID_PARAMS,
    ),
    row(
        ErrorCode::ToolNotFound,
        404,
        INVALID,
        "tool_not_found",
        -32004,
    ),
    row(
        ErrorCode::ServerNotReady,
        503,
        SERVER,
        "server_not_ready",
        -32031,
    ),
    row(ErrorCode::ServerDied, 502, UPSTREAM, "server_died", -32031),
    row(
        ErrorCode::ToolTimeout,
        504,
        UPSTREAM,
        "tool_timeout",
        -32031,
    ),
    row(ErrorCode::ToolFailed, 502, UPSTREAM, "tool_failed", -32031),
    row(
        ErrorCode::InvalidQuery,
        400,
        INVALID,
        "invalid_query",
        INVALID_PARAMS,
    ),
    row(
        ErrorCode::AuditUnavailable,
        503,
        SERVER,
        "audit_unavailable",
        -32021,
    ),
    row(
        ErrorCode::Internal,
        500,
        SERVER,
        "internal_error",
        INTERNAL_ERROR,
    ),
];

const INVALID: &str = "invalid_request_error";
const UPSTREAM: &str = "upstream_error";
const SERVER: &str = "server_error";

const fn row(code: ErrorCode, http: u16, kind: &'static str, name: &'static str, rpc: i32) -> Row {
    Row {
        code,
        http,
        kind,
        name,
        rpc,
    }
}

impl ErrorCode {
    /// Every code, in table order.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        TABLE.iter().map(|r| r.code)
    }

    fn row(self) -> &'static Row {
        // The table is small and a test proves every variant is in it exactly once.
        TABLE
            .iter()
            .find(|r| r.code == self)
            .unwrap_or(&TABLE[TABLE.len() - 1])
    }

    /// HTTP status the REST surfaces answer with.
    pub fn http_status(self) -> u16 {
        self.row().http
    }

    /// OpenAI error `type`.
    pub fn error_type(self) -> &'static str {
        self.row().kind
    }

    /// Stable machine-readable `code` string.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The JSON-RPC error code.
    pub fn rpc_code(self) -> i32 {
        self.row().rpc
    }

    /// The code whose `code` string is `s` (what a client reads from `error.code`).
    pub fn from_code(s: &str) -> Option<ErrorCode> {
        TABLE.iter().find(|r| r.name == s).map(|r| r.code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::from_code(s).ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

/// A `code` string that is not in the table (a newer broker, or not ours).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

/// The JSON-RPC codes the broker answers with, named (each is some [`ErrorCode::rpc_code`]).
pub mod rpc_codes {
    /// The admin token is missing or wrong for a mutating method.
    pub const UNAUTHORIZED: i32 = -32001;
    /// The thing named does not exist (model, key, provider, tool).
    pub const NOT_FOUND: i32 = -32004;
    /// The new configuration is invalid; the old one keeps serving.
    pub const INVALID_CONFIG: i32 = -32010;
    /// The store failed.
    pub const STORE: i32 = -32020;
    /// The MCP aggregator (`hero_aibroker_services`, `mcp.sock`) is not running or not answering.
    pub const MCP_UNAVAILABLE: i32 = -32030;
    /// A tool call failed at the protocol level (server not ready, died, timed out); `data` has
    /// `{code, server, tool}`. A tool's own error is a result with `isError: true` instead.
    pub const MCP_CALL: i32 = -32031;
}

/// `{"error": {...}}`, the OpenAI error envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// The inner OpenAI error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl ErrorBody {
    /// Builds the body for one of our own codes.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorObject {
                message: message.into(),
                kind: code.error_type().to_owned(),
                param: None,
                code: Some(serde_json::Value::String(code.as_str().to_owned())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let body = ErrorBody::new(ErrorCode::ModelNotFound, "no such model");
        let v = serde_json::to_value(&body).expect("serializes");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["message"], "no such model");
        assert!(v["error"]["param"].is_null());
        assert_eq!(ErrorCode::ModelNotFound.http_status(), 404);
    }

    /// Every variant has exactly one row; names are unique; a name reads back as its code.
    #[test]
    fn the_table_is_complete_and_round_trips() {
        use ErrorCode::*;
        // A new variant makes this match fail to compile until it is listed here, and the
        // assertions below until it has a row.
        let every = |c: ErrorCode| match c {
            InvalidJson | InvalidRequest | ModelNotFound | NotFound | MethodNotAllowed
            | BodyTooLarge | BodyTimeout | Unauthorized | ModelNotAllowed | RateLimited
            | BudgetExceeded | NoBackend | Overloaded | Cancelled | UpstreamFailed
            | UpstreamTimeout | UpstreamRateLimited | StreamInterrupted | InvalidConfig | Store
            | McpUnavailable | InvalidArguments | ToolNotFound | ServerNotReady | ServerDied
            | ToolTimeout | ToolFailed | InvalidQuery | AuditUnavailable | Internal => c,
        };
        let listed = [
            InvalidJson,
            InvalidRequest,
            ModelNotFound,
            NotFound,
            MethodNotAllowed,
            BodyTooLarge,
            BodyTimeout,
            Unauthorized,
            ModelNotAllowed,
            RateLimited,
            BudgetExceeded,
            NoBackend,
            Overloaded,
            Cancelled,
            UpstreamFailed,
            UpstreamTimeout,
            UpstreamRateLimited,
            StreamInterrupted,
            InvalidConfig,
            Store,
            McpUnavailable,
            InvalidArguments,
            ToolNotFound,
            ServerNotReady,
            ServerDied,
            ToolTimeout,
            ToolFailed,
            InvalidQuery,
            AuditUnavailable,
            Internal,
        ];
        for c in listed {
            let c = every(c);
            assert_eq!(TABLE.iter().filter(|r| r.code == c).count(), 1, "{c:?}");
            assert_eq!(ErrorCode::from_code(c.as_str()), Some(c));
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
        }
        assert_eq!(TABLE.len(), listed.len());
        let mut names: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len(), "code strings are unique");
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn named_rpc_codes_are_the_table_s() {
        use rpc_codes::*;
        assert_eq!(ErrorCode::Unauthorized.rpc_code(), UNAUTHORIZED);
        assert_eq!(ErrorCode::NotFound.rpc_code(), NOT_FOUND);
        assert_eq!(ErrorCode::InvalidConfig.rpc_code(), INVALID_CONFIG);
        assert_eq!(ErrorCode::Store.rpc_code(), STORE);
        assert_eq!(ErrorCode::McpUnavailable.rpc_code(), MCP_UNAVAILABLE);
        for tool in [
            ErrorCode::ServerNotReady,
            ErrorCode::ServerDied,
            ErrorCode::ToolTimeout,
            ErrorCode::ToolFailed,
        ] {
            assert_eq!(tool.rpc_code(), MCP_CALL);
        }
    }
}
