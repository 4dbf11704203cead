//! The model registry: an immutable snapshot of models, their backends and the provider
//! instances (keys) that can serve them, built from `modelsconfig.yml` and the environment.
//! Swapped whole on reload; requests in flight keep the snapshot they started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use indexmap::IndexMap;

use crate::config::models::{BUILTIN_PROVIDERS, default_kind, env_prefix};
use crate::config::{ModelsConfig, Tier};
use crate::health::circuit::Circuit;
use crate::health::pool::Instance;
use crate::health::stats::BackendStats;
use crate::secret::Secret;
use hero_aibroker_host::env::Env;

/// A model as routing sees it.
#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub display_name: String,
    pub tier: Tier,
    pub capabilities: Vec<String>,
    pub context_window: u64,
    pub aliases: Vec<String>,
    /// Its own `strategy:`, if the file sets one.
    pub strategy: Option<crate::config::Strategy>,
    /// From the live OpenRouter catalog: requestable by name, not a candidate of `auto`.
    pub from_catalog: bool,
    pub backends: Vec<Backend>,
    /// Round-robin cursor over the model's candidates (round_robin, and the latency
    /// strategy's pair choice). Advanced once per routed request.
    pub(crate) cursor: AtomicUsize,
}

impl Model {
    /// True if the model declares `capability`.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// One backend of a model.
#[derive(Debug)]
pub struct Backend {
    pub provider: String,
    pub model_id: String,
    pub priority: u32,
    /// USD per million input tokens.
    pub input_cost: f64,
    /// USD per million output tokens.
    pub output_cost: f64,
    /// USD per million prompt tokens read from the cache.
    pub cache_read_cost: f64,
    /// USD per million prompt tokens written to the cache.
    pub cache_write_cost: f64,
    /// Trips when the backend keeps failing; carried over across reloads.
    pub circuit: Circuit,
    /// Request parameters it honours, when declared (`provider.require_parameters`).
    pub parameters: Option<Vec<String>>,
    /// Measured latency, success and speed; carried over across reloads.
    pub stats: Arc<BackendStats>,
}

impl Backend {
    /// Price used to order candidates: input plus output per million tokens.
    pub fn price(&self) -> f64 {
        self.input_cost + self.output_cost
    }

    /// USD cost of a speech request: a speech (`tts`) backend's `input_cost` is per million
    /// characters, a transcription (`stt`) backend's per minute of audio.
    pub fn audio_cost(&self, characters: Option<u64>, seconds: Option<f64>) -> f64 {
        let spoken = characters.unwrap_or(0) as f64 * self.input_cost / 1e6;
        let heard = seconds.unwrap_or(0.0).max(0.0) * self.input_cost / 60.0;
        spoken + heard
    }

    /// USD cost of a request with these token counts (no cache use).
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.prices().cost(prompt_tokens, completion_tokens, 0, 0)
    }

    /// Its prices.
    pub fn prices(&self) -> Prices {
        Prices {
            input: self.input_cost,
            output: self.output_cost,
            cache_read: self.cache_read_cost,
            cache_write: self.cache_write_cost,
        }
    }
}

/// A backend's prices, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

impl Prices {
    /// USD cost of `prompt` tokens (of which `cached` were read from the cache and `written`
    /// written to it, each at its own rate) and `completion` tokens.
    pub fn cost(&self, prompt: u64, completion: u64, cached: u64, written: u64) -> f64 {
        let cached = cached.min(prompt);
        let written = written.min(prompt - cached);
        let plain = prompt - cached - written;
        (plain as f64 * self.input
            + cached as f64 * self.cache_read
            + written as f64 * self.cache_write
            + completion as f64 * self.output)
            / 1_000_000.0
    }
}

/// A configured provider and its instances (empty when it has no keys).
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    /// The driver kind that speaks to it (`openai_compat`, `openrouter`, …).
    pub kind: String,
    pub base_url: String,
    pub keyless: bool,
    /// Where its keys come from, for operator messages.
    pub key_source: String,
    pub instances: Vec<Arc<Instance>>,
}

/// The immutable routing snapshot.
#[derive(Debug)]
pub struct Registry {
    pub models: IndexMap<String, Arc<Model>>,
    aliases: HashMap<String, String>,
    pub providers: IndexMap<String, Provider>,
}

/// What a requested model name resolved to.
#[derive(Debug)]
pub enum Target {
    /// A model, with all its backends, or only the one `provider/model_id` named.
    Model {
        model: Arc<Model>,
        only_backend: Option<usize>,
    },
    /// `auto` (None: the configured strategy), `autocheapest`, `autobest`.
    Auto(Option<crate::config::Strategy>),
}

