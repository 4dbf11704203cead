//! `modelsconfig.yml`: custom providers and the models with their backends. Unknown keys are
//! rejected (a typo must not silently change routing); every error names the file and key path.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::ConfigError;

/// Providers every broker knows: name and default base URL.
pub const BUILTIN_PROVIDERS: &[(&str, &str)] = &[
    ("openai", "https://api.openai.com/v1"),
    ("openrouter", "https://openrouter.ai/api/v1"),
    ("groq", "https://api.groq.com/openai/v1"),
    ("sambanova", "https://api.sambanova.ai/v1"),
    ("anthropic", "https://api.anthropic.com/v1"),
];

/// The driver kind of a provider without an explicit `kind`: `openrouter` and `anthropic`
/// for those built-ins, `openai_compat` for everything else.
pub fn default_kind(provider: &str) -> &'static str {
    match provider {
        "openrouter" => "openrouter",
        "anthropic" => "anthropic",
        _ => "openai_compat",
    }
}

/// A model's quality tier; `best` routing prefers higher tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Cheap,
    Standard,
    Premium,
    Frontier,
}

impl Tier {
    /// The name used in the YAML and in `/v1/models`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Cheap => "cheap",
            Tier::Standard => "standard",
            Tier::Premium => "premium",
            Tier::Frontier => "frontier",
        }
    }
}

/// Validated `modelsconfig.yml`.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    pub path: PathBuf,
    /// Custom OpenAI-compatible providers declared in the file.
    pub providers: Vec<ProviderConfig>,
    pub models: IndexMap<String, ModelConfig>,
}

/// A custom provider declared under `providers:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub base_url: String,
    /// Environment variable holding the key(s), comma-separated; absent for keyless servers.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Which driver speaks to it (`openai_compat` when absent); see docs/configuration.md.
    #[serde(default)]
    pub kind: Option<String>,
}

/// One model and its backends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub display_name: String,
    pub tier: Tier,
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    pub context_window: u64,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// How its backends and keys are ordered; `BACKEND_STRATEGY` when absent.
    #[serde(default)]
    pub strategy: Option<super::Strategy>,
    pub backends: Vec<BackendConfig>,
    /// Added from the live OpenRouter catalog (never set in the file): requestable by name,
    /// but not a candidate of `auto`.
    #[serde(skip)]
    pub from_catalog: bool,
}

/// One way to serve a model: a provider and its upstream model id, with prices.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub provider: String,
    pub model_id: String,
    /// Lower wins.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// USD per million input tokens.
    pub input_cost: f64,
    /// USD per million output tokens.
    pub output_cost: f64,
    /// USD per million prompt tokens read from the provider's cache (`input_cost` when
    /// absent): Anthropic's `cache_read_input_tokens`, OpenAI's `cached_tokens`.
    #[serde(default)]
    pub cache_read_cost: Option<f64>,
    /// USD per million prompt tokens written to the provider's cache (`input_cost` when
    /// absent): Anthropic's `cache_creation_input_tokens`.
    #[serde(default)]
    pub cache_write_cost: Option<f64>,
    /// Request parameters this backend honours (OpenRouter's `supported_parameters`); when
    /// set, requests with `provider.require_parameters` skip it if they use others.
    #[serde(default)]
    pub parameters: Option<Vec<String>>,
}

fn default_capabilities() -> Vec<String> {
    vec!["chat".to_owned()]
}

fn default_priority() -> u32 {
    1
}

/// Capabilities the broker understands; anything else is a typo.
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "chat",
    "completions",
    "embeddings",
    "tools",
    "vision",
    "json_schema",
    "reasoning",
    "audio",
    // Speech endpoints: text to speech (`/v1/audio/speech`), speech to text
    // (`/v1/audio/transcriptions`, `/translations`). Their backends' `input_cost` is USD per
    // million characters (tts) or per minute of audio (stt).
    "tts",
    "stt",
];

/// Other names of capabilities (as other brokers' model files write them) and ours.
const CAPABILITY_SYNONYMS: &[(&str, &str)] = &[("tool_calling", "tools")];

/// Replaces synonyms by our names and drops the repeats they make.
fn normalize_capabilities(caps: &mut Vec<String>) {
    for c in caps.iter_mut() {
        if let Some((_, ours)) = CAPABILITY_SYNONYMS.iter().find(|(other, _)| other == c) {
            *c = (*ours).to_owned();
        }
    }
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: Vec<ProviderConfig>,
    models: IndexMap<String, ModelConfig>,
}

