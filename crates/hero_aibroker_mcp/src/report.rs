//! The tools' answers, built from the SDK's types: a serializable value for `structuredContent`
//! and a short text for people and models that read only the text. Also the cost arithmetic
//! and the `since` ages (`90s`, `30m`, `24h`, `7d`, `2w`). Pure functions, tested here.

use std::fmt::Write as _;
use std::time::Duration;

use hero_aibroker_sdk::ModelObject;
use hero_aibroker_sdk::admin::{Health, Info, RouteTrace, TraceCandidate, UsageGroup};
use serde::Serialize;

/// Prices are per this many tokens.
const PER: f64 = 1_000_000.0;

/// One backend of a model: who serves it and at what price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    pub provider: String,
    /// The provider's own model id.
    pub model_id: String,
    /// Lower is tried first by the `priority` strategy.
    pub priority: u32,
    pub input_per_1m_usd: f64,
    pub output_per_1m_usd: f64,
    /// Provider keys configured for it (0: the broker cannot use it).
    pub instances: u32,
}

/// One model as `list_models` and `model_info` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub name: String,
    pub display_name: Option<String>,
    pub tier: Option<String>,
    pub context_window: Option<u64>,
    /// At least one backend has a provider with keys.
    pub servable: bool,
    pub aliases: Vec<String>,
    pub capabilities: Vec<String>,
    /// Price of the preferred backend (the first by priority that has a key, else the first),
    /// per 1M input tokens.
    pub input_per_1m_usd: Option<f64>,
    /// Price of the preferred backend, per 1M output tokens.
    pub output_per_1m_usd: Option<f64>,
    /// Ordered by priority.
    pub backends: Vec<Backend>,
}

impl From<&ModelObject> for Model {
    fn from(m: &ModelObject) -> Model {
        let mut backends: Vec<Backend> = m
            .backends
            .iter()
            .map(|b| Backend {
                provider: b.provider.clone(),
                model_id: b.model_id.clone(),
                priority: b.priority,
                input_per_1m_usd: b.input_cost,
                output_per_1m_usd: b.output_cost,
                instances: b.instances,
            })
            .collect();
        backends.sort_by_key(|b| b.priority);
        let preferred = backends
            .iter()
            .find(|b| b.instances > 0)
            .or(backends.first());
        Model {
            name: m.id.clone(),
            display_name: m.display_name.clone(),
            tier: m.tier.clone(),
            context_window: m.context_window,
            servable: m.servable,
            aliases: m.aliases.clone(),
            capabilities: m.capabilities.clone(),
            input_per_1m_usd: preferred.map(|b| b.input_per_1m_usd),
            output_per_1m_usd: preferred.map(|b| b.output_per_1m_usd),
            backends,
        }
    }
}

/// `$2.00`, `$0.5` → `$0.50`, `$0.000028`: at least two decimals, at most ten, no float noise.
pub fn usd(x: f64) -> String {
    let s = format!("{x:.10}");
    let s = s.trim_end_matches('0');
    let decimals = s.split_once('.').map_or(0, |(_, d)| d.len());
    format!("${s}{}", "0".repeat(2usize.saturating_sub(decimals)))
}

/// Rounds away float noise (to 1e-10 USD) before a number goes into structured content.
fn round(x: f64) -> f64 {
    (x * 1e10).round() / 1e10
}

fn backend_line(b: &Backend) -> String {
    format!(
        "{}/{} (priority {}, {} per 1M in / {} per 1M out, {} key{})",
        b.provider,
        b.model_id,
        b.priority,
        usd(b.input_per_1m_usd),
        usd(b.output_per_1m_usd),
        b.instances,
        if b.instances == 1 { "" } else { "s" }
    )
}

/// One line per model for `list_models`.
pub fn models_text(models: &[Model], tier: Option<&str>) -> String {
    let mut out = match tier {
        Some(t) => format!("{} model(s) with tier {t}:\n", models.len()),
        None => format!("{} model(s):\n", models.len()),
    };
    for m in models {
        let price = match (m.input_per_1m_usd, m.output_per_1m_usd) {
            (Some(i), Some(o)) => format!("{} / {} per 1M tokens in/out", usd(i), usd(o)),
            _ => "no backend".to_owned(),
        };
        let providers: Vec<&str> = m.backends.iter().map(|b| b.provider.as_str()).collect();
        let _ = writeln!(
            out,
            "- {} [tier {}] context {} tokens, {price}; backends: {}{}",
            m.name,
            m.tier.as_deref().unwrap_or("-"),
            m.context_window
                .map_or_else(|| "?".to_owned(), |c| c.to_string()),
            providers.join(", "),
            if m.servable {
                ""
            } else {
                " (not servable: no provider key)"
            }
        );
    }
    out
}

