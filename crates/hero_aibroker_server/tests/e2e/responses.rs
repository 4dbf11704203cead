//! OpenAI Responses on `rest.sock` (JSON and streamed), relayed to an OpenAI-compatible
//! upstream through the translation: function calls and their outputs keep their call ids,
//! what needs OpenAI's own servers is refused by name, what Chat cannot carry is noted in the
//! request's trace, and the ledger row says `responses`.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;
use crate::messages::{agent_broker, stream_events};

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}])
}

fn script() -> Behavior {
    Behavior::Agent(vec![(
        "get_weather".into(),
        r#"{"location":"Paris"}"#.into(),
    )])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_is_answered_and_recorded_as_responses() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let req = json!({"model": "chat", "instructions": "Be brief.", "input": "Hello",
                     "max_output_tokens": 100, "store": false});
    let r = b.post("/v1/responses", &req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.json;
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert!(
        v["id"].as_str().is_some_and(|id| id.starts_with("resp_")),
        "{v}"
    );
    assert_eq!(v["model"], "chat");
    assert_eq!(v["output"][0]["type"], "message");
    assert!(
        v["output"][0]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(v["usage"]["output_tokens"], 30);
    let sent = &fake.calls()[0].body;
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "Hello"})
    );
    assert_eq!(sent["max_tokens"], 100);
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["endpoint"], "responses", "{row}");
    assert_eq!(
        (
            row["prompt_tokens"].as_u64(),
            row["completion_tokens"].as_u64()
        ),
        (Some(14), Some(30))
    );
    assert!(row["cost_usd"].as_f64() > Some(0.0), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_call_round_trip_keeps_the_call_id() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(script()));
    let b = agent_broker(&fake).await;
    let first = json!({"model": "agent", "input": "Weather in Paris?", "tools": weather_tool()});
    let r = b.post("/v1/responses", &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let call = r.json["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .expect("a function call");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"location":"Paris"}"#);
    let call_id = call["call_id"].as_str().expect("call_id").to_owned();

    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(r.json["output"].as_array().cloned().unwrap_or_default());
    input.push(
        json!({"type": "function_call_output", "call_id": call_id, "output": "18C and sunny"}),
    );
    let second = json!({"model": "agent", "input": input, "tools": weather_tool()});
    let r = b.post("/v1/responses", &second).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["output"][0]["content"][0]["text"],
        "Tool result: 18C and sunny"
    );
    // Upstream: the call and its output linked by the same id.
    let sent = &fake.calls()[1].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], call_id.as_str());
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_response_follows_the_responses_event_order() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::ToolCalls));
    let b = agent_broker(&fake).await;
    let req =
        json!({"model": "agent", "input": "Weather?", "tools": weather_tool(), "stream": true});
    let (status, kind, events) = stream_events(&b, "/v1/responses", &req).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(names[names.len() - 1], "response.completed");
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let done = &events[events.len() - 1].1["response"];
    for (i, item) in done["output"]
        .as_array()
        .expect("output")
        .iter()
        .enumerate()
    {
        assert_eq!(item["type"], "function_call");
        let joined: String = events
            .iter()
            .filter(|(n, d)| {
                n == "response.function_call_arguments.delta" && d["output_index"] == i
            })
            .map(|(_, d)| d["delta"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(joined, item["arguments"].as_str().expect("arguments"));
        assert!(
            serde_json::from_str::<Value>(&joined).is_ok_and(|v| v.is_object()),
            "{joined}"
        );
    }
    assert!(done["usage"]["output_tokens"].as_u64() > Some(0), "{done}");
    let rows = b.wait_rows(1).await;
    assert_eq!(
        (rows[0]["endpoint"].as_str(), rows[0]["stream"].as_bool()),
        (Some("responses"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_needs_stored_responses_or_openai_tools_is_refused_by_name() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    for (req, named) in [
        (
            json!({"model": "chat", "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "chat", "input": "x", "store": true}),
            "store: true",
        ),
        (
            json!({"model": "chat", "input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}),
            "web_search",
        ),
    ] {
        let r = b.post("/v1/responses", &req).await;
        let message = r.assert_error(400, "invalid_request");
        assert!(message.contains(named), "{named}: {message}");
    }
    assert_eq!(fake.call_count(), 0, "nothing refused went upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_chat_cannot_carry_is_noted_in_the_trace() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let req = json!({"model": "chat", "input": "x", "include": ["reasoning.encrypted_content"],
                     "reasoning": {"summary": "auto"}, "prompt_cache_key": "k"});
    let r = b.post("/v1/responses", &req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(fake.calls()[0].body.get("include").is_none());
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(
        row["trace"]["dropped"],
        json!(["reasoning.summary", "include", "prompt_cache_key"]),
        "{row}"
    );
}
