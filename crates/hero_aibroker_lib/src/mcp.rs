//! The broker's link to the MCP aggregator (`hero_aibroker_services`): plain HTTP/1.1 over
//! `mcp.sock`, the only way the broker reaches it. JSON calls (`GET /tools`, `POST
//! /tools/{name}`, `GET /servers`, `GET /calls`) for the REST and RPC surfaces, and a streaming
//! proxy of the aggregator's MCP endpoint (`/mcp`) for MCP clients on `rest.sock`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hero_aibroker_sdk::client::uds;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

/// The header that tells the aggregator who called (for its audit). `mcp.sock` is a 0600
/// socket only the broker's user can open, so the aggregator trusts it.
pub const CALLER_HEADER: &str = "x-aibroker-caller";

/// Bound on connecting and on the quick JSON reads (tool lists, statuses, audit).
const QUICK: Duration = Duration::from_secs(10);
/// Largest JSON answer read from the aggregator (tool lists with schemas, results).
const MAX_ANSWER: usize = 32 << 20;

/// Why the aggregator could not answer.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Not running (no socket, connection refused) or not answering in time.
    #[error(
        "the MCP aggregator is not reachable at {path} ({detail}); start it with scripts/start.sh (hero_aibroker_services)"
    )]
    Unavailable { path: PathBuf, detail: String },
    /// It answered with an error status; `body` is its `{"error": {...}}`.
    #[error("the MCP aggregator answered HTTP {status}")]
    Status { status: u16, body: Value },
}

impl McpError {
    /// The aggregator's error message, or ours.
    pub fn message(&self) -> String {
        match self {
            McpError::Status { body, .. } => body["error"]["message"]
                .as_str()
                .map_or_else(|| self.to_string(), str::to_owned),
            McpError::Unavailable { .. } => self.to_string(),
        }
    }
}

/// The aggregator at one socket path. Cheap to clone; connects per call (a Unix socket connect
/// costs microseconds, and tool calls are not the broker's hot path).
#[derive(Debug, Clone)]
pub struct McpLink {
    path: PathBuf,
}

impl McpLink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        McpLink { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> McpError {
        McpError::Unavailable {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    /// Sends one request on a fresh connection (the SDK's Unix-socket dialer) and returns the
    /// response head and body stream.
    async fn send(&self, req: Request<Body>) -> Result<Response<hyper::body::Incoming>, McpError> {
        let mut sender = tokio::time::timeout(QUICK, uds::handshake::<Body>(&self.path))
            .await
            .map_err(|_| self.unavailable("no answer to connect"))?
            .map_err(|e| self.unavailable(root(&e)))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// A JSON request; non-2xx answers become [`McpError::Status`].
    async fn json(
        &self,
        method: Method,
        path: &str,
        caller: Option<&str>,
        body: Option<Bytes>,
        deadline: Option<Duration>,
    ) -> Result<Value, McpError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(c) = caller.and_then(|c| HeaderValue::from_str(c).ok()) {
            req = req.header(CALLER_HEADER, c);
        }
        let req = req
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|e| self.unavailable(e))?;
        let exchange = async {
            let resp = self.send(req).await?;
            let status = resp.status();
            let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| self.unavailable(format!("reading the answer: {e}")))?
                .to_bytes();
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                self.unavailable(format!("HTTP {status} with a body that is not JSON: {e}"))
            })?;
            if status.is_success() {
                Ok(value)
            } else {
                Err(McpError::Status {
                    status: status.as_u16(),
                    body: value,
                })
            }
        };
        match deadline {
            Some(d) => tokio::time::timeout(d, exchange)
                .await
                .map_err(|_| self.unavailable(format!("no answer within {}s", d.as_secs())))?,
            None => exchange.await,
        }
    }

    /// `GET path` (tools, servers, calls), bounded by a short deadline.
    pub async fn get(&self, path: &str) -> Result<Value, McpError> {
        self.json(Method::GET, path, None, None, Some(QUICK)).await
    }

    /// Calls tool `name` with `arguments` (a JSON object) on behalf of `caller`. Unbounded
    /// here: the aggregator enforces each server's call timeout.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: &Value,
        caller: &str,
    ) -> Result<Value, McpError> {
        let path = format!("/tools/{}", encode_segment(name));
        let body = Bytes::from(arguments.to_string());
        self.json(Method::POST, &path, Some(caller), Some(body), None)
            .await
    }

    /// Forwards an MCP request to the aggregator's `target` (`/mcp` for streamable HTTP,
    /// `/mcp/sse` and `/mcp/message` for the deprecated HTTP+SSE transport) and streams the
    /// answer back (SSE included) chunk by chunk, both ways.
    pub async fn proxy(
        &self,
        req: Request<Body>,
        target: &str,
        caller: &str,
    ) -> Result<Response<Body>, McpError> {
        let (parts, body) = req.into_parts();
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let mut out = Request::builder()
            .method(parts.method)
            .uri(format!("{target}{query}"))
            .header(header::HOST, "localhost");
        for (name, value) in &parts.headers {
            if forwarded(name) {
                out = out.header(name, value);
            }
        }
        if let Ok(c) = HeaderValue::from_str(caller) {
            out = out.header(CALLER_HEADER, c);
        }
        let out = out.body(body).map_err(|e| self.unavailable(e))?;
        let resp = self.send(out).await?;
        let (parts, body) = resp.into_parts();
        let mut back = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            if forwarded(name) {
                back = back.header(name, value);
            }
        }
        back.body(Body::new(body)).map_err(|e| self.unavailable(e))
    }
}

/// Headers passed through the proxy: the end-to-end ones MCP uses (content type, accept,
/// `mcp-session-id`, `mcp-protocol-version`, `last-event-id`, cache control), never hop-by-hop
/// ones, the caller's `Authorization` or `x-api-key` (the broker's key is not the aggregator's
/// business) or a
/// caller header the client tried to set itself.
fn forwarded(name: &HeaderName) -> bool {
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "host",
        "content-length",
        "authorization",
        "x-api-key",
        CALLER_HEADER,
    ];
    !HOP.contains(&name.as_str())
}

/// The innermost cause of a dialing error ("Connection refused"), as the old direct dial said.
fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Percent-encodes one path segment (tool names are usually `[A-Za-z0-9_-]`, but need not be).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP status to answer a REST caller with for an aggregator failure.
pub fn status_of(e: &McpError) -> StatusCode {
    match e {
        McpError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        McpError::Status { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("ping__echo"), "ping__echo");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn proxy_drops_hop_by_hop_and_secrets() {
        for h in ["authorization", "connection", "host", CALLER_HEADER] {
            assert!(!forwarded(&HeaderName::from_static(h)), "{h}");
        }
        for h in ["mcp-session-id", "accept", "content-type", "last-event-id"] {
            assert!(forwarded(&HeaderName::from_static(h)), "{h}");
        }
    }

    #[tokio::test]
    async fn a_missing_aggregator_is_unavailable_and_names_the_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let link = McpLink::new(dir.path().join("mcp.sock"));
        let e = link.get("/tools").await.expect_err("nothing listens");
        assert_eq!(status_of(&e), StatusCode::SERVICE_UNAVAILABLE);
        let msg = e.message();
        assert!(msg.contains("mcp.sock"), "{msg}");
        assert!(msg.contains("scripts/start.sh"), "{msg}");
    }
}
