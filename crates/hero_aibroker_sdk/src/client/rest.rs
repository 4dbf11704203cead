//! [`RestClient`]: the OpenAI REST API on `rest.sock`, with [`ChatStream`] reading
//! server-sent events incrementally.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::sse::SseParser;
use http::{Method, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::transport::{Transport, build_request};
use super::{ClientError, error_body, snippet, status_error};
use crate::wire::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingRequest, ModelList,
};

/// The OpenAI REST API on `rest.sock`.
#[derive(Clone)]
pub struct RestClient {
    transport: Transport,
    api_key: Option<Arc<str>>,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("socket", &self.transport.path())
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RestClient {
    /// A client for the socket at `path`, without a deadline: completions may take minutes.
    pub fn new(path: impl AsRef<Path>) -> Self {
        RestClient {
            transport: Transport::new(path.as_ref(), None),
            api_key: None,
        }
    }

    /// Sends `Authorization: Bearer <key>` (a broker API key, `sk-hab-…`).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Arc::from(key.into()));
        self
    }

    /// Deadline per request (for streams: until the answer's head arrives); `None` waits forever.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transport = self.transport.with_timeout(timeout);
        self
    }

    /// The socket this client talks to.
    pub fn socket_path(&self) -> &Path {
        self.transport.path()
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let req = build_request(method, path, self.api_key.as_deref(), body)?;
        let (status, body) = self.transport.exchange(req).await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        self.call(Method::GET, "/v1/models", None).await
    }

    /// `POST /v1/chat/completions`, not streamed (a `stream: true` in `req` is overridden).
    pub async fn chat(&self, req: &ChatCompletionRequest) -> Result<ChatCompletion, ClientError> {
        let req = if req.stream == Some(true) {
            Cow::Owned(ChatCompletionRequest {
                stream: None,
                ..req.clone()
            })
        } else {
            Cow::Borrowed(req)
        };
        let body = serde_json::to_vec(&*req)?;
        self.call(Method::POST, "/v1/chat/completions", Some(body))
            .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: the chunks as they arrive.
    pub async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
    ) -> Result<ChatStream, ClientError> {
        let mut body = serde_json::to_value(req)?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("stream".to_owned(), Value::Bool(true));
        }
        let req = build_request(
            Method::POST,
            "/v1/chat/completions",
            self.api_key.as_deref(),
            Some(serde_json::to_vec(&body)?),
        )?;
        let (resp, sender) = self.transport.open(req).await?;
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !status.is_success() || !is_sse {
            let body = self
                .transport
                .deadline(async {
                    resp.into_body()
                        .collect()
                        .await
                        .map_err(|e| self.transport.http_err(e))
                })
                .await?
                .to_bytes();
            if status.is_success() {
                return Err(ClientError::Unexpected {
                    status: status.as_u16(),
                    body: snippet(&body),
                });
            }
            return Err(status_error(status, &body));
        }
        Ok(ChatStream {
            body: Some(resp.into_body()),
            sender: Some(sender),
            transport: self.transport.clone(),
            parser: SseParser::default(),
            pending: VecDeque::new(),
        })
    }

    /// `GET path` (with its query string) as JSON: the usage routes (`/billing/usage`,
    /// `/v1/key`, `/v1/credits`, `/v1/generation?id=`, `/metrics/detailed`) and any other.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST /v1/embeddings`; the answer as JSON (its shape varies by provider).
    pub async fn embeddings(&self, req: &EmbeddingRequest) -> Result<Value, ClientError> {
        let body = serde_json::to_vec(req)?;
        self.call(Method::POST, "/v1/embeddings", Some(body)).await
    }
}

/// A streamed chat: `chat.completion.chunk`s in order, ending after `[DONE]`. An error event
/// is yielded as [`ClientError::Stream`] and ends the stream.
pub struct ChatStream {
    /// `None` once the stream ended.
    body: Option<Incoming>,
    /// Keeps the connection ours until the stream ends; back to the pool after a clean end.
    sender: Option<SendRequest<Full<Bytes>>>,
    transport: Transport,
    parser: SseParser,
    pending: VecDeque<Result<ChatCompletionChunk, ClientError>>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("ended", &self.body.is_none())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl ChatStream {
    /// Ends the stream; `reuse` only when the body was read to its end.
    fn finish(&mut self, reuse: bool) {
        self.body = None;
        if let Some(sender) = self.sender.take()
            && reuse
        {
            self.transport.checkin(sender);
        }
    }

    /// Turns one event's data into a queued item; true when the stream is over.
    fn on_event(&mut self, data: &[u8]) -> bool {
        if data == b"[DONE]" {
            return true;
        }
        let chunk = match serde_json::from_slice::<ChatCompletionChunk>(data) {
            Ok(chunk) => chunk,
            Err(decode) => {
                // `{"error": {...}}` has no `id`, so it lands here.
                let error = serde_json::from_slice::<Value>(data)
                    .ok()
                    .and_then(|v| v.get("error").map(error_body));
                self.pending.push_back(Err(match error {
                    Some(body) => ClientError::Stream { body },
                    None => ClientError::Decode(decode),
                }));
                return true;
            }
        };
        // OpenRouter reports mid-stream failures as a chunk carrying `error`.
        if let Some(error) = chunk.extra.get("error") {
            self.pending.push_back(Err(ClientError::Stream {
                body: error_body(error),
            }));
            return true;
        }
        self.pending.push_back(Ok(chunk));
        false
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatCompletionChunk, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item));
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers carry nothing for us
                    };
                    this.parser.push(&data);
                    loop {
                        match this.parser.next_event() {
                            Ok(None) => break,
                            Ok(Some(event)) => {
                                if this.on_event(event.data.as_bytes()) {
                                    // Anything after [DONE] or an error is ignored; the
                                    // connection may still hold unread bytes: not reused.
                                    this.finish(false);
                                    break;
                                }
                            }
                            Err(e) => {
                                this.pending.push_back(Err(ClientError::Sse(e)));
                                this.finish(false);
                                break;
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    let error = this.transport.http_err(e);
                    this.finish(false);
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    let over = match this.parser.finish() {
                        Ok(Some(event)) => this.on_event(event.data.as_bytes()),
                        Ok(None) => false,
                        Err(e) => {
                            this.pending.push_back(Err(ClientError::Sse(e)));
                            true
                        }
                    };
                    this.finish(true);
                    if !over {
                        this.pending.push_back(Err(ClientError::Incomplete));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_streams_can_move_between_tasks() {
        fn movable<T: Send + Sync + Unpin + 'static>() {}
        movable::<RestClient>();
        movable::<ChatStream>();
        movable::<super::super::RpcClient>();
    }
}
