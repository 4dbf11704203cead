//! Stream integrity: only `[DONE]` (or a clean end after a `finish_reason`) is a success. A cut
//! or an early end after bytes reached the client ends with one error event, no `[DONE]` and a
//! `partial` row; an error before any byte fails over; a client that leaves cancels the
//! upstream call (counted at the fake provider) and leaves a `client_cancelled` row.

use std::time::Duration;

use futures_util::StreamExt;
use hero_aibroker_testkit::{Behavior, CHAT_TEXT, FakeProvider, Rule};
use serde_json::Value;

use crate::harness::*;

/// The OpenRouter recording the fake replays for [`Behavior::Reasoning`].
const REASONING_STREAM: &str =
    include_str!("../../../hero_aibroker_testkit/fixtures/openrouter/chat-stream-reasoning.sse");

/// Relayed events that carried text: what the broker counts when no usage came.
fn text_events(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count()
}

/// `n` relayed chunks, then one `stream_interrupted` error event, no `[DONE]`, a clean close;
/// the ledger row is `partial` with what reached the client.
async fn assert_partial(b: &Broker, behavior: &Behavior, n: usize) {
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert_eq!(s.status, 200, "{behavior:?}");
    assert!(!s.ended_with_done(), "{behavior:?}: {:?}", s.events);
    assert!(
        !s.broken && s.rest.is_empty(),
        "{behavior:?}: the broker ends its own stream cleanly"
    );
    let events = s.json_events();
    assert_eq!(events.len(), n + 1, "{behavior:?}: {:?}", s.events);
    assert!(
        events[..n].iter().all(|e| e["choices"].is_array()),
        "{behavior:?}: {events:?}"
    );
    let error = &events[n]["error"];
    assert_eq!(error["code"], "stream_interrupted", "{behavior:?}");
    assert!(error["type"].is_string() && error["message"].is_string());

    let row = b.wait_row(s.header("x-aibroker-request-id")).await;
    assert_eq!(row["status"], "partial", "{behavior:?}: {row}");
    assert_eq!(row["http_status"], 200, "{row}");
    assert_eq!(row["attempts"].as_array().map(Vec::len), Some(1), "{row}");
    assert_eq!(row["provider"], s.header("x-aibroker-provider"), "{row}");
    // No usage chunk came: the row counts the chunks that carried text (a lower bound).
    let counted = text_events(&events);
    assert!(counted > 0);
    assert_eq!(row["completion_tokens"], counted, "{row}");
    assert_eq!(row["error"], error["message"], "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_after_n_chunks_is_partial() {
    let fake = FakeProvider::start().await;
    let behavior = Behavior::DropAfterChunks(4);
    fake.script(Rule::any(behavior.clone()));
    let b = Start::with_fake(&fake).start().await;
    assert_partial(&b, &behavior, 4).await;
    assert_eq!(fake.call_count(), 1, "no fallback after bytes went out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_ends_without_done_or_finish_is_partial() {
    let fake = FakeProvider::start().await;
    let behavior = Behavior::EndWithoutDone(5);
    fake.script(Rule::any(behavior.clone()));
    let b = Start::with_fake(&fake).start().await;
    assert_partial(&b, &behavior, 5).await;
    assert_eq!(fake.call_count(), 1, "no fallback after bytes went out");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_as_the_first_event_falls_over_to_the_next_key() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_key("key-a", Behavior::ErrorEvent));
    let b = Start::with_fake(&fake).start().await;
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert_eq!(s.status, 200);
    assert!(s.ended_with_done(), "{:?}", s.events);
    assert_eq!(s.text(), CHAT_TEXT);
    assert!(s.json_events().iter().all(|e| e.get("error").is_none()));
    assert_eq!(s.header("x-aibroker-attempts"), "2");
    assert_eq!(
        (
            fake.count(Some("key-a"), None),
            fake.count(Some("key-b"), None)
        ),
        (1, 1)
    );

    let row = b.wait_row(s.header("x-aibroker-request-id")).await;
    assert_eq!(row["status"], "ok", "{row}");
    let attempts = row["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{row}");
    let first = attempts[0]["outcome"].as_str().expect("outcome");
    assert!(
        first.contains("error event") && first.contains("The server had an error"),
        "{first}"
    );
    assert_eq!(attempts[1]["outcome"], "ok", "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_deltas_and_extended_usage_pass_through() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Reasoning));
    let b = Start::with_fake(&fake).start().await;

    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert!(s.ended_with_done(), "{:?}", s.events);
    let events = s.json_events();
    // Every recorded chunk reaches the client with its choices (deltas, reasoning_details,
    // native_finish_reason) untouched.
    let recorded: Vec<Value> = REASONING_STREAM
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("fixture JSON"))
        .collect();
    assert_eq!(events.len(), recorded.len());
    for (got, want) in events.iter().zip(&recorded) {
        assert_eq!(got["choices"], want["choices"]);
        assert_eq!(got["upstream_provider"], "Anthropic");
    }
    let reasoning: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["reasoning"].as_str())
        .collect();
    assert_eq!(reasoning, "The user asks for the capital of France.");
    let usage = &events.last().expect("usage chunk")["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 21);
    // What the upstream says it cost is what is charged; the list price stays in the row.
    assert_eq!(usage["upstream_cost"], 0.000681, "OpenRouter's own cost");
    assert_eq!(usage["cost"], 0.000681, "the upstream's figure is charged");
    let list = (42.0 * IN_COST + 37.0 * OUT_COST) / 1e6;
    let envelope = &events.last().expect("usage chunk")["x_aibroker"];
    assert_eq!(envelope["provider"], "fake-0", "{envelope}");
    assert_eq!(envelope["model"], "up-solo", "{envelope}");
    assert_eq!(envelope["cost"], 0.000681, "{envelope}");
    assert_eq!(envelope["attempts"], 1, "{envelope}");
    assert_eq!(
        envelope["request_id"].as_str(),
        Some(s.header("x-aibroker-request-id"))
    );

    let row = b.wait_row(s.header("x-aibroker-request-id")).await;
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(
        (&row["prompt_tokens"], &row["completion_tokens"]),
        (&Value::from(42), &Value::from(37))
    );
    assert_eq!(row["reasoning_tokens"], 21, "{row}");
    assert_eq!(row["cached_tokens"], 0, "{row}");
    assert_eq!(row["upstream_cost_usd"], 0.000681, "{row}");
    assert_eq!(row["cost_usd"], 0.000681, "{row}");
    assert!(
        (row["list_cost_usd"].as_f64().expect("list cost") - list).abs() < 1e-12,
        "{row}"
    );

    // The JSON reply keeps the same fields.
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["message"]["content"], "Hello there!");
    let usage = &r.json["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(usage["upstream_cost"], 0.0012);
    assert_eq!(usage["cost"], 0.0012);
    assert_eq!(r.json["x_aibroker"]["cost"], 0.0012, "{}", r.text);
    assert_eq!(
        r.json["x_aibroker"]["provider"].as_str(),
        Some(r.header("x-aibroker-provider")),
        "{}",
        r.text
    );
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(
        (&row["cached_tokens"], &row["reasoning_tokens"]),
        (&Value::from(2), &Value::from(5))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_cancels_the_upstream_call() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(200))));
    let b = Start::with_fake(&fake).start().await;
    let resp = b
        .client
        .post(Broker::url("/v1/chat/completions"))
        .json(&stream_body("solo"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-aibroker-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("a first event").expect("ok");
    assert!(first.starts_with(b"data: {"));
    drop(body);

    // The whole stream would take ~7 s; the upstream call ends at once instead.
    assert!(
        eventually(Duration::from_secs(2), || fake.cancelled() == 1).await,
        "the upstream response was abandoned (cancelled = {})",
        fake.cancelled()
    );
    let row = b.wait_row(&id).await;
    assert_eq!(row["status"], "client_cancelled", "{row}");
    assert_eq!(row["http_status"], 499, "{row}");
    assert!(
        row["provider"]
            .as_str()
            .is_some_and(|p| p.starts_with("fake-"))
    );
    assert_eq!(fake.call_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_before_the_first_byte_cancels_the_upstream_call() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Hang));
    let b = Start::with_fake(&fake).start().await;
    let quick = reqwest::Client::builder()
        .unix_socket(b.sock.clone())
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = quick
        .post(Broker::url("/v1/chat/completions"))
        .json(&stream_body("solo"))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()), "the client gave up");

    assert!(
        eventually(Duration::from_secs(2), || fake.cancelled() == 1).await,
        "the hung upstream call was dropped (cancelled = {})",
        fake.cancelled()
    );
    let rows = b.wait_rows(1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "client_cancelled", "{}", rows[0]);
    assert_eq!(rows[0]["http_status"], 499, "{}", rows[0]);
    assert_eq!(
        fake.call_count(),
        1,
        "no second attempt for a client that left"
    );
}

