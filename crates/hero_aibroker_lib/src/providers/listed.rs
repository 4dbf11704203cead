//! Providers whose models the broker learns from the provider itself, and how they enter the
//! registry:
//!
//! - **mothers** (the cascade, rows of the `mothers` table): a child forwards to a mother broker
//!   over TCP (`kind: mother`, named by its id, base URL `http://address:port/v1`, its token as
//!   the key); their models are the mother's servable `/v1/models`, priced as the mother
//!   prices them;
//! - **`local`** (`LOCAL_BASE_URL`, key from `LOCAL_API_KEY` if set, else keyless): a local
//!   OpenAI-compatible server (Ollama, llama.cpp, vLLM) whose models are its own `/v1/models`,
//!   free (no price) and in the `free` tier;
//! - **`demo`** (`DEMO_BASE_URL`, set by `scripts/start.sh --demo`): the scripted fake provider,
//!   which answers any model: it backs every model of the file, after all their real backends,
//!   at the model's own price (so a first run shows routing and accounting without keys).
//!
//! Listed models are refreshed on a schedule (`CASCADE_REFRESH_SECS`), the last good copy kept.
//! Each one the file also has gets one more backend on that provider, beside the direct ones, so
//! a provider that is down falls back to them; a model only the provider has is added under its
//! name, requestable like any model.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use hero_aibroker_host::env::Env;
use hero_aibroker_sdk::wire::ModelObject;

use crate::accounting::store::MotherRow;
use crate::config::models::{BackendConfig, ModelConfig, ModelsConfig, ProviderConfig, Tier};

/// Longest a provider may take to list its models.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// The name of the local OpenAI-compatible server's provider.
pub const LOCAL: &str = "local";
/// The name of the demo provider (the scripted fake provider of `start.sh --demo`).
pub const DEMO: &str = "demo";
/// The demo's backends come after every real backend of a model.
const DEMO_PRIORITY: u32 = 1000;

/// One provider that lists its own models.
#[derive(Debug, Clone, PartialEq)]
struct Source {
    /// The provider name (a mother's id, `local`, `demo`).
    name: String,
    /// The OpenAI-style base URL (`…/v1`).
    base_url: String,
    token: Option<String>,
    /// Where its key comes from: the environment variable handed to the registry.
    key_var: Option<String>,
    priority: u32,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A mother broker: its servable models, at its prices.
    Mother,
    /// A local server: every model it lists, free.
    Local,
    /// The demo: not listed; backs every model of the file.
    Demo,
}

/// The listed providers and what each serves.
#[derive(Debug, Default)]
pub struct Listed {
    rows: ArcSwap<Vec<MotherRow>>,
    /// `local` and `demo`, from the environment at start.
    fixed: Vec<Source>,
    /// Per provider name: its models (last good copy) and the last refresh error.
    served: Mutex<HashMap<String, Served>>,
}

#[derive(Debug, Clone, Default)]
struct Served {
    models: Vec<ModelObject>,
    error: Option<String>,
}

impl Listed {
    /// The listed providers the environment asks for (`LOCAL_BASE_URL`, `DEMO_BASE_URL`);
    /// mothers come later, with [`Listed::set_rows`].
    pub fn from_env(env: &Env) -> Listed {
        let mut fixed = Vec::new();
        if let Some(url) = env.get("LOCAL_BASE_URL") {
            let key_var = env.get("LOCAL_API_KEY").map(|_| "LOCAL_API_KEY".to_owned());
            fixed.push(Source {
                name: LOCAL.to_owned(),
                base_url: url.trim_end_matches('/').to_owned(),
                token: env.get("LOCAL_API_KEY").map(str::to_owned),
                key_var,
                priority: 1,
                kind: Kind::Local,
            });
        }
        if let Some(url) = env.get("DEMO_BASE_URL") {
            fixed.push(Source {
                name: DEMO.to_owned(),
                base_url: url.trim_end_matches('/').to_owned(),
                token: None,
                key_var: None,
                priority: DEMO_PRIORITY,
                kind: Kind::Demo,
            });
        }
        Listed {
            fixed,
            ..Listed::default()
        }
    }

