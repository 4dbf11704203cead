//! Distribution and preference tests of the resolver over a small registry.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::ModelsConfig;
use crate::env::Env;
use crate::pool::Observation;

const CFG: &str = r#"
providers:
  - {name: alpha, base_url: "http://127.0.0.1:9/v1", api_key_env: ALPHA_KEYS}
  - {name: beta, base_url: "http://127.0.0.1:9/v1", api_key_env: BETA_KEYS}
  - {name: gamma, base_url: "http://127.0.0.1:9/v1", api_key_env: GAMMA_KEYS}
models:
  m:
    display_name: M
    tier: standard
    context_window: 8192
    backends:
      - {provider: alpha, model_id: a-m, priority: 1, input_cost: 1, output_cost: 2, parameters: [temperature, max_tokens]}
      - {provider: beta, model_id: b-m, priority: 1, input_cost: 0.5, output_cost: 1}
      - {provider: gamma, model_id: g-m, priority: 2, input_cost: 3, output_cost: 9}
  fallback:
    display_name: F
    tier: cheap
    context_window: 8192
    backends:
      - {provider: gamma, model_id: g-f, input_cost: 0.1, output_cost: 0.1}
"#;

fn reg(keys: &[(&str, &str)]) -> Registry {
    let cfg = ModelsConfig::parse(Path::new("t.yml"), CFG).expect("valid");
    Registry::build(&cfg, &Env::from_pairs(keys.iter().copied()))
}

fn decide(r: &Registry, model: &str, strategy: Strategy, opts: &RouteOptions) -> Decision {
    Resolve {
        registry: r,
        endpoint: Endpoint::Chat,
        model,
        needs: &Needs::default(),
        options: opts,
        defaults: Defaults {
            strategy,
            auto: strategy,
        },
        affinity: None,
        dry_run: false,
    }
    .run()
    .expect("a plan")
}

fn first(r: &Registry, model: &str, strategy: Strategy, opts: &RouteOptions) -> String {
    decide(r, model, strategy, opts).plan[0].label()
}

fn prefs(json: &str) -> RouteOptions {
    RouteOptions {
        prefs: ProviderPrefs::parse(json).expect("prefs"),
        ..RouteOptions::default()
    }
}

#[test]
fn round_robin_spreads_evenly_over_three_keys() {
    let r = reg(&[("ALPHA_KEYS", "k1,k2,k3")]);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        *counts
            .entry(first(
                &r,
                "m",
                Strategy::RoundRobin,
                &RouteOptions::default(),
            ))
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| n.abs_diff(100) <= 1), "{counts:?}");
}

#[test]
fn priority_fills_the_first_key_until_it_cools() {
    let r = reg(&[("ALPHA_KEYS", "k1,k2"), ("BETA_KEYS", "b")]);
    let opts = RouteOptions::default();
    for _ in 0..5 {
        // alpha and beta share priority 1; beta is cheaper.
        assert_eq!(first(&r, "m", Strategy::Priority, &opts), "beta-0/b-m");
    }
    r.providers["beta"].instances[0]
        .observe(Observation::RateLimited(Some(Duration::from_secs(60))));
    for _ in 0..5 {
        assert_eq!(first(&r, "m", Strategy::Priority, &opts), "alpha-0/a-m");
    }
}

#[test]
fn least_busy_prefers_idle_keys() {
    let r = reg(&[("ALPHA_KEYS", "k1,k2,k3")]);
    let inst = &r.providers["alpha"].instances;
    let _a = inst[0].busy();
    let _b = inst[1].busy();
    let _b2 = inst[1].busy();
    for _ in 0..6 {
        assert_eq!(
            first(&r, "m", Strategy::LeastBusy, &RouteOptions::default()),
            "alpha-2/a-m"
        );
    }
    let plan = decide(&r, "m", Strategy::LeastBusy, &RouteOptions::default()).plan;
    let ids: Vec<&str> = plan.iter().map(|c| c.instance.id.as_str()).collect();
    assert_eq!(ids, ["alpha-2", "alpha-0", "alpha-1"], "by in-flight count");
}

