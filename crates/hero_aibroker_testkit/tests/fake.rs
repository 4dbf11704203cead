//! End-to-end checks of the fake provider over real HTTP, as a client (the broker) sees it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hero_aibroker_testkit::{
    Behavior, CHAT_TEXT, COMPLETION_TOKENS, EMBEDDING_PROMPT_TOKENS, FakeProvider, PROMPT_TOKENS,
    Rule,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(p: &FakeProvider, path: &str, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", p.base_url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request reaches the fake provider")
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn chat_stream(model: &str, include_usage: bool) -> Value {
    let mut body = chat(model);
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[tokio::test]
async fn chat_json_reply_echoes_model_text_and_usage() {
    let p = FakeProvider::start().await;
    // Quotes and backslashes must come back JSON-escaped, not break the reply.
    let model = "acme/\"odd\"\\model";
    let resp = post(&p, "/chat/completions", "k1", &chat(model)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers().contains_key("content-length"));
    let body = json_of(resp).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], model);
    assert_eq!(body["choices"][0]["message"]["content"], CHAT_TEXT);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(body["usage"]["completion_tokens"], COMPLETION_TOKENS);
    assert_eq!(
        body["usage"]["total_tokens"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
}

#[tokio::test]
async fn chat_stream_concatenates_to_chat_text_and_usage_only_on_request() {
    let p = FakeProvider::start().await;
    for include_usage in [false, true] {
        let resp = post(
            &p,
            "/chat/completions",
            "k",
            &chat_stream("m-stream", include_usage),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let data = sse_data(&resp.text().await.expect("stream body"));
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
            .collect();
        assert!(chunks.iter().all(|c| c["model"] == "m-stream"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, CHAT_TEXT);
        let usage: Vec<&Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
        if include_usage {
            assert_eq!(usage.len(), 1);
            let last = chunks.last().expect("chunks");
            assert_eq!(last["choices"], json!([]));
            assert_eq!(last["usage"]["prompt_tokens"], PROMPT_TOKENS);
            assert_eq!(last["usage"]["completion_tokens"], COMPLETION_TOKENS);
        } else {
            assert!(usage.is_empty(), "no usage chunk without include_usage");
        }
    }
    let calls = p.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.stream && c.path == "/v1/chat/completions")
    );
    assert_eq!(calls[1].body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn status_429_sends_retry_after_and_rate_limit_headers() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::Status {
        status: 429,
        retry_after: Some(7),
    }));
    let resp = post(&p, "/chat/completions", "k", &chat("m")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "60");
    assert_eq!(resp.headers()["x-ratelimit-reset-tokens"], "6m0s");
    let body = json_of(resp).await;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "tokens");

    p.clear_rules();
    p.script(Rule::any(Behavior::Status {
        status: 429,
        retry_after: None,
    }));
    let resp = post(&p, "/chat/completions", "k", &chat("m")).await;
    assert_eq!(resp.status(), 429);
    assert!(!resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn other_statuses_get_openai_error_bodies() {
    let p = FakeProvider::start().await;
    p.script(
        Rule::any(Behavior::Status {
            status: 503,
            retry_after: Some(2),
        })
        .times(1),
    );
    p.script(
        Rule::any(Behavior::Status {
            status: 401,
            retry_after: None,
        })
        .times(1),
    );
    let resp = post(&p, "/chat/completions", "k", &chat("m")).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    let error = json_of(resp).await["error"].clone();
    assert_eq!(error["type"], "server_error");
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "error.{field} present");
    }
    let resp = post(&p, "/chat/completions", "k", &chat("m")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json_of(resp).await["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn times_limits_a_rule_and_later_rules_take_over() {
    let p = FakeProvider::start().await;
    p.script(
        Rule::any(Behavior::Status {
            status: 500,
            retry_after: None,
        })
        .times(1),
    );
    p.script(
        Rule::any(Behavior::Status {
            status: 502,
            retry_after: None,
        })
        .times(2),
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            post(&p, "/chat/completions", "k", &chat("m"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [500, 502, 502, 200]);
}

#[tokio::test]
async fn rules_match_by_key_and_model_and_first_match_wins() {
    let p = FakeProvider::start().await;
    p.script(Rule::for_key(
        "bad-key",
        Behavior::Status {
            status: 401,
            retry_after: None,
        },
    ));
    p.script(Rule::for_model(
        "broken",
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    ));
    p.script(Rule::any(Behavior::Ok));
    let status = |resp: reqwest::Response| resp.status().as_u16();
    assert_eq!(
        status(post(&p, "/chat/completions", "bad-key", &chat("broken")).await),
        401
    );
    assert_eq!(
        status(post(&p, "/chat/completions", "good", &chat("broken")).await),
        500
    );
    assert_eq!(
        status(post(&p, "/chat/completions", "good", &chat("fine")).await),
        200
    );
    assert_eq!(
        status(
            post(
                &p,
                "/embeddings",
                "bad-key",
                &json!({"model": "e", "input": "x"})
            )
            .await
        ),
        401
    );
}

#[tokio::test]
async fn count_filters_by_key_and_model() {
    let p = FakeProvider::start().await;
    post(&p, "/chat/completions", "a", &chat("x")).await;
    post(&p, "/chat/completions", "a", &chat("y")).await;
    post(&p, "/chat/completions", "b", &chat("x")).await;
    assert_eq!(p.call_count(), 3);
    assert_eq!(p.count(None, None), 3);
    assert_eq!(p.count(Some("a"), None), 2);
    assert_eq!(p.count(None, Some("x")), 2);
    assert_eq!(p.count(Some("b"), Some("x")), 1);
    assert_eq!(p.count(Some("b"), Some("y")), 0);
    let call = &p.calls()[0];
    assert_eq!(call.key.as_deref(), Some("a"));
    assert_eq!(call.model.as_deref(), Some("x"));
    assert_eq!(call.body["messages"][0]["content"], "hi");
    assert!(
        call.headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bearer a")
    );
    p.clear_calls();
    assert_eq!((p.call_count(), p.calls().len()), (0, 0));
}

#[tokio::test]
async fn drop_after_chunks_breaks_the_body_after_n_events() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::DropAfterChunks(3)));
    let resp = post(&p, "/chat/completions", "k", &chat_stream("m", true)).await;
    assert_eq!(resp.status(), 200);
    let mut received = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the client sees a broken body, not a clean end");
    let text = String::from_utf8(received).expect("utf-8");
    let data = sse_data(&text);
    assert_eq!(data.len(), 3, "exactly three events arrived: {text}");
    assert!(!text.contains("[DONE]"));

    // A JSON reply is cut the same way.
    let resp = post(&p, "/chat/completions", "k", &chat("m")).await;
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn hang_reads_the_request_and_never_answers() {
    let p = FakeProvider::start().await;
    p.script(Rule::for_model("stuck", Behavior::Hang));
    let started = Instant::now();
    let result = client()
        .post(format!("{}/chat/completions", p.base_url()))
        .json(&chat("stuck"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let err = result.expect_err("no answer");
    assert!(err.is_timeout(), "timed out: {err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        p.count(None, Some("stuck")),
        1,
        "hung requests are recorded"
    );
    // Other requests are unaffected.
    assert_eq!(
        post(&p, "/chat/completions", "k", &chat("free"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn delay_first_byte_and_slow_chunks_pace_the_reply() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::DelayFirstByte(Duration::from_millis(150))).times(1));
    let started = Instant::now();
    assert_eq!(
        post(&p, "/chat/completions", "k", &chat("m"))
            .await
            .status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));

    p.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(15))));
    let started = Instant::now();
    let resp = post(&p, "/chat/completions", "k", &chat_stream("m", false)).await;
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("ok");
    let first_at = started.elapsed();
    let mut rest = Vec::new();
    while let Some(bytes) = stream.next().await {
        rest.extend_from_slice(&bytes.expect("clean stream"));
    }
    let total = started.elapsed();
    assert_eq!(
        sse_data(std::str::from_utf8(&first).expect("utf-8")).len(),
        1,
        "one event per write"
    );
    let events = 1 + sse_data(std::str::from_utf8(&rest).expect("utf-8")).len();
    // events - 1 gaps of 15 ms after the first event.
    let gaps = Duration::from_millis(15) * u32::try_from(events - 1).expect("few events");
    assert!(
        total - first_at >= gaps,
        "{total:?} - {first_at:?} < {gaps:?}"
    );
}

