//! OpenRouter request semantics on the real binary: `models`, `route`, each `provider`
//! preference, `transforms: ["middle-out"]`, attribution headers, and the endpoints listing.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::{Start, chat_body};
use crate::routing::{served, start, yaml};

fn with(model: &str, extra: Value) -> Value {
    let mut body = chat_body(model);
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

fn fail(model: &str) -> Rule {
    Rule::for_model(
        model,
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    )
}

#[tokio::test]
async fn the_models_list_is_tried_in_order_after_the_model() {
    let fake = FakeProvider::start().await;
    for m in ["priority-p1", "priority-p2", "priority-p3"] {
        fake.script(fail(m));
    }
    let b = start(&fake).await;
    let r = b
        .post(
            "/v1/chat/completions",
            &with("priority", json!({"models": ["nope-model", "cheapest"]})),
        )
        .await;
    assert_eq!(
        served(&r),
        "p2-0/cheapest-p2",
        "unknown fallbacks are skipped"
    );
    assert_eq!(r.header("x-aibroker-model"), "cheapest");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["trace"]["fallbacks"], json!(["nope-model", "cheapest"]));
    // `models` alone: the first is the model.
    let r = b
        .post(
            "/v1/chat/completions",
            &json!({"models": ["priority", "cheapest"], "route": "fallback",
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(served(&r), "p2-0/cheapest-p2");
    // Never forwarded upstream.
    let last = fake.calls().pop().expect("a call");
    for field in ["models", "route", "provider", "transforms"] {
        assert!(
            last.body.get(field).is_none(),
            "{field} leaked: {}",
            last.body
        );
    }
    let bad = b
        .post(
            "/v1/chat/completions",
            &with("priority", json!({"route": "random"})),
        )
        .await;
    assert!(bad.assert_error(400, "invalid_request").contains("route"));
    let bad = b
        .post(
            "/v1/chat/completions",
            &with("priority", json!({"models": "cheapest"})),
        )
        .await;
    assert!(bad.assert_error(400, "invalid_request").contains("models"));
}

#[tokio::test]
async fn provider_order_only_ignore_and_allow_fallbacks() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    let post = |extra: Value| {
        let body = with("priority", json!({"provider": extra}));
        let b = &b;
        async move { b.post("/v1/chat/completions", &body).await }
    };
    // Without preferences priority picks p2 (level 1, cheaper than p1).
    assert_eq!(served(&post(json!({})).await), "p2-0/priority-p2");
    assert_eq!(
        served(&post(json!({"order": ["p3", "p1"]})).await),
        "p3-0/priority-p3"
    );
    assert_eq!(
        served(&post(json!({"only": ["P1"]})).await),
        "p1-0/priority-p1"
    );
    assert_eq!(
        served(&post(json!({"ignore": ["p2"]})).await),
        "p1-0/priority-p1"
    );
    // order falls back to the others unless allow_fallbacks is false.
    fake.script(fail("priority-p3"));
    assert_eq!(
        served(&post(json!({"order": ["p3"]})).await),
        "p2-0/priority-p2"
    );
    fake.clear_calls();
    let r = post(json!({"order": ["p3"], "allow_fallbacks": false})).await;
    r.assert_error(502, "upstream_failed");
    assert_eq!(fake.count(None, Some("priority-p2")), 0);
    assert_eq!(fake.count(None, Some("priority-p1")), 0);
    let r = post(json!({"only": ["nobody"]})).await;
    assert!(r.assert_error(400, "invalid_request").contains("provider"));
    let r = post(json!({"sort": "fastest"})).await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn provider_sort_max_price_and_require_parameters() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    // sort: price overrides the model's strategy (round_robin would alternate p1/p2).
    for _ in 0..4 {
        let r = b
            .post(
                "/v1/chat/completions",
                &with("round_robin", json!({"provider": {"sort": "price"}})),
            )
            .await;
        assert_eq!(served(&r), "p2-0/round_robin-p2");
    }
    // sort: {by: throughput} (current form) is accepted and traced.
    let r = b
        .post(
            "/v1/chat/completions",
            &with(
                "round_robin",
                json!({"provider": {"sort": {"by": "throughput"}}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["trace"]["strategy"], "sort:throughput");
    // max_price (USD per million tokens, numbers or strings): p1 costs 1/2, p2 0.5/1, p3 3/9.
    let r = b
        .post(
            "/v1/chat/completions",
            &with(
                "priority",
                json!({"provider": {"max_price": {"prompt": "0.6"}, "ignore": []}}),
            ),
        )
        .await;
    assert_eq!(served(&r), "p2-0/priority-p2");
    let r = b
        .post(
            "/v1/chat/completions",
            &with(
                "priority",
                json!({"provider": {"max_price": {"completion": 5}, "ignore": ["p2"]}}),
            ),
        )
        .await;
    assert_eq!(
        served(&r),
        "p1-0/priority-p1",
        "p3's completion price is over the cap"
    );
    // require_parameters: p2 declares [temperature, max_tokens]; `seed` rules it out.
    let body = with(
        "cheapest",
        json!({"seed": 7, "temperature": 0.2, "provider": {"require_parameters": true}}),
    );
    assert_eq!(
        served(&b.post("/v1/chat/completions", &body).await),
        "p1-0/cheapest-p1"
    );
    let body = with(
        "cheapest",
        json!({"temperature": 0.2, "provider": {"require_parameters": true}}),
    );
    assert_eq!(
        served(&b.post("/v1/chat/completions", &body).await),
        "p2-0/cheapest-p2"
    );
    let body = with("cheapest", json!({"seed": 7}));
    assert_eq!(
        served(&b.post("/v1/chat/completions", &body).await),
        "p2-0/cheapest-p2",
        "without require_parameters declared parameters do not filter"
    );
}

#[tokio::test]
async fn middle_out_trims_a_conversation_to_the_context_window() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    let filler = "word ".repeat(60);
    let mut messages = vec![json!({"role": "system", "content": "be brief"})];
    for i in 0..12 {
        messages.push(json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("{i}: {filler}")}));
    }
    messages.push(json!({"role": "user", "content": "the question"}));
    let body = json!({"model": "tiny", "messages": messages});
    // Too long for a 200-token model without the transform: refused before any call.
    let r = b.post("/v1/chat/completions", &body).await;
    assert!(
        r.assert_error(400, "invalid_request")
            .contains("context window")
    );
    assert_eq!(fake.call_count(), 0);
    for extra in [
        json!({"transforms": ["middle-out"]}),
        json!({"plugins": [{"id": "context-compression"}]}),
    ] {
        let mut body = body.clone();
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = b.post("/v1/chat/completions", &body).await;
        assert_eq!(r.status, 200, "{extra}: {}", r.text);
        let sent = fake.calls().pop().expect("call").body;
        let got = sent["messages"].as_array().expect("messages");
        assert!(got.len() < 14 && got.len() >= 2, "{}", got.len());
        assert_eq!(got[0]["content"], "be brief");
        assert_eq!(got[got.len() - 1]["content"], "the question");
        assert!(
            sent.get("transforms").is_none() && sent.get("plugins").is_none(),
            "{sent}"
        );
    }
    let r = b
        .post(
            "/v1/chat/completions",
            &with("tiny", json!({"transforms": ["compress"]})),
        )
        .await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn attribution_headers_reach_openrouter_only() {
    let fake = FakeProvider::start().await;
    let b = Start::new(yaml(&fake.base_url()))
        .env("THREE_KEYS", "k1,k2,k3")
        .env("OPENROUTER_API_KEY", "or-key")
        .env("OPENROUTER_BASE_URL", &fake.base_url())
        .env("OPENROUTER_HTTP_REFERER", "https://default.example")
        .env("OPENROUTER_X_TITLE", "Default App")
        .env("OPENROUTER_CATALOG_INTERVAL", "0")
        .start()
        .await;
    let header = |call: &hero_aibroker_testkit::Call, name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let r = b.post("/v1/chat/completions", &chat_body("routed")).await;
    assert_eq!(served(&r), "openrouter-0/vendor/routed");
    let call = fake.calls().pop().expect("call");
    assert_eq!(
        header(&call, "http-referer").as_deref(),
        Some("https://default.example")
    );
    assert_eq!(header(&call, "x-title").as_deref(), Some("Default App"));
    let r = b
        .post_with(
            "/v1/chat/completions",
            &json!({"model": "routed", "messages": [{"role": "user", "content": "hi"}], "plugins": [{"id": "web"}]}),
            &[("HTTP-Referer", "https://client.example"), ("X-Title", "Client App")],
        )
        .await;
    assert_eq!(r.status, 200);
    let call = fake.calls().pop().expect("call");
    assert_eq!(
        header(&call, "http-referer").as_deref(),
        Some("https://client.example")
    );
    assert_eq!(header(&call, "x-title").as_deref(), Some("Client App"));
    assert_eq!(
        call.body["plugins"],
        json!([{"id": "web"}]),
        "plugins reach OpenRouter"
    );
    let r = b
        .post_with(
            "/v1/chat/completions",
            &with("priority", json!({"plugins": [{"id": "web"}]})),
            &[("HTTP-Referer", "https://client.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    let call = fake.calls().pop().expect("call");
    assert_eq!(
        header(&call, "http-referer"),
        None,
        "not for other providers"
    );
    assert!(call.body.get("plugins").is_none(), "nor OpenRouter plugins");
}

#[tokio::test]
async fn endpoints_list_every_backend_with_price_and_health() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    let r = b.get("/v1/models/priority/endpoints").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let eps = r.json["data"]["endpoints"]
        .as_array()
        .expect("endpoints")
        .clone();
    assert_eq!(r.json["data"]["id"], "priority");
    assert_eq!(eps.len(), 3);
    let p2 = eps.iter().find(|e| e["provider_name"] == "p2").expect("p2");
    assert_eq!(p2["pricing"]["prompt"], "0.0000005");
    assert_eq!(p2["pricing"]["completion"], "0.000001");
    assert_eq!(p2["context_length"], 8192);
    assert_eq!(
        p2["supported_parameters"],
        json!(["temperature", "max_tokens"])
    );
    assert_eq!(p2["status"], 0);
    b.rpc("providers.disable", json!({"instance": "p3-0"}))
        .await;
    let r = b.get("/v1/models/p1/priority-p1/endpoints").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p3 = r.json["data"]["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["provider_name"] == "p3").cloned())
        .expect("p3");
    assert_eq!(p3["status"], -2, "{p3}");
    assert_eq!(p3["instances"][0]["state"], "disabled");
    b.get("/v1/models/nope/endpoints")
        .await
        .assert_error(404, "model_not_found");
}

/// An OpenRouter drop-in: through `/api/v1` (OpenRouter's base path) a request to a model
/// served by OpenRouter gets OpenRouter's reply byte for byte (JSON, and every stream event),
/// and OpenRouter receives the client's `provider` object — the broker's own provider names
/// taken out (it applied those), the sub-provider names and `data_collection`,
/// `quantizations`, `zdr` as sent. A plain backend never sees the object.
#[tokio::test(flavor = "multi_thread")]
async fn openrouter_replies_pass_verbatim_and_provider_preferences_reach_it() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Reasoning));
    let yaml = format!(
        r#"
providers:
  - {{name: fake, base_url: "{}", api_key_env: FAKE_KEYS}}
models:
  pinned:
    display_name: Pinned
    tier: standard
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-pinned, priority: 1, input_cost: 1, output_cost: 2}}
      - {{provider: openrouter, model_id: acme/pinned, priority: 2, input_cost: 1, output_cost: 2}}
"#,
        fake.base_url()
    );
    let b = Start::new(yaml)
        .env("OPENROUTER_API_KEY", "sk-or-test-0123456789")
        .env("OPENROUTER_BASE_URL", &fake.openrouter_url())
        .env("OPENROUTER_CATALOG_INTERVAL", "0")
        .start()
        .await;
    // The models list reads like OpenRouter's (per-token price strings, modalities, …) and
    // keeps the broker's own fields.
    let models = b.get("/api/v1/models").await;
    assert_eq!(models.status, 200, "{}", models.text);
    let pinned = models.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "pinned")
        .expect("pinned listed")
        .clone();
    assert_eq!(pinned["pricing"]["prompt"], "0.000001", "{pinned}");
    assert_eq!(pinned["pricing"]["completion"], "0.000002", "{pinned}");
    assert_eq!(pinned["context_length"], 8192, "{pinned}");
    assert_eq!(pinned["architecture"]["input_modalities"], json!(["text"]));
    assert_eq!(pinned["architecture"]["modality"], "text->text");
    assert!(
        pinned["supported_parameters"]
            .as_array()
            .expect("params")
            .contains(&json!("max_tokens"))
    );
    assert_eq!(pinned["top_provider"]["context_length"], 8192);
    assert_eq!(pinned["name"], "Pinned");
    assert_eq!(pinned["tier"], "standard", "the broker's own fields stay");
    assert_eq!(pinned["backends"].as_array().map(Vec::len), Some(2));

    let prefs = json!({
        "only": ["DeepInfra"],
        "order": ["fake", "DeepInfra"],
        "ignore": ["Together"],
        "data_collection": "deny",
        "quantizations": ["fp8"],
        "zdr": true
    });
    let body = with("pinned", json!({"provider": prefs}));
    let direct_body = with("acme/pinned", json!({}));
    let client = reqwest::Client::new();
    let direct = client
        .post(format!("{}/chat/completions", fake.openrouter_url()))
        .bearer_auth("sk-or-test-0123456789")
        .json(&direct_body)
        .send()
        .await
        .expect("direct")
        .bytes()
        .await
        .expect("body");
    fake.clear_calls();

    // `only: ["DeepInfra"]` names an OpenRouter sub-provider: only OpenRouter may serve.
    let r = b.post("/api/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "openrouter-0");
    assert_eq!(
        r.text.as_bytes(),
        &direct[..],
        "OpenRouter's reply, byte for byte"
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "only OpenRouter was called");
    assert_eq!(
        calls[0].body["provider"],
        json!({"only": ["DeepInfra"], "order": ["DeepInfra"], "ignore": ["Together"],
               "data_collection": "deny", "quantizations": ["fp8"], "zdr": true}),
        "the broker's own name `fake` is taken out of order; the rest as sent"
    );
    // The row charges OpenRouter's own figure for the request; the list price is kept beside.
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["cost_usd"], r.json["usage"]["cost"], "{row}");
    assert!(row["list_cost_usd"].as_f64().is_some(), "{row}");

    // Streamed: every event as OpenRouter sent it.
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let mut direct_stream = direct_body.clone();
    direct_stream["stream"] = json!(true);
    let direct = client
        .post(format!("{}/chat/completions", fake.openrouter_url()))
        .bearer_auth("sk-or-test-0123456789")
        .json(&direct_stream)
        .send()
        .await
        .expect("direct")
        .text()
        .await
        .expect("body");
    let s = b.stream("/api/v1/chat/completions", &stream_body).await;
    assert!(s.ended_with_done(), "{:?}", s.events);
    let data = |text: &str| -> Vec<String> {
        text.split("\n\n")
            .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
            .filter(|d| !d.is_empty())
            .collect()
    };
    let got: Vec<String> = s
        .events
        .iter()
        .map(|(d, _)| d.clone())
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(got, data(&direct), "every event verbatim");

    // Without `only`, the plain backend answers and never sees the object.
    fake.clear_calls();
    let r = b
        .post(
            "/api/v1/chat/completions",
            &with(
                "pinned",
                json!({"provider": {"order": ["fake"], "zdr": true}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "fake-0");
    let calls = fake.calls();
    assert!(
        calls[0].body.get("provider").is_none(),
        "{:?}",
        calls[0].body
    );
    assert!(r.json["x_aibroker"].is_object(), "{}", r.text);
}