impl Registry {
    /// Builds the snapshot: providers from the built-ins and the file, keys from `env`.
    pub fn build(cfg: &ModelsConfig, env: &Env) -> Registry {
        Self::build_with(cfg, env, &HashMap::new(), None)
    }

    /// Builds the snapshot with runtime priority overrides (provider → priority for all its
    /// backends) and, when rebuilding, the previous snapshot: instances with the same id, URL
    /// and key are carried over so their health survives a reload.
    pub fn build_with(
        cfg: &ModelsConfig,
        env: &Env,
        overrides: &HashMap<String, i64>,
        previous: Option<&Registry>,
    ) -> Registry {
        let mut providers = IndexMap::new();
        for (name, default_url) in BUILTIN_PROVIDERS {
            let prefix = env_prefix(name);
            let base_url = env
                .get(&format!("{prefix}_BASE_URL"))
                .unwrap_or(default_url);
            let keys = keys_from(
                env,
                &[format!("{prefix}_API_KEYS"), format!("{prefix}_API_KEY")],
            );
            let source = format!("{prefix}_API_KEY / {prefix}_API_KEYS");
            providers.insert(
                (*name).to_owned(),
                make_provider(name, default_kind(name), base_url, keys, false, source),
            );
        }
        for p in &cfg.providers {
            let prefix = env_prefix(&p.name);
            let base_url = env
                .get(&format!("{prefix}_BASE_URL"))
                .unwrap_or(&p.base_url);
            let (keys, keyless, source) = match &p.api_key_env {
                Some(var) => (
                    keys_from(env, std::slice::from_ref(var)),
                    false,
                    var.clone(),
                ),
                None => (Vec::new(), true, "none (keyless)".to_owned()),
            };
            let kind = p.kind.as_deref().unwrap_or(default_kind(&p.name));
            providers.insert(
                p.name.clone(),
                make_provider(&p.name, kind, base_url, keys, keyless, source),
            );
        }

        if let Some(prev) = previous {
            for p in providers.values_mut() {
                let Some(old) = prev.providers.get(&p.name) else {
                    continue;
                };
                for inst in &mut p.instances {
                    if let Some(same) = old.instances.iter().find(|o| {
                        o.id == inst.id && o.base_url == inst.base_url && o.key == inst.key
                    }) {
                        *inst = same.clone();
                    }
                }
            }
        }

        let mut models = IndexMap::new();
        let mut aliases = HashMap::new();
        for (name, m) in &cfg.models {
            for a in &m.aliases {
                aliases.insert(a.clone(), name.clone());
            }
            let backends = m
                .backends
                .iter()
                .map(|b| Backend {
                    provider: b.provider.clone(),
                    model_id: b.model_id.clone(),
                    priority: overrides.get(&b.provider).map_or(b.priority, |p| {
                        u32::try_from((*p).max(0)).unwrap_or(u32::MAX)
                    }),
                    input_cost: b.input_cost,
                    output_cost: b.output_cost,
                    cache_read_cost: b.cache_read_cost.unwrap_or(b.input_cost),
                    cache_write_cost: b.cache_write_cost.unwrap_or(b.input_cost),
                    circuit: Circuit::default(),
                    parameters: b.parameters.clone(),
                    stats: previous
                        .and_then(|p| p.backend(name, &b.provider, &b.model_id))
                        .map(|old| old.stats.clone())
                        .unwrap_or_default(),
                })
                .collect();
            models.insert(
                name.clone(),
                Arc::new(Model {
                    name: name.clone(),
                    display_name: m.display_name.clone(),
                    tier: m.tier,
                    capabilities: m.capabilities.clone(),
                    context_window: m.context_window,
                    aliases: m.aliases.clone(),
                    strategy: m.strategy,
                    from_catalog: m.from_catalog,
                    backends,
                    cursor: AtomicUsize::new(0),
                }),
            );
        }
        if let Some(prev) = previous {
            for m in models.values() {
                for b in &m.backends {
                    if let Some(old) = prev.backend(&m.name, &b.provider, &b.model_id) {
                        b.circuit.copy_from(&old.circuit);
                    }
                }
            }
        }
        Registry {
            models,
            aliases,
            providers,
        }
    }

    /// The backend of `model` with this provider and upstream model id (what carries live
    /// state — circuit, measurements — from one snapshot to the next).
    pub fn backend(&self, model: &str, provider: &str, model_id: &str) -> Option<&Backend> {
        self.models
            .get(model)?
            .backends
            .iter()
            .find(|b| b.provider == provider && b.model_id == model_id)
    }