#[tokio::test]
async fn error_event_streams_one_error_then_ends() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::ErrorEvent));
    let resp = post(&p, "/chat/completions", "k", &chat_stream("m", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let data = sse_data(&resp.text().await.expect("clean end"));
    assert_eq!(data.len(), 1);
    let event: Value = serde_json::from_str(&data[0]).expect("JSON");
    assert_eq!(event["error"]["type"], "server_error");
}

#[tokio::test]
async fn tool_calls_in_json_and_stream() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::ToolCalls));
    let body = json_of(post(&p, "/chat/completions", "k", &chat("tooly")).await).await;
    assert_eq!(body["model"], "tooly");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_current_weather"
    );
    assert_eq!(body["usage"]["prompt_tokens"], PROMPT_TOKENS);

    let resp = post(&p, "/chat/completions", "k", &chat_stream("tooly", true)).await;
    let data = sse_data(&resp.text().await.expect("stream"));
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON"))
        .collect();
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert_eq!(
        chunks.last().expect("usage")["usage"]["completion_tokens"],
        COMPLETION_TOKENS
    );
}

#[tokio::test]
async fn embeddings_completions_and_models_shapes() {
    let p = FakeProvider::start().await;
    let body = json_of(
        post(
            &p,
            "/embeddings",
            "k",
            &json!({"model": "emb", "input": "hello"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "emb");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert!(
        body["data"][0]["embedding"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(body["usage"]["prompt_tokens"], EMBEDDING_PROMPT_TOKENS);

    let body = json_of(
        post(
            &p,
            "/completions",
            "k",
            &json!({"model": "inst", "prompt": "Say"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], "inst");
    assert_eq!(body["choices"][0]["text"], CHAT_TEXT);
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["usage"]["completion_tokens"], COMPLETION_TOKENS);

    let stream = json!({"model": "inst", "prompt": "Say", "stream": true, "stream_options": {"include_usage": true}});
    let data = sse_data(
        &post(&p, "/completions", "k", &stream)
            .await
            .text()
            .await
            .expect("stream"),
    );
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, CHAT_TEXT);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "text_completion" && c["model"] == "inst")
    );
    assert_eq!(
        chunks.last().expect("usage")["usage"]["prompt_tokens"],
        PROMPT_TOKENS
    );

    let resp = client()
        .get(format!("{}/models", p.base_url()))
        .send()
        .await
        .expect("models");
    let body = json_of(resp).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
    assert_eq!(
        p.calls().last().map(|c| c.path.clone()).as_deref(),
        Some("/v1/models")
    );
}

#[tokio::test]
async fn unknown_routes_and_bad_json_get_openai_errors_and_are_recorded() {
    let p = FakeProvider::start().await;
    let resp = post(&p, "/responses", "k", &chat("m")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        json_of(resp).await["error"]["type"],
        "invalid_request_error"
    );

    let resp = client()
        .post(format!("{}/chat/completions", p.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
    assert!(json_of(resp).await["error"]["message"].is_string());
    let calls = p.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body, json!("{not json"));
}

/// Send one request on a raw socket and read the whole response (content-length framed).
async fn raw_exchange(
    reader: &mut BufReader<tokio::net::TcpStream>,
    body: &str,
) -> (String, Vec<u8>) {
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("write");
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("read head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .expect("number");
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await.expect("read body");
    (head, payload)
}

#[tokio::test]
async fn connections_are_kept_alive() {
    let p = FakeProvider::start().await;
    let stream = tokio::net::TcpStream::connect(p.addr())
        .await
        .expect("connect");
    let mut reader = BufReader::new(stream);
    for model in ["one", "two", "three"] {
        let (head, payload) = raw_exchange(&mut reader, &chat(model).to_string()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let body: Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(body["model"], model);
    }
    assert_eq!(p.call_count(), 3);
}

#[tokio::test]
async fn dropping_the_provider_closes_the_port_and_open_requests() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::Hang));
    let addr = p.addr();
    let url = format!("{}/chat/completions", p.base_url());
    let pending = tokio::spawn(async move { client().post(url).json(&chat("m")).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(p);
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the hung request ends when the provider drops")
        .expect("task");
    assert!(result.is_err(), "connection closed without a response");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed"
    );
}

/// Waits up to 2 s for `cancelled()` to reach `n` (the provider notices a closed connection
/// asynchronously); returns the last value seen.
async fn cancelled_after(p: &FakeProvider, n: usize) -> usize {
    let started = Instant::now();
    while p.cancelled() < n && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.cancelled()
}

#[tokio::test]
async fn cancelled_counts_replies_the_client_abandoned() {
    let p = FakeProvider::start().await;
    // Finished replies, scripted cuts and routing errors are not cancellations.
    post(&p, "/chat/completions", "k", &chat_stream("m", true))
        .await
        .text()
        .await
        .expect("whole stream");
    post(&p, "/chat/completions", "k", &chat("m"))
        .await
        .text()
        .await
        .expect("whole reply");
    assert_eq!(post(&p, "/nope", "k", &chat("m")).await.status(), 404);
    p.script(Rule::any(Behavior::DropAfterChunks(2)).times(1));
    assert!(
        post(&p, "/chat/completions", "k", &chat_stream("m", false))
            .await
            .bytes()
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.cancelled(), 0);

    // A slow stream dropped after its first event.
    p.script(Rule::for_model(
        "slow",
        Behavior::SlowChunks(Duration::from_millis(100)),
    ));
    let resp = post(&p, "/chat/completions", "k", &chat_stream("slow", false)).await;
    let mut stream = resp.bytes_stream();
    stream.next().await.expect("a first event").expect("ok");
    drop(stream);
    assert_eq!(cancelled_after(&p, 1).await, 1);

    // A hung request whose client gave up.
    p.script(Rule::for_model("stuck", Behavior::Hang));
    let result = client()
        .post(format!("{}/chat/completions", p.base_url()))
        .json(&chat("stuck"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(result.is_err());
    assert_eq!(cancelled_after(&p, 2).await, 2);

    p.clear_calls();
    assert_eq!(p.cancelled(), 0);
}

#[tokio::test]
async fn reasoning_stream_replays_the_openrouter_recording() {
    let p = FakeProvider::start().await;
    p.script(Rule::any(Behavior::Reasoning));
    // Usage comes whether or not it was asked for, as on OpenRouter.
    let resp = post(&p, "/chat/completions", "k", &chat_stream("or/m", false)).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("clean end");
    assert!(text.starts_with(": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"));
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON event"))
        .collect();
    assert!(events.iter().all(|e| e["model"] == "or/m"));
    let deltas = |field: &str| -> String {
        events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"][field].as_str())
            .collect()
    };
    assert_eq!(
        deltas("reasoning"),
        "The user asks for the capital of France."
    );
    assert_eq!(deltas("content"), "The capital of France is Paris.");
    let usage = &events.last().expect("usage chunk")["usage"];
    assert_eq!(usage["cost"], 0.000681);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 21);
    assert_eq!(usage["total_tokens"], 79);

    let body = json_of(post(&p, "/chat/completions", "k", &chat("or/m")).await).await;
    assert_eq!(body["model"], "or/m");
    assert_eq!(body["provider"], "OpenAI");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(body["usage"]["cost"], 0.0012);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        5
    );
}

#[tokio::test]
async fn end_without_done_stops_cleanly_before_the_finish() {
    let p = FakeProvider::start().await;
    p.script(Rule::for_model("three", Behavior::EndWithoutDone(3)));
    p.script(Rule::for_model("all", Behavior::EndWithoutDone(10_000)));
    let text = post(&p, "/chat/completions", "k", &chat_stream("three", true))
        .await
        .text()
        .await
        .expect("a clean end, not a broken body");
    assert_eq!(sse_data(&text).len(), 3, "{text}");

    // Asking for more events than the reply has still stops before the finish chunk.
    let text = post(&p, "/chat/completions", "k", &chat_stream("all", true))
        .await
        .text()
        .await
        .expect("clean end");
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON event, no [DONE]"))
        .collect();
    let streamed: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, CHAT_TEXT);
    assert!(
        events
            .iter()
            .all(|e| e["choices"][0]["finish_reason"].is_null() && e.get("usage").is_none())
    );

    // JSON: half a document, ended cleanly.
    let body = post(&p, "/chat/completions", "k", &chat("all"))
        .await
        .bytes()
        .await
        .expect("clean end");
    assert!(!body.is_empty());
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(p.cancelled(), 0, "scripted endings are not cancellations");
}