#[test]
fn latency_prefers_the_faster_backend() {
    let r = reg(&[("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]);
    let m = &r.models["m"];
    for _ in 0..5 {
        m.backends[0].stats.success(Duration::from_millis(300));
        m.backends[1].stats.success(Duration::from_millis(40));
        m.backends[2].stats.success(Duration::from_millis(900));
    }
    let mut fast = 0;
    let mut slowest_first = 0;
    for _ in 0..200 {
        let l = first(&r, "m", Strategy::Latency, &RouteOptions::default());
        fast += u32::from(l == "beta-0/b-m");
        slowest_first += u32::from(l == "gamma-0/g-m");
    }
    assert!(fast >= 160, "fast first in {fast}/200");
    assert_eq!(slowest_first, 0, "a clearly slower backend never leads");
    // Near-equal backends share the load (power of two choices) instead of herding.
    for _ in 0..40 {
        m.backends[0].stats.success(Duration::from_millis(100));
        m.backends[1].stats.success(Duration::from_millis(95));
        m.backends[2].stats.success(Duration::from_millis(105));
    }
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        *counts
            .entry(first(&r, "m", Strategy::Latency, &RouteOptions::default()))
            .or_default() += 1;
    }
    // Of a random pair the better one leads: the fastest about 2/3 of the time, the middle
    // one about 1/3, the slowest never.
    assert!((170..=230).contains(&counts["beta-0/b-m"]), "{counts:?}");
    assert!((70..=130).contains(&counts["alpha-0/a-m"]), "{counts:?}");
    assert_eq!(counts.get("gamma-0/g-m"), None, "{counts:?}");
}

#[test]
fn cheapest_and_best() {
    let r = reg(&[("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]);
    let opts = RouteOptions::default();
    assert_eq!(first(&r, "m", Strategy::Cheapest, &opts), "beta-0/b-m");
    // best: same tier, so measured success then latency decide.
    let m = &r.models["m"];
    for _ in 0..5 {
        m.backends[1].stats.failure();
        m.backends[0].stats.success(Duration::from_millis(100));
        m.backends[2].stats.success(Duration::from_millis(50));
    }
    let l: Vec<String> = decide(&r, "m", Strategy::Best, &opts)
        .plan
        .iter()
        .map(Candidate::label)
        .collect();
    assert_eq!(l, ["gamma-0/g-m", "alpha-0/a-m", "beta-0/b-m"]);
}

#[test]
fn per_model_strategy_overrides_the_default() {
    let yaml = CFG.replace(
        "    tier: standard\n",
        "    tier: standard\n    strategy: priority\n",
    );
    let cfg = ModelsConfig::parse(Path::new("t.yml"), &yaml).expect("valid");
    let r = Registry::build(&cfg, &Env::from_pairs([("ALPHA_KEYS", "k1,k2")]));
    let d = decide(&r, "m", Strategy::RoundRobin, &RouteOptions::default());
    assert_eq!(d.trace.strategy, "priority");
    for _ in 0..4 {
        assert_eq!(
            first(&r, "m", Strategy::RoundRobin, &RouteOptions::default()),
            "alpha-0/a-m"
        );
    }
}

#[test]
fn provider_preferences() {
    let r = reg(&[("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]);
    let labels = |o: &RouteOptions| -> Vec<String> {
        decide(&r, "m", Strategy::Priority, o)
            .plan
            .iter()
            .map(Candidate::label)
            .collect()
    };
    assert_eq!(
        labels(&prefs(r#"{"order":["gamma","alpha"]}"#)),
        ["gamma-0/g-m", "alpha-0/a-m", "beta-0/b-m"]
    );
    assert_eq!(
        labels(&prefs(r#"{"order":["gamma"],"allow_fallbacks":false}"#)),
        ["gamma-0/g-m"]
    );
    assert_eq!(labels(&prefs(r#"{"only":["Alpha"]}"#)), ["alpha-0/a-m"]);
    assert_eq!(
        labels(&prefs(r#"{"ignore":["beta"]}"#)),
        ["alpha-0/a-m", "gamma-0/g-m"]
    );
    assert_eq!(
        labels(&prefs(r#"{"max_price":{"prompt":1,"completion":"2"}}"#)),
        ["beta-0/b-m", "alpha-0/a-m"]
    );
    assert_eq!(labels(&prefs(r#"{"sort":"price"}"#))[0], "beta-0/b-m");
    let mut o = prefs(r#"{"require_parameters":true}"#);
    o.params = vec!["temperature".into(), "seed".into()];
    assert_eq!(
        labels(&o),
        ["beta-0/b-m", "gamma-0/g-m"],
        "alpha lacks seed"
    );
    o.params = vec!["temperature".into()];
    assert_eq!(labels(&o).len(), 3);
    let d = decide(
        &r,
        "m",
        Strategy::Priority,
        &prefs(r#"{"ignore":["beta"]}"#),
    );
    let skipped = d
        .trace
        .candidates
        .iter()
        .find(|c| c.provider == "beta")
        .expect("traced");
    assert_eq!(skipped.skipped.as_deref(), Some("in provider.ignore"));
    assert_eq!(skipped.rank, None);
    let err = Resolve {
        registry: &r,
        endpoint: Endpoint::Chat,
        model: "m",
        needs: &Needs::default(),
        options: &prefs(r#"{"only":["nobody"]}"#),
        defaults: Defaults {
            strategy: Strategy::Priority,
            auto: Strategy::Priority,
        },
        affinity: None,
        dry_run: true,
    }
    .run()
    .expect_err("nothing matches");
    assert_eq!(err.error, PlanError::NoMatch { model: "m".into() });
    assert_eq!(err.trace.candidates.len(), 3, "every backend says why");
}

#[test]
fn fallback_models_follow_the_requested_one() {
    let r = reg(&[("ALPHA_KEYS", "a"), ("GAMMA_KEYS", "g")]);
    let o = RouteOptions {
        fallbacks: vec!["fallback".into()],
        ..RouteOptions::default()
    };
    let l: Vec<String> = decide(&r, "m", Strategy::Priority, &o)
        .plan
        .iter()
        .map(Candidate::label)
        .collect();
    assert_eq!(l, ["alpha-0/a-m", "gamma-0/g-m", "gamma-0/g-f"]);
    let o = RouteOptions {
        fallbacks: vec!["nope".into(), "fallback".into()],
        ..prefs(r#"{"only":["gamma"]}"#)
    };
    let l: Vec<String> = decide(&r, "m", Strategy::Priority, &o)
        .plan
        .iter()
        .map(Candidate::label)
        .collect();
    assert_eq!(
        l,
        ["gamma-0/g-m", "gamma-0/g-f"],
        "unknown fallbacks are skipped"
    );
}

#[test]
fn sessions_stick_to_their_key_while_it_is_healthy() {
    let r = reg(&[("ALPHA_KEYS", "k1,k2,k3")]);
    let aff = Affinity::default();
    let o = RouteOptions {
        session: Some("conv-1".into()),
        ..RouteOptions::default()
    };
    let run = |o: &RouteOptions| {
        Resolve {
            registry: &r,
            endpoint: Endpoint::Chat,
            model: "m",
            needs: &Needs::default(),
            options: o,
            defaults: Defaults {
                strategy: Strategy::RoundRobin,
                auto: Strategy::RoundRobin,
            },
            affinity: Some(&aff),
            dry_run: false,
        }
        .run()
        .expect("plan")
    };
    aff.set("conv-1", "m", "alpha-1", "a-m");
    for _ in 0..5 {
        let d = run(&o);
        assert_eq!(d.plan[0].instance.id, "alpha-1");
        assert_eq!(d.trace.affinity.as_deref(), Some("alpha-1/a-m"));
    }
    r.providers["alpha"].instances[1]
        .observe(Observation::RateLimited(Some(Duration::from_secs(60))));
    let d = run(&o);
    assert_ne!(
        d.plan[0].instance.id, "alpha-1",
        "a cooling key loses the session"
    );
    assert_eq!(d.trace.affinity, None);
}

#[test]
fn dry_runs_predict_the_next_real_decision() {
    let r = reg(&[("ALPHA_KEYS", "k1,k2,k3"), ("BETA_KEYS", "b")]);
    for strategy in Strategy::ALL {
        for _ in 0..7 {
            let opts = RouteOptions::default();
            let needs = Needs::default();
            let mk = |dry_run| Resolve {
                registry: &r,
                endpoint: Endpoint::Chat,
                model: "m",
                needs: &needs,
                options: &opts,
                defaults: Defaults {
                    strategy,
                    auto: strategy,
                },
                affinity: None,
                dry_run,
            };
            let explained = mk(true).run().expect("plan").trace;
            let real = mk(false).run().expect("plan");
            assert_eq!(explained, real.trace, "{strategy:?}");
        }
    }
}
