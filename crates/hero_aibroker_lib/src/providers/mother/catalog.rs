//! The mothers a child broker forwards to, and what each serves: the rows of the `mothers`
//! table, each enabled mother's models from its `/v1/models` (refreshed on a schedule, the last
//! good copy kept), and how they enter the registry.
//!
//! A mother becomes a provider named by its id (`kind: mother`, base URL
//! `http://address:port/v1`, its token as the key). Each model it serves that the child also
//! has gets one more backend on that provider, at the mother's priority, beside the child's
//! direct backends, so a mother that is down falls back to them; a model only the mother has
//! is added under its name, requestable like any model. The prices are the mother's (its
//! preferred backend's), so the child's ledger prices the traffic as the mother does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use hero_aibroker_host::env::Env;
use hero_aibroker_sdk::wire::ModelObject;

use crate::accounting::store::MotherRow;
use crate::config::models::{BackendConfig, ModelConfig, ModelsConfig, ProviderConfig, Tier};

/// Longest a mother may take to list its models.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable a mother's token is handed to the registry under.
fn token_var(id: &str) -> String {
    format!("HERO_AIBROKER_MOTHER_TOKEN_{}", id.to_ascii_uppercase())
}

/// The mothers and what they serve.
#[derive(Debug, Default)]
pub struct Mothers {
    rows: ArcSwap<Vec<MotherRow>>,
    /// Per mother id: its models (last good copy) and the last refresh error.
    served: Mutex<HashMap<String, Served>>,
}

#[derive(Debug, Clone, Default)]
struct Served {
    models: Vec<ModelObject>,
    error: Option<String>,
}

impl Mothers {
    /// The stored rows.
    pub fn rows(&self) -> Vec<MotherRow> {
        self.rows.load().as_ref().clone()
    }

    /// Replaces the rows (after a change through the API); forgets removed mothers' models.
    pub fn set_rows(&self, rows: Vec<MotherRow>) {
        let mut served = self.lock();
        served.retain(|id, _| rows.iter().any(|r| &r.id == id));
        drop(served);
        self.rows.store(std::sync::Arc::new(rows));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many models a mother serves, and why its last refresh failed.
    pub fn status(&self, id: &str) -> (u64, Option<String>) {
        self.lock()
            .get(id)
            .map_or((0, None), |s| (s.models.len() as u64, s.error.clone()))
    }

    /// Fetches every enabled mother's models; true when what they serve changed.
    pub async fn refresh(&self, client: &reqwest::Client) -> bool {
        let mut changed = false;
        for row in self.rows().into_iter().filter(|r| r.enabled) {
            let result = list(client, &row).await;
            let mut served = self.lock();
            let entry = served.entry(row.id.clone()).or_default();
            match result {
                Ok(models) => {
                    let ids =
                        |m: &[ModelObject]| m.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
                    changed |= ids(&entry.models) != ids(&models) || entry.error.is_some();
                    entry.models = models;
                    entry.error = None;
                }
                Err(e) => {
                    tracing::warn!(mother = %row.id, "cannot list the mother's models: {e}");
                    entry.error = Some(e);
                }
            }
        }
        changed
    }

    /// The models file with the mothers added (providers, backends, models), and the
    /// environment holding their tokens.
    pub fn merge(&self, cfg: &ModelsConfig, env: &Env) -> (ModelsConfig, Env) {
        let rows = self.rows.load();
        if rows.is_empty() {
            return (cfg.clone(), env.clone());
        }
        let served = self.lock();
        let mut merged = cfg.clone();
        let mut tokens = Vec::new();
        for row in rows.iter().filter(|r| r.enabled) {
            if let Some(t) = &row.token {
                tokens.push((token_var(&row.id), t.clone()));
            }
            merged.providers.push(ProviderConfig {
                name: row.id.clone(),
                base_url: format!("http://{}/v1", host_port(row)),
                api_key_env: row.token.as_ref().map(|_| token_var(&row.id)),
                kind: Some(super::KIND.to_owned()),
            });
            let priority = u32::try_from(row.priority.max(0)).unwrap_or(u32::MAX);
            for m in served
                .get(&row.id)
                .map(|s| s.models.as_slice())
                .unwrap_or_default()
            {
                let (input_cost, output_cost) = m
                    .backends
                    .iter()
                    .min_by_key(|b| b.priority)
                    .map_or((0.0, 0.0), |b| (b.input_cost, b.output_cost));
                let backend = BackendConfig {
                    provider: row.id.clone(),
                    model_id: m.id.clone(),
                    priority,
                    input_cost,
                    output_cost,
                    cache_read_cost: None,
                    cache_write_cost: None,
                    parameters: None,
                };
                match merged.models.get_mut(&m.id) {
                    Some(mine) => mine.backends.push(backend),
                    None => {
                        merged.models.insert(
                            m.id.clone(),
                            ModelConfig {
                                display_name: m
                                    .display_name
                                    .clone()
                                    .unwrap_or_else(|| m.id.clone()),
                                tier: tier(m.tier.as_deref()),
                                capabilities: if m.capabilities.is_empty() {
                                    vec!["chat".to_owned()]
                                } else {
                                    m.capabilities.clone()
                                },
                                context_window: m.context_window.unwrap_or(8192),
                                aliases: Vec::new(),
                                strategy: None,
                                backends: vec![backend],
                                from_catalog: false,
                            },
                        );
                    }
                }
            }
        }
        (merged, env.with(tokens))
    }
}

fn host_port(row: &MotherRow) -> String {
    if row.address.contains(':') {
        format!("[{}]:{}", row.address, row.port)
    } else {
        format!("{}:{}", row.address, row.port)
    }
}

fn tier(t: Option<&str>) -> Tier {
    match t {
        Some("free") => Tier::Free,
        Some("cheap") => Tier::Cheap,
        Some("premium") => Tier::Premium,
        Some("frontier") => Tier::Frontier,
        _ => Tier::Standard,
    }
}

/// A mother's servable models, from its `GET /v1/models`.
async fn list(client: &reqwest::Client, row: &MotherRow) -> Result<Vec<ModelObject>, String> {
    let mut rb = client
        .get(format!("http://{}/v1/models", host_port(row)))
        .timeout(LIST_TIMEOUT);
    if let Some(t) = &row.token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("cannot reach it: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<ModelObject>,
    }
    let list: List = resp
        .json()
        .await
        .map_err(|e| format!("the model list is not JSON: {e}"))?;
    Ok(list.data.into_iter().filter(|m| m.servable).collect())
}
