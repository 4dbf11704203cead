//! The REST surface on `rest.sock`: OpenAI-compatible routes, `/health`, and OpenAI-shaped
//! errors for everything else (unknown routes, wrong methods, oversized bodies).

mod audio;
pub mod auth;
mod endpoints;
mod mcp;
mod messages;
mod models;
pub(crate) use models::model_object;
mod openai;
mod responses;
mod translated;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use hero_aibroker_sdk::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// The REST router. Layers, outermost first:
/// - [`auth::layer`]: who the caller is ([`auth::Caller`]), or 401; open routes pass.
/// - `DefaultBodyLimit`: bounds the bodies extracted whole (`/mcp/tools/{name}`); the relayed
///   routes read theirs themselves, after admission.
///
/// The in-flight cap is taken inside the handlers rather than as a layer, because a stream
/// must hold its permit until its last chunk, long after the handler returned.
///
/// Everything under `/api/v1/` (OpenRouter's base path) is served as under `/v1/`, so an
/// OpenRouter client works by changing only its base URL.
pub fn rest_router(state: Arc<AppState>) -> Router {
    use tower::ServiceExt;
    let routes = routes(state);
    Router::new().fallback_service(tower::service_fn(move |mut req: axum::extract::Request| {
        openrouter_base_path(&mut req);
        routes.clone().oneshot(req)
    }))
}

/// `/api/v1/…` → `/v1/…` (query kept).
fn openrouter_base_path(req: &mut axum::extract::Request) {
    let Some(rest) = req.uri().path().strip_prefix("/api/v1/") else {
        return;
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("/v1/{rest}?{q}"),
        None => format!("/v1/{rest}"),
    };
    if let Ok(pq) = path_and_query.parse::<axum::http::uri::PathAndQuery>() {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

fn routes(state: Arc<AppState>) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/audio/speech", post(audio::speech))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/translations", post(audio::translations))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route("/health", get(models::health))
        .route("/billing/usage", get(usage::billing))
        .route("/billing/usage/{client}", get(usage::billing_client))
        .route("/v1/generation", get(usage::generation))
        .route("/v1/key", get(usage::key))
        .route("/v1/credits", get(usage::credits))
        .route("/metrics", get(usage::metrics))
        .route("/metrics/detailed", get(usage::detailed))
        .route("/mcp/tools", get(mcp::tools))
        .route("/mcp/tools/{name}", post(mcp::call))
        .route("/mcp/sse", any(mcp::proxy))
        .route("/mcp/message", post(mcp::proxy))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ))
        .with_state(state)
}

/// The TCP listener's router: the REST routes and `/rpc` (the JSON-RPC app, with its own
/// admin-token rules), all behind [`auth::tcp_gate`].
pub fn tcp_router(state: Arc<AppState>, rpc: Router) -> Router {
    use tower::ServiceExt;
    // The JSON-RPC app answers `/rpc` itself (axum nests no router at a single path).
    let rpc = tower::service_fn(move |req: axum::extract::Request| rpc.clone().oneshot(req));
    rest_router(state.clone())
        .route_service("/rpc", rpc)
        .layer(axum::middleware::from_fn_with_state(state, auth::tcp_gate))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "No route {}. See docs/api.md for the REST API.",
            crate::error::printable(uri.path())
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {}.",
            crate::error::printable(uri.path())
        ),
    )
}

pub use hero_aibroker_host::PeerInfo;

#[cfg(test)]
mod tests;
