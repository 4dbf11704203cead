//! The native Anthropic provider (`kind: anthropic`) against the fake speaking Anthropic
//! Messages: a Messages client's request and answer pass straight through (unknown fields,
//! beta header and thinking signatures kept); Chat and Responses clients are translated both
//! ways; 529 `overloaded_error` fails over and cools the key; cache reads and writes are
//! priced at their own rates.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;
use crate::messages::stream_events;

/// `claude` on the native provider `anthropic-direct` (keys ANT_KEYS = ant-key), falling
/// back to the OpenAI-compatible `fake`; cache prices set.
async fn broker(fake: &FakeProvider) -> Broker {
    let url = fake.base_url();
    let yaml = format!(
        r#"
providers:
  - {{name: anthropic-direct, kind: anthropic, base_url: "{url}", api_key_env: ANT_KEYS}}
  - {{name: fake, base_url: "{url}", api_key_env: FAKE_KEYS}}
models:
  claude:
    display_name: Claude
    tier: premium
    context_window: 200000
    capabilities: [tools]
    backends:
      - {{provider: anthropic-direct, model_id: claude-up, priority: 1, input_cost: 3.0, output_cost: 15.0, cache_read_cost: 0.3, cache_write_cost: 3.75}}
      - {{provider: fake, model_id: up-fallback, priority: 2, input_cost: 1.0, output_cost: 1.0}}
"#
    );
    Start::new(yaml).env("ANT_KEYS", "ant-key").start().await
}

