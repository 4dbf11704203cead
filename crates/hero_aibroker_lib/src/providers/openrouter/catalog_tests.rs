//! Unit tests of the live catalog: the real `/models` fixture, price conversion, capability
//! mapping, the YAML-wins merge and how names resolve after it, and `fetch` against a local
//! server (pagination, the key as Bearer, errors, timeouts).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

use super::*;
use crate::config::registry::Target;

const FIXTURE: &str =
    include_str!("../../../../hero_aibroker_testkit/fixtures/openrouter/models.json");

fn url() -> reqwest::Url {
    reqwest::Url::parse("http://127.0.0.1:9/api/v1/models").expect("url")
}

/// The usable entries of one page holding `data`.
fn parse(data: &[Value]) -> Entries {
    let body = json!({ "data": data }).to_string();
    let mut entries = Entries::new();
    read_page(body.as_bytes(), &url(), &mut entries, &mut Tally::default()).expect("page");
    entries
}

fn entry(id: &str, prompt: &str, completion: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Model {id}"),
        "context_length": 32768,
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0"},
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "supported_parameters": ["temperature", "max_tokens"],
        "top_provider": {"context_length": 32768, "is_moderated": false}
    })
}

#[test]
fn the_real_fixture_becomes_one_openrouter_model() {
    let mut entries = Entries::new();
    let mut tally = Tally::default();
    let next = read_page(FIXTURE.as_bytes(), &url(), &mut entries, &mut tally).expect("fixture");
    assert_eq!(tally.listed, 1);
    assert_eq!(tally.skipped, 0);
    assert_eq!(
        next.as_deref(),
        Some("offset=500&limit=500"),
        "links.next query"
    );
    let m = &entries["openai/gpt-4"];
    assert_eq!(m.display_name, "GPT-4");
    assert_eq!(m.context_window, 8192);
    assert_eq!(m.tier, Tier::Standard);
    assert_eq!(
        m.capabilities,
        ["chat"],
        "no tools or image input in the fixture"
    );
    let b = &m.backends[0];
    assert_eq!(
        (b.provider.as_str(), b.model_id.as_str()),
        (PROVIDER, "openai/gpt-4")
    );
    assert_eq!((b.input_cost, b.output_cost), (30.0, 60.0));
    assert_eq!(
        b.parameters.as_deref().map(<[String]>::len),
        Some(5),
        "supported_parameters kept for require_parameters"
    );
}

#[test]
fn prices_per_token_become_exact_prices_per_million() {
    for (per_token, per_m) in [
        (0.00003, 30.0),
        (0.00006, 60.0),
        (0.000000075, 0.075),
        (0.0000025, 2.5),
        (0.0, 0.0),
    ] {
        assert_eq!(per_million(per_token), Some(per_m), "{per_token}");
    }
    assert_eq!(per_million(-1.0), None, "OpenRouter's variable price");
    assert_eq!(per_million(f64::NAN), None);
    let free = parse(&[entry("acme/free:free", "0", "0")]);
    assert_eq!(free["acme/free:free"].tier, Tier::Free);
    let numeric = parse(&[json!({
        "id": "acme/n", "context_length": 1000,
        "pricing": {"prompt": 0.000001, "completion": 0.000002}
    })]);
    assert_eq!(
        numeric["acme/n"].backends[0].output_cost, 2.0,
        "numbers accepted"
    );
}

#[test]
fn capabilities_come_from_parameters_and_modalities() {
    let mut e = entry("acme/smart", "0.000001", "0.000002");
    e["supported_parameters"] = json!(["tools", "structured_outputs", "include_reasoning"]);
    e["architecture"]["input_modalities"] = json!(["text", "image"]);
    let mut j = entry("acme/json", "0.000001", "0.000002");
    j["supported_parameters"] = json!(["response_format", "reasoning"]);
    let got = parse(&[e, j]);
    assert_eq!(
        got["acme/smart"].capabilities,
        ["chat", "tools", "json_schema", "reasoning", "vision"]
    );
    assert_eq!(
        got["acme/json"].capabilities,
        ["chat", "json_schema", "reasoning"]
    );
}

