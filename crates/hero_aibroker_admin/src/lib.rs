//! hero_aibroker_admin: the broker's web console. Server-rendered pages (askama), partial
//! updates and live parts with htmx 2, charts with uPlot, one hand-written stylesheet; every
//! asset is compiled into the binary, so it works offline. It reaches the broker only through
//! the SDK (JSON-RPC on `rpc.sock`, REST on `rest.sock`; the MCP aggregator through the
//! broker's `mcp.*` methods) and never opens the database.

pub mod auth;
pub mod console;
mod pages;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use console::Console;

/// The console's routes behind [`auth::layer`].
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/partials/overview", get(pages::overview::live))
        .route("/models", get(pages::catalog::models))
        .route("/providers", get(pages::catalog::providers))
        .route(
            "/providers/{name}/priority",
            post(pages::catalog::set_priority),
        )
        .route("/providers/{name}/check", post(pages::catalog::check))
        .route("/instances/{id}/reset", post(pages::catalog::reset))
        .route("/instances/{id}/disable", post(pages::catalog::disable))
        .route("/routing", get(pages::catalog::routing))
        .route(
            "/cascade",
            get(pages::cascade::page).post(pages::cascade::add),
        )
        .route("/partials/mothers", get(pages::cascade::list))
        .route("/partials/mother-banner", get(pages::cascade::banner))
        .route("/cascade/{id}", post(pages::cascade::update))
        .route("/cascade/{id}/remove", post(pages::cascade::remove))
        .route("/cascade/{id}/{action}", post(pages::cascade::toggle))
        .route("/inflight", get(pages::inflight::page))
        .route("/partials/inflight", get(pages::inflight::rows))
        .route("/inflight/{id}/cancel", post(pages::inflight::cancel))
        .route("/keys", get(pages::keys::page).post(pages::keys::create))
        .route("/partials/keys", get(pages::keys::list))
        .route("/keys/{id}", post(pages::keys::update))
        .route("/keys/{id}/revoke", post(pages::keys::revoke))
        .route("/usage", get(pages::usage::page))
        .route("/usage.csv", get(pages::usage::csv))
        .route("/logs", get(pages::logs::page))
        .route("/partials/logs", get(pages::logs::rows))
        .route("/logs/{id}", get(pages::logs::request))
        .route("/mcp", get(pages::mcp::page))
        .route("/mcp/tools/{name}", post(pages::mcp::call))
        .route("/playground", get(pages::play::page))
        .route("/playground/stream", post(pages::play::stream))
        .route("/me", get(pages::play::me))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/health", get(|| async { "ok" }))
        .route("/assets/{file}", get(asset))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            auth::layer,
        ))
        .with_state(console)
}

/// The assets, compiled in: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/htmx-2.0.11.min.js"),
    ),
    (
        "uPlot.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/uPlot-1.6.32.min.css"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/console.js"),
    ),
];

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => {
            let mut r = (*bytes).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        None => pages::not_found().await.into_response(),
    }
}
