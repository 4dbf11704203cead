//! Models (the catalog with search and filters), Providers (instances, circuits, priorities,
//! check / reset / disable) and Routing (`routing.explain`: where a request would go now).

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::{Extension, Form};
use hero_aibroker_sdk::admin::{ExplainQuery, ProviderInfo, RouteTrace};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use hero_aibroker_sdk::wire::ModelObject;
use serde::Deserialize;

use super::fragment;
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

#[derive(Debug, Default, Deserialize)]
pub struct ModelFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    capability: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    servable: String,
}

/// One backend of a model as the table shows it.
pub struct BackendRow {
    pub provider: String,
    pub model_id: String,
    pub priority: u32,
    pub price: String,
    pub health: String,
}

/// One model row.
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub context: String,
    pub capabilities: String,
    pub servable: bool,
    /// Only the demo provider serves it (`/v1/models` says `demo: true`).
    pub demo: bool,
    pub strategy: String,
    pub backends: Vec<BackendRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "models.html")]
pub struct ModelsPage {
    c: Chrome,
    f: ModelFilter,
    rows: Vec<ModelRow>,
    total: usize,
    tiers: Vec<String>,
    capabilities: Vec<String>,
    providers: Vec<String>,
}

fn matches(m: &ModelObject, f: &ModelFilter) -> bool {
    let q = f.q.trim().to_lowercase();
    (q.is_empty()
        || m.id.to_lowercase().contains(&q)
        || m.display_name
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(&q))
        || m.aliases.iter().any(|a| a.to_lowercase().contains(&q)))
        && (f.tier.is_empty() || m.tier.as_deref() == Some(f.tier.as_str()))
        && (f.capability.is_empty() || m.capabilities.contains(&f.capability))
        && (f.provider.is_empty() || m.backends.iter().any(|b| b.provider == f.provider))
        && match f.servable.as_str() {
            "yes" => m.servable,
            "no" => !m.servable,
            _ => true,
        }
}

/// How the providers' instances of `provider` are doing, in a few words.
fn provider_health(providers: &[ProviderInfo], provider: &str, model: &str) -> String {
    let Some(p) = providers.iter().find(|p| p.name == provider) else {
        return "unknown".into();
    };
    let healthy = p.instances.iter().filter(|i| i.state == "healthy").count();
    let circuit = p
        .circuits
        .iter()
        .find(|c| c.model == model)
        .map_or("closed", |c| c.state.as_str());
    if p.instances.is_empty() {
        "no key".into()
    } else if circuit != "closed" {
        format!("circuit {circuit}")
    } else {
        format!("{healthy}/{} keys healthy", p.instances.len())
    }
}

pub async fn models(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    Query(f): Query<ModelFilter>,
) -> ModelsPage {
    let mut c = Chrome::new(&console, &cur, "models", "Models");
    let all = c.or_note("Models", console.rpc.models_list().await);
    let providers = c.or_note("Providers", console.rpc.providers_list().await);
    let set = |get: &dyn Fn(&ModelObject) -> Vec<String>| -> Vec<String> {
        all.iter()
            .flat_map(get)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let tiers = set(&|m| m.tier.clone().into_iter().collect());
    let capabilities = set(&|m| m.capabilities.clone());
    let provider_names = set(&|m| m.backends.iter().map(|b| b.provider.clone()).collect());
    let rows: Vec<ModelRow> = all
        .iter()
        .filter(|m| matches(m, &f))
        .map(|m| ModelRow {
            id: m.id.clone(),
            name: m.display_name.clone().unwrap_or_default(),
            tier: m.tier.clone().unwrap_or_default(),
            context: m.context_window.map(view::int).unwrap_or_default(),
            capabilities: m.capabilities.join(", "),
            servable: m.servable,
            demo: m.extra.get("demo").and_then(serde_json::Value::as_bool) == Some(true),
            strategy: m.strategy.clone().unwrap_or_else(|| "default".to_owned()),
            backends: m
                .backends
                .iter()
                .map(|b| BackendRow {
                    provider: b.provider.clone(),
                    model_id: b.model_id.clone(),
                    priority: b.priority,
                    price: format!("${} / ${} per M", b.input_cost, b.output_cost),
                    health: provider_health(&providers, &b.provider, &m.id),
                })
                .collect(),
        })
        .collect();
    ModelsPage {
        c,
        total: all.len(),
        f,
        rows,
        tiers,
        capabilities,
        providers: provider_names,
    }
}

/// One instance row.
pub struct InstanceRow {
    pub id: String,
    pub key: String,
    pub state: String,
    pub detail: String,
    pub healthy: bool,
    /// The last hour: requests, success rate, average latency.
    pub hour: String,
}

/// One provider and its instances.
pub struct ProviderRow {
    pub name: String,
    /// A mother broker (the cascade).
    pub cascade: bool,
    pub base_url: String,
    pub priority: String,
    pub models: usize,
    pub instances: Vec<InstanceRow>,
    pub circuits: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "providers.html")]
pub struct ProvidersPage {
    c: Chrome,
    rows: Vec<ProviderRow>,
}