/// Every detail of one model for `model_info`.
pub fn model_text(m: &Model) -> String {
    let mut out = format!(
        "{}{}: tier {}, context {} tokens, {}\n",
        m.name,
        m.display_name
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        m.tier.as_deref().unwrap_or("-"),
        m.context_window
            .map_or_else(|| "?".to_owned(), |c| c.to_string()),
        if m.servable {
            "servable"
        } else {
            "not servable (no backend has a provider key)"
        }
    );
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(out, "aliases: {}", list(&m.aliases));
    let _ = writeln!(out, "capabilities: {}", list(&m.capabilities));
    let _ = writeln!(out, "backends, by priority:");
    for b in &m.backends {
        let _ = writeln!(out, "  - {}", backend_line(b));
    }
    out
}

/// What a request would cost on one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The backend whose prices were used.
    pub backend: Backend,
    /// `routing` (the first candidate `routing.explain` picked) or `cheapest` (the cheapest
    /// backend listed, when routing picked none of this model's backends).
    pub price_source: String,
    /// Why the routing choice was not used, when it was not.
    pub note: Option<String>,
    pub input_cost_usd: f64,
    pub output_cost_usd: f64,
    pub total_cost_usd: f64,
    /// The sum written out.
    pub arithmetic: String,
    /// The same tokens on every backend of the model, by priority.
    pub by_backend: Vec<BackendCost>,
}

/// The estimate on one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendCost {
    pub provider: String,
    pub model_id: String,
    pub total_cost_usd: f64,
}

fn cost(b: &Backend, input: u64, output: u64) -> (f64, f64) {
    // Token counts fit f64 exactly far beyond any real request.
    #[expect(
        clippy::cast_precision_loss,
        reason = "token counts are far below 2^53"
    )]
    let (i, o) = (input as f64, output as f64);
    (i * b.input_per_1m_usd / PER, o * b.output_per_1m_usd / PER)
}

/// The estimate for `model` using the backend of the first routing candidate (`route`), or
/// the cheapest backend when routing picked none of the model's backends. `None` when the
/// model has no backend at all.
pub fn estimate(
    model: &Model,
    route: Result<&RouteTrace, String>,
    input: u64,
    output: u64,
) -> Option<Estimate> {
    let first = route.and_then(|t| {
        let c = first_candidate(t).ok_or_else(|| match &t.error {
            Some(e) => format!("routing picked no candidate: {e}"),
            None => "routing picked no candidate".to_owned(),
        })?;
        model
            .backends
            .iter()
            .find(|b| {
                c.model == model.name && b.provider == c.provider && b.model_id == c.upstream_model
            })
            .ok_or_else(|| {
                format!(
                    "routing would send it to {}/{} (model {}), which is not one of its backends",
                    c.provider, c.upstream_model, c.model
                )
            })
    });
    let (backend, source, note) = match first {
        Ok(b) => (b, "routing", None),
        Err(why) => {
            let cheapest = model.backends.iter().min_by(|a, b| {
                let (ai, ao) = cost(a, input, output);
                let (bi, bo) = cost(b, input, output);
                (ai + ao)
                    .total_cmp(&(bi + bo))
                    .then(a.priority.cmp(&b.priority))
            })?;
            (cheapest, "cheapest", Some(why))
        }
    };
    let (ic, oc) = cost(backend, input, output);
    let total = ic + oc;
    let arithmetic = format!(
        "{input} input tokens × {} / 1M = {}; {output} output tokens × {} / 1M = {}; \
         total {} + {} = {}",
        usd(backend.input_per_1m_usd),
        usd(ic),
        usd(backend.output_per_1m_usd),
        usd(oc),
        usd(ic),
        usd(oc),
        usd(total)
    );
    let by_backend = model
        .backends
        .iter()
        .map(|b| {
            let (i, o) = cost(b, input, output);
            BackendCost {
                provider: b.provider.clone(),
                model_id: b.model_id.clone(),
                total_cost_usd: round(i + o),
            }
        })
        .collect();
    Some(Estimate {
        model: model.name.clone(),
        input_tokens: input,
        output_tokens: output,
        backend: backend.clone(),
        price_source: source.to_owned(),
        note,
        input_cost_usd: round(ic),
        output_cost_usd: round(oc),
        total_cost_usd: round(total),
        arithmetic,
        by_backend,
    })
}