    /// Instances able to serve `backend` (none if its provider has no keys).
    pub fn instances(&self, backend: &Backend) -> &[Arc<Instance>] {
        self.providers
            .get(&backend.provider)
            .map(|p| p.instances.as_slice())
            .unwrap_or(&[])
    }

    /// True when at least one backend of the model has instances.
    pub fn servable(&self, model: &Model) -> bool {
        model.backends.iter().any(|b| !self.instances(b).is_empty())
    }

    /// Resolves a requested name: exact model, alias, `auto*`, or `provider/model_id`.
    pub fn resolve(&self, requested: &str) -> Option<Target> {
        if let Some(m) = self.models.get(requested) {
            return Some(Target::Model {
                model: m.clone(),
                only_backend: None,
            });
        }
        if let Some(m) = self.aliases.get(requested).and_then(|n| self.models.get(n)) {
            return Some(Target::Model {
                model: m.clone(),
                only_backend: None,
            });
        }
        match requested {
            "auto" => return Some(Target::Auto(None)),
            "autocheapest" => return Some(Target::Auto(Some(crate::config::Strategy::Cheapest))),
            "autobest" => return Some(Target::Auto(Some(crate::config::Strategy::Best))),
            _ => {}
        }
        let (provider, model_id) = requested.split_once('/')?;
        self.models.values().find_map(|m| {
            m.backends
                .iter()
                .position(|b| b.provider == provider && b.model_id == model_id)
                .map(|i| Target::Model {
                    model: m.clone(),
                    only_backend: Some(i),
                })
        })
    }
}

/// Keys from the first variable of `vars` that is set, split on commas.
fn keys_from(env: &Env, vars: &[String]) -> Vec<Secret> {
    vars.iter()
        .find_map(|v| env.get(v))
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Secret::new)
                .collect()
        })
        .unwrap_or_default()
}

impl Registry {
    /// Providers whose keys would travel in clear: a key-holding provider whose base URL is
    /// plain `http://` to a host other than loopback. One operator message each.
    pub fn cleartext_key_warnings(&self) -> Vec<String> {
        self.providers
            .values()
            .filter(|p| !p.keyless && !p.instances.is_empty())
            .filter_map(|p| {
                let url = reqwest::Url::parse(&p.base_url).ok()?;
                let host = url.host_str()?;
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let loopback = bare == "localhost"
                    || bare
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                (url.scheme() == "http" && !loopback).then(|| {
                    format!(
                        "provider {:?} sends its API key over plain http:// to {}; use https:// (anyone on the path can read the key)",
                        p.name, host
                    )
                })
            })
            .collect()
    }
}