#[test]
fn unroutable_entries_are_skipped_not_the_page() {
    let mut image_only = entry("acme/painter", "0.000001", "0.000001");
    image_only["architecture"]["output_modalities"] = json!(["image"]);
    let mut no_context = entry("acme/nocontext", "0.000001", "0.000001");
    no_context["context_length"] = Value::Null;
    no_context["top_provider"] = json!({});
    let mut top_context = entry("acme/top", "0.000001", "0.000001");
    top_context["context_length"] = Value::Null;
    let data = [
        entry("../../etc/passwd", "0", "0"),
        entry("has space/x", "0", "0"),
        entry("openrouter/auto", "-1", "-1"),
        json!({"id": "acme/unpriced", "context_length": 1000}),
        json!({"id": 7}),
        image_only,
        no_context,
        top_context,
        entry("acme/ok", "0.000001", "0.000001"),
        entry("acme/ok", "0.000009", "0.000009"),
    ];
    let body = json!({ "data": data }).to_string();
    let mut entries = Entries::new();
    let mut tally = Tally::default();
    read_page(body.as_bytes(), &url(), &mut entries, &mut tally).expect("page");
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["acme/top", "acme/ok"],
        "top_provider.context_length is the fallback"
    );
    assert_eq!(entries["acme/top"].context_window, 32768);
    assert_eq!(
        entries["acme/ok"].backends[0].input_cost, 1.0,
        "first one kept"
    );
    assert_eq!(tally.skipped, 8);
    let e = read_page(b"{\"models\": []}", &url(), &mut entries, &mut tally)
        .expect_err("not a model list");
    assert!(
        e.to_string().starts_with("not an OpenRouter model list"),
        "{e}"
    );
}

#[test]
fn a_page_stops_at_total_count_and_the_model_bound() {
    let body = json!({
        "data": [entry("a/one", "0", "0")],
        "links": {"next": "/api/v1/models?offset=1"},
        "total_count": 1
    })
    .to_string();
    let mut entries = Entries::new();
    let next = read_page(body.as_bytes(), &url(), &mut entries, &mut Tally::default());
    assert_eq!(next.expect("page"), None, "all listed");

    let many: Vec<Value> = (0..MAX_MODELS + 5)
        .map(|i| entry(&format!("a/m{i}"), "0", "0"))
        .collect();
    let body = json!({"data": many, "links": {"next": "?offset=9999"}}).to_string();
    let mut entries = Entries::new();
    let mut tally = Tally::default();
    let next = read_page(body.as_bytes(), &url(), &mut entries, &mut tally);
    assert_eq!(next.expect("page"), None, "bound reached");
    assert_eq!((tally.beyond_bound, tally.skipped), (5, 0));
    assert_eq!(entries.len(), MAX_MODELS);
}

const YAML: &str = r#"
providers:
  - {name: local, base_url: "http://127.0.0.1:9/v1"}
models:
  gpt4:
    display_name: GPT-4 (ours)
    tier: premium
    context_window: 8192
    aliases: [fast]
    backends:
      - {provider: openai, model_id: gpt-4o, priority: 1, input_cost: 2.5, output_cost: 10}
      - {provider: openrouter, model_id: anthropic/claude, priority: 2, input_cost: 3, output_cost: 15}
"#;

fn yaml() -> ModelsConfig {
    ModelsConfig::parse(Path::new("m.yml"), YAML).expect("valid")
}

#[test]
fn yaml_wins_where_both_define_a_model() {
    let catalog = parse(&[
        entry("openai/gpt-4", "0.00003", "0.00006"),
        entry("anthropic/claude", "0.000001", "0.000001"),
        entry("fast", "0", "0"),
        entry("gpt4", "0", "0"),
        entry("openai/gpt-4o", "0", "0"),
        entry("auto", "0", "0"),
    ]);
    assert_eq!(catalog.len(), 6);
    let merged = merge(&yaml(), &catalog);
    assert_eq!(
        merged.models.keys().collect::<Vec<_>>(),
        ["gpt4", "openai/gpt-4"],
        "name, alias, openrouter model_id, provider/model_id pin and auto stay YAML's"
    );
    assert_eq!(merged.models["gpt4"], yaml().models["gpt4"], "untouched");
    assert_eq!(
        merged.models["gpt4"].backends[1].input_cost, 3.0,
        "the YAML price of an OpenRouter model, not the catalog's"
    );
}

