//! The broker's error codes, each with its HTTP status and OpenAI `type`/`code` strings, and the
//! OpenAI-shaped error body every REST error uses.

use serde::{Deserialize, Serialize};

/// Every error the broker can answer with. Adding a variant forces a choice of status and type
/// in the `match`es below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Body is not valid JSON, or a field has the wrong type.
    InvalidJson,
    /// A required field is missing or a value is out of range.
    InvalidRequest,
    /// The requested model is not in the registry.
    ModelNotFound,
    /// The route does not exist.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    BodyTooLarge,
    /// No broker API key, or an unknown or revoked one.
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
    /// Every candidate upstream failed.
    UpstreamFailed,
    /// Every candidate upstream timed out.
    UpstreamTimeout,
    /// Every candidate upstream was rate limited.
    UpstreamRateLimited,
    /// A stream broke after bytes reached the client.
    StreamInterrupted,
    /// The MCP aggregator (`hero_aibroker_services` on `mcp.sock`) is not running.
    McpUnavailable,
    /// A bug or an unexpected condition inside the broker.
    Internal,
}

impl ErrorCode {
    /// HTTP status the REST surface answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::BudgetExceeded => 402,
            ErrorCode::ModelNotAllowed => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::ModelNotFound | ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::UpstreamFailed | ErrorCode::StreamInterrupted => 502,
            ErrorCode::NoBackend
            | ErrorCode::Overloaded
            | ErrorCode::UpstreamRateLimited
            | ErrorCode::McpUnavailable => 503,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::Internal => 500,
        }
    }

    /// OpenAI error `type`.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidRequest
            | ErrorCode::ModelNotFound
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::BodyTooLarge => "invalid_request_error",
            ErrorCode::Unauthorized => "authentication_error",
            ErrorCode::ModelNotAllowed => "permission_error",
            ErrorCode::RateLimited => "rate_limit_error",
            ErrorCode::BudgetExceeded => "insufficient_quota",
            ErrorCode::NoBackend
            | ErrorCode::Overloaded
            | ErrorCode::UpstreamFailed
            | ErrorCode::UpstreamTimeout
            | ErrorCode::UpstreamRateLimited
            | ErrorCode::StreamInterrupted => "upstream_error",
            ErrorCode::Internal | ErrorCode::McpUnavailable => "server_error",
        }
    }

    /// Stable machine-readable `code` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::Unauthorized => "invalid_api_key",
            ErrorCode::ModelNotAllowed => "model_not_allowed",
            ErrorCode::RateLimited => "rate_limit_exceeded",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::NoBackend => "no_backend_available",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::UpstreamFailed => "upstream_failed",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::UpstreamRateLimited => "upstream_rate_limited",
            ErrorCode::StreamInterrupted => "stream_interrupted",
            ErrorCode::McpUnavailable => "mcp_unavailable",
            ErrorCode::Internal => "internal_error",
        }
    }
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
}
