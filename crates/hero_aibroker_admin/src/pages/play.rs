//! Playground (pick a model, a system prompt and parameters, chat with a streamed answer and
//! see who answered, the tokens, the cost and the time to first token) and "My key" (a key
//! holder's own usage, limits, budget left and recent requests, through the REST surface as
//! that key, which the broker scopes to it).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hero_aibroker_sdk::client::uds;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

#[derive(Template, WebTemplate)]
#[template(path = "playground.html")]
pub struct Page {
    c: Chrome,
    models: Vec<String>,
}

pub async fn page(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Page {
    let mut c = Chrome::new(&console, &cur, "playground", "Playground");
    let models = c
        .or_note("Models", console.rpc.models_list().await)
        .into_iter()
        .filter(|m| m.servable && !m.capabilities.iter().any(|c| c == "embeddings"))
        .map(|m| m.id)
        .collect();
    Page { c, models }
}

#[derive(Debug, Deserialize)]
pub struct Ask {
    model: String,
    #[serde(default)]
    system: String,
    message: String,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u64>,
}

/// Sends the playground's message as a streamed chat completion and relays the broker's event
/// stream (and its `x-aibroker-*` headers) to the page as it arrives.
pub async fn stream(State(console): State<Arc<Console>>, Json(ask): Json<Ask>) -> Response {
    let mut messages = Vec::new();
    if !ask.system.trim().is_empty() {
        messages.push(json!({"role": "system", "content": ask.system}));
    }
    messages.push(json!({"role": "user", "content": ask.message}));
    let mut body = json!({
        "model": ask.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(t) = ask.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = ask.max_tokens {
        body["max_tokens"] = json!(m);
    }
    let mut req = Request::post("/v1/chat/completions")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = console.rest_bearer() {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match req.body(Body::from(body.to_string())) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match uds::send(&console.rest_sock(), req).await {
        Ok(resp) => {
            let (parts, incoming) = resp.into_parts();
            let mut out = Response::new(Body::new(incoming));
            *out.status_mut() = parts.status;
            for (k, v) in &parts.headers {
                let name = k.as_str();
                if name == "content-type" || name.starts_with("x-aibroker-") {
                    out.headers_mut().insert(k.clone(), v.clone());
                }
            }
            out.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            out
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": {"message": format!("The broker does not answer on rest.sock: {e}")}})),
        )
            .into_response(),
    }
}

/// One recent request of the key.
pub struct Recent {
    pub started_ms: i64,
    pub time: String,
    pub model: String,
    pub status: String,
    pub cost: String,
}

/// One limit of the key.
pub struct Limit {
    pub k: &'static str,
    pub v: String,
}

/// One model line of the key's usage.
pub struct ByModel {
    pub model: String,
    pub requests: String,
    pub tokens: String,
    pub cost: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "me.html")]
pub struct Me {
    c: Chrome,
    name: String,
    hint: String,
    limits: Vec<Limit>,
    budget_left: String,
    usage: Vec<ByModel>,
    recent: Vec<Recent>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The key holder's own page (the operator sees it too, as the broker without a key).
pub async fn me(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Me {
    let mut c = Chrome::new(&console, &cur, "me", "My key");
    let Some(key) = cur.key() else {
        // The operator has no key of its own: the page says how a key holder gets here.
        return Me {
            c,
            name: "(operator)".into(),
            hint: "sign in with a broker key to see its page".into(),
            limits: Vec::new(),
            budget_left: "–".into(),
            usage: Vec::new(),
            recent: Vec::new(),
        };
    };
    let rest = console.rest(Some(key));
    let key = c.or_note("Your key", rest.get_json("/v1/key").await);
    let d = &key["data"];
    let usage = c.or_note(
        "Your usage",
        rest.get_json("/billing/usage?group_by=model").await,
    );
    let detailed = c.or_note("Your requests", rest.get_json("/metrics/detailed").await);
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    let usage = usage["groups"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| ByModel {
                    model: text(&g["group"]),
                    requests: view::int(num(&g["requests"])),
                    tokens: view::int(num(&g["prompt_tokens"]) + num(&g["completion_tokens"])),
                    cost: view::usd(g["cost_usd"].as_f64().unwrap_or(0.0)),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut recent: Vec<Recent> = detailed["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|cl| cl["last_requests"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let started = r["started_ms"].as_i64().unwrap_or(0);
            Recent {
                started_ms: started,
                time: view::utc(started),
                model: text(&r["model"]),
                status: text(&r["status"]),
                cost: view::usd(r["cost_usd"].as_f64().unwrap_or(0.0)),
            }
        })
        .collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    Me {
        name: text(&d["name"]),
        hint: text(&d["label"]),
        limits: vec![
            Limit {
                k: "allowed models",
                v: text(&d["allowed_models"]),
            },
            Limit {
                k: "requests / min",
                v: text(&d["rate_limit"]["requests"]),
            },
            Limit {
                k: "tokens / min",
                v: text(&d["rate_limit"]["tokens"]),
            },
            Limit {
                k: "budget",
                v: d["limit"].as_f64().map_or_else(|| "none".into(), view::usd),
            },
            Limit {
                k: "spent",
                v: view::usd(d["usage"].as_f64().unwrap_or(0.0)),
            },
        ],
        budget_left: d["limit_remaining"]
            .as_f64()
            .map_or_else(|| "no budget".into(), view::usd),
        c,
        usage,
        recent,
    }
}