#[test]
fn exact_catalog_names_win_over_provider_paths() {
    let catalog = parse(&[
        entry("openai/gpt-4", "0.00003", "0.00006"),
        entry("openai/gpt-4o", "0", "0"),
    ]);
    let env = Env::from_pairs([("OPENROUTER_API_KEY", "k"), ("OPENAI_API_KEY", "o")]);
    let reg = build_registry(&yaml(), &catalog, &env, &HashMap::new(), None);
    let Some(Target::Model {
        model,
        only_backend,
    }) = reg.resolve("openai/gpt-4")
    else {
        panic!("openai/gpt-4 resolves");
    };
    assert_eq!(
        model.name, "openai/gpt-4",
        "the catalog model, not the openai provider"
    );
    assert_eq!(only_backend, None);
    assert_eq!(model.backends[0].provider, PROVIDER);
    assert!(reg.servable(&model));
    assert!(
        matches!(
            reg.resolve("openai/gpt-4o"),
            Some(Target::Model { ref model, only_backend: Some(0) }) if model.name == "gpt4"
        ),
        "a YAML pin still pins the YAML backend"
    );
    assert!(matches!(
        reg.resolve("openrouter/openai/gpt-4"),
        Some(Target::Model { ref model, only_backend: Some(0) }) if model.name == "openai/gpt-4"
    ));
    assert!(matches!(reg.resolve("auto"), Some(Target::Auto(None))));
}

#[test]
fn rebuilding_with_a_catalog_keeps_instances_and_circuits() {
    let env = Env::from_pairs([("OPENROUTER_API_KEY", "k")]);
    let catalog = parse(&[entry("openai/gpt-4", "0.00003", "0.00006")]);
    let first = build_registry(&yaml(), &catalog, &env, &HashMap::new(), None);
    let backend = &first.models["openai/gpt-4"].backends[0];
    backend
        .circuit
        .failure(1, std::time::Duration::from_secs(60));
    let overrides = HashMap::from([(PROVIDER.to_owned(), 7i64)]);
    let second = build_registry(&yaml(), &catalog, &env, &overrides, Some(&first));
    let again = &second.models["openai/gpt-4"].backends[0];
    assert_eq!(again.circuit.state(), backend.circuit.state());
    assert_ne!(
        again.circuit.state().as_str(),
        "closed",
        "the open circuit carried over"
    );
    assert_eq!(
        again.priority, 7,
        "priority overrides apply to catalog backends"
    );
    assert!(Arc::ptr_eq(
        &first.providers[PROVIDER].instances[0],
        &second.providers[PROVIDER].instances[0]
    ));
    let without = build_registry(&yaml(), &Entries::new(), &env, &overrides, Some(&second));
    assert!(!without.models.contains_key("openai/gpt-4"));
}

#[test]
fn the_catalog_is_off_without_a_key_or_interval() {
    let hour = Duration::from_secs(3600);
    let reg = |env: &[(&str, &str)]| Registry::build(&yaml(), &Env::from_pairs(env.to_vec()));
    assert!(!LiveCatalog::for_registry(&reg(&[]), hour).enabled());
    assert!(LiveCatalog::for_registry(&reg(&[("OPENROUTER_API_KEYS", "a,b")]), hour).enabled());
    let keyed = reg(&[("OPENROUTER_API_KEY", "a")]);
    assert!(!LiveCatalog::for_registry(&keyed, Duration::ZERO).enabled());
    assert_eq!(LiveCatalog::new(None).health(), None);
}

#[test]
fn health_and_schedule_follow_refreshes() {
    let hour = Duration::from_secs(3600);
    let live = LiveCatalog::new(Some(hour));
    let h = live.health().expect("on");
    assert_eq!((h.models, h.refreshed_ms, h.last_error), (0, None, None));
    let within = |d: Duration, base: Duration| d >= base.mul_f64(0.9) && d <= base.mul_f64(1.1);
    live.failed(&CatalogError::Status {
        status: 500,
        message: String::new(),
    });
    assert!(within(live.schedule(hour), RETRY_BASE), "first retry soon");
    live.failed(&CatalogError::TooLarge);
    assert!(
        within(live.schedule(hour), RETRY_BASE * 2),
        "then backs off"
    );
    let h = live.health().expect("on");
    assert_eq!(
        h.last_error.as_deref(),
        Some("a catalog page is larger than 16777216 bytes")
    );
    assert!(h.next_refresh_ms.is_some_and(|t| t > now_ms()));
    assert!(
        within(
            live.schedule(Duration::from_secs(1)),
            Duration::from_secs(1)
        ),
        "capped"
    );
    live.entries
        .store(Arc::new(parse(&[entry("a/b", "0", "0")])));
    live.succeeded();
    assert!(within(live.schedule(hour), hour));
    let h = live.health().expect("on");
    assert_eq!((h.models, h.last_error), (1, None));
    assert!(h.refreshed_ms.is_some());
}