fn header<'a>(call: &'a hero_aibroker_testkit::Call, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_messages_request_passes_through_untouched() {
    let fake = FakeProvider::start().await;
    let b = broker(&fake).await;
    let req = json!({
        "model": "claude", "max_tokens": 64, "x_future_field": {"keep": [1, 2]},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqQB+/=="},
                                               {"type": "text", "text": "Hello"}]},
            {"role": "user", "content": "Again"}
        ]
    });
    let r = b
        .post_with(
            "/v1/messages",
            &req,
            &[("anthropic-beta", "interleaved-thinking-2025-05-14")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The upstream's answer, as it sent it.
    assert_eq!(r.json["id"], "msg_fake01");
    assert_eq!(r.json["model"], "claude-up");
    assert_eq!(r.json["content"][0]["type"], "text");
    assert!(
        r.json.get("provider").is_none(),
        "nothing added: {}",
        r.text
    );
    let call = &fake.calls()[0];
    assert_eq!(call.path, "/v1/messages");
    assert_eq!(header(call, "x-api-key"), Some("ant-key"));
    assert_eq!(header(call, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        header(call, "anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    let mut sent = call.body.clone();
    assert_eq!(sent["model"], "claude-up");
    sent["model"] = "claude".into();
    assert_eq!(sent, req, "every other field as the client sent it");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["endpoint"], "messages");
    assert_eq!(row["provider"], "anthropic-direct-0");
    assert_eq!(
        (
            row["prompt_tokens"].as_u64(),
            row["completion_tokens"].as_u64()
        ),
        (Some(14), Some(30))
    );
    assert!(
        row["trace"].get("dropped").is_none(),
        "nothing was left out: {row}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_messages_request_keeps_anthropics_events_and_signatures() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Reasoning));
    let b = broker(&fake).await;
    let req = json!({"model": "claude", "max_tokens": 64, "stream": true,
                     "thinking": {"type": "enabled", "budget_tokens": 1024},
                     "messages": [{"role": "user", "content": "27 * 453?"}]});
    let (status, kind, events) = stream_events(&b, "/v1/messages", &req).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/event-stream"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names[names.len() - 1], "message_stop");
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "event names kept");
    }
    let sig: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["signature"].as_str())
        .collect();
    assert_eq!(
        sig,
        ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."]
    );
    let rows = b.wait_rows(1).await;
    assert_eq!(rows[0]["status"], "ok", "{}", rows[0]);
    assert_eq!(rows[0]["completion_tokens"], 30);
    assert_eq!(
        fake.calls()[0].body["thinking"]["budget_tokens"],
        1024,
        "thinking reached Anthropic"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_request_is_translated_to_anthropic_and_back() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = broker(&fake).await;
    let req = json!({"model": "claude", "seed": 7, "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in SF?"}],
                     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let r = b.post("/v1/chat/completions", &req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json["choices"][0]["message"];
    assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
    let args: Value = serde_json::from_str(
        m["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("args"),
    )
    .expect("json");
    assert_eq!(args["location"], "San Francisco, CA");
    assert_eq!(r.json["choices"][0]["finish_reason"], "tool_calls");
    let sent = &fake.calls()[0].body;
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(sent["max_tokens"], 4096);
    // Usage: 472 uncached + 1500 read from the cache, each at its own price.
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["prompt_tokens"], 1972);
    assert_eq!(row["cached_tokens"], 1500);
    let want = (472.0 * 3.0 + 1500.0 * 0.3 + 89.0 * 15.0) / 1e6;
    assert!(
        (row["cost_usd"].as_f64().expect("cost") - want).abs() < 1e-12,
        "{row}"
    );
    assert!(
        (r.json["usage"]["cost"].as_f64().expect("cost") - want).abs() < 1e-12,
        "{}",
        r.text
    );
    // `seed` has no Messages form: left out, and said so in the trace.
    assert!(sent.get("seed").is_none());
    assert_eq!(row["trace"]["dropped"], json!(["seed"]), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_chat_request_gets_chat_chunks_from_anthropic_events() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = broker(&fake).await;
    let s = b
        .stream("/v1/chat/completions", &stream_body("claude"))
        .await;
    assert_eq!(s.status, 200);
    assert!(s.ended_with_done(), "{:?}", s.events);
    let chunks = s.json_events();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(
        serde_json::from_str::<Value>(&args).is_ok_and(|v| v.is_object()),
        "{args}"
    );
    let usage = chunks
        .iter()
        .rev()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 472);
    let rows = b.wait_rows(1).await;
    assert_eq!(rows[0]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn overloaded_529_fails_over_and_cools_the_key() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_key(
        "ant-key",
        Behavior::Status {
            status: 529,
            retry_after: Some(30),
        },
    ));
    let b = broker(&fake).await;
    let req = json!({"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]});
    let r = b.post("/v1/messages", &req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-aibroker-provider"),
        "fake-0",
        "answered by the fallback"
    );
    // Through the OpenAI-compatible fallback the answer is translated to Messages.
    assert_eq!(r.json["type"], "message");
    let inst = b.instance("anthropic-direct-0").await;
    assert_eq!(inst["state"], "cooldown", "{inst}");
    // As long as the upstream's retry-after asked.
    assert!(inst["cooldown_seconds"].as_f64() > Some(20.0), "{inst}");
    // With no fallback left, the client gets Anthropic's overload in Anthropic's shape.
    fake.script(Rule::for_key(
        "key-a",
        Behavior::Status {
            status: 529,
            retry_after: None,
        },
    ));
    fake.script(Rule::for_key(
        "key-b",
        Behavior::Status {
            status: 529,
            retry_after: None,
        },
    ));
    let r = b.post("/v1/messages", &req).await;
    assert!(r.status >= 500, "{} {}", r.status, r.text);
    assert_eq!(r.json["type"], "error", "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responses_request_reaches_anthropic_through_chat_and_streams_back() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = broker(&fake).await;
    let req = json!({"model": "claude", "input": "Weather in SF?", "stream": true, "store": false,
                     "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]});
    let (status, _, events) = stream_events(&b, "/v1/responses", &req).await;
    assert_eq!(status, 200);
    assert_eq!(
        fake.calls()[0].path,
        "/v1/messages",
        "the native upstream got Messages"
    );
    assert_eq!(fake.calls()[0].body["tools"][0]["name"], "get_weather");
    let done = &events.last().expect("events").1;
    assert_eq!(done["type"], "response.completed", "{done}");
    let call = done["response"]["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|o| o["type"] == "function_call")
        .expect("a function call");
    assert_eq!(
        call["call_id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "the recording's id"
    );
    assert!(
        serde_json::from_str::<Value>(call["arguments"].as_str().expect("args"))
            .is_ok_and(|v| v.is_object())
    );
    // The recording's input tokens (no cache use in it), on the Responses wire.
    assert_eq!(done["response"]["usage"]["input_tokens"], 472);
    let rows = b.wait_rows(1).await;
    assert_eq!(
        (rows[0]["endpoint"].as_str(), rows[0]["provider"].as_str()),
        (Some("responses"), Some("anthropic-direct-0"))
    );
}
