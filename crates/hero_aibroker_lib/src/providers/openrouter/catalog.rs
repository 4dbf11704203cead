//! The live OpenRouter catalog: `GET <openrouter base>/models`, fetched right after start and
//! then every `OPENROUTER_CATALOG_INTERVAL`, turned into model configurations and merged
//! behind the YAML models (the operator's file wins wherever both name a model). A failed
//! refresh keeps the last good catalog and is reported by the `health` RPC.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use hero_aibroker_sdk::admin::CatalogHealth;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::registry::Registry;
use crate::config::{BackendConfig, ModelConfig, ModelsConfig, Tier};
use crate::secret::Secret;
use hero_aibroker_host::env::Env;

/// The provider whose catalog is fetched and whose backends catalog models get.
pub const PROVIDER: &str = "openrouter";
/// Catalog models kept at most; the rest of a larger list is dropped (with a warning).
pub const MAX_MODELS: usize = 5000;
/// Largest catalog page read (OpenRouter's whole list is a few MB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Pages followed through `links.next` in one refresh at most.
const MAX_PAGES: usize = 50;
/// First retry after a failed refresh; doubles per failure, never beyond the interval.
const RETRY_BASE: Duration = Duration::from_secs(30);
/// Names `resolve()` gives a meaning before `provider/model_id`; never taken by the catalog.
const RESERVED: &[&str] = &["auto", "autocheapest", "autobest"];

/// Catalog models as model configurations, keyed by OpenRouter id, in catalog order.
pub type Entries = IndexMap<String, ModelConfig>;

/// Why a refresh failed. Messages name no key and no header.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("OpenRouter has no usable key")]
    NoKey,
    #[error("HTTP {status}{message}")]
    Status { status: u16, message: String },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("no {0} within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("a catalog page is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("not an OpenRouter model list: {0}")]
    Parse(String),
    #[error("the catalog lists no usable model ({0} entries skipped)")]
    Empty(usize),
}

/// The timeouts of one refresh, from the upstream settings.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

/// The catalog a running broker holds, and how its refreshes went.
#[derive(Debug)]
pub struct LiveCatalog {
    /// `None` when the catalog is off (no OpenRouter key, or interval 0).
    interval: Option<Duration>,
    /// OpenRouter's sub-provider endpoints of the models routed there (refreshed alongside).
    pub endpoints: super::endpoints::SubEndpoints,
    entries: ArcSwap<Entries>,
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    refreshed_ms: Option<i64>,
    last_error: Option<String>,
    next_refresh_ms: Option<i64>,
    failures: u32,
}

impl LiveCatalog {
    /// A catalog refreshed every `interval` (`None`: off, always empty).
    pub fn new(interval: Option<Duration>) -> Self {
        LiveCatalog {
            interval,
            endpoints: super::endpoints::SubEndpoints::default(),
            entries: ArcSwap::from_pointee(Entries::new()),
            status: Mutex::new(Status::default()),
        }
    }

    /// A catalog for this registry: on when `interval` > 0 and OpenRouter has a key.
    pub fn for_registry(reg: &Registry, interval: Duration) -> Self {
        let keyed = reg
            .providers
            .get(PROVIDER)
            .is_some_and(|p| !p.keyless && p.instances.iter().any(|i| i.key.is_some()));
        Self::new((keyed && !interval.is_zero()).then_some(interval))
    }

    /// True when refreshes run.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// The last good catalog (empty before the first successful refresh).
    pub fn entries(&self) -> Arc<Entries> {
        self.entries.load_full()
    }

