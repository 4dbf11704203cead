//! The fake provider's OpenRouter catalog: the recording by default, paging, scripted
//! failures, per-model endpoints, and catalog requests kept apart from the call log.

use hero_aibroker_testkit::{FakeProvider, catalog_entry};
use serde_json::{Value, json};

async fn get(url: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn the_default_catalog_is_the_recording_and_is_not_a_call() {
    let p = FakeProvider::start().await;
    let (status, body) = get(&format!("{}/models", p.openrouter_url()), "sk-or").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], "openai/gpt-4");
    assert_eq!(body["data"][0]["pricing"]["prompt"], "0.00003");
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["links"]["next"], Value::Null);
    let calls = p.catalog_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/api/v1/models");
    assert_eq!(calls[0].key.as_deref(), Some("sk-or"));
    assert_eq!(p.call_count(), 0, "catalog requests are not chat calls");

    // The OpenAI side is unchanged, and chat works under the OpenRouter prefix.
    let (_, openai) = get(&format!("{}/models", p.base_url()), "k").await;
    assert_eq!(openai["object"], "list");
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", p.openrouter_url()))
        .json(&json!({"model": "openai/gpt-4", "messages": []}))
        .send()
        .await
        .expect("chat");
    assert_eq!(resp.status(), 200);
    assert_eq!(p.count(None, Some("openai/gpt-4")), 1);
    assert_eq!(p.catalog_calls().len(), 1);
}

#[tokio::test]
async fn catalogs_page_fail_on_demand_and_list_endpoints() {
    let p = FakeProvider::start().await;
    p.set_catalog(json!([
        catalog_entry("a/one", "0.000001", "0.000002"),
        catalog_entry("b/two", "0", "0"),
        catalog_entry("c/three", "0.1", "0.2"),
    ]));
    p.set_catalog_page_size(Some(2));
    let base = p.openrouter_url();
    let (_, first) = get(&format!("{base}/models"), "k").await;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["total_count"], 3);
    let next = first["links"]["next"].as_str().expect("next page");
    assert_eq!(next, "/api/v1/models?offset=2&limit=2");
    let (_, second) = get(&format!("http://{}{next}", p.addr()), "k").await;
    assert_eq!(second["data"][0]["id"], "c/three");
    assert_eq!(second["data"][0]["name"], "Fake: c/three");
    assert_eq!(second["links"]["next"], Value::Null);

    let (status, endpoints) = get(&format!("{base}/models/b/two/endpoints"), "k").await;
    assert_eq!(status, 200);
    assert_eq!(endpoints["data"]["id"], "b/two");
    assert_eq!(endpoints["data"]["endpoints"][0]["model_id"], "b/two");
    assert_eq!(endpoints["data"]["endpoints"][0]["pricing"]["prompt"], "0");
    assert_eq!(endpoints["data"]["endpoints"][0]["provider_name"], "OpenAI");
    let (status, missing) = get(&format!("{base}/models/x/y/endpoints"), "k").await;
    assert_eq!((status, &missing["error"]["code"]), (404, &json!(404)));

    p.fail_catalog(Some(503));
    let (status, body) = get(&format!("{base}/models"), "k").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 503);
    let (status, _) = get(&format!("{base}/models/b/two/endpoints"), "k").await;
    assert_eq!(status, 503);
    p.fail_catalog(None);
    let (status, _) = get(&format!("{base}/models"), "k").await;
    assert_eq!(status, 200);
    assert_eq!(p.catalog_calls().len(), 7);
    assert_eq!(p.call_count(), 0);
}
