//! The HTTP surface on `mcp.sock`: MCP streamable HTTP at `/mcp` (rmcp's
//! `StreamableHttpService`), the deprecated HTTP+SSE transport at `/mcp/sse` and `/mcp/message`
//! ([`crate::legacy_sse`]), the plain JSON API of [`crate::rest`] (`GET /tools`,
//! `POST /tools/{name}`, `GET /calls`), `GET /health` and `GET /servers`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use hero_aibroker_host::ServeOptions;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::aggregate::Aggregator;
use crate::hub::Hub;
use crate::rest;
use crate::supervisor::Status;

/// How long open requests and streams get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

/// The routes. Cancelling `sessions` ends every MCP session (and its open streams). Served by
/// [`hero_aibroker_host::serve`], which puts the peer's credentials into every request, so
/// calls are attributed to the peer's uid when no `x-aibroker-caller` header names the caller.
pub fn app(hub: Arc<Hub>, sessions: CancellationToken) -> axum::Router {
    // Host checks guard a TCP listener against DNS rebinding; this is a 0600 Unix socket only
    // our user can open, and UDS clients send arbitrary Host headers.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(sessions);
    let legacy = crate::legacy_sse::Legacy::new(hub.clone(), config.cancellation_token.clone());
    let for_mcp = hub.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(Aggregator::new(for_mcp.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        // The deprecated HTTP+SSE transport, beside streamable HTTP at /mcp.
        .route_service(
            "/mcp/sse",
            get(crate::legacy_sse::open).with_state(legacy.clone()),
        )
        .route_service(
            "/mcp/message",
            post(crate::legacy_sse::message).with_state(legacy),
        )
        .nest_service("/mcp", mcp)
        .route("/health", get(health))
        .route("/servers", get(servers))
        .route("/tools", get(rest::tools))
        .route("/tools/{name}", post(rest::call))
        .route("/calls", get(rest::calls))
        .with_state(hub)
}

/// `GET /health`: 200 while the process runs; `status` is `ok` when every server is ready.
async fn health(State(hub): State<Arc<Hub>>) -> Json<Value> {
    let servers = hub.sup.statuses();
    let ready = servers
        .iter()
        .filter(|s| matches!(s.status, Status::Ready { .. }))
        .count();
    let status = if ready == servers.len() {
        "ok"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "service": "hero_aibroker_services",
        "version": env!("CARGO_PKG_VERSION"),
        "ready": ready,
        "servers": servers,
        "sessions": hub.sessions.len(),
        "audit": hub.audit.health(),
    }))
}

/// `GET /servers`: every server's status, with the names of its tools when ready.
async fn servers(State(hub): State<Arc<Hub>>) -> Json<Value> {
    let tools = hub.sup.tools();
    let servers: Vec<Value> = hub
        .sup
        .statuses()
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            if let (Some(obj), Some((_, t))) =
                (v.as_object_mut(), tools.iter().find(|(n, _)| *n == s.name))
            {
                let names: Vec<&str> = t.iter().map(|t| t.name.as_ref()).collect();
                obj.insert("tool_names".into(), json!(names));
            }
            v
        })
        .collect();
    Json(json!({ "servers": servers }))
}

/// Serves `mcp.sock` until `shutdown` resolves, then ends the MCP sessions, lets requests
/// finish for a short while, and stops every server.
pub async fn run(
    listener: UnixListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sessions = CancellationToken::new();
    let forwarder = tokio::spawn(hub.clone().forward_changes(sessions.clone()));
    let stopping = {
        let sessions = sessions.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing MCP sessions and stopping servers");
            // Open MCP streams never end by themselves: close them so the drain can finish.
            sessions.cancel();
        }
    };
    let options = ServeOptions {
        drain: DRAIN,
        ..ServeOptions::default()
    };
    let served =
        hero_aibroker_host::serve(listener, app(hub.clone(), sessions), stopping, &options).await;
    forwarder.abort();
    hub.sup.shutdown().await;
    served.map(drop)
}