pub fn estimate_text(e: &Estimate) -> String {
    let mut out = format!(
        "{}: {} for {} input + {} output tokens on {}/{}",
        e.model,
        usd(e.total_cost_usd),
        e.input_tokens,
        e.output_tokens,
        e.backend.provider,
        e.backend.model_id
    );
    match &e.note {
        None => out.push_str(" (the backend routing would try first)\n"),
        Some(why) => {
            let _ = writeln!(out, " (the cheapest backend: {why})");
        }
    }
    let _ = writeln!(out, "{}", e.arithmetic);
    if e.by_backend.len() > 1 {
        let others: Vec<String> = e
            .by_backend
            .iter()
            .map(|b| format!("{}/{} {}", b.provider, b.model_id, usd(b.total_cost_usd)))
            .collect();
        let _ = writeln!(out, "on each backend: {}", others.join(", "));
    }
    out
}

/// The candidate tried first: the lowest rank.
fn first_candidate(t: &RouteTrace) -> Option<&TraceCandidate> {
    t.candidates
        .iter()
        .filter(|c| c.rank.is_some())
        .min_by_key(|c| c.rank)
}

fn candidate_name(c: &TraceCandidate) -> String {
    let key = c
        .instance
        .as_deref()
        .map(|i| format!(", key {i}"))
        .unwrap_or_default();
    format!(
        "{}/{} (model {}{key})",
        c.provider, c.upstream_model, c.model
    )
}

/// `explain_route`: candidates in plan order, then the excluded ones and why.
pub fn route_text(t: &RouteTrace) -> String {
    let mut ranked: Vec<&TraceCandidate> =
        t.candidates.iter().filter(|c| c.rank.is_some()).collect();
    ranked.sort_by_key(|c| c.rank);
    let skipped: Vec<&TraceCandidate> = t.candidates.iter().filter(|c| c.rank.is_none()).collect();
    let mut out = format!(
        "Routing {:?} with strategy {}: {} candidate(s) in the order tried, {} excluded",
        t.requested,
        t.strategy,
        ranked.len(),
        skipped.len()
    );
    if !t.fallbacks.is_empty() {
        let _ = write!(out, "; fallbacks {}", t.fallbacks.join(", "));
    }
    if let Some(a) = &t.affinity {
        let _ = write!(out, "; sticky to {a}");
    }
    out.push('\n');
    for c in &ranked {
        let note = c
            .note
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}. {}{note}",
            c.rank.map_or(0, |r| r + 1),
            candidate_name(c)
        );
    }
    if !skipped.is_empty() {
        out.push_str("Excluded:\n");
        for c in &skipped {
            let _ = writeln!(
                out,
                "  - {}: {}",
                candidate_name(c),
                c.skipped.as_deref().unwrap_or("no reason given")
            );
        }
    }
    if let Some(e) = &t.error {
        let _ = writeln!(out, "No candidate left: {e}");
    }
    out
}

/// How `usage` groups the ledger.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum By {
    #[default]
    Model,
    Provider,
    Key,
    Client,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Model => "model",
            By::Provider => "provider",
            By::Key => "key",
            By::Client => "client",
        }
    }
}

/// Sums over every group of a usage summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotal {
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

pub fn usage_total(groups: &[UsageGroup]) -> UsageTotal {
    let mut t = groups.iter().fold(UsageTotal::default(), |mut t, g| {
        t.requests += g.requests;
        t.errors += g.errors;
        t.prompt_tokens += g.prompt_tokens;
        t.completion_tokens += g.completion_tokens;
        t.cost_usd += g.cost_usd;
        t
    });
    t.cost_usd = round(t.cost_usd);
    t
}