    /// What `health` reports; `None` when the catalog is off.
    pub fn health(&self) -> Option<CatalogHealth> {
        self.interval?;
        let s = self.lock();
        Some(CatalogHealth {
            models: self.entries.load().len() as u64,
            refreshed_ms: s.refreshed_ms,
            last_error: s.last_error.clone(),
            next_refresh_ms: s.next_refresh_ms,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a successful refresh; its entries are installed (and the registry rebuilt)
    /// first, so `health` never reports a catalog the registry does not hold yet.
    fn succeeded(&self) {
        let mut s = self.lock();
        s.refreshed_ms = Some(now_ms());
        s.last_error = None;
        s.failures = 0;
    }

    fn failed(&self, error: &CatalogError) {
        let mut s = self.lock();
        s.last_error = Some(error.to_string());
        s.failures = s.failures.saturating_add(1);
    }

    /// Schedules the next refresh: the interval ±10 % after a success (so several brokers
    /// do not hit OpenRouter in step), a doubling retry capped by the interval after failures.
    fn schedule(&self, interval: Duration) -> Duration {
        let mut s = self.lock();
        let base = match s.failures {
            0 => interval,
            n => RETRY_BASE
                .saturating_mul(1 << (n - 1).min(16))
                .min(interval),
        };
        let delay = base.mul_f64(rand::random_range(0.9..1.1));
        s.next_refresh_ms = Some(now_ms().saturating_add(ms(delay)));
        delay
    }
}

impl LiveCatalog {
    /// Where the catalog comes from in `registry`: OpenRouter's base URL and a key (a usable
    /// instance's, else the first); `None` without an OpenRouter key.
    pub fn source(registry: &Registry) -> Option<(String, Secret)> {
        registry.providers.get(PROVIDER).and_then(|p| {
            let inst = p
                .instances
                .iter()
                .find(|i| i.usable())
                .or(p.instances.first())?;
            Some((p.base_url.clone(), inst.key.clone()?))
        })
    }

    /// One refresh: fetch, and on success swap the catalog in; on failure keep the last good
    /// catalog, log one line and report the error in `health`. True when the entries changed
    /// (the caller then rebuilds the registry).
    pub async fn refresh(
        &self,
        client: &reqwest::Client,
        source: Option<(String, Secret)>,
        timeouts: Timeouts,
    ) -> bool {
        let result = match source {
            None => Err(CatalogError::NoKey),
            Some((base, key)) => fetch(client, &base, &key, timeouts).await,
        };
        match result {
            Ok(entries) => {
                let n = entries.len();
                // An unchanged catalog leaves the registry (and its round-robin cursors) alone.
                let changed = *self.entries() != entries;
                if changed {
                    self.entries.store(Arc::new(entries));
                    tracing::info!(models = n, "OpenRouter catalog refreshed");
                } else {
                    tracing::debug!(models = n, "OpenRouter catalog refreshed, unchanged");
                }
                self.succeeded();
                changed
            }
            Err(e) => {
                let kept = self.entries().len();
                tracing::warn!(
                    "OpenRouter catalog refresh failed, keeping the last good catalog ({kept} models): {e}"
                );
                self.failed(&e);
                false
            }
        }
    }

    /// The pause before the next refresh (see the schedule in the module doc); `None` when
    /// the catalog is off.
    pub fn next_delay(&self) -> Option<Duration> {
        self.interval.map(|i| self.schedule(i))
    }
}

/// The registry for the YAML models plus the catalog's (see [`merge`]); instance health,
/// circuits and stats carry over from `previous`.
pub fn build_registry(
    yaml: &ModelsConfig,
    catalog: &Entries,
    env: &Env,
    overrides: &std::collections::HashMap<String, i64>,
    previous: Option<&Registry>,
) -> Registry {
    if catalog.is_empty() {
        return Registry::build_with(yaml, env, overrides, previous);
    }
    Registry::build_with(&merge(yaml, catalog), env, overrides, previous)
}

/// The YAML models followed by the catalog models YAML does not already define. A catalog id
/// is skipped when it is a YAML model name or alias, the `model_id` of a YAML `openrouter`
/// backend, a YAML backend's `provider/model_id` pin, or `auto*`.
pub fn merge(yaml: &ModelsConfig, catalog: &Entries) -> ModelsConfig {
    let mut taken: HashSet<String> = RESERVED.iter().map(|s| (*s).to_owned()).collect();
    for (name, m) in &yaml.models {
        taken.insert(name.clone());
        taken.extend(m.aliases.iter().cloned());
        for b in &m.backends {
            if b.provider == PROVIDER {
                taken.insert(b.model_id.clone());
            }
            taken.insert(format!("{}/{}", b.provider, b.model_id));
        }
    }
    let mut merged = yaml.clone();
    for (id, m) in catalog {
        if !taken.contains(id) {
            merged.models.insert(id.clone(), m.clone());
        }
    }
    merged
}

/// Fetches the whole catalog: `<base>/models`, then each `links.next` page (its query only,
/// on the same URL: the catalog never chooses where the broker connects), within
/// `timeouts.total`.
pub async fn fetch(
    client: &reqwest::Client,
    base_url: &str,
    key: &Secret,
    timeouts: Timeouts,
) -> Result<Entries, CatalogError> {
    tokio::time::timeout(timeouts.total, fetch_pages(client, base_url, key, timeouts))
        .await
        .unwrap_or(Err(CatalogError::Timeout(
            "complete catalog",
            timeouts.total,
        )))
}

async fn fetch_pages(
    client: &reqwest::Client,
    base_url: &str,
    key: &Secret,
    timeouts: Timeouts,
) -> Result<Entries, CatalogError> {
    let url = reqwest::Url::parse(&format!("{}/models", base_url.trim_end_matches('/')))
        .map_err(|e| CatalogError::Transport(format!("invalid base URL: {e}")))?;
    let mut entries = Entries::new();
    let mut tally = Tally::default();
    let mut seen_queries = HashSet::new();
    let mut query: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut page_url = url.clone();
        page_url.set_query(query.as_deref());
        let body = get(client, page_url, key, timeouts).await?;
        match read_page(&body, &url, &mut entries, &mut tally)? {
            Some(q) if seen_queries.insert(q.clone()) => query = Some(q),
            _ => break,
        }
    }
    if entries.is_empty() {
        return Err(CatalogError::Empty(tally.skipped));
    }
    if tally.beyond_bound > 0 {
        tracing::warn!(
            "the OpenRouter catalog lists more than {MAX_MODELS} models; only the first {MAX_MODELS} are used"
        );
    }
    tracing::debug!(
        models = entries.len(),
        skipped = tally.skipped,
        "OpenRouter catalog fetched"
    );
    Ok(entries)
}

/// Entries seen so far in one refresh.
#[derive(Debug, Default)]
struct Tally {
    listed: u64,
    skipped: usize,
    /// Usable entries left out because [`MAX_MODELS`] were already kept.
    beyond_bound: usize,
}

/// Adds the usable entries of one page to `entries` (at most [`MAX_MODELS`]); returns the
/// query of the next page, if there is one to fetch.
fn read_page(
    body: &[u8],
    url: &reqwest::Url,
    entries: &mut Entries,
    tally: &mut Tally,
) -> Result<Option<String>, CatalogError> {
    let page: Page =
        serde_json::from_slice(body).map_err(|e| CatalogError::Parse(e.to_string()))?;
    tally.listed += page.data.len() as u64;
    for raw in &page.data {
        let model = serde_json::from_str::<Entry>(raw.get())
            .ok()
            .and_then(Entry::into_model);
        match model {
            Some((id, _)) if entries.contains_key(&id) => tally.skipped += 1,
            Some(_) if entries.len() >= MAX_MODELS => tally.beyond_bound += 1,
            Some((id, m)) => {
                entries.insert(id, m);
            }
            None => tally.skipped += 1,
        }
    }
    let done = page.data.is_empty()
        || tally.beyond_bound > 0
        || page.total_count.is_some_and(|t| tally.listed >= t);
    if done {
        return Ok(None);
    }
    Ok(page
        .links
        .and_then(|l| l.next)
        .and_then(|n| next_query(url, &n)))
}

/// The query string of a `links.next` reference (relative or absolute).
fn next_query(base: &reqwest::Url, next: &str) -> Option<String> {
    base.join(next).ok()?.query().map(str::to_owned)
}

/// One page's body, bounded in size and time. The key goes only into `Authorization`.
pub(super) async fn get(
    client: &reqwest::Client,
    url: reqwest::Url,
    key: &Secret,
    timeouts: Timeouts,
) -> Result<Vec<u8>, CatalogError> {
    let request = client
        .get(url)
        .bearer_auth(key.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send();
    let mut resp = tokio::time::timeout(timeouts.first_byte, request)
        .await
        .map_err(|_| CatalogError::Timeout("answer", timeouts.first_byte))?
        .map_err(transport)?;
    let status = resp.status();
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(CatalogError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        let chunk = tokio::time::timeout(timeouts.idle, resp.chunk())
            .await
            .map_err(|_| CatalogError::Timeout("data", timeouts.idle))?
            .map_err(transport)?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(CatalogError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(CatalogError::Status {
            status: status.as_u16(),
            message: error_message(&body),
        });
    }
    Ok(body)
}

/// `: <message>` from an OpenRouter/OpenAI error body, escaped and bounded; empty otherwise.
fn error_message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["error"]["message"]
        .as_str()
        .map(|m| format!(": {}", crate::error::printable(m)))
        .unwrap_or_default()
}

/// A transport error with its causes (reqwest's `Display` stops at the outermost one), without
/// the URL.
fn transport(e: reqwest::Error) -> CatalogError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    CatalogError::Transport(text)
}

fn now_ms() -> i64 {
    i64::try_from(crate::health::pool::unix_ms()).unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One page of `GET /models`. Entries stay raw so one odd entry is skipped, not the page.
#[derive(Deserialize)]
struct Page {
    data: Vec<Box<RawValue>>,
    #[serde(default)]
    links: Option<Links>,
    #[serde(default)]
    total_count: Option<u64>,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

/// The fields of a catalog entry the broker uses; the rest are ignored.
#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    context_length: Option<Number>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    architecture: Option<Architecture>,
    #[serde(default)]
    supported_parameters: Option<Vec<String>>,
    #[serde(default)]
    top_provider: Option<TopProvider>,
}

#[derive(Deserialize)]
struct Pricing {
    #[serde(default)]
    prompt: Option<Number>,
    #[serde(default)]
    completion: Option<Number>,
}

#[derive(Deserialize)]
struct Architecture {
    #[serde(default)]
    input_modalities: Vec<String>,
    #[serde(default)]
    output_modalities: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TopProvider {
    #[serde(default)]
    context_length: Option<Number>,
}

/// OpenRouter sends prices as decimal strings; numbers are accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Text(String),
    Value(f64),
}

impl Number {
    fn get(&self) -> Option<f64> {
        match self {
            Number::Text(s) => s.trim().parse().ok(),
            Number::Value(v) => Some(*v),
        }
        .filter(|v: &f64| v.is_finite())
    }
}

/// USD per token → USD per million tokens, rounded to 1e-9 so `0.00003` reads `30`, not
/// `30.000000000000004`. Negative prices (OpenRouter's "variable", e.g. `openrouter/auto`)
/// are not prices: `None`.
pub fn per_million(per_token: f64) -> Option<f64> {
    (per_token.is_finite() && per_token >= 0.0).then(|| (per_token * 1e15).round() / 1e9)
}

impl Entry {
    /// The model configuration of this entry, or `None` when the broker cannot route it:
    /// an unsafe id, no price, no context length, or no text output.
    fn into_model(self) -> Option<(String, ModelConfig)> {
        if !valid_id(&self.id) {
            return None;
        }
        let pricing = self.pricing?;
        let input_cost = per_million(pricing.prompt?.get()?)?;
        let output_cost = per_million(pricing.completion?.get()?)?;
        let context = self
            .context_length
            .and_then(|n| n.get())
            .or_else(|| self.top_provider?.context_length?.get())
            .filter(|n| *n >= 1.0)?;
        let (inputs, outputs) = self
            .architecture
            .map(|a| (a.input_modalities, a.output_modalities))
            .unwrap_or_default();
        if outputs.is_some_and(|o| !o.iter().any(|m| m == "text")) {
            return None;
        }
        let params = self.supported_parameters;
        let has = |names: &[&str]| params.iter().flatten().any(|p| names.contains(&p.as_str()));
        let mut capabilities = vec!["chat".to_owned()];
        for (cap, names) in [
            ("tools", &["tools"][..]),
            (
                "json_schema",
                &["response_format", "structured_outputs"][..],
            ),
            ("reasoning", &["reasoning", "include_reasoning"][..]),
        ] {
            if has(names) {
                capabilities.push(cap.to_owned());
            }
        }
        if inputs.iter().any(|m| m == "image") {
            capabilities.push("vision".to_owned());
        }
        let display_name = self
            .name
            .map(|n| n.trim().chars().take(200).collect::<String>())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.id.clone());
        let tier = if input_cost == 0.0 && output_cost == 0.0 {
            Tier::Free
        } else {
            Tier::Standard
        };
        let model = ModelConfig {
            display_name,
            tier,
            capabilities,
            // Saturating float-to-int conversion; context lengths are far below u64::MAX.
            context_window: context as u64,
            aliases: Vec::new(),
            strategy: None,
            backends: vec![BackendConfig {
                provider: PROVIDER.to_owned(),
                model_id: self.id.clone(),
                priority: 1,
                input_cost,
                output_cost,
                cache_read_cost: None,
                cache_write_cost: None,
                parameters: params,
            }],
            from_catalog: true,
        };
        Some((self.id, model))
    }
}

/// Catalog ids become model names: printable, no spaces, no path tricks (as YAML names).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.contains("..")
        && !id.starts_with('/')
        && id.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+')
        })
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
