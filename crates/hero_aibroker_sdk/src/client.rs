//! Clients for the broker's Unix sockets, over HTTP/1.1: [`RpcClient`] speaks JSON-RPC to
//! `rpc.sock` and implements jsonrpsee's `ClientT`, so every generated
//! [`HeroAiBrokerApiClient`](crate::rpc::HeroAiBrokerApiClient) method works on it;
//! [`RestClient`] speaks the OpenAI REST API to `rest.sock`, streams included.
//!
//! The transport is hyper's connection-level HTTP/1 client on a `tokio::net::UnixStream` with a
//! small pool of idle connections, so the SDK needs neither the broker core nor a TLS stack.

mod jsonrpc;
mod rest;
mod transport;
pub mod uds;

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::error::{ErrorBody, ErrorObject};

pub use jsonrpc::RpcClient;
pub use rest::{ChatStream, RestClient};

/// How much of an unexpected body an error carries: enough to diagnose, never a whole page.
const SNIPPET: usize = 512;

/// Everything that can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached (absent, refused, no permission).
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed after connecting (connection reset, malformed answer).
    #[error("HTTP exchange on {} failed: {source}", path.display())]
    Http {
        path: PathBuf,
        #[source]
        source: hyper::Error,
    },
    /// No answer within the client's deadline.
    #[error("no answer from {} within {timeout:?}", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    /// The broker answered with an OpenAI-shaped error.
    #[error("HTTP {status}: {}", body.error.message)]
    Api { status: u16, body: Box<ErrorBody> },
    /// A stream ended with an error event (after a 200, so there is no status to report).
    #[error("the stream failed: {}", body.error.message)]
    Stream { body: Box<ErrorBody> },
    /// The stream's bytes are not valid server-sent events.
    #[error("the stream is not valid SSE: {0}")]
    Sse(#[from] crate::sse::SseError),
    /// A stream ended without `[DONE]` and without an error event.
    #[error("the stream ended before [DONE]")]
    Incomplete,
    /// A status or content type the client did not expect, with a body that is no error object.
    #[error("unexpected answer (HTTP {status}): {body}")]
    Unexpected { status: u16, body: String },
    /// The answer is not the JSON the client expected.
    #[error("cannot decode the answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// The request could not be built, e.g. a token that is not a valid header value.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

impl ClientError {
    /// The OpenAI error body of an [`Api`](Self::Api) or [`Stream`](Self::Stream) error.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } | ClientError::Stream { body } => Some(&**body),
            _ => None,
        }
    }
}

/// A short, printable excerpt of a body for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(SNIPPET) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Reads an OpenAI-style error object, tolerating providers that omit `type`. Boxed because
/// it is the largest part of [`ClientError`].
fn error_body(error: &Value) -> Box<ErrorBody> {
    if let Ok(error) = serde_json::from_value::<ErrorObject>(error.clone()) {
        return Box::new(ErrorBody { error });
    }
    let message = match error.get("message").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned),
    };
    Box::new(ErrorBody {
        error: ErrorObject {
            message,
            kind: "upstream_error".to_owned(),
            param: None,
            code: error.get("code").cloned(),
        },
    })
}

/// Maps a non-2xx answer to [`ClientError::Api`] when it carries `{"error": ...}`.
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").map(error_body))
    {
        Some(body) => ClientError::Api {
            status: status.as_u16(),
            body,
        },
        None => ClientError::Unexpected {
            status: status.as_u16(),
            body: snippet(body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_objects_without_type_are_tolerated() {
        let body = error_body(&serde_json::json!({"code": 502, "message": "provider down"}));
        assert_eq!(body.error.message, "provider down");
        assert_eq!(body.error.kind, "upstream_error");
        assert_eq!(body.error.code, Some(serde_json::json!(502)));
        let err = status_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(
            matches!(&err, ClientError::Unexpected { status: 502, body } if body.contains("bad gateway")),
            "{err:?}"
        );
    }

    #[test]
    fn debug_never_prints_credentials() {
        let rpc = RpcClient::new("/nonexistent/rpc.sock").with_token("tok-canary-123");
        let rest = RestClient::new("/nonexistent/rest.sock").with_api_key("sk-hab-canary");
        let printed = format!("{rpc:?} {rest:?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }
}
