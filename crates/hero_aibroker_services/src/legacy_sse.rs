//! The deprecated HTTP+SSE transport of MCP (protocol 2024-11-05), beside streamable HTTP, for
//! clients that speak only it: `GET /mcp/sse` opens a session whose event stream starts with an
//! `endpoint` event (`/mcp/message?sessionId=…`); the client posts each JSON-RPC message there
//! (`202 Accepted`) and the answers come back on the stream as `message` events. Each session is
//! one [`Aggregator`] served over a pair of channels, so both transports see the same tools,
//! resources, prompts, audit and caller attribution (the POST's request head goes with each
//! message, as rmcp's streamable server does). The session ends when the client closes the
//! stream, or at shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

use crate::aggregate::Aggregator;
use crate::hub::Hub;

/// Messages a session buffers each way before the sender waits.
const QUEUE: usize = 64;
/// Largest JSON-RPC message a client may post.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The open sessions: their id and the way into their server.
pub struct Legacy {
    hub: Arc<Hub>,
    /// Ends every session at shutdown.
    shutdown: CancellationToken,
    sessions: Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>,
}

impl Legacy {
    pub fn new(hub: Arc<Hub>, shutdown: CancellationToken) -> Arc<Legacy> {
        Arc::new(Legacy {
            hub,
            shutdown,
            sessions: Mutex::default(),
        })
    }

    fn sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 128 random bits as hex (the process's random hasher keys; a session id only has to be
/// unguessable by other local processes of the same user).
fn session_id() -> String {
    let word = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{:016x}{:016x}", word(), word())
}

/// Closes a session when its event stream is dropped (the client went away).
struct Closer {
    legacy: Arc<Legacy>,
    id: String,
    stop: CancellationToken,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.legacy.sessions().remove(&self.id);
        self.stop.cancel();
    }
}

/// `GET /mcp/sse`: a new session and its event stream.
pub async fn open(State(legacy): State<Arc<Legacy>>) -> Response {
    let id = session_id();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(QUEUE);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(QUEUE);
    legacy.sessions().insert(id.clone(), to_server);
    let stop = legacy.shutdown.child_token();
    let incoming = Box::pin(stream::unfold(from_client, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }));
    let service = Aggregator::new(legacy.hub.clone());
    let (sid, ct) = (id.clone(), stop.clone());
    tokio::spawn(async move {
        match service
            .serve_with_ct((PollSender::new(to_client), incoming), ct)
            .await
        {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => {
                tracing::debug!(session = %sid, "an HTTP+SSE session ended before it began: {e}")
            }
        }
    });
    tracing::debug!(session = %id, "HTTP+SSE session opened");
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/mcp/message?sessionId={id}"));
    let closer = Closer { legacy, id, stop };
    Sse::new(events(endpoint, from_server, closer))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The `endpoint` event, then each server message as a `message` event, until the server side
/// ends; dropping the stream closes the session.
fn events(
    endpoint: Event,
    from_server: mpsc::Receiver<ServerJsonRpcMessage>,
    closer: Closer,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let messages = stream::unfold((from_server, closer), |(mut rx, closer)| async move {
        let message = rx.recv().await?;
        let data = serde_json::to_string(&message).unwrap_or_default();
        Some((Event::default().event("message").data(data), (rx, closer)))
    });
    stream::once(async move { endpoint })
        .chain(messages)
        .map(Ok)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": {"message": message}}))).into_response()
}

/// `POST /mcp/message?sessionId=…`: one JSON-RPC message for the session's server.
pub async fn message(
    State(legacy): State<Arc<Legacy>>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let Some(id) = query.get("sessionId") else {
        return error(
            StatusCode::BAD_REQUEST,
            "sessionId is missing: post to the endpoint the event stream of GET /mcp/sse gave"
                .into(),
        );
    };
    let Some(sender) = legacy.sessions().get(id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no open session {id:?}: open one with GET /mcp/sse"),
        );
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_MESSAGE).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the message: {e}"),
            );
        }
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a JSON-RPC message: {e}"),
            );
        }
    };
    // Who posted it, for the audit, as the streamable transport passes it.
    match &mut message {
        ClientJsonRpcMessage::Request(r) => {
            r.request.extensions_mut().insert(parts);
        }
        ClientJsonRpcMessage::Notification(n) => {
            n.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    if sender.send(message).await.is_err() {
        return error(StatusCode::GONE, format!("session {id:?} has ended"));
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
