//! Distribution and preference tests of the resolver over a small registry.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::ModelsConfig;
use crate::health::Outcome;
use crate::health::affinity::Affinity;
use hero_aibroker_host::env::Env;

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

fn labels(r: &Registry, model: &str, strategy: Strategy, opts: &RouteOptions) -> Vec<String> {
    decide(r, model, strategy, opts)
        .plan
        .iter()
        .map(Candidate::label)
        .collect()
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
    r.providers["beta"].instances[0].observe(&Outcome::RateLimited(Some(Duration::from_secs(60))));
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
    let l: Vec<String> = labels(&r, "m", Strategy::Best, &opts);
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
    let l: Vec<String> = labels(&r, "m", Strategy::Priority, &o);
    assert_eq!(l, ["alpha-0/a-m", "gamma-0/g-m", "gamma-0/g-f"]);
    let o = RouteOptions {
        fallbacks: vec!["nope".into(), "fallback".into()],
        ..prefs(r#"{"only":["gamma"]}"#)
    };
    let l: Vec<String> = labels(&r, "m", Strategy::Priority, &o);
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
    r.providers["alpha"].instances[1].observe(&Outcome::RateLimited(Some(Duration::from_secs(60))));
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

/// xorshift64*: a deterministic generator for the randomized configs below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Over many random registries, health states and request options, `routing.explain`'s dry
/// run predicts exactly the decision (plan and trace) the next real request gets.
#[test]
fn explain_agrees_with_routing_over_random_configs() {
    let strategies = [
        "priority",
        "round_robin",
        "least_busy",
        "latency",
        "cheapest",
        "best",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decisions = 0;
    for _config in 0..60 {
        let providers = 1 + rng.below(4) as usize;
        let mut yaml = String::from("providers:\n");
        let mut env = Vec::new();
        for p in 0..providers {
            yaml.push_str(&format!(
                "  - {{name: pr{p}, base_url: \"http://127.0.0.1:9/v1\", api_key_env: PR{p}_KEYS}}\n"
            ));
            let keys: Vec<String> = (0..=rng.below(3)).map(|k| format!("k{p}{k}")).collect();
            env.push((format!("PR{p}_KEYS"), keys.join(",")));
        }
        yaml.push_str("models:\n");
        let models = 1 + rng.below(4) as usize;
        for m in 0..models {
            let st = strategies[rng.below(6) as usize];
            let tier = ["cheap", "standard", "frontier"][rng.below(3) as usize];
            yaml.push_str(&format!(
                "  m{m}:\n    display_name: M{m}\n    tier: {tier}\n    context_window: 8192\n    strategy: {st}\n    backends:\n"
            ));
            for p in 0..providers {
                if p > 0 && rng.below(3) == 0 {
                    continue;
                }
                yaml.push_str(&format!(
                    "      - {{provider: pr{p}, model_id: m{m}-{p}, priority: {}, input_cost: {}, output_cost: {}}}\n",
                    1 + rng.below(2),
                    rng.below(5),
                    rng.below(9)
                ));
            }
        }
        let cfg = ModelsConfig::parse(Path::new("t.yml"), &yaml).expect("valid random config");
        let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let r = Registry::build(&cfg, &env);
        // Random live state: cooling, refused and busy keys, measured and tripped backends.
        let mut busy = Vec::new();
        for p in r.providers.values() {
            for i in &p.instances {
                match rng.below(8) {
                    0 => i.observe(&Outcome::RateLimited(Some(Duration::from_secs(30)))),
                    1 => i.observe(&Outcome::KeyRefused(401)),
                    2 => busy.push(i.busy()),
                    _ => {}
                }
            }
        }
        for m in r.models.values() {
            for b in &m.backends {
                b.stats.success(Duration::from_millis(10 + rng.below(300)));
                match rng.below(10) {
                    0 => b.circuit.failure(1, Duration::from_secs(60)),
                    // Half-open with its probe still to take (open time long past, so the
                    // result does not depend on the clock between the two runs).
                    1 => b.circuit.restore(
                        crate::health::circuit::CircuitSnapshot {
                            state: crate::health::circuit::CircuitState::HalfOpen,
                            failures: 1,
                            open_until_ms: 1,
                        },
                        Duration::from_secs(60),
                    ),
                    2 => b.stats.failure(),
                    _ => {}
                }
            }
        }
        let aff = Affinity::default();
        for _request in 0..8 {
            let model = format!("m{}", rng.below(models as u64));
            let p = |i: u64| format!("\"pr{i}\"");
            let prefs = match rng.below(6) {
                0 => format!("{{\"order\":[{}]}}", p(rng.below(4))),
                1 => format!("{{\"ignore\":[{}]}}", p(rng.below(4))),
                2 => format!("{{\"only\":[{},{}]}}", p(rng.below(4)), p(rng.below(4))),
                3 => "{\"sort\":\"latency\"}".to_owned(),
                4 => "{\"max_price\":{\"prompt\":2}}".to_owned(),
                _ => "null".to_owned(),
            };
            let mut opts = RouteOptions {
                prefs: ProviderPrefs::parse(&prefs).expect("prefs"),
                ..RouteOptions::default()
            };
            if rng.below(3) == 0 {
                opts.fallbacks = vec![format!("m{}", rng.below(models as u64))];
            }
            if rng.below(3) == 0 {
                opts.session = Some(format!("s{}", rng.below(3)));
            }
            let needs = Needs::default();
            let mk = |dry_run| Resolve {
                registry: &r,
                endpoint: Endpoint::Chat,
                model: &model,
                needs: &needs,
                options: &opts,
                defaults: Defaults {
                    strategy: Strategy::RoundRobin,
                    auto: Strategy::Cheapest,
                },
                affinity: Some(&aff),
                dry_run,
            };
            let explained = mk(true).run();
            let real = mk(false).run();
            match (explained, real) {
                (Ok(e), Ok(d)) => {
                    assert_eq!(e.trace, d.trace, "{yaml}\n{opts:?}");
                    let labels =
                        |p: &[Candidate]| p.iter().map(Candidate::label).collect::<Vec<_>>();
                    assert_eq!(labels(&e.plan), labels(&d.plan));
                    if let Some(s) = &opts.session {
                        aff.set(
                            s,
                            &model,
                            &d.plan[0].instance.id,
                            &d.plan[0].backend().model_id,
                        );
                    }
                    decisions += 1;
                }
                (Err(e), Err(d)) => {
                    assert_eq!(e.error, d.error);
                    assert_eq!(e.trace, d.trace);
                }
                (e, d) => panic!("explain and routing disagree: {e:?} vs {d:?}\n{yaml}"),
            }
        }
        drop(busy);
    }
    assert!(decisions > 200, "only {decisions} decisions had a plan");
}

#[test]
fn a_model_whose_circuits_are_all_open_goes_after_its_fallbacks() {
    let r = reg(&[("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]);
    for b in &r.models["m"].backends {
        b.circuit.failure(1, Duration::from_secs(60));
    }
    let o = RouteOptions {
        fallbacks: vec!["fallback".into()],
        ..RouteOptions::default()
    };
    let l: Vec<String> = labels(&r, "m", Strategy::Priority, &o);
    assert_eq!(l[0], "gamma-0/g-f", "the fallback model first: {l:?}");
    assert_eq!(l.len(), 4, "the tripped model's keys stay, last: {l:?}");
}

/// A model from the live catalog is requestable by name but never an `auto` candidate, even
/// when it is the cheapest (a free catalog model must not capture `auto`).
#[test]
fn catalog_models_are_requestable_but_not_auto_candidates() {
    let mut cfg = ModelsConfig::parse(Path::new("t.yml"), CFG).expect("valid");
    let cheapest = cfg.models.get_mut("fallback").expect("fallback model");
    cheapest.from_catalog = true;
    let r = Registry::build(
        &cfg,
        &Env::from_pairs([("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]),
    );
    let named = super::plan(&r, "fallback", Endpoint::Chat, Strategy::Cheapest)
        .expect("requestable by name");
    assert_eq!(named[0].backend().model_id, "g-f");
    let auto = super::plan(&r, "auto", Endpoint::Chat, Strategy::Cheapest).expect("auto plan");
    assert!(!auto.is_empty());
    assert!(
        auto.iter().all(|c| !c.model.from_catalog),
        "a catalog model must not capture `auto`"
    );
}

/// `autobest` is the best premium-or-above model: a standard model never enters its plan while
/// a premium one can serve, even ranked as failover; with none, the best of the rest.
#[test]
fn autobest_picks_among_premium_or_above_models_only() {
    let yaml = CFG.replace(
        "  fallback:\n    display_name: F\n    tier: cheap",
        "  fallback:\n    display_name: F\n    tier: premium",
    );
    let cfg = ModelsConfig::parse(Path::new("t.yml"), &yaml).expect("valid");
    let r = Registry::build(
        &cfg,
        &Env::from_pairs([("ALPHA_KEYS", "a"), ("BETA_KEYS", "b"), ("GAMMA_KEYS", "g")]),
    );
    let opts = RouteOptions::default();
    let best = labels(&r, "autobest", Strategy::Cheapest, &opts);
    assert_eq!(best, ["gamma-0/g-f"], "only the premium model: {best:?}");
    // The standard model is what autocheapest would take first.
    assert_eq!(
        first(&r, "autocheapest", Strategy::Cheapest, &opts),
        "gamma-0/g-f"
    );
    let cheapest = labels(&r, "autocheapest", Strategy::Cheapest, &opts);
    assert!(cheapest.iter().any(|l| l.ends_with("/b-m")), "{cheapest:?}");
    // Without a premium model (gamma has no key: `fallback` cannot serve), the best of the rest.
    let r = Registry::build(
        &cfg,
        &Env::from_pairs([("ALPHA_KEYS", "a"), ("BETA_KEYS", "b")]),
    );
    let best = labels(&r, "autobest", Strategy::Cheapest, &opts);
    assert!(
        !best.is_empty() && best.iter().all(|l| l.ends_with("-m")),
        "{best:?}"
    );
}
