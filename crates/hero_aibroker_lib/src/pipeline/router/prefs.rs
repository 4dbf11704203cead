//! OpenRouter request routing options: the `models` fallback list and the `provider`
//! preferences object. Names in `order`, `only` and `ignore` that are the broker's own
//! providers (the names `providers.list` shows) are applied here; any other name is an
//! OpenRouter sub-provider (`DeepInfra`): it is forwarded to OpenRouter backends with the rest
//! of the object (`data_collection`, `quantizations`, `zdr`, …), and an `only` (or a strict
//! `order`) of such names keeps the OpenRouter backends and no others.

use serde::Deserialize;

use crate::config::registry::Backend;

/// `provider.sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Price,
    Throughput,
    Latency,
}

impl SortBy {
    fn parse(s: &str) -> Result<SortBy, String> {
        match s {
            "price" => Ok(SortBy::Price),
            "throughput" => Ok(SortBy::Throughput),
            "latency" => Ok(SortBy::Latency),
            other => Err(format!(
                "`provider.sort` must be price, throughput or latency, not {other:?}"
            )),
        }
    }

    /// Name in traces: `sort:price`.
    pub fn label(self) -> &'static str {
        match self {
            SortBy::Price => "sort:price",
            SortBy::Throughput => "sort:throughput",
            SortBy::Latency => "sort:latency",
        }
    }
}

/// `provider.max_price`, USD per million tokens (numbers or numeric strings).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaxPrice {
    pub prompt: Option<f64>,
    pub completion: Option<f64>,
}

/// The `provider` object of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderPrefs {
    /// Providers to try first, in this order.
    pub order: Vec<String>,
    /// Only these providers.
    pub only: Vec<String>,
    /// Never these providers.
    pub ignore: Vec<String>,
    /// `false`: only the providers in `order` (or `only`).
    pub allow_fallbacks: bool,
    /// Overrides the model's strategy (ignored when `order` is set, as on OpenRouter).
    pub sort: Option<SortBy>,
    pub max_price: MaxPrice,
    /// Skip backends that declare `parameters:` without every parameter of the request.
    pub require_parameters: bool,
}

#[derive(Deserialize)]
struct RawPrefs {
    #[serde(default)]
    order: Option<Vec<String>>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    ignore: Option<Vec<String>>,
    #[serde(default)]
    allow_fallbacks: Option<bool>,
    #[serde(default)]
    sort: Option<RawSort>,
    #[serde(default)]
    max_price: Option<RawMaxPrice>,
    #[serde(default)]
    require_parameters: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSort {
    Name(String),
    Config { by: Option<String> },
}

#[derive(Deserialize)]
struct RawMaxPrice {
    #[serde(default)]
    prompt: Option<Number>,
    #[serde(default)]
    completion: Option<Number>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    F(f64),
    S(String),
}

impl Number {
    fn value(self, field: &str) -> Result<f64, String> {
        let v = match self {
            Number::F(f) => f,
            Number::S(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("`provider.max_price.{field}` must be a number"))?,
        };
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!(
                "`provider.max_price.{field}` must be a non-negative number"
            ))
        }
    }
}