/// What one upstream read brought goes out in one write: a whole stream that the fake provider
/// sends at once (35 events, no delay) reaches the client in a few HTTP chunks, not one chunk
/// per event. Read with a raw HTTP/1.1 client so the chunk framing itself is seen.
#[tokio::test(flavor = "multi_thread")]
async fn events_that_arrive_together_leave_in_one_write() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let body = stream_body("solo").to_string();
    let mut sock = tokio::net::UnixStream::connect(&b.sock)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.expect("send");
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.expect("head");
        if line == "\r\n" {
            break;
        }
        assert!(!line.is_empty(), "the connection closed in the head");
    }
    let (mut chunks, mut text) = (0, Vec::new());
    loop {
        line.clear();
        r.read_line(&mut line).await.expect("chunk size");
        let size = usize::from_str_radix(line.trim(), 16).expect("hex chunk size");
        if size == 0 {
            break;
        }
        let mut data = vec![0; size + 2];
        r.read_exact(&mut data).await.expect("chunk");
        text.extend_from_slice(&data[..size]);
        chunks += 1;
    }
    let text = String::from_utf8(text).expect("utf8");
    let events = text.matches("data: ").count();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(events >= 30, "{events} events: {text}");
    assert!(
        chunks <= 4,
        "{events} events that arrived together went out in {chunks} writes"
    );
}