impl ModelsConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates YAML text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // serde_yaml_ng's messages already carry the key path and the line.
        let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut models = raw.models;
        for m in models.values_mut() {
            normalize_capabilities(&mut m.capabilities);
        }
        let cfg = ModelsConfig {
            path: path.to_owned(),
            providers: raw.providers,
            models,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// All provider names a backend may use: built-ins plus the file's custom ones.
    pub fn provider_names(&self) -> Vec<&str> {
        BUILTIN_PROVIDERS
            .iter()
            .map(|(n, _)| *n)
            .chain(self.providers.iter().map(|p| p.name.as_str()))
            .collect()
    }

    /// Checks every provider's `kind` against the drivers the broker has (`known`); the error
    /// names the file, the key and the kinds there are.
    pub fn check_kinds(&self, known: &[&str]) -> Result<(), ConfigError> {
        for (i, p) in self.providers.iter().enumerate() {
            if let Some(kind) = &p.kind
                && !known.contains(&kind.as_str())
            {
                return Err(self.invalid(
                    format!("providers[{i}].kind"),
                    format!(
                        "unknown provider kind {kind:?}; known kinds: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the environment's `<PROVIDER>_BASE_URL` overrides (built-in and custom
    /// providers, `LOCAL_BASE_URL`, `DEMO_BASE_URL`) like the file's `base_url`: an override that is not an http(s) URL with a
    /// host is refused, naming the variable, instead of silently disabling the provider.
    pub fn check_env(&self, env: &hero_aibroker_host::env::Env) -> Result<(), ConfigError> {
        // `local` and `demo` exist through their URL alone (see `providers::listed`).
        let listed = ["local", "demo"];
        for name in self.provider_names().into_iter().chain(listed) {
            let var = format!("{}_BASE_URL", env_prefix(name));
            if let Some(url) = env.get(&var)
                && !is_http_url(url)
            {
                return Err(ConfigError::Env {
                    var,
                    message: format!("{url:?} is not an http:// or https:// URL with a host"),
                });
            }
        }
        Ok(())
    }

    /// Whose secret `var` already is, if anyone's but custom provider `index`'s: the admin
    /// token, a built-in provider's key variables, or an earlier custom provider's.
    fn key_variable_owner(&self, var: &str, index: usize) -> Option<String> {
        if var == "ADMIN_TOKEN" {
            return Some("the broker's admin token".to_owned());
        }
        for (name, _) in BUILTIN_PROVIDERS {
            let prefix = env_prefix(name);
            if var == format!("{prefix}_API_KEY") || var == format!("{prefix}_API_KEYS") {
                return Some(format!(
                    "the key variable of the built-in provider {name:?}"
                ));
            }
        }
        self.providers[..index]
            .iter()
            .find(|p| p.api_key_env.as_deref() == Some(var))
            .map(|p| format!("already the key variable of provider {:?}", p.name))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut provider_seen = HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let key = format!("providers[{i}]");
            if !valid_name(&p.name) || p.name.contains('/') {
                return Err(self.invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} is not a valid provider name (letters, digits, '-', '_', '.')",
                        p.name
                    ),
                ));
            }
            if BUILTIN_PROVIDERS.iter().any(|(n, _)| *n == p.name) {
                return Err(self.invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} is a built-in provider; set {}_BASE_URL to change its URL",
                        p.name,
                        env_prefix(&p.name)
                    ),
                ));
            }
            if !provider_seen.insert(p.name.as_str()) {
                return Err(self.invalid(
                    format!("{key}.name"),
                    format!("provider {:?} is declared twice", p.name),
                ));
            }
            if !is_http_url(&p.base_url) {
                return Err(self.invalid(
                    format!("{key}.base_url"),
                    format!("{:?} is not an http:// or https:// URL", p.base_url),
                ));
            }
            if let Some(var) = &p.api_key_env
                && (var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(self.invalid(
                    format!("{key}.api_key_env"),
                    format!("{var:?} is not an environment variable name"),
                ));
            }
            if let Some(var) = &p.api_key_env
                && let Some(owner) = self.key_variable_owner(var, i)
            {
                return Err(self.invalid(
                    format!("{key}.api_key_env"),
                    format!(
                        "{var:?} is {owner}; a provider's key variable must be its own, or its upstream would receive another secret"
                    ),
                ));
            }
        }

        if self.models.is_empty() {
            return Err(self.invalid("models", "at least one model is required"));
        }
        let known = self.provider_names();
        let mut names: HashSet<&str> = self.models.keys().map(String::as_str).collect();
        for (name, m) in &self.models {
            let key = format!("models.{name}");
            if !valid_name(name) {
                return Err(self.invalid(&key, format!("{name:?} is not a valid model name")));
            }
            if m.display_name.trim().is_empty() {
                return Err(self.invalid(format!("{key}.display_name"), "must not be empty"));
            }
            if m.context_window == 0 {
                return Err(self.invalid(format!("{key}.context_window"), "must be greater than 0"));
            }
            for (i, cap) in m.capabilities.iter().enumerate() {
                if !KNOWN_CAPABILITIES.contains(&cap.as_str()) {
                    return Err(self.invalid(
                        format!("{key}.capabilities[{i}]"),
                        format!(
                            "unknown capability {cap:?} (known: {})",
                            KNOWN_CAPABILITIES.join(", ")
                        ),
                    ));
                }
            }
            for (i, alias) in m.aliases.iter().enumerate() {
                if !valid_name(alias) {
                    return Err(self.invalid(
                        format!("{key}.aliases[{i}]"),
                        format!("{alias:?} is not a valid alias"),
                    ));
                }
                if !names.insert(alias.as_str()) {
                    return Err(self.invalid(
                        format!("{key}.aliases[{i}]"),
                        format!("{alias:?} is already a model name or another alias"),
                    ));
                }
            }
            if m.backends.is_empty() {
                return Err(self.invalid(
                    format!("{key}.backends"),
                    "at least one backend is required",
                ));
            }
            for (i, b) in m.backends.iter().enumerate() {
                let bkey = format!("{key}.backends[{i}]");
                if !known.contains(&b.provider.as_str()) {
                    return Err(self.invalid(
                        format!("{bkey}.provider"),
                        format!(
                            "unknown provider {:?} (known: {})",
                            b.provider,
                            known.join(", ")
                        ),
                    ));
                }
                if b.model_id.trim().is_empty() {
                    return Err(self.invalid(format!("{bkey}.model_id"), "must not be empty"));
                }
                for (field, v) in [
                    ("input_cost", b.input_cost),
                    ("output_cost", b.output_cost),
                    ("cache_read_cost", b.cache_read_cost.unwrap_or(0.0)),
                    ("cache_write_cost", b.cache_write_cost.unwrap_or(0.0)),
                ] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(self.invalid(
                            format!("{bkey}.{field}"),
                            format!("{v} is not a valid price (USD per million tokens, >= 0)"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `openai` → `OPENAI`, `my-local.llm` → `MY_LOCAL_LLM`: the prefix of a provider's env vars.
pub fn env_prefix(provider: &str) -> String {
    provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Names of models, aliases and providers: printable, no spaces, no path tricks.
/// An `http://` or `https://` URL with a host.
pub(crate) fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.has_host())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.contains("..")
        && !name.starts_with('/')
        && name.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
providers:
  - name: local
    base_url: http://127.0.0.1:8080/v1
    api_key_env: LOCAL_API_KEY
models:
  my-model:
    display_name: "My model"
    tier: standard
    context_window: 8192
    aliases: [mine]
    backends:
      - {provider: local, model_id: qwen3-8b, priority: 1, input_cost: 0.1, output_cost: 0.2}
      - {provider: openai, model_id: gpt-4o-mini, priority: 2, input_cost: 0.15, output_cost: 0.6}
"#;

    fn err(text: &str) -> String {
        ModelsConfig::parse(Path::new("m.yml"), text)
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn the_documented_form_loads() {
        let cfg = ModelsConfig::parse(Path::new("m.yml"), GOOD).expect("valid");
        assert_eq!(
            cfg.providers[0].api_key_env.as_deref(),
            Some("LOCAL_API_KEY")
        );
        let m = &cfg.models["my-model"];
        assert_eq!(m.tier, Tier::Standard);
        assert_eq!(m.capabilities, vec!["chat"]);
        assert_eq!(m.backends[1].model_id, "gpt-4o-mini");
    }

    #[test]
    fn unknown_key_names_file_and_path() {
        let e = err(&GOOD.replace("tier: standard", "tier: standard\n    colour: red"));
        assert!(
            e.starts_with("m.yml: models.my-model: unknown field `colour`"),
            "{e}"
        );
    }

    #[test]
    fn missing_field_names_path() {
        let e = err(&GOOD.replace("model_id: qwen3-8b, ", ""));
        assert!(
            e.starts_with("m.yml: models.my-model.backends[0]: missing field `model_id`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_provider_is_rejected() {
        let e = err(&GOOD.replace("provider: local", "provider: nowhere"));
        assert!(
            e.contains("models.my-model.backends[0].provider: unknown provider \"nowhere\""),
            "{e}"
        );
    }

    #[test]
    fn negative_price_is_rejected() {
        let e = err(&GOOD.replace("input_cost: 0.1", "input_cost: -0.1"));
        assert!(
            e.contains("models.my-model.backends[0].input_cost: -0.1 is not a valid price"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_path() {
        let e = err(&GOOD.replace("context_window: 8192", "context_window: lots"));
        assert!(
            e.starts_with("m.yml: models.my-model.context_window: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn tool_calling_is_read_as_tools() {
        let text = GOOD.replace(
            "tier: standard",
            "tier: standard\n    capabilities: [chat, tool_calling, tools]",
        );
        let cfg = ModelsConfig::parse(Path::new("m.yml"), &text).expect("valid");
        assert_eq!(cfg.models["my-model"].capabilities, vec!["chat", "tools"]);
    }

    #[test]
    fn unknown_tier_and_capability_are_rejected() {
        assert!(
            err(&GOOD.replace("tier: standard", "tier: godlike")).contains("models.my-model.tier")
        );
        let e = err(&GOOD.replace(
            "tier: standard",
            "tier: standard\n    capabilities: [chat, telepathy]",
        ));
        assert!(
            e.contains("models.my-model.capabilities[1]: unknown capability"),
            "{e}"
        );
    }

    #[test]
    fn alias_clash_and_builtin_override_are_rejected() {
        assert!(
            err(&GOOD.replace("aliases: [mine]", "aliases: [my-model]")).contains("aliases[0]")
        );
        let e = err(&GOOD
            .replace("name: local", "name: openai")
            .replace("provider: local", "provider: openai"));
        assert!(
            e.contains("providers[0].name: \"openai\" is a built-in provider; set OPENAI_BASE_URL"),
            "{e}"
        );
    }

    #[test]
    fn bad_base_url_and_names_are_rejected() {
        assert!(
            err(&GOOD.replace("http://127.0.0.1:8080/v1", "ftp://x"))
                .contains("providers[0].base_url")
        );
        assert!(err(&GOOD.replace("my-model:", "\"../etc\":")).contains("models.../etc"));
    }

    #[test]
    fn a_provider_may_not_take_another_secret_as_its_key() {
        for (var, owner) in [
            ("ADMIN_TOKEN", "admin token"),
            ("OPENAI_API_KEY", "built-in provider \"openai\""),
            ("OPENROUTER_API_KEYS", "built-in provider \"openrouter\""),
        ] {
            let e = err(&GOOD.replace("LOCAL_API_KEY", var));
            assert!(e.contains("providers[0].api_key_env"), "{e}");
            assert!(e.contains(owner), "{e}");
        }
        let two = GOOD.replace(
            "models:",
            "  - {name: other, base_url: \"http://127.0.0.1:9/v1\", api_key_env: LOCAL_API_KEY}\nmodels:",
        );
        let e = err(&two);
        assert!(e.contains("providers[1].api_key_env"), "{e}");
        assert!(e.contains("provider \"local\""), "{e}");
    }

    #[test]
    fn shipped_modelsconfig_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modelsconfig.yml");
        let cfg = ModelsConfig::load(&path).expect("shipped modelsconfig.yml is valid");
        for provider in ["openai", "openrouter", "groq", "sambanova"] {
            assert!(
                cfg.models
                    .values()
                    .any(|m| m.backends.iter().any(|b| b.provider == provider)),
                "no model uses {provider}"
            );
        }
    }

    #[test]
    fn env_prefix_is_uppercase_with_underscores() {
        assert_eq!(env_prefix("my-local.llm"), "MY_LOCAL_LLM");
    }
}