impl ProviderPrefs {
    /// Parses the raw `provider` JSON; errors name the field.
    pub fn parse(raw: &str) -> Result<ProviderPrefs, String> {
        if raw == "null" {
            return Ok(ProviderPrefs {
                allow_fallbacks: true,
                ..ProviderPrefs::default()
            });
        }
        let r: RawPrefs = serde_json::from_str(raw).map_err(|e| {
            format!("The field `provider` is not a valid provider preferences object: {e}")
        })?;
        let sort = match r.sort {
            None => None,
            Some(RawSort::Name(s)) => Some(SortBy::parse(&s)?),
            Some(RawSort::Config { by: Some(s) }) => Some(SortBy::parse(&s)?),
            Some(RawSort::Config { by: None }) => None,
        };
        let max_price = match r.max_price {
            None => MaxPrice::default(),
            Some(m) => MaxPrice {
                prompt: m.prompt.map(|n| n.value("prompt")).transpose()?,
                completion: m.completion.map(|n| n.value("completion")).transpose()?,
            },
        };
        let lower = |v: Option<Vec<String>>| {
            v.unwrap_or_default()
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        Ok(ProviderPrefs {
            order: lower(r.order),
            only: lower(r.only),
            ignore: lower(r.ignore),
            allow_fallbacks: r.allow_fallbacks.unwrap_or(true),
            sort,
            max_price,
            require_parameters: r.require_parameters.unwrap_or(false),
        })
    }

    /// Why `backend` is excluded by these preferences, if it is. `params` are the request's
    /// parameter names.
    /// `registry` tells which names are the broker's providers and which backends are
    /// OpenRouter's (they take the other names, which OpenRouter applies).
    pub fn excludes(
        &self,
        backend: &Backend,
        params: &[String],
        registry: &crate::config::registry::Registry,
    ) -> Option<String> {
        let p = backend.provider.as_str();
        let has = |list: &[String]| list.iter().any(|o| o.eq_ignore_ascii_case(p));
        let to_openrouter = registry
            .providers
            .get(p)
            .is_some_and(|prov| prov.kind == "openrouter");
        // A name that is none of the broker's providers is an OpenRouter sub-provider.
        let names_openrouter_ones = |list: &[String]| {
            to_openrouter
                && list
                    .iter()
                    .any(|o| !registry.providers.keys().any(|k| k.eq_ignore_ascii_case(o)))
        };
        if !self.only.is_empty() && !has(&self.only) && !names_openrouter_ones(&self.only) {
            return Some("not in provider.only".into());
        }
        if has(&self.ignore) {
            return Some("in provider.ignore".into());
        }
        if !self.allow_fallbacks
            && !self.order.is_empty()
            && !has(&self.order)
            && !names_openrouter_ones(&self.order)
        {
            return Some("not in provider.order and allow_fallbacks is false".into());
        }
        if let Some(max) = self.max_price.prompt
            && backend.input_cost > max
        {
            return Some(format!(
                "prompt price {} above provider.max_price.prompt {max}",
                backend.input_cost
            ));
        }
        if let Some(max) = self.max_price.completion
            && backend.output_cost > max
        {
            return Some(format!(
                "completion price {} above provider.max_price.completion {max}",
                backend.output_cost
            ));
        }
        if self.require_parameters
            && let Some(supported) = &backend.parameters
        {
            let missing: Vec<&str> = params
                .iter()
                .filter(|p| !supported.contains(p))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Some(format!(
                    "does not support {} (provider.require_parameters)",
                    missing.join(", ")
                ));
            }
        }
        None
    }

    /// Position of `provider` in `order` (`usize::MAX` when absent).
    pub fn order_of(&self, provider: &str) -> usize {
        self.order
            .iter()
            .position(|o| o.eq_ignore_ascii_case(provider))
            .unwrap_or(usize::MAX)
    }
}

/// Request fields that are parameters for `require_parameters` (standard OpenAI/OpenRouter
/// sampling and tool parameters; routing fields and message content are not).
pub const PARAMETERS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "top_a",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "structured_outputs",
    "reasoning",
    "reasoning_effort",
    "include_reasoning",
    "web_search_options",
    "verbosity",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shapes() {
        // The wire fixtures (shared/wire/openrouter), legacy and current forms.
        let legacy: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/request-provider-prefs.json"
        ))
        .expect("fixture");
        let p = ProviderPrefs::parse(&legacy["provider"].to_string()).expect("legacy prefs");
        assert!(p.require_parameters);
        assert!(p.ignore.iter().all(|s| *s == s.to_ascii_lowercase()));
        let current: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/request-provider-prefs-current.json"
        ))
        .expect("fixture");
        let p = ProviderPrefs::parse(&current["provider"].to_string()).expect("current prefs");
        assert_eq!(p.sort, Some(SortBy::Throughput));
        assert_eq!(p.only, ["anthropic", "amazon-bedrock"]);
        assert_eq!(p.max_price.completion, Some(2.0));
        let current = ProviderPrefs::parse(
            r#"{"only":["anthropic"],"sort":{"by":"throughput","partition":"none"},"max_price":{"prompt":"1.5"},"data_collection":"deny"}"#,
        )
        .expect("current form");
        assert_eq!(current.sort, Some(SortBy::Throughput));
        assert_eq!(current.max_price.prompt, Some(1.5));
        assert!(current.allow_fallbacks);
        for bad in [
            r#"{"sort":"fastest"}"#,
            r#"{"max_price":{"prompt":"cheap"}}"#,
            r#"{"max_price":{"prompt":-1}}"#,
            r#"{"order":"openai"}"#,
        ] {
            assert!(ProviderPrefs::parse(bad).is_err(), "{bad}");
        }
    }
}
