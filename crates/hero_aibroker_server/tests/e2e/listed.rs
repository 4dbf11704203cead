//! Providers set by one URL: a local OpenAI-compatible server (`LOCAL_BASE_URL`, its models from
//! its own `/v1/models`) and the demo provider of `scripts/start.sh --demo` (`DEMO_BASE_URL`,
//! behind every model of the file).

use std::time::Duration;

use hero_aibroker_testkit::FakeProvider;
use serde_json::Value;

use crate::harness::{Broker, Start, chat_body, wait_until};

fn entry<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["data"].as_array()?.iter().find(|m| m["id"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_server_is_picked_up_from_local_base_url_with_its_own_models() {
    let fake = FakeProvider::start().await;
    let local = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("LOCAL_BASE_URL", &local.base_url())
        .start()
        .await;
    // The fake lists OpenAI's documented example: model-id-0, model-id-1, model-id-2.
    let listed = wait_until(Duration::from_secs(10), async || {
        entry(&b.get("/v1/models").await.json, "model-id-2").is_some()
    })
    .await;
    assert!(listed, "{}", b.get("/v1/models").await.text);
    let models = b.get("/v1/models").await.json;
    let m = entry(&models, "model-id-0").expect("listed");
    assert_eq!(m["servable"], true, "{m}");
    assert_eq!(m["tier"], "free", "{m}");
    assert_eq!(m["backends"][0]["provider"], "local", "{m}");
    assert_eq!(m["backends"][0]["input_cost"], 0.0, "{m}");
    assert!(m.get("demo").is_none(), "{m}");

    let r = b
        .post("/v1/chat/completions", &chat_body("model-id-0"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-aibroker-provider").starts_with("local"),
        "{:?}",
        r.headers
    );
    assert_eq!(local.count(None, Some("model-id-0")), 1);
    assert_eq!(fake.call_count(), 0);
    let rows = b.wait_rows(1).await;
    assert_eq!(rows[0]["provider"], "local-0", "{}", rows[0]);
    assert_eq!(
        rows[0]["cost_usd"], 0.0,
        "a local model is free: {}",
        rows[0]
    );

    // The file's own models are untouched.
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(fake.count(None, Some("up-chat")), 1);
    assert_eq!(
        local.count(None, Some("up-chat")),
        0,
        "chat is not a local model"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_provider_serves_every_model_after_its_real_backends_and_says_so() {
    let fake = FakeProvider::start().await;
    let demo = FakeProvider::start().await;
    let b: Broker = Start::with_fake(&fake)
        .env("DEMO_BASE_URL", &demo.base_url())
        .start()
        .await;
    let models = b.get("/v1/models").await.json;
    // `unkeyed` has only a groq backend and no groq key: the demo alone serves it.
    let unkeyed = entry(&models, "unkeyed").expect("listed");
    assert_eq!(unkeyed["servable"], true, "{unkeyed}");
    assert_eq!(unkeyed["demo"], true, "{unkeyed}");
    let demo_backend = unkeyed["backends"]
        .as_array()
        .and_then(|bs| bs.iter().find(|x| x["provider"] == "demo"))
        .expect("a demo backend");
    assert_eq!(demo_backend["model_id"], "unkeyed");
    assert_eq!(demo_backend["input_cost"], 0.1, "priced as the model");
    // `chat` has a keyed backend: served for real, not labelled demo.
    let chat = entry(&models, "chat").expect("listed");
    assert!(chat.get("demo").is_none(), "{chat}");

    let r = b.post("/v1/chat/completions", &chat_body("unkeyed")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-aibroker-provider").starts_with("demo"),
        "{:?}",
        r.headers
    );
    assert_eq!(demo.count(None, Some("unkeyed")), 1);

    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-aibroker-provider"),
        "fake-0",
        "the real backend first"
    );
    assert_eq!(demo.call_count(), 1, "the demo is not asked for chat");
}
