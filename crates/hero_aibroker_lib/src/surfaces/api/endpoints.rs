//! `GET /v1/models/{author}/{slug}/endpoints` (any model id works, e.g. `/v1/models/gpt-4o/
//! endpoints`): the backends of a model in OpenRouter's shape — price per token as strings,
//! context length, supported parameters, status, uptime, latency and throughput — with the
//! broker's own health per backend (instances, circuit, priority) added. A backend served by
//! OpenRouter is followed by OpenRouter's own sub-provider endpoints for that model (from the
//! last refresh, `via: "openrouter"`).

use serde_json::{Value, json};

use crate::config::registry::{Backend, Model, Registry};
use crate::health::circuit::CircuitState;
use crate::providers::openrouter::endpoints::SubEndpoints;

/// The endpoints document of `model`; `sub` holds OpenRouter's lists.
pub fn list(reg: &Registry, model: &Model, created: u64, sub: &SubEndpoints) -> Value {
    let vision = model.has("vision");
    let mut endpoints: Vec<Value> = Vec::new();
    for b in &model.backends {
        endpoints.push(endpoint(reg, model, b));
        let via_openrouter = reg
            .providers
            .get(&b.provider)
            .is_some_and(|p| p.kind == "openrouter");
        if via_openrouter && let Some(theirs) = sub.get(&b.model_id) {
            endpoints.extend(theirs.iter().map(|e| {
                let mut e = e.clone();
                if let Some(o) = e.as_object_mut() {
                    o.insert("via".into(), b.provider.clone().into());
                }
                e
            }));
        }
    }
    json!({ "data": {
        "id": model.name,
        "name": model.display_name,
        "created": created,
        "description": "",
        "architecture": {
            "input_modalities": if vision { json!(["text", "image"]) } else { json!(["text"]) },
            "output_modalities": ["text"],
            "modality": if vision { "text+image->text" } else { "text->text" },
            "tokenizer": null,
            "instruct_type": null,
        },
        "endpoints": endpoints,
    }})
}

/// USD per million tokens as OpenRouter's USD-per-token string.
pub(super) fn per_token(per_million: f64) -> String {
    let v = per_million / 1_000_000.0;
    if v == 0.0 {
        "0".to_owned()
    } else {
        format!("{v:.12}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn endpoint(reg: &Registry, model: &Model, b: &Backend) -> Value {
    let instances = reg.instances(b);
    let usable = instances.iter().filter(|i| i.usable()).count();
    let ready = instances
        .iter()
        .filter(|i| i.usable() && !i.cooling_down())
        .count();
    let circuit = b.circuit.state();
    // OpenRouter's status: 0 serving; negative when degraded (-1) or down (-2).
    let status = if usable == 0 || circuit == CircuitState::Open {
        -2
    } else if ready == 0 || circuit == CircuitState::HalfOpen {
        -1
    } else {
        0
    };
    let ttfb_ms = b.stats.ttfb_us() as f64 / 1000.0;
    let tps = b.stats.tokens_per_second();
    json!({
        "name": format!("{}: {}", b.provider, model.display_name),
        "model_id": b.model_id,
        "model_name": model.display_name,
        "provider_name": b.provider,
        "tag": b.provider,
        "quantization": null,
        "context_length": model.context_window,
        "max_completion_tokens": null,
        "max_prompt_tokens": model.context_window,
        "pricing": {
            "prompt": per_token(b.input_cost),
            "completion": per_token(b.output_cost),
            "request": "0",
            "image": "0",
        },
        "supported_parameters": b.parameters.clone().unwrap_or_default(),
        "status": status,
        "uptime_last_30m": (b.stats.success_rate() * 1000.0).round() / 10.0,
        "latency_last_30m": (ttfb_ms > 0.0).then(|| json!({ "p50": ttfb_ms / 1000.0 })),
        "throughput_last_30m": (tps > 0.0).then(|| json!({ "p50": tps })),
        "supports_implicit_caching": false,
        "priority": b.priority,
        "circuit": circuit.as_str(),
        "instances": instances.iter().map(|i| json!({
            "id": i.id,
            "state": i.health().as_str(),
            "reason": i.reason(),
            "cooldown_seconds": i.cooldown_left().map(|d| d.as_secs_f64()),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_become_per_token_strings() {
        assert_eq!(per_token(0.0), "0");
        assert_eq!(per_token(2.5), "0.0000025");
        assert_eq!(per_token(30.0), "0.00003");
        assert_eq!(per_token(0.15), "0.00000015");
    }
}
