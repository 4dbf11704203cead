//! Authentication of the REST surface, as one layer in front of every route.
//!
//! Open routes ([`OPEN_ROUTES`]) answer anyone: `/health` (liveness), `/metrics` (aggregate
//! Prometheus counters: no client, key or request text reaches a label) and the model catalog
//! (`/v1/models`, `/v1/models/…`, public on OpenRouter too). Every other route, the unknown
//! ones included, goes through [`layer`], which decides who the caller is:
//! - [`Caller::Key`]: a broker key (`Authorization: Bearer sk-hab-…` or `x-api-key`);
//! - [`Caller::Admin`]: the `ADMIN_TOKEN`, which sees every key's usage;
//! - [`Caller::Anyone`]: keys are not in use (none exists and `REQUIRE_API_KEY` is off), so the
//!   socket's permissions are the only gate.
//!
//! A refused caller gets a 401 in the OpenAI error shape, counted in `/metrics`
//! (`hero_aibroker_refused_total{reason="unauthorized"}`), never a ledger row. A client whose
//! failures pass `AUTH_FAILURES_PER_MINUTE` is answered 429 until the minute ends, without its
//! key being looked at.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::ErrorCode;

use super::PeerInfo;
use crate::accounting::keys::KeyEntry;
use crate::error::ApiError;
use crate::state::AppState;

/// Routes that answer without authentication: exact paths, and `/v1/models/…`.
pub const OPEN_ROUTES: &[&str] = &["/health", "/metrics", "/v1/models"];

fn is_open(path: &str) -> bool {
    OPEN_ROUTES.contains(&path) || path.starts_with("/v1/models/")
}

/// Who is calling, as the layer established it (a request extension on every non-open route).
#[derive(Debug, Clone)]
pub enum Caller {
    /// Keys are not in use: anyone who can reach the socket.
    Anyone,
    /// A broker key.
    Key(Arc<KeyEntry>),
    /// The admin token.
    Admin,
}

impl Caller {
    /// The broker key, if the caller used one.
    pub fn key(&self) -> Option<&Arc<KeyEntry>> {
        match self {
            Caller::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The key id usage lookups are limited to: the caller's own key; `None` (everything) for
    /// the admin token and when keys are not in use.
    pub fn scope(&self) -> Option<String> {
        self.key().map(|k| k.id.clone())
    }
}

/// The peer's client id (`uds:uid=1000`, an IP), `unknown` when the listener gave none.
pub fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(p)| p.client())
}

/// The layer: passes open routes through, establishes the [`Caller`] of every other one or
/// answers 401 (429 for a client that keeps failing).
pub async fn layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let client = client_of(&req);
    if let Some(refused) = throttled(&state, &client) {
        return refused;
    }
    let caller = match state.keys.authenticate(req.headers()) {
        Ok(Some(k)) => Caller::Key(k),
        Ok(None) => Caller::Anyone,
        Err(_) if presents_admin_token(&state, &req) => Caller::Admin,
        // A child broker: no key of this broker's, the limits of its client (its IP).
        Err(_) if presents(state.settings.cascade_token.as_ref(), &req) => Caller::Anyone,
        Err(e) => {
            state.telemetry.refused("unauthorized");
            state.clients.auth_failed(&client);
            return e.into_response();
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The 429 for a client past `AUTH_FAILURES_PER_MINUTE`, until its minute ends: its
/// credential is not even looked at.
fn throttled(state: &AppState, client: &str) -> Option<Response> {
    let retry = state.clients.auth_blocked(client)?;
    state.telemetry.refused("auth_throttled");
    Some(
        ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "Too many requests with an invalid API key (or none) from this client; retry in {retry} s."
            ),
        )
        .retry_after(retry)
        .into_response(),
    )
}

/// Whether the request carries the admin token (as a Bearer token or `x-api-key`).
fn presents_admin_token(state: &AppState, req: &Request) -> bool {
    presents(state.settings.admin_token.as_ref(), req)
}

/// Whether the request carries `token` (as a Bearer token or `x-api-key`), compared in
/// constant time.
fn presents(token: Option<&crate::secret::Secret>, req: &Request) -> bool {
    let Some(token) = token else {
        return false;
    };
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let bearer = h("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    bearer
        .or_else(|| h("x-api-key"))
        .is_some_and(|t| token.matches(t))
}

/// The gate of the TCP listener, in front of every route there (open ones and `/rpc`
/// included): a broker API key, the cascade token or the admin token, or 401. Failures count
/// toward the client's (the IP's) `AUTH_FAILURES_PER_MINUTE` like on the socket.
pub async fn tcp_gate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let client = client_of(&req);
    if let Some(refused) = throttled(&state, &client) {
        return refused;
    }
    let ok = presents(state.settings.cascade_token.as_ref(), &req)
        || presents_admin_token(&state, &req)
        || matches!(state.keys.authenticate(req.headers()), Ok(Some(_)));
    if !ok {
        state.telemetry.refused("unauthorized");
        state.clients.auth_failed(&client);
        return ApiError::new(
            ErrorCode::Unauthorized,
            "This TCP listener needs a broker API key (Authorization: Bearer sk-hab-… or x-api-key) or the cascade token.",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_routes_are_open() {
        for p in [
            "/health",
            "/metrics",
            "/v1/models",
            "/v1/models/gpt-4o/endpoints",
        ] {
            assert!(is_open(p), "{p}");
        }
        for p in [
            "/metrics/detailed",
            "/billing/usage",
            "/v1/generation",
            "/mcp/tools",
            "/v1/chat/completions",
            "/v1/modelsx",
            "/healthz",
            "/",
        ] {
            assert!(!is_open(p), "{p}");
        }
    }
}