pub async fn providers(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
) -> ProvidersPage {
    let mut c = Chrome::new(&console, &cur, "providers", "Providers");
    let list = c.or_note("Providers", console.rpc.providers_list().await);
    let hour = console
        .rpc
        .usage_summary(hero_aibroker_sdk::admin::UsageQuery {
            group_by: hero_aibroker_sdk::admin::GroupBy::Provider,
            from_ms: Some(view::now_ms() - 3_600_000),
            to_ms: None,
            key_id: None,
        })
        .await
        .unwrap_or_default();
    let last_hour = |id: &str| match hour.iter().find(|g| g.group == id) {
        Some(g) => format!(
            "{} req · {} ok · {}",
            view::int(g.requests),
            view::pct(g.requests - g.errors, g.requests),
            view::ms(g.avg_latency_ms)
        ),
        None => "no requests".to_owned(),
    };
    let mut rows: Vec<ProviderRow> = list
        .into_iter()
        .map(|p| ProviderRow {
            cascade: p.kind == "mother",
            priority: p
                .priority_override
                .map(|v| v.to_string())
                .unwrap_or_default(),
            models: p.models.len(),
            instances: p
                .instances
                .iter()
                .map(|i| InstanceRow {
                    hour: last_hour(&i.id),
                    id: i.id.clone(),
                    key: i.key_hint.clone().unwrap_or_else(|| "(keyless)".into()),
                    healthy: i.state == "healthy",
                    state: i.state.clone(),
                    detail: view::instance_detail(i.cooldown_seconds, i.reason.as_deref()),
                })
                .collect(),
            circuits: p
                .circuits
                .iter()
                .filter(|ci| ci.state != "closed")
                .map(|ci| format!("{}: {} ({} failures)", ci.model, ci.state, ci.failures))
                .collect(),
            name: p.name,
            base_url: p.base_url,
        })
        .collect();
    // Providers in trouble (an instance not healthy, a circuit not closed) first.
    rows.sort_by_key(|p| p.instances.iter().all(|i| i.healthy) && p.circuits.is_empty());
    ProvidersPage { c, rows }
}

#[derive(Deserialize)]
pub struct PriorityForm {
    #[serde(default)]
    priority: String,
}

/// Sets a provider's priority; blank clears it.
pub async fn set_priority(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    Form(f): Form<PriorityForm>,
) -> Html<String> {
    let value = f.priority.trim();
    let priority = if value.is_empty() {
        None
    } else {
        match value.parse::<i64>() {
            Ok(p) => Some(p),
            Err(_) => return fragment(false, format!("{value:?} is not a whole number")),
        }
    };
    match console.rpc.priority_set(name, priority).await {
        Ok(e) => fragment(
            true,
            match e.priority {
                Some(p) => format!("priority {p}"),
                None => "priority cleared (models file)".to_owned(),
            },
        ),
        Err(e) => fragment(false, e),
    }
}

/// Checks a provider's keys with a cheap call each.
pub async fn check(State(console): State<Arc<Console>>, Path(name): Path<String>) -> Html<String> {
    match console.rpc.providers_check(Some(name)).await {
        Ok(checks) if checks.is_empty() => fragment(false, "no keys to check"),
        Ok(checks) => Html(
            checks
                .iter()
                .map(|k| {
                    let text = if k.ok {
                        format!("{} ok ({} ms)", k.instance, k.latency_ms)
                    } else {
                        format!(
                            "{} failed: {}",
                            k.instance,
                            k.error.clone().unwrap_or_default()
                        )
                    };
                    fragment(k.ok, text).0
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Err(e) => fragment(false, e),
    }
}

pub async fn reset(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Html<String> {
    match console.rpc.providers_reset(id).await {
        Ok(i) => fragment(true, format!("{} is {}", i.id, i.state)),
        Err(e) => fragment(false, e),
    }
}

pub async fn disable(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Html<String> {
    match console
        .rpc
        .providers_disable(id, Some("disabled from the console".into()))
        .await
    {
        Ok(i) => fragment(true, format!("{} is {}", i.id, i.state)),
        Err(e) => fragment(false, e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ExplainForm {
    #[serde(default)]
    model: String,
    /// OpenRouter `provider` preferences, as JSON.
    #[serde(default)]
    provider: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "routing.html")]
pub struct RoutingPage {
    c: Chrome,
    f: ExplainForm,
    trace: Option<RouteTrace>,
    error: Option<String>,
}

pub async fn routing(
    State(console): State<Arc<Console>>,
    Extension(cur): Extension<Current>,
    Query(f): Query<ExplainForm>,
) -> RoutingPage {
    let mut c = Chrome::new(&console, &cur, "routing", "Routing");
    let (mut trace, mut error) = (None, None);
    if !f.model.trim().is_empty() {
        let request = if f.provider.trim().is_empty() {
            Ok(None)
        } else {
            serde_json::from_str::<serde_json::Value>(&f.provider)
                .map(|p| Some(serde_json::json!({"model": f.model.trim(), "messages": [{"role": "user", "content": "hi"}], "provider": p})))
                .map_err(|e| format!("The provider preferences are not JSON: {e}"))
        };
        match request {
            Err(e) => error = Some(e),
            Ok(request) => {
                match console
                    .rpc
                    .routing_explain(ExplainQuery {
                        model: f.model.trim().to_owned(),
                        endpoint: None,
                        request,
                        session: None,
                    })
                    .await
                {
                    Ok(t) => trace = Some(t),
                    // The broker's answer about the request (an unknown model …) is shown
                    // under the form; a broker that does not answer goes to the top line.
                    Err(jsonrpsee::core::client::Error::Call(obj)) => {
                        error = Some(obj.message().to_owned());
                    }
                    Err(e) => c.failed("The broker does not answer on rpc.sock", e),
                }
            }
        }
    }
    RoutingPage { c, f, trace, error }
}