pub fn usage_text(by: By, since: &str, groups: &[UsageGroup], total: &UsageTotal) -> String {
    if groups.is_empty() {
        return format!("No requests in the last {since}.\n");
    }
    let mut out = format!("Usage by {} in the last {since}:\n", by.as_str());
    for g in groups {
        let _ = writeln!(
            out,
            "- {}: {} request(s), {} error(s), {} input + {} output tokens, {}, avg {:.0} ms",
            if g.group.is_empty() {
                "(none)"
            } else {
                &g.group
            },
            g.requests,
            g.errors,
            g.prompt_tokens,
            g.completion_tokens,
            usd(g.cost_usd),
            g.avg_latency_ms
        );
    }
    let _ = writeln!(
        out,
        "Total: {} request(s), {} error(s), {} input + {} output tokens, {}",
        total.requests,
        total.errors,
        total.prompt_tokens,
        total.completion_tokens,
        usd(total.cost_usd)
    );
    out
}

/// `90s`, `30m`, `24h`, `7d`, `2w`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad =
        || format!("since must be a number and a unit (s, m, h, d, w), like 24h or 7d; not {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .filter(|&t| t > 0)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

pub fn health_text(h: &Health, i: &Info) -> String {
    let l = &h.ledger;
    let mut out = format!(
        "Broker {} ({} {}), up {} s\n",
        h.status, i.name, h.version, h.uptime_seconds
    );
    let _ = writeln!(
        out,
        "Ledger: {}, {} written, {} queued, {} dropped, {} write error(s)",
        if l.healthy { "healthy" } else { "failing" },
        l.written,
        l.queued,
        l.dropped,
        l.write_errors
    );
    let _ = writeln!(
        out,
        "Registry: {} model(s) ({} servable), {} provider(s), {} key instance(s), {} API key(s); {} request(s) served",
        i.models, i.servable_models, i.providers, i.instances, i.keys, i.requests
    );
    if let Some(c) = &h.catalog {
        let _ = writeln!(
            out,
            "OpenRouter catalog: {} model(s){}",
            c.models,
            c.last_error
                .as_deref()
                .map(|e| format!(", last refresh failed: {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "Sockets: {} (REST), {} (RPC)",
        i.sockets.rest, i.sockets.rpc
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(provider: &str, priority: u32, input: f64, output: f64) -> Backend {
        Backend {
            provider: provider.to_owned(),
            model_id: format!("up-{provider}"),
            priority,
            input_per_1m_usd: input,
            output_per_1m_usd: output,
            instances: 1,
        }
    }

    fn model() -> Model {
        Model {
            name: "chat".into(),
            display_name: None,
            tier: Some("standard".into()),
            context_window: Some(8192),
            servable: true,
            aliases: vec![],
            capabilities: vec![],
            input_per_1m_usd: Some(2.0),
            output_per_1m_usd: Some(8.0),
            backends: vec![backend("fake", 1, 2.0, 8.0), backend("backup", 2, 1.0, 1.0)],
        }
    }

    #[test]
    fn usd_has_two_to_ten_decimals_and_no_float_noise() {
        assert_eq!(usd(2.0), "$2.00");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.000028 + 0.00024), "$0.000268");
        assert_eq!(usd(0.0), "$0.00");
    }

    #[test]
    fn estimate_uses_the_routing_choice_else_the_cheapest() {
        let trace = RouteTrace {
            candidates: vec![
                TraceCandidate {
                    model: "chat".into(),
                    provider: "backup".into(),
                    upstream_model: "up-backup".into(),
                    rank: Some(0),
                    ..TraceCandidate::default()
                },
                TraceCandidate {
                    model: "chat".into(),
                    provider: "fake".into(),
                    upstream_model: "up-fake".into(),
                    skipped: Some("cooling down".into()),
                    ..TraceCandidate::default()
                },
            ],
            ..RouteTrace::default()
        };
        let e = estimate(&model(), Ok(&trace), 1000, 500).expect("estimate");
        assert_eq!(
            (e.backend.provider.as_str(), e.price_source.as_str()),
            ("backup", "routing")
        );
        assert_eq!(e.total_cost_usd, 0.0015);

        let e = estimate(&model(), Err("down".into()), 14, 30).expect("estimate");
        assert_eq!(e.price_source, "cheapest");
        assert_eq!(e.backend.provider, "backup");
        assert_eq!(e.total_cost_usd, 0.000044);
        assert_eq!(
            e.arithmetic,
            "14 input tokens × $1.00 / 1M = $0.000014; 30 output tokens × $1.00 / 1M = $0.00003; total $0.000014 + $0.00003 = $0.000044"
        );
    }

    #[test]
    fn ages_parse_and_nonsense_is_refused() {
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "h", "24", "0h", "3y", "-1d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
