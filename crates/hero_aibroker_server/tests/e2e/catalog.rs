//! The live OpenRouter catalog: its models are listed and served through OpenRouter next to
//! the YAML ones (YAML wins), a failed refresh keeps them and degrades `health`, and without
//! an OpenRouter key (or with the interval at 0) no catalog request is made.

use std::time::{Duration, Instant};

use hero_aibroker_testkit::{FakeProvider, catalog_entry};
use serde_json::{Value, json};

use crate::harness::*;

const OR_KEY: &str = "sk-or-canary-0123456789";

/// The harness models plus `routed`, served by OpenRouter at a YAML price.
fn yaml(fake: &FakeProvider) -> String {
    models_yaml(&fake.base_url(), &dead_url())
        + r#"  routed:
    display_name: Routed
    tier: standard
    context_window: 8192
    backends:
      - {provider: openrouter, model_id: acme/yaml-priced, priority: 1, input_cost: 5, output_cost: 7}
"#
}

/// A fake whose catalog has a new model, one YAML already routes to OpenRouter, one named
/// like a YAML alias and a cheap one, two per page.
async fn fake_with_catalog() -> FakeProvider {
    let fake = FakeProvider::start().await;
    fake.set_catalog(json!([
        catalog_entry("openai/gpt-4", "0.00003", "0.00006"),
        catalog_entry("acme/yaml-priced", "0.001", "0.001"),
        catalog_entry("chat-alias", "0", "0"),
        catalog_entry("acme/cheap", "0.0000001", "0.0000004"),
    ]));
    fake.set_catalog_page_size(Some(2));
    fake
}

fn start(fake: &FakeProvider) -> Start {
    Start::new(yaml(fake))
        .env("OPENROUTER_API_KEY", OR_KEY)
        .env("OPENROUTER_BASE_URL", &fake.openrouter_url())
        .env("OPENROUTER_CATALOG_INTERVAL", "1")
}

