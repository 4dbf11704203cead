//! The HTTP/1.1 transport on a Unix socket: hyper's connection-level client on a
//! `tokio::net::UnixStream`, with a small pool of idle keep-alive connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::ClientError;

/// Idle connections kept per client; more concurrent callers simply open more and close them.
const MAX_IDLE: usize = 8;

/// A pooled HTTP/1.1 connection factory for one Unix socket path.
#[derive(Clone)]
pub(super) struct Transport {
    inner: Arc<TransportInner>,
}

struct TransportInner {
    path: PathBuf,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Option<Duration>,
}

impl Transport {
    pub(super) fn new(path: &Path, timeout: Option<Duration>) -> Self {
        Transport {
            inner: Arc::new(TransportInner {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                timeout,
            }),
        }
    }

    pub(super) fn with_timeout(&self, timeout: Option<Duration>) -> Self {
        Transport::new(&self.inner.path, timeout)
    }

    pub(super) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(super) fn http_err(&self, source: hyper::Error) -> ClientError {
        ClientError::Http {
            path: self.inner.path.clone(),
            source,
        }
    }

    pub(super) async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        super::uds::handshake(&self.inner.path).await
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<Full<Bytes>>>> {
        // A panic while holding this lock cannot leave the Vec inconsistent; keep using it.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle();
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    pub(super) fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Sends on an idle connection if there is one, else on a new one. A request that never
    /// left (the server closed the idle connection meanwhile) is retried once on a fresh
    /// connection; one that was sent is not, since it may have changed state.
    async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, SendRequest<Full<Bytes>>), ClientError> {
        if let Some(mut sender) = self.checkout()
            && sender.ready().await.is_ok()
        {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(self.http_err(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        sender.ready().await.map_err(|e| self.http_err(e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.http_err(e))?;
        Ok((resp, sender))
    }

    pub(super) async fn deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        match self.inner.timeout {
            None => fut.await,
            Some(timeout) => {
                tokio::time::timeout(timeout, fut)
                    .await
                    .map_err(|_| ClientError::Timeout {
                        path: self.inner.path.clone(),
                        timeout,
                    })?
            }
        }
    }

    /// One request with its whole answer read; the connection goes back to the pool.
    pub(super) async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.deadline(async {
            let (resp, sender) = self.send(req).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.http_err(e))?
                .to_bytes();
            self.checkin(sender);
            Ok((status, body))
        })
        .await
    }

    /// One request whose answer is read by the caller (a stream); the deadline covers the head.
    pub(super) async fn open(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, SendRequest<Full<Bytes>>), ClientError> {
        self.deadline(self.send(req)).await
    }
}

/// Builds a request for `path` with a JSON body (if any) and a bearer credential (if any).
pub(super) fn build_request(
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        // HTTP/1.1 requires a Host; a Unix socket has no name, so use the conventional one.
        .header(header::HOST, "localhost");
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(secret) = bearer {
        let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
            ClientError::InvalidRequest("the credential is not a valid header value")
        })?;
        // Keeps the credential out of hyper's debug output.
        value.set_sensitive(true);
        req = req.header(header::AUTHORIZATION, value);
    }
    req.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|_| ClientError::InvalidRequest("the request line is not valid HTTP"))
}