/// A local catalog server: pages of one model each, recording the bearer tokens it saw.
async fn serve(mode: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/v1/models",
            get(
                move |State(seen): State<Arc<Mutex<Vec<String>>>>,
                      Query(q): Query<HashMap<String, String>>,
                      headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().expect("lock").push(auth);
                    let offset: usize = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
                    match mode {
                        "down" => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            json!({"error": {"code": 503, "message": "Service Unavailable"}})
                                .to_string(),
                        ),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            (StatusCode::OK, String::new())
                        }
                        "empty" => (StatusCode::OK, json!({"data": []}).to_string()),
                        _ => {
                            let ids = ["a/one", "b/two", "c/three"];
                            let next = (offset + 1 < ids.len())
                                .then(|| format!("/api/v1/models?offset={}&limit=1", offset + 1));
                            let page = json!({
                                "data": [entry(ids[offset.min(2)], "0.000001", "0.000002")],
                                "links": {"next": next},
                                "total_count": ids.len()
                            });
                            (StatusCode::OK, page.to_string())
                        }
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

const TIMEOUTS: Timeouts = Timeouts {
    first_byte: Duration::from_millis(300),
    idle: Duration::from_millis(300),
    total: Duration::from_secs(5),
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn fetch_follows_pages_with_the_key_as_bearer() {
    let (base, seen) = serve("pages").await;
    let key = Secret::new("sk-or-canary-123456");
    let entries = fetch(&client(), &base, &key, TIMEOUTS)
        .await
        .expect("catalog");
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["a/one", "b/two", "c/three"]
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec!["Bearer sk-or-canary-123456"; 3],
        "one request per page, each with the key"
    );
}

#[tokio::test]
async fn fetch_failures_say_what_went_wrong_without_the_key() {
    let key = Secret::new("sk-or-canary-123456");
    let (base, _) = serve("down").await;
    let e = fetch(&client(), &base, &key, TIMEOUTS)
        .await
        .expect_err("503");
    assert_eq!(e.to_string(), "HTTP 503: Service Unavailable");
    let (base, _) = serve("empty").await;
    let e = fetch(&client(), &base, &key, TIMEOUTS)
        .await
        .expect_err("empty");
    assert_eq!(
        e.to_string(),
        "the catalog lists no usable model (0 entries skipped)"
    );
    let (base, _) = serve("slow").await;
    let e = fetch(&client(), &base, &key, TIMEOUTS)
        .await
        .expect_err("slow");
    assert_eq!(e.to_string(), "no answer within 300ms");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/v1", l.local_addr().expect("addr"))
    };
    let e = fetch(&client(), &dead, &key, TIMEOUTS)
        .await
        .expect_err("refused");
    let text = e.to_string();
    assert!(text.starts_with("request failed: "), "{text}");
    assert!(!text.contains("canary"), "{text}");
}

#[test]
fn catalog_models_are_requestable_but_marked_as_from_the_catalog() {
    let catalog = parse(&[entry("vendor/free-model", "0", "0")]);
    let env = Env::from_pairs([("OPENROUTER_API_KEY", "k"), ("OPENAI_API_KEY", "o")]);
    let reg = build_registry(&yaml(), &catalog, &env, &HashMap::new(), None);
    let Some(Target::Model { model, .. }) = reg.resolve("vendor/free-model") else {
        panic!("a catalog model is requestable by name");
    };
    assert_eq!(model.backends[0].model_id, "vendor/free-model");
    assert_eq!(model.backends[0].provider, "openrouter");
    // The router leaves such models out of `auto` (router::strategy_tests).
    assert!(model.from_catalog);
    assert!(
        reg.models
            .values()
            .filter(|m| m.name != model.name)
            .all(|m| !m.from_catalog)
    );
}