fn make_provider(
    name: &str,
    kind: &str,
    base_url: &str,
    keys: Vec<Secret>,
    keyless: bool,
    key_source: String,
) -> Provider {
    let valid_url = reqwest::Url::parse(base_url)
        .ok()
        .is_some_and(|u| u.has_host() && matches!(u.scheme(), "http" | "https"));
    let instances = if !valid_url {
        tracing::warn!(
            provider = name,
            "base URL {base_url:?} is not a valid http(s) URL; the provider is disabled"
        );
        Vec::new()
    } else if keyless {
        vec![Arc::new(Instance::new(
            format!("{name}-0"),
            name.to_owned(),
            base_url.to_owned(),
            None,
        ))]
    } else {
        keys.into_iter()
            .enumerate()
            .map(|(i, k)| {
                Arc::new(Instance::new(
                    format!("{name}-{i}"),
                    name.to_owned(),
                    base_url.to_owned(),
                    Some(k),
                ))
            })
            .collect()
    };
    Provider {
        name: name.to_owned(),
        kind: kind.to_owned(),
        base_url: base_url.trim_end_matches('/').to_owned(),
        keyless,
        key_source,
        instances,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    pub(crate) const CFG: &str = r#"
providers:
  - {name: local, base_url: "http://127.0.0.1:9/v1"}
  - {name: paid, base_url: "http://127.0.0.1:9/v1", api_key_env: PAID_KEY}
models:
  small:
    display_name: Small
    tier: cheap
    aliases: [tiny]
    context_window: 8192
    backends:
      - {provider: openai, model_id: gpt-small, priority: 2, input_cost: 0.1, output_cost: 0.4}
      - {provider: local, model_id: small-gguf, priority: 1, input_cost: 0, output_cost: 0}
  big:
    display_name: Big
    tier: frontier
    context_window: 200000
    backends:
      - {provider: paid, model_id: big-1, priority: 1, input_cost: 3, output_cost: 15}
      - {provider: openai, model_id: gpt-big, priority: 1, input_cost: 2, output_cost: 8}
  embed:
    display_name: Embed
    tier: cheap
    capabilities: [embeddings]
    context_window: 8192
    backends:
      - {provider: openai, model_id: text-embedding-3-small, input_cost: 0.02, output_cost: 0}
"#;

    pub(crate) fn registry(env: &[(&str, &str)]) -> Registry {
        let cfg = ModelsConfig::parse(Path::new("t.yml"), CFG).expect("valid");
        Registry::build(&cfg, &Env::from_pairs(env.iter().copied()))
    }

    #[test]
    fn keys_make_instances_and_keyless_providers_get_one() {
        let r = registry(&[("OPENAI_API_KEYS", "k1, k2,,k3"), ("GROQ_API_KEY", "g")]);
        let ids: Vec<_> = r.providers["openai"]
            .instances
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids, ["openai-0", "openai-1", "openai-2"]);
        assert_eq!(r.providers["groq"].instances.len(), 1);
        assert_eq!(r.providers["local"].instances.len(), 1);
        assert!(r.providers["local"].instances[0].key.is_none());
        assert!(r.providers["paid"].instances.is_empty(), "no PAID_KEY set");
        assert!(r.providers["sambanova"].instances.is_empty());
    }

    #[test]
    fn invalid_base_url_override_disables_the_provider() {
        let r = registry(&[("OPENAI_BASE_URL", "not a url"), ("OPENAI_API_KEY", "k")]);
        assert!(r.providers["openai"].instances.is_empty());
    }

    #[test]
    fn overrides_and_instance_reuse() {
        let cfg = ModelsConfig::parse(Path::new("t.yml"), CFG).expect("valid");
        let env = Env::from_pairs([("OPENAI_API_KEYS", "a,b")]);
        let first = Registry::build(&cfg, &env);
        let overrides = HashMap::from([("openai".to_owned(), 0i64)]);
        let second = Registry::build_with(&cfg, &env, &overrides, Some(&first));
        assert_eq!(
            second.models["small"].backends[0].priority, 0,
            "openai override"
        );
        assert_eq!(
            second.models["small"].backends[1].priority, 1,
            "local untouched"
        );
        assert!(Arc::ptr_eq(
            &first.providers["openai"].instances[1],
            &second.providers["openai"].instances[1]
        ));
        let env2 = Env::from_pairs([("OPENAI_API_KEYS", "a,c")]);
        let third = Registry::build_with(&cfg, &env2, &overrides, Some(&second));
        assert!(!Arc::ptr_eq(
            &second.providers["openai"].instances[1],
            &third.providers["openai"].instances[1]
        ));
    }

    #[test]
    fn base_url_override_from_env() {
        let r = registry(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1/"),
            ("OPENAI_API_KEY", "k"),
        ]);
        assert_eq!(
            r.providers["openai"].instances[0].base_url,
            "http://127.0.0.1:1234/v1"
        );
    }

    #[test]
    fn resolves_names_aliases_auto_and_provider_paths() {
        let r = registry(&[]);
        assert!(matches!(
            r.resolve("small"),
            Some(Target::Model {
                only_backend: None,
                ..
            })
        ));
        assert!(
            matches!(r.resolve("tiny"), Some(Target::Model { ref model, .. }) if model.name == "small")
        );
        assert!(
            matches!(r.resolve("openai/gpt-big"), Some(Target::Model { only_backend: Some(1), ref model }) if model.name == "big")
        );
        assert!(matches!(
            r.resolve("autobest"),
            Some(Target::Auto(Some(crate::config::Strategy::Best)))
        ));
        assert!(matches!(r.resolve("auto"), Some(Target::Auto(None))));
        assert!(r.resolve("openai/unknown").is_none());
        assert!(r.resolve("../../etc/passwd").is_none());
    }

    #[test]
    fn servable_needs_keys_or_keyless() {
        let r = registry(&[]);
        assert!(r.servable(&r.models["small"]), "local is keyless");
        assert!(!r.servable(&r.models["big"]));
        let r = registry(&[("PAID_KEY", "p")]);
        assert!(r.servable(&r.models["big"]));
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let r = registry(&[]);
        let b = &r.models["big"].backends[0];
        assert!((b.cost(1_000_000, 100_000) - 4.5).abs() < 1e-9);
    }

    #[test]
    fn cache_reads_and_writes_are_priced_at_their_own_rates() {
        let p = Prices {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
        };
        // 472 plain + 1500 read + 100 written, 89 out.
        let want = (472.0 * 3.0 + 1500.0 * 0.3 + 100.0 * 3.75 + 89.0 * 15.0) / 1e6;
        assert!((p.cost(2072, 89, 1500, 100) - want).abs() < 1e-12);
        // Counts an upstream got wrong never go negative.
        assert!(p.cost(10, 0, 50, 50) >= 0.0);
    }
}
