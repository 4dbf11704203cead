//! Anthropic Messages on `rest.sock` (JSON and streamed), relayed to an OpenAI-compatible
//! upstream through the translation, with errors in Anthropic's shape and the ledger row
//! saying `messages`.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

/// A broker whose one model, `agent`, may use tools (on `fake`).
pub(crate) async fn agent_broker(fake: &FakeProvider) -> Broker {
    let yaml = format!(
        "providers:\n  - {{name: fake, base_url: \"{}\", api_key_env: FAKE_KEYS}}\nmodels:\n  agent:\n    display_name: Agent\n    tier: standard\n    context_window: 8192\n    capabilities: [tools]\n    backends:\n      - {{provider: fake, model_id: up-agent, priority: 1, input_cost: 1, output_cost: 2}}\n",
        fake.base_url()
    );
    Start::new(yaml).start().await
}

fn ask(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_answered_in_anthropic_shape_and_recorded_as_messages() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/messages", &ask("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json;
    assert_eq!(
        (m["type"].as_str(), m["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(m["model"], "chat");
    assert!(
        m["id"].as_str().is_some_and(|id| id.starts_with("msg_")),
        "{m}"
    );
    assert_eq!(m["content"][0]["type"], "text");
    assert!(
        m["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["usage"]["input_tokens"].as_u64() > Some(0), "{m}");
    assert!(m["usage"]["output_tokens"].as_u64() > Some(0), "{m}");
    assert!(r.header("x-aibroker-provider").starts_with("fake-"));
    // The upstream received a Chat request with the system prompt first.
    let call = &fake.calls()[0];
    assert_eq!(
        call.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["endpoint"], "messages", "{row}");
    assert_eq!(row["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_come_back_as_tool_use_blocks() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = agent_broker(&fake).await;
    let mut req = ask("agent");
    req["tools"] = json!([{"name": "get_current_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}]);
    let r = b.post("/v1/messages", &req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let uses: Vec<&Value> = r.json["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter(|c| c["type"] == "tool_use")
        .collect();
    assert!(!uses.is_empty(), "{}", r.text);
    assert!(
        uses.iter()
            .all(|u| u["input"].is_object() && u["id"].is_string()),
        "{}",
        r.text
    );
    assert_eq!(r.json["stop_reason"], "tool_use");
    assert_eq!(
        fake.calls()[0].body["tools"][0]["function"]["name"],
        "get_current_weather",
        "the tools went upstream as functions"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_come_in_anthropic_shape() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let kind = |v: &Value| v["error"]["type"].as_str().map(str::to_owned);
    let mut no_max = ask("chat");
    no_max.as_object_mut().expect("object").remove("max_tokens");
    let r = b.post("/v1/messages", &no_max).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["type"], "error");
    assert_eq!(kind(&r.json).as_deref(), Some("invalid_request_error"));
    assert!(r.text.contains("max_tokens"), "{}", r.text);

    let r = b.post("/v1/messages", &ask("no-such-model")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(kind(&r.json).as_deref(), Some("not_found_error"));

    fake.script(Rule::any(Behavior::Status {
        status: 500,
        retry_after: None,
    }));
    let r = b.post("/v1/messages", &ask("solo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(kind(&r.json).as_deref(), Some("api_error"));
    assert!(!r.header("x-aibroker-request-id").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn count_tokens_answers_the_prompt_estimate() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let mut short = ask("chat");
    short.as_object_mut().expect("object").remove("max_tokens");
    let mut long = short.clone();
    long["messages"][0]["content"] = json!("word ".repeat(400));
    let a = b.post("/v1/messages/count_tokens", &short).await;
    let z = b.post("/v1/messages/count_tokens", &long).await;
    assert_eq!((a.status, z.status), (200, 200), "{} {}", a.text, z.text);
    let (a, z) = (
        a.json["input_tokens"].as_u64(),
        z.json["input_tokens"].as_u64(),
    );
    assert!(a > Some(0) && z > a, "{a:?} {z:?}");
    assert_eq!(fake.call_count(), 0, "counting calls no upstream");
}

/// The event names and payloads of a named-event stream (Anthropic Messages, Responses).
pub(crate) async fn stream_events(
    b: &Broker,
    path: &str,
    body: &Value,
) -> (u16, String, Vec<(String, Value)>) {
    let r = b
        .client
        .post(Broker::url(path))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = r.text().await.expect("body");
    let events = text
        .split("\n\n")
        .filter_map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).expect("json")))
        })
        .collect();
    (status, kind, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_message_follows_anthropic_event_order() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let mut req = ask("chat");
    req["stream"] = json!(true);
    let (status, kind, events) = stream_events(&b, "/v1/messages", &req).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or(""))
        .collect();
    assert!(text.len() > 20, "{text}");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 30, "{delta}");
    let rows = b.wait_rows(1).await;
    assert_eq!(
        (rows[0]["endpoint"].as_str(), rows[0]["stream"].as_bool()),
        (Some("messages"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_tool_calls_become_tool_use_blocks_with_whole_arguments() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = agent_broker(&fake).await;
    let mut req = ask("agent");
    req["stream"] = json!(true);
    req["tools"] = json!([{"name": "get_current_weather", "input_schema": {"type": "object"}}]);
    let (status, _, events) = stream_events(&b, "/v1/messages", &req).await;
    assert_eq!(status, 200);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .map(|(_, d)| d)
        .collect();
    assert!(!starts.is_empty(), "{events:?}");
    for s in starts {
        let json: String = events
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["index"] == s["index"])
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap_or(""))
            .collect();
        assert!(
            serde_json::from_str::<Value>(&json).is_ok_and(|v| v.is_object()),
            "{json}"
        );
    }
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_reasoning_streams_as_a_thinking_block_with_its_signature() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Reasoning));
    let b = Start::with_fake(&fake).start().await;
    let mut req = ask("chat");
    req["stream"] = json!(true);
    req["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let (status, _, events) = stream_events(&b, "/v1/messages", &req).await;
    assert_eq!(status, 200);
    let first = events
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .expect("a block");
    assert_eq!(first["content_block"]["type"], "thinking");
    let signatures: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["signature"].as_str())
        .collect();
    assert_eq!(
        signatures,
        ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."]
    );
    // The thinking setting has no Chat form: left out, and said so in the trace.
    let rows = b.wait_rows(1).await;
    assert_eq!(
        rows[0]["trace"]["dropped"],
        json!(["thinking"]),
        "{}",
        rows[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn earlier_thinking_goes_on_to_openrouter_and_is_noted_where_it_cannot() {
    let fake = FakeProvider::start().await;
    let url = fake.base_url();
    let yaml = format!(
        "providers:\n  - {{name: router, kind: openrouter, base_url: \"{url}\", api_key_env: FAKE_KEYS}}\n  - {{name: plain, base_url: \"{url}\"}}\nmodels:\n  via-router:\n    display_name: R\n    tier: standard\n    context_window: 8192\n    backends:\n      - {{provider: router, model_id: up-router, priority: 1, input_cost: 1, output_cost: 1}}\n  via-plain:\n    display_name: P\n    tier: standard\n    context_window: 8192\n    backends:\n      - {{provider: plain, model_id: up-plain, priority: 1, input_cost: 1, output_cost: 1}}\n"
    );
    let b = Start::new(yaml).start().await;
    let ask = |model: &str| {
        json!({"model": model, "max_tokens": 64, "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "add them", "signature": "EqQBCgIYAh+/=="},
                {"type": "text", "text": "4"}]},
            {"role": "user", "content": "and 3+3?"}]})
    };
    let r = b.post("/v1/messages", &ask("via-router")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.calls()[0].body["messages"][1];
    assert_eq!(
        sent["reasoning_details"][0]["signature"], "EqQBCgIYAh+/==",
        "{sent}"
    );
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert!(
        row["trace"].get("dropped").is_none(),
        "nothing left out: {row}"
    );

    let r = b.post("/v1/messages", &ask("via-plain")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = &fake.calls()[1].body["messages"][1];
    assert!(
        sent.get("reasoning_details").is_none() && sent.get("reasoning").is_none(),
        "{sent}"
    );
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(
        row["trace"]["dropped"],
        json!(["thinking blocks (reasoning_details)"]),
        "{row}"
    );
}
