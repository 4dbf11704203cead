//! `GET /v1/models`, `GET /v1/models/{id}` and `GET /health`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use hero_aibroker_sdk::{ErrorCode, ModelBackend, ModelList, ModelObject};
use serde_json::{Value, json};

use crate::config::registry::{Model, Registry, Target};
use crate::error::{ApiError, printable};
use crate::state::AppState;

/// Process start, reported as `created` of every model (the registry has no dates).
fn created(state: &AppState) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(state.started.elapsed().as_secs())
}

pub(crate) fn model_object(reg: &Registry, m: &Model, created: u64) -> ModelObject {
    ModelObject {
        id: m.name.clone(),
        object: "model".into(),
        created,
        owned_by: "hero_aibroker".into(),
        display_name: Some(m.display_name.clone()),
        tier: Some(m.tier.as_str().into()),
        context_window: Some(m.context_window),
        capabilities: m.capabilities.clone(),
        aliases: m.aliases.clone(),
        servable: reg.servable(m),
        backends: m
            .backends
            .iter()
            .map(|b| ModelBackend {
                provider: b.provider.clone(),
                model_id: b.model_id.clone(),
                priority: b.priority,
                input_cost: b.input_cost,
                output_cost: b.output_cost,
                instances: u32::try_from(reg.instances(b).len()).unwrap_or(u32::MAX),
            })
            .collect(),
        strategy: m.strategy.map(|st| st.name().to_owned()),
        extra: {
            let mut extra = openrouter_fields(m);
            if demo_only(reg, m) {
                extra.insert("demo".into(), true.into());
            }
            extra
        },
    }
}

/// True when the only backends that can serve the model are the demo provider's
/// (`scripts/start.sh --demo`): its answers are scripted, and `/v1/models` says so (`demo`).
fn demo_only(reg: &Registry, m: &Model) -> bool {
    let mut serving = m
        .backends
        .iter()
        .filter(|b| !reg.instances(b).is_empty())
        .peekable();
    serving.peek().is_some() && serving.all(|b| b.provider == crate::providers::listed::DEMO)
}

/// The fields OpenRouter's `/models` entries carry, so its clients read ours: `name`,
/// `pricing` (USD per token, as strings, of the model's first backend in priority order),
/// `context_length`, `architecture` (modalities), `supported_parameters` and `top_provider`.
fn openrouter_fields(m: &Model) -> serde_json::Map<String, Value> {
    let per_token = |per_million: f64| {
        let s = format!("{:.12}", per_million / 1e6);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() {
            "0".to_owned()
        } else {
            s.to_owned()
        }
    };
    let first = m.backends.iter().min_by_key(|b| b.priority);
    let mut pricing = json!({
        "prompt": per_token(first.map_or(0.0, |b| b.input_cost)),
        "completion": per_token(first.map_or(0.0, |b| b.output_cost)),
        "request": "0",
        "image": "0",
    });
    if let Some(b) = first {
        let p = b.prices();
        pricing["input_cache_read"] = per_token(p.cache_read).into();
        pricing["input_cache_write"] = per_token(p.cache_write).into();
    }
    let has = |c: &str| m.capabilities.iter().any(|x| x == c);
    let mut input = vec!["text"];
    if has("vision") {
        input.push("image");
    }
    if has("audio") {
        input.push("audio");
    }
    let output = if has("embeddings") && !has("chat") {
        vec!["embeddings"]
    } else {
        vec!["text"]
    };
    let mut params = vec![
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
    ];
    if has("tools") {
        params.extend(["tools", "tool_choice", "parallel_tool_calls"]);
    }
    if has("json_schema") {
        params.extend(["response_format", "structured_outputs"]);
    }
    if has("reasoning") {
        params.extend(["reasoning", "include_reasoning"]);
    }
    let fields = json!({
        "name": m.display_name,
        "canonical_slug": m.name,
        "context_length": m.context_window,
        "pricing": pricing,
        "architecture": {
            "modality": format!("{}->{}", input.join("+"), output.join("+")),
            "input_modalities": input,
            "output_modalities": output,
            "tokenizer": "Other",
            "instruct_type": null,
        },
        "supported_parameters": params,
        "top_provider": {
            "context_length": m.context_window,
            "max_completion_tokens": null,
            "is_moderated": false,
        },
    });
    match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(super) async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    let reg = state.registry.load();
    let created = created(&state);
    Json(ModelList {
        object: "list".into(),
        data: reg
            .models
            .values()
            .map(|m| model_object(&reg, m, created))
            .collect(),
    })
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let reg = state.registry.load();
    match reg.resolve(&id) {
        Some(Target::Model { model, .. }) => Ok(Json(
            serde_json::to_value(model_object(&reg, &model, created(&state)))
                .unwrap_or(Value::Null),
        )),
        _ if id.ends_with("/endpoints") => {
            let name = id.trim_end_matches("/endpoints");
            match reg.resolve(name) {
                Some(Target::Model { model, .. }) => Ok(Json(super::endpoints::list(
                    &reg,
                    &model,
                    created(&state),
                    &state.catalog.endpoints,
                ))),
                _ => Err(not_found(name)),
            }
        }
        _ => Err(not_found(&id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ModelNotFound,
        format!(
            "The model \"{}\" does not exist. List the available models with GET /v1/models.",
            printable(id)
        ),
    )
}

pub(super) async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let reg = state.registry.load();
    let servable = reg.models.values().filter(|m| reg.servable(m)).count();
    let mut health = serde_json::to_value(state.health()).unwrap_or_else(|_| json!({}));
    if let Some(h) = health.as_object_mut() {
        h.insert("models".into(), reg.models.len().into());
        h.insert("servable_models".into(), servable.into());
        h.insert("in_flight".into(), state.in_flight().into());
    }
    Json(health)
}
