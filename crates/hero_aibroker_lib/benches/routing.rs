//! Routing decision micro-benchmark (issue 4): how long the resolver takes to turn one request
//! into a plan and its trace, on a registry of 50 models × 5 backends × 4 keys per provider.
//!
//! `cargo bench -p hero_aibroker_lib --bench routing [-- --warm-up-time 1 --measurement-time 3]`
//!
//! Every iteration is one real decision (`dry_run: false`: cursors advance, circuits admit),
//! including the trace and dropping both, exactly what the relay does before its first
//! upstream call. Results are in `docs/performance.md`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hero_aibroker_host::env::Env;
use hero_aibroker_lib::config::registry::Registry;
use hero_aibroker_lib::config::{ModelsConfig, Strategy};
use hero_aibroker_lib::health::affinity::Affinity;
use hero_aibroker_lib::health::pool::Busy;
use hero_aibroker_lib::pipeline::router::{
    Defaults, Endpoint, Needs, ProviderPrefs, Resolve, RouteOptions,
};

// The server's allocator: the decision is allocation-heavy (plan, trace strings).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROVIDERS: usize = 5;
const KEYS: usize = 4;
const MODELS: usize = 50;
/// The model the named-model cases ask for.
const NAMED: &str = "model-17";

/// 5 custom providers with 4 keys each; 50 models, each served by all 5 providers with
/// priorities 1–3 and prices that differ per backend, so every ordering has work to do.
fn models_yaml() -> String {
    let tiers = ["free", "cheap", "standard", "premium", "frontier"];
    let mut y = String::from("providers:\n");
    for p in 0..PROVIDERS {
        writeln!(
            y,
            "  - {{name: p{p}, base_url: \"http://127.0.0.1:{}/v1\", api_key_env: P{p}_API_KEYS}}",
            9000 + p
        )
        .expect("write to String");
    }
    y.push_str("models:\n");
    for m in 0..MODELS {
        writeln!(
            y,
            "  model-{m:02}:\n    display_name: Model {m}\n    tier: {}\n    \
             capabilities: [chat, tools]\n    context_window: {}\n    backends:",
            tiers[m % tiers.len()],
            8192 << (m % 5)
        )
        .expect("write to String");
        for p in 0..PROVIDERS {
            let priority = (m + p) % 3 + 1;
            let input = 0.05 + ((m * 7 + p * 13) % 40) as f64 * 0.1;
            writeln!(
                y,
                "      - {{provider: p{p}, model_id: m{m:02}-up{p}, priority: {priority}, \
                 input_cost: {input:.2}, output_cost: {:.2}}}",
                input * 4.0
            )
            .expect("write to String");
        }
    }
    y
}

fn registry() -> Registry {
    let cfg = ModelsConfig::parse(Path::new("bench.yml"), &models_yaml()).expect("valid YAML");
    let env = Env::from_pairs((0..PROVIDERS).map(|p| {
        let keys: Vec<String> = (0..KEYS).map(|k| format!("sk-p{p}-{k}")).collect();
        (format!("P{p}_API_KEYS"), keys.join(","))
    }));
    let reg = Registry::build(&cfg, &env);
    assert_eq!(reg.models.len(), MODELS);
    for p in 0..PROVIDERS {
        assert_eq!(
            reg.providers[format!("p{p}").as_str()].instances.len(),
            KEYS
        );
    }
    reg
}

/// Live state as after some traffic: measured latencies and success rates on every backend,
/// a few requests in flight. The guards keep the in-flight counts up while they live.
fn warm(reg: &Registry) -> Vec<Busy> {
    for (mi, m) in reg.models.values().enumerate() {
        for (bi, b) in m.backends.iter().enumerate() {
            b.stats.success(Duration::from_millis(
                80 + ((mi * 31 + bi * 17) % 400) as u64,
            ));
            if (mi + bi) % 4 == 0 {
                b.stats.failure();
            }
        }
    }
    reg.providers
        .values()
        .flat_map(|p| p.instances.iter())
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, inst)| inst.busy())
        .collect()
}

fn resolve<'a>(
    reg: &'a Registry,
    model: &'a str,
    needs: &'a Needs,
    options: &'a RouteOptions,
    strategy: Strategy,
    affinity: Option<&'a Affinity>,
) -> Resolve<'a> {
    Resolve {
        registry: reg,
        endpoint: Endpoint::Chat,
        model,
        needs,
        options,
        defaults: Defaults {
            strategy,
            auto: strategy,
        },
        affinity,
        dry_run: false,
    }
}

/// Runs one decision; the plan must have `len` candidates (checked once, outside timing).
fn check(r: &Resolve<'_>, len: usize) {
    let d = r.run().expect("a plan");
    assert_eq!(d.plan.len(), len, "plan size for {}", r.model);
}

fn benches(c: &mut Criterion) {
    let reg = registry();
    let _busy = warm(&reg);
    let needs = Needs {
        capabilities: vec![],
        prompt_tokens: 1_000,
    };
    let plain = RouteOptions::default();

    // One named model: 5 backends × 4 keys = 20 candidates.
    let mut g = c.benchmark_group("named");
    for s in Strategy::ALL {
        let r = resolve(&reg, NAMED, &needs, &plain, s, None);
        check(&r, PROVIDERS * KEYS);
        g.bench_function(s.name(), |b| b.iter(|| black_box(r.run())));
    }
    g.finish();

    // OpenRouter request fields: provider order/ignore/max_price, two fallback models.
    let openrouter = RouteOptions {
        fallbacks: vec!["model-23".into(), "model-31".into()],
        prefs: ProviderPrefs::parse(
            r#"{"order":["p3","p1"],"ignore":["p4"],"max_price":{"prompt":3.5}}"#,
        )
        .expect("valid prefs"),
        ..RouteOptions::default()
    };
    let r = resolve(&reg, NAMED, &needs, &openrouter, Strategy::RoundRobin, None);
    let d = r.run().expect("a plan");
    assert!(
        d.trace.candidates.iter().any(|c| c.skipped.is_some()),
        "ignore/max_price skip some backends"
    );
    assert!(d.plan.len() > 2 * KEYS, "fallback models contribute");
    c.bench_function("openrouter_prefs_fallbacks", |b| {
        b.iter(|| black_box(r.run()));
    });

    // Session affinity: a remembered session whose key is ready goes first.
    let affinity = Affinity::default();
    for s in 0..1_000 {
        affinity.set(&format!("session-{s}"), NAMED, "p1-0", "m17-up1");
    }
    affinity.set("session-bench", NAMED, "p2-3", "m17-up2");
    let sticky = RouteOptions {
        session: Some("session-bench".into()),
        ..RouteOptions::default()
    };
    let r = resolve(
        &reg,
        NAMED,
        &needs,
        &sticky,
        Strategy::RoundRobin,
        Some(&affinity),
    );
    let d = r.run().expect("a plan");
    assert_eq!(d.plan[0].label(), "p2-3/m17-up2", "sticky candidate first");
    c.bench_function("session_affinity", |b| b.iter(|| black_box(r.run())));

    // `auto`: every chat model, 50 models × 5 backends (250) are ranked at the backend level;
    // the best 8 are expanded into their 4 keys (32 candidates).
    let mut g = c.benchmark_group("auto");
    for s in Strategy::ALL {
        let r = resolve(&reg, "auto", &needs, &plain, s, None);
        check(&r, 8 * KEYS);
        g.bench_function(s.name(), |b| b.iter(|| black_box(r.run())));
    }
    g.finish();
}

criterion_group!(routing, benches);
criterion_main!(routing);