    /// The stored mother rows.
    pub fn rows(&self) -> Vec<MotherRow> {
        self.rows.load().as_ref().clone()
    }

    /// Replaces the mother rows (after a change through the API); forgets removed mothers'
    /// models.
    pub fn set_rows(&self, rows: Vec<MotherRow>) {
        let mut served = self.lock();
        served.retain(|id, _| {
            rows.iter().any(|r| &r.id == id) || self.fixed.iter().any(|s| &s.name == id)
        });
        drop(served);
        self.rows.store(std::sync::Arc::new(rows));
    }

    /// Whether anything is listed (mothers, a local server).
    pub fn any_to_list(&self) -> bool {
        !self.rows.load().is_empty() || self.fixed.iter().any(|s| s.kind != Kind::Demo)
    }

    fn sources(&self) -> Vec<Source> {
        let mothers = self.rows.load();
        let mothers = mothers.iter().filter(|r| r.enabled).map(|row| Source {
            name: row.id.clone(),
            base_url: format!("http://{}/v1", host_port(row)),
            token: row.token.clone(),
            key_var: row.token.as_ref().map(|_| token_var(&row.id)),
            priority: u32::try_from(row.priority.max(0)).unwrap_or(u32::MAX),
            kind: Kind::Mother,
        });
        self.fixed.iter().cloned().chain(mothers).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many models a provider lists, and why its last refresh failed.
    pub fn status(&self, name: &str) -> (u64, Option<String>) {
        self.lock()
            .get(name)
            .map_or((0, None), |s| (s.models.len() as u64, s.error.clone()))
    }

    /// Fetches every listed provider's models; true when what they serve changed.
    pub async fn refresh(&self, client: &reqwest::Client) -> bool {
        let mut changed = false;
        for source in self.sources().into_iter().filter(|s| s.kind != Kind::Demo) {
            let result = list(client, &source).await;
            let mut served = self.lock();
            let entry = served.entry(source.name.clone()).or_default();
            match result {
                Ok(models) => {
                    let ids =
                        |m: &[ModelObject]| m.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
                    changed |= ids(&entry.models) != ids(&models) || entry.error.is_some();
                    entry.models = models;
                    entry.error = None;
                }
                Err(e) => {
                    tracing::warn!(provider = %source.name, "cannot list the provider's models: {e}");
                    entry.error = Some(e);
                }
            }
        }
        changed
    }

    /// The models file with the listed providers added (providers, backends, models), and the
    /// environment holding their keys.
    pub fn merge(&self, cfg: &ModelsConfig, env: &Env) -> (ModelsConfig, Env) {
        let sources = self.sources();
        if sources.is_empty() {
            return (cfg.clone(), env.clone());
        }
        let served = self.lock();
        let mut merged = cfg.clone();
        let mut keys = Vec::new();
        for source in &sources {
            if let (Some(var), Some(t)) = (&source.key_var, &source.token) {
                keys.push((var.clone(), t.clone()));
            }
            // A file that declares the provider keeps its declaration (LOCAL_BASE_URL then
            // overrides its URL, as for any provider).
            if !merged.providers.iter().any(|p| p.name == source.name) {
                merged.providers.push(ProviderConfig {
                    name: source.name.clone(),
                    base_url: source.base_url.clone(),
                    api_key_env: source.key_var.clone(),
                    kind: (source.kind == Kind::Mother).then(|| super::mother::KIND.to_owned()),
                });
            }
            if source.kind == Kind::Demo {
                back_every_model(&mut merged, source);
                continue;
            }
            for m in served
                .get(&source.name)
                .map(|s| s.models.as_slice())
                .unwrap_or_default()
            {
                add_listed(&mut merged, source, m);
            }
        }
        (merged, env.with(keys))
    }
}

/// The demo backs every model of the file (not the catalog's) under the model's own name, at
/// the price of its first backend.
fn back_every_model(merged: &mut ModelsConfig, source: &Source) {
    for (name, model) in merged.models.iter_mut().filter(|(_, m)| !m.from_catalog) {
        let (input_cost, output_cost) = model
            .backends
            .iter()
            .min_by_key(|b| b.priority)
            .map_or((0.0, 0.0), |b| (b.input_cost, b.output_cost));
        model
            .backends
            .push(backend(source, name, input_cost, output_cost));
    }
}

/// A backend of `source` serving `model_id` at its priority, with these prices.
fn backend(source: &Source, model_id: &str, input_cost: f64, output_cost: f64) -> BackendConfig {
    BackendConfig {
        provider: source.name.clone(),
        model_id: model_id.to_owned(),
        priority: source.priority,
        input_cost,
        output_cost,
        cache_read_cost: None,
        cache_write_cost: None,
        parameters: None,
    }
}

/// One listed model: a backend of the file's model of that name, or a model of its own.
fn add_listed(merged: &mut ModelsConfig, source: &Source, m: &ModelObject) {
    let (input_cost, output_cost) = match source.kind {
        Kind::Mother => m
            .backends
            .iter()
            .min_by_key(|b| b.priority)
            .map_or((0.0, 0.0), |b| (b.input_cost, b.output_cost)),
        Kind::Local | Kind::Demo => (0.0, 0.0),
    };
    let backend = backend(source, &m.id, input_cost, output_cost);
    if let Some(mine) = merged.models.get_mut(&m.id) {
        mine.backends.push(backend);
        return;
    }
    let (default_tier, default_context) = match source.kind {
        Kind::Mother => (Tier::Standard, 8192),
        Kind::Local | Kind::Demo => (Tier::Free, 8192),
    };
    // vLLM says `max_model_len`, llama.cpp `meta.n_ctx_train`, OpenRouter-shaped lists
    // `context_length`.
    let context_window = m
        .context_window
        .or_else(|| m.extra.get("context_length").and_then(|v| v.as_u64()))
        .or_else(|| m.extra.get("max_model_len").and_then(|v| v.as_u64()))
        .or_else(|| m.extra.get("meta")?.get("n_ctx_train")?.as_u64())
        .unwrap_or(default_context);
    merged.models.insert(
        m.id.clone(),
        ModelConfig {
            display_name: m.display_name.clone().unwrap_or_else(|| m.id.clone()),
            tier: tier(m.tier.as_deref()).unwrap_or(default_tier),
            capabilities: if m.capabilities.is_empty() {
                vec!["chat".to_owned()]
            } else {
                m.capabilities.clone()
            },
            context_window,
            aliases: Vec::new(),
            strategy: None,
            backends: vec![backend],
            from_catalog: false,
        },
    );
}

/// The environment variable a mother's token is handed to the registry under.
fn token_var(id: &str) -> String {
    format!("HERO_AIBROKER_MOTHER_TOKEN_{}", id.to_ascii_uppercase())
}

fn host_port(row: &MotherRow) -> String {
    if row.address.contains(':') {
        format!("[{}]:{}", row.address, row.port)
    } else {
        format!("{}:{}", row.address, row.port)
    }
}

fn tier(t: Option<&str>) -> Option<Tier> {
    Some(match t? {
        "free" => Tier::Free,
        "cheap" => Tier::Cheap,
        "standard" => Tier::Standard,
        "premium" => Tier::Premium,
        "frontier" => Tier::Frontier,
        _ => return None,
    })
}

/// A provider's models, from its `GET /v1/models`: a mother's servable ones, a local server's
/// every one.
async fn list(client: &reqwest::Client, source: &Source) -> Result<Vec<ModelObject>, String> {
    let mut rb = client
        .get(format!("{}/models", source.base_url))
        .timeout(LIST_TIMEOUT);
    if let Some(t) = &source.token {
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
        data: Vec<Entry>,
    }
    /// Local servers write less than the broker's model objects: only `id` is required.
    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    }
    let list: List = resp
        .json()
        .await
        .map_err(|e| format!("the model list is not JSON: {e}"))?;
    let mut models = Vec::new();
    for e in list.data {
        let mut obj = e.rest;
        obj.insert("id".to_owned(), e.id.into());
        for (k, v) in [("object", "model"), ("owned_by", "")] {
            obj.entry(k).or_insert_with(|| v.into());
        }
        obj.entry("created").or_insert_with(|| 0.into());
        let m: ModelObject = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| format!("a model in the list is malformed: {e}"))?;
        if source.kind == Kind::Local || m.servable {
            models.push(m);
        }
    }
    Ok(models)
}
