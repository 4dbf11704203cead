//! The happy paths: chat (JSON and stream), completions, embeddings, models, passthrough.

use std::time::Duration;

use hero_aibroker_testkit::{
    Behavior, CHAT_TEXT, COMPLETION_TOKENS, EMBEDDING_PROMPT_TOKENS, FakeProvider, PROMPT_TOKENS,
    Rule,
};
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn chat_json_names_backend_and_prices_usage() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["message"]["content"], CHAT_TEXT);
    assert_eq!(r.json["provider"], "fake");
    assert_eq!(r.json["model"], "up-chat", "the upstream model is reported");
    assert_eq!(r.json["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(r.json["usage"]["completion_tokens"], COMPLETION_TOKENS);
    let cost = r.json["usage"]["cost"].as_f64().expect("cost");
    assert!(
        (cost - expected_cost(IN_COST, OUT_COST)).abs() < 1e-12,
        "{cost}"
    );
    assert!(r.header("x-aibroker-provider").starts_with("fake-"));
    assert_eq!(r.header("x-aibroker-attempts"), "1");
    assert_eq!(fake.count(None, Some("up-chat")), 1);
    // The alias and the provider/model_id form reach the same backend.
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat-alias"))
            .await
            .json["model"],
        "up-chat"
    );
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("fake/up-solo"))
            .await
            .json["model"],
        "up-solo"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_stream_relays_chunks_usage_and_done() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let s = b.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert_eq!(s.status, 200);
    assert!(
        s.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    assert_eq!(s.text(), CHAT_TEXT);
    assert!(s.ended_with_done(), "{:?}", s.events);
    let events = s.json_events();
    assert!(
        events
            .iter()
            .all(|e| e["provider"] == "fake" && e["model"] == "up-chat")
    );
    let usage = events
        .iter()
        .find(|e| e["usage"].is_object())
        .expect("usage chunk relayed");
    assert_eq!(usage["usage"]["completion_tokens"], COMPLETION_TOKENS);
    let cost = usage["usage"]["cost"].as_f64().expect("cost");
    assert!((cost - expected_cost(IN_COST, OUT_COST)).abs() < 1e-12);
    // The broker asked upstream for usage although the client did not.
    let call = &fake.calls()[0];
    assert!(call.stream);
    assert_eq!(call.body["stream_options"]["include_usage"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_chunks_are_forwarded_as_they_arrive() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(150))));
    let b = Start::with_fake(&fake).start().await;
    let s = b.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert!(s.ended_with_done());
    let first = s.events.first().expect("events").1;
    let last = s.events.last().expect("events").1;
    // Many chunks 150 ms apart: had the broker buffered, all would arrive together at the end.
    assert!(s.events.len() > 5);
    assert!(
        last - first >= Duration::from_millis(150 * (s.events.len() as u64 - 2)),
        "{first:?}..{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_embeddings() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let r = b
        .post(
            "/v1/completions",
            &json!({"model": "legacy", "prompt": "Say hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "text_completion");
    assert_eq!(r.json["choices"][0]["text"], CHAT_TEXT);
    assert_eq!(r.json["model"], "up-legacy");
    assert!(r.json["usage"]["cost"].as_f64().expect("cost") > 0.0);

    let s = b
        .stream(
            "/v1/completions",
            &json!({"model": "legacy", "prompt": "Say hi", "stream": true}),
        )
        .await;
    assert!(s.ended_with_done());
    let text: String = s
        .json_events()
        .iter()
        .filter_map(|e| e["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, CHAT_TEXT);

    let r = b
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": "hello"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "list");
    assert!(
        r.json["data"][0]["embedding"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(r.json["usage"]["prompt_tokens"], EMBEDDING_PROMPT_TOKENS);
    let cost = r.json["usage"]["cost"].as_f64().expect("cost");
    assert!((cost - EMBEDDING_PROMPT_TOKENS as f64 * 0.5 / 1e6).abs() < 1e-15);
    assert_eq!(fake.count(None, Some("up-embed")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn models_list_and_get() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let r = b.get("/v1/models").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["object"], "list");
    let ids: Vec<&str> = r.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["chat", "solo", "embed", "legacy", "unkeyed"]);
    let unkeyed = &r.json["data"][4];
    assert_eq!(unkeyed["servable"], false, "groq has no key");
    assert_eq!(r.json["data"][0]["servable"], true);
    assert_eq!(
        r.json["data"][0]["backends"][0]["instances"], 2,
        "two FAKE_KEYS"
    );
    let r = b.get("/v1/models/chat-alias").await;
    assert_eq!(r.json["id"], "chat");
    assert_eq!(r.json["context_window"], 8192);
    let r = b.get("/health").await;
    assert_eq!(r.json["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_pass_through_untouched() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let mut body = chat_body("chat");
    body["vendor_knob"] = json!({"nested": [1, 2, {"x": null}], "s": "ü\u{1F600}"});
    body["temperature"] = json!(0.25);
    body["messages"][0]["name"] = json!("alice");
    let r = b.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    let got = &fake.calls()[0].body;
    assert_eq!(got["vendor_knob"], body["vendor_knob"]);
    assert_eq!(got["temperature"], 0.25);
    assert_eq!(got["messages"], body["messages"]);
    assert_eq!(got["model"], "up-chat", "only the model is rewritten");
    assert!(
        got.get("stream_options").is_none(),
        "no stream options on a JSON request"
    );
}
