//! Usage on the REST socket: billing summaries, OpenRouter-shaped `/v1/generation`, `/v1/key`
//! and `/v1/credits`, Prometheus `/metrics` and per-client `/metrics/detailed`. These read the
//! store; they are not on the relay's hot path. A caller with a broker key sees only its own
//! key's rows ([`Caller::scope`]); the admin token, or a broker without keys, sees all.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::{GroupBy, LogQuery, RequestStatus, UsageGroup, UsageQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use crate::accounting::store::StoreError;
use crate::error::{ApiError, printable};
use crate::state::AppState;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("store error: {e}");
        ApiError::new(
            ErrorCode::Internal,
            "The usage store could not answer; see the broker's log.",
        )
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Range {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    group_by: Option<GroupBy>,
}

fn totals(groups: &[UsageGroup]) -> Value {
    let sum = |f: fn(&UsageGroup) -> u64| groups.iter().map(f).sum::<u64>();
    json!({
        "requests": sum(|g| g.requests),
        "errors": sum(|g| g.errors),
        "prompt_tokens": sum(|g| g.prompt_tokens),
        "completion_tokens": sum(|g| g.completion_tokens),
        "cost_usd": groups.iter().map(|g| g.cost_usd).sum::<f64>(),
    })
}

/// `GET /billing/usage?from_ms=&to_ms=&group_by=model|provider|key|client`.
pub(super) async fn billing(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(r): Query<Range>,
) -> Result<Json<Value>, ApiError> {
    let group_by = r.group_by.unwrap_or_default();
    let groups = state
        .store
        .usage(&UsageQuery {
            group_by,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            key_id: caller.scope(),
        })
        .await?;
    Ok(Json(
        json!({ "group_by": group_by, "from_ms": r.from_ms, "to_ms": r.to_ms, "total": totals(&groups), "groups": groups }),
    ))
}

/// `GET /billing/usage/{client}`: one client's totals by model and its latest requests.
pub(super) async fn billing_client(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
    Query(r): Query<Range>,
) -> Result<Json<Value>, ApiError> {
    let all = state
        .store
        .usage(&UsageQuery {
            group_by: GroupBy::Client,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            key_id: caller.scope(),
        })
        .await?;
    let Some(mine) = all.into_iter().find(|g| g.group == client) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "No usage recorded for client \"{}\" (clients look like uds:uid=1000 or an IP).",
                printable(&client)
            ),
        ));
    };
    let recent = state
        .store
        .logs(&LogQuery {
            client: Some(client.clone()),
            key_id: caller.scope(),
            limit: Some(10),
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            ..LogQuery::default()
        })
        .await?;
    Ok(Json(
        json!({ "client": client, "usage": mine, "recent": recent.rows }),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct GenerationQuery {
    id: Option<String>,
}

/// `GET /v1/generation?id=` in OpenRouter's shape; `id` is the reply's `id` or the broker's
/// `x-aibroker-request-id`.
pub(super) async fn generation(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<GenerationQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = q.id.filter(|s| !s.is_empty()) else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The query parameter `id` is required.",
        ));
    };
    // Another key's request answers exactly like one that does not exist.
    let scope = caller.scope();
    let row = state
        .store
        .log(&id)
        .await?
        .filter(|row| scope.is_none() || row.key_id == scope);
    let Some(row) = row else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "No generation \"{}\" (rows are written within a few milliseconds of the reply).",
                printable(&id)
            ),
        ));
    };
    Ok(Json(json!({ "data": {
        "id": row.response_id.clone().unwrap_or_else(|| row.id.clone()),
        "request_id": row.id,
        "upstream_id": row.response_id,
        "total_cost": row.cost_usd,
        "upstream_cost": row.upstream_cost_usd,
        "list_cost": row.list_cost_usd,
        "created_at": hero_aibroker_sdk::time::rfc3339(row.started_ms),
        "model": row.model.clone().unwrap_or(row.requested_model.clone()),
        "upstream_model": row.upstream_model,
        "provider_name": row.provider,
        "streamed": row.stream,
        "cancelled": row.status == RequestStatus::ClientCancelled,
        "status": row.status,
        "latency": row.ttfb_ms.map(|t| t.round() as i64),
        "generation_time": row.latency_ms.round() as i64,
        "tokens_prompt": row.prompt_tokens,
        "tokens_completion": row.completion_tokens,
        "native_tokens_prompt": row.prompt_tokens,
        "native_tokens_completion": row.completion_tokens,
        "native_tokens_cached": row.cached_tokens,
        "native_tokens_reasoning": row.reasoning_tokens,
        "api_type": row.endpoint,
        "origin": row.client,
        "attempts": row.attempts,
        "routing": row.trace,
    }})))
}

/// `GET /v1/key`: the calling key in OpenRouter's shape.
pub(super) async fn key(Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    let Some(k) = caller.key() else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "Send Authorization: Bearer sk-hab-… to see your key.",
        ));
    };
    let info = k.info();
    Ok(Json(json!({ "data": {
        "label": info.hint,
        "name": info.name,
        "usage": info.spent_usd,
        "limit": info.budget_usd,
        "limit_remaining": info.budget_usd.map(|b| (b - info.spent_usd).max(0.0)),
        "is_free_tier": false,
        "rate_limit": { "requests": info.rpm, "tokens": info.tpm, "interval": "1m" },
        "allowed_models": info.allowed_models,
    }})))
}

/// `GET /v1/credits`: the calling key's budget and spend; without keys, the broker's spend.
pub(super) async fn credits(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    if let Some(k) = caller.key() {
        let info = k.info();
        return Ok(Json(
            json!({ "data": { "total_credits": info.budget_usd, "total_usage": info.spent_usd } }),
        ));
    }
    let groups = state.store.usage(&UsageQuery::default()).await?;
    let spent: f64 = groups.iter().map(|g| g.cost_usd).sum();
    Ok(Json(
        json!({ "data": { "total_credits": Value::Null, "total_usage": spent } }),
    ))
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .telemetry
        .render(state.in_flight(), state.ledger.health().dropped);
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `GET /metrics/detailed`: per client totals, errors, first and last request, requests in
/// flight and the last 10 requests.
pub(super) async fn detailed(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let scope = caller.scope();
    let groups = state
        .store
        .usage(&UsageQuery {
            group_by: GroupBy::Client,
            key_id: scope.clone(),
            ..UsageQuery::default()
        })
        .await?;
    let mut clients = Vec::with_capacity(groups.len());
    for g in groups {
        let recent = state
            .store
            .logs(&LogQuery {
                client: Some(g.group.clone()),
                key_id: scope.clone(),
                limit: Some(10),
                ..LogQuery::default()
            })
            .await?;
        let in_flight = state.clients.in_flight(&g.group);
        let last: Vec<Value> = recent
            .rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "started_ms": r.started_ms, "model": r.requested_model, "provider": r.provider,
                    "status": r.status, "http_status": r.http_status, "latency_ms": r.latency_ms,
                    "ttfb_ms": r.ttfb_ms, "cost_usd": r.cost_usd,
                })
            })
            .collect();
        clients.push(json!({
            "client": g.group,
            "requests": g.requests,
            "errors": g.errors,
            "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens,
            "cost_usd": g.cost_usd,
            "first_request_ms": g.first_ms,
            "last_request_ms": g.last_ms,
            "in_flight": in_flight,
            "last_requests": last,
        }));
    }
    Ok(Json(
        json!({ "in_flight": state.in_flight(), "ledger": state.ledger.health(), "clients": clients }),
    ))
}
