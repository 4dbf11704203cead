//! HTTP/1.1 over a Unix socket, the one place anything of hero_aibroker dials a socket: the
//! SDK's pooled clients, the broker's link to the MCP aggregator, the CLI's health probes and
//! the tests all connect through [`handshake`].

use std::path::Path;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::ClientError;

/// A fresh HTTP/1.1 connection on the socket at `path`, ready to send requests with bodies of
/// type `B`. The connection is driven by a task that ends once the sender is dropped and the
/// last answer is read.
pub async fn handshake<B>(path: &Path) -> Result<SendRequest<B>, ClientError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ClientError::Http {
            path: path.to_owned(),
            source,
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `req` on a fresh connection and returns the answer's head, its body still to read.
pub async fn send<B>(path: &Path, req: Request<B>) -> Result<Response<Incoming>, ClientError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = |source| ClientError::Http {
        path: path.to_owned(),
        source,
    };
    let mut sender = handshake(path).await?;
    sender.ready().await.map_err(http)?;
    sender.send_request(req).await.map_err(http)
}

/// `GET target` with its whole answer read: the status and the body. For health probes and
/// small reads; use the pooled clients for anything frequent.
pub async fn get(path: &Path, target: &str) -> Result<(StatusCode, Bytes), ClientError> {
    exchange(path, http::Method::GET, target, Bytes::new()).await
}

/// One request (`body` sent as JSON when not empty) with its whole answer read: the status and
/// the body. For occasional calls (a JSON-RPC call to another hero service); use the pooled
/// clients for anything frequent.
pub async fn exchange(
    path: &Path,
    method: http::Method,
    target: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), ClientError> {
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        // HTTP/1.1 requires a Host; a Unix socket has no name, so use the conventional one.
        .header(header::HOST, "localhost");
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(body))
        .map_err(|_| ClientError::InvalidRequest("the request line is not valid HTTP"))?;
    let resp = send(path, req).await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|source| ClientError::Http {
            path: path.to_owned(),
            source,
        })?
        .to_bytes();
    Ok((status, body))
}