async fn model_ids(b: &Broker) -> Vec<String> {
    let r = b.get("/v1/models").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Polls `health` until `done` holds (15 s at most); returns that health.
async fn health_until(b: &Broker, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let h = b.rpc("health", json!([])).await;
        if done(&h) {
            return h;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn catalog_loaded(b: &Broker) -> Value {
    health_until(b, "the catalog never loaded", |h| {
        !h["catalog"]["refreshed_ms"].is_null()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_models_are_listed_and_served_and_yaml_wins() {
    let fake = fake_with_catalog().await;
    let b = start(&fake).start().await;
    let health = catalog_loaded(&b).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["catalog"]["models"], 4, "{health}");
    assert_eq!(health["catalog"]["last_error"], Value::Null);
    assert!(health["catalog"]["next_refresh_ms"].is_i64(), "{health}");

    let ids = model_ids(&b).await;
    assert_eq!(
        ids,
        [
            "chat",
            "solo",
            "embed",
            "legacy",
            "unkeyed",
            "routed",
            "openai/gpt-4",
            "acme/cheap"
        ],
        "YAML models first; the catalog's acme/yaml-priced and chat-alias are YAML's"
    );
    let r = b.get("/v1/models").await;
    let gpt4 = &r.json["data"][6];
    assert_eq!(gpt4["context_window"], 8192);
    assert_eq!(gpt4["servable"], true);
    assert_eq!(gpt4["display_name"], "Fake: openai/gpt-4");
    let backend = &gpt4["backends"][0];
    assert_eq!(backend["provider"], "openrouter");
    assert_eq!(backend["model_id"], "openai/gpt-4");
    assert_eq!(
        (
            backend["input_cost"].as_f64(),
            backend["output_cost"].as_f64()
        ),
        (Some(30.0), Some(60.0)),
        "USD per token became USD per million"
    );
    let routed = &r.json["data"][5]["backends"][0];
    assert_eq!(
        routed["input_cost"], 5.0,
        "the YAML price, not the catalog's"
    );

    // The exact catalog name wins over the `openai` provider (which has no key here).
    let r = b
        .post("/v1/chat/completions", &chat_body("openai/gpt-4"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "openrouter-0");
    // OpenRouter's reply is passed as it sent it (no cost in this one): the ledger charges
    // the catalog price.
    assert!(r.json.get("x_aibroker").is_none(), "{}", r.text);
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    let cost = row["cost_usd"].as_f64().expect("cost");
    assert!((cost - expected_cost(30.0, 60.0)).abs() < 1e-12, "{cost}");
    let r = b.post("/v1/chat/completions", &chat_body("routed")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    let cost = row["cost_usd"].as_f64().expect("cost");
    assert!((cost - expected_cost(5.0, 7.0)).abs() < 1e-12, "{cost}");
    assert_eq!(fake.count(Some(OR_KEY), Some("openai/gpt-4")), 1);
    assert_eq!(fake.count(Some(OR_KEY), Some("acme/yaml-priced")), 1);
    let chat = fake.calls();
    assert!(
        chat.iter()
            .all(|c| c.path == "/api/v1/chat/completions" && c.key.as_deref() == Some(OR_KEY))
    );

    let catalog = fake.catalog_calls();
    assert!(catalog.len() >= 2, "two pages: {}", catalog.len());
    assert!(catalog.iter().all(|c| c.key.as_deref() == Some(OR_KEY)));
    // The catalog pages, then the endpoint lists of the models routed to OpenRouter.
    assert!(catalog.iter().all(|c| c.path == "/api/v1/models"
        || (c.path.starts_with("/api/v1/models/") && c.path.ends_with("/endpoints"))));
    assert!(!b.logs().contains(OR_KEY), "the key is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_refresh_keeps_the_catalog_and_degrades_health_until_it_recovers() {
    let fake = fake_with_catalog().await;
    let b = start(&fake).start().await;
    let loaded = catalog_loaded(&b).await;

    fake.fail_catalog(Some(500));
    let h = health_until(&b, "the failure was not reported", |h| {
        !h["catalog"]["last_error"].is_null()
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h}");
    let error = h["catalog"]["last_error"].as_str().expect("error");
    assert!(error.starts_with("HTTP 500"), "{error}");
    assert_eq!(h["catalog"]["models"], 4, "the last good catalog is kept");
    assert_eq!(h["ledger"]["healthy"], true, "only the catalog is failing");
    let rest = b.get("/health").await;
    assert_eq!(
        rest.json["status"], "degraded",
        "REST /health agrees: {}",
        rest.text
    );
    assert_eq!(
        rest.json["catalog"]["last_error"],
        h["catalog"]["last_error"]
    );
    assert!(h["catalog"]["refreshed_ms"].as_i64() >= loaded["catalog"]["refreshed_ms"].as_i64());

    assert!(model_ids(&b).await.contains(&"openai/gpt-4".to_owned()));
    let r = b
        .post("/v1/chat/completions", &chat_body("openai/gpt-4"))
        .await;
    assert_eq!(r.status, 200, "still servable: {}", r.text);
    let logs = b.logs();
    assert!(
        logs.contains("OpenRouter catalog refresh failed, keeping the last good catalog"),
        "{logs}"
    );
    assert!(!logs.contains(OR_KEY), "the key is never logged");

    fake.fail_catalog(None);
    let h = health_until(&b, "the catalog did not recover", |h| h["status"] == "ok").await;
    assert_eq!(h["catalog"]["last_error"], Value::Null, "{h}");
    assert!(h["catalog"]["refreshed_ms"].as_i64() > loaded["catalog"]["refreshed_ms"].as_i64());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_catalog_request_without_a_key_or_with_interval_zero() {
    let unkeyed_fake = fake_with_catalog().await;
    let unkeyed = Start::new(yaml(&unkeyed_fake))
        .env("OPENROUTER_BASE_URL", &unkeyed_fake.openrouter_url())
        .env("OPENROUTER_CATALOG_INTERVAL", "1")
        .start()
        .await;
    let off_fake = fake_with_catalog().await;
    let off = start(&off_fake)
        .env("OPENROUTER_CATALOG_INTERVAL", "0")
        .start()
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (b, fake) in [(&unkeyed, &unkeyed_fake), (&off, &off_fake)] {
        assert!(fake.catalog_calls().is_empty());
        assert_eq!(fake.call_count(), 0);
        let h = b.rpc("health", json!([])).await;
        assert_eq!(h["status"], "ok", "{h}");
        assert!(h.get("catalog").is_none(), "no catalog to report: {h}");
        assert!(!model_ids(b).await.contains(&"openai/gpt-4".to_owned()));
    }
    let r = off
        .post("/v1/chat/completions", &chat_body("openai/gpt-4"))
        .await;
    r.assert_error(404, "model_not_found");
    assert_eq!(off_fake.call_count(), 0);
}

/// With the live catalog on, OpenRouter's per-model endpoint lists are refreshed too:
/// `/v1/models/{author}/{slug}/endpoints` shows the broker's OpenRouter backend followed by
/// OpenRouter's own sub-provider endpoints for that model (`via: "openrouter"`).
#[tokio::test(flavor = "multi_thread")]
async fn openrouter_sub_provider_endpoints_are_listed_beside_the_brokers_backend() {
    let fake = fake_with_catalog().await;
    let b = start(&fake).start().await;
    health_until(&b, "catalog refreshed", |h| {
        !h["catalog"]["refreshed_ms"].is_null()
    })
    .await;
    let t0 = Instant::now();
    let r = loop {
        let r = b.get("/api/v1/models/openai/gpt-4/endpoints").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let n = r.json["data"]["endpoints"].as_array().map_or(0, Vec::len);
        if n >= 2 {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no sub-provider endpoints: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let endpoints = r.json["data"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints[0]["provider_name"], "openrouter", "{}", r.text);
    assert!(
        endpoints[0]["instances"].is_array(),
        "the broker's own backend first"
    );
    let theirs = &endpoints[1];
    assert_eq!(theirs["provider_name"], "OpenAI", "{}", r.text);
    assert_eq!(theirs["via"], "openrouter", "{}", r.text);
    assert_eq!(theirs["quantization"], "fp16", "as OpenRouter listed it");
    let asked: Vec<String> = fake
        .catalog_calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/endpoints"))
        .map(|c| c.path)
        .collect();
    assert!(
        asked
            .iter()
            .any(|p| p == "/api/v1/models/openai/gpt-4/endpoints"),
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_endpoints_refresh_keeps_the_last_good_list() {
    let fake = fake_with_catalog().await;
    let b = start(&fake).start().await;
    let listed =
        |r: &crate::harness::Reply| r.json["data"]["endpoints"].as_array().map_or(0, Vec::len);
    let t0 = Instant::now();
    while listed(&b.get("/api/v1/models/openai/gpt-4/endpoints").await) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(15), "never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint_calls = || {
        fake.catalog_calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/endpoints"))
            .count()
    };
    // OpenRouter now fails every catalog request; wait for a refresh that asked and failed.
    fake.fail_catalog(Some(500));
    let before = endpoint_calls();
    let t0 = Instant::now();
    while endpoint_calls() <= before {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no refresh after the failure"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    health_until(&b, "the failed refresh is reported", |h| {
        !h["catalog"]["last_error"].is_null()
    })
    .await;
    let r = b.get("/api/v1/models/openai/gpt-4/endpoints").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed(&r), 2, "the last good list stays: {}", r.text);
    assert_eq!(r.json["data"]["endpoints"][1]["provider_name"], "OpenAI");
}
