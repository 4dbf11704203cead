//! Bounds: the in-flight cap, the idle timeout mid-stream, and client disconnects.

use std::time::Duration;

use futures_util::StreamExt;
use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_in_flight_cap_requests_get_a_fast_503() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model("up-solo", Behavior::Hang));
    let b = Start::with_fake(&fake)
        .env("MAX_CONCURRENT_REQUESTS", "1")
        .start()
        .await;
    let client = b.client.clone();
    let hung = tokio::spawn(async move {
        let _ = client
            .post(Broker::url("/v1/chat/completions"))
            .json(&chat_body("solo"))
            .send()
            .await;
    });
    while fake.call_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    let msg = r.assert_error(503, "overloaded");
    assert!(msg.contains("maximum of 1"), "{msg}");
    assert_eq!(r.header("retry-after"), "1");
    assert_eq!(
        b.get("/health").await.json["in_flight"],
        1,
        "health is not capped"
    );
    // Refusals are counted and logged (at most once a second), not silent.
    let metrics = b.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"hero_aibroker_refused_total{reason="overloaded"} 1"#),
        "{metrics}"
    );
    assert!(b.logs().contains("requests refused"), "{}", b.logs());
    hung.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_goes_silent_ends_with_an_idle_timeout_event() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_secs(3))));
    let b = Start::with_fake(&fake)
        .env("UPSTREAM_IDLE_TIMEOUT_MS", "300")
        .start()
        .await;
    let t0 = std::time::Instant::now();
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "did not wait for the slow upstream"
    );
    let events = s.json_events();
    assert_eq!(
        events.len(),
        2,
        "first chunk, then the error: {:?}",
        s.events
    );
    assert!(events[0]["choices"].is_array());
    assert_eq!(events[1]["error"]["code"], "upstream_timeout");
    assert!(!s.ended_with_done());
}

/// The idle timeout counts from the last bytes, not from the start: a stream whose every gap is
/// shorter than `UPSTREAM_IDLE_TIMEOUT_MS` runs to `[DONE]` however long it lasts in all (the
/// relay's one timer is re-armed when it fires after bytes came).
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_slower_in_all_than_the_idle_timeout_but_never_silent_completes() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(40))));
    let b = Start::with_fake(&fake)
        .env("UPSTREAM_IDLE_TIMEOUT_MS", "150")
        .start()
        .await;
    let t0 = std::time::Instant::now();
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert!(
        t0.elapsed() > Duration::from_millis(600),
        "the stream should outlast the idle timeout several times: {:?}",
        t0.elapsed()
    );
    assert!(s.ended_with_done(), "{:?}", s.events);
    assert!(
        s.json_events().iter().all(|e| e.get("error").is_none()),
        "{:?}",
        s.events
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_cancels_the_request() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model("up-solo", Behavior::Hang));
    fake.script(Rule::for_model(
        "up-chat",
        Behavior::SlowChunks(Duration::from_millis(200)),
    ));
    let mut b = Start::with_fake(&fake).start().await;

    // A JSON request waiting on a hung upstream: the client gives up.
    let quick = reqwest::Client::builder()
        .unix_socket(b.sock.clone())
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = quick
        .post(Broker::url("/v1/chat/completions"))
        .json(&chat_body("solo"))
        .send()
        .await;
    assert!(r.is_err(), "client timed out");

    // A stream: read the first chunk, then drop the connection.
    let resp = b.open_stream("chat").await;
    let mut body = resp.bytes_stream();
    assert!(body.next().await.is_some());
    drop(body);

    tokio::time::sleep(Duration::from_millis(500)).await;
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let logs = b.logs();
    let cancelled: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("status=\"client_cancelled\""))
        .collect();
    assert_eq!(
        cancelled.len(),
        2,
        "both requests logged as cancelled:\n{logs}"
    );
    assert!(cancelled.iter().any(|l| l.contains("model=solo")), "{logs}");
    assert!(
        cancelled
            .iter()
            .any(|l| l.contains("model=chat") && l.contains("provider=\"fake-")),
        "{logs}"
    );
}

/// Sends a request head announcing a body of `len` bytes and only `sent` of them, then keeps
/// the connection open: a slow (or stalled) upload.
async fn slow_upload(sock: &std::path::Path, len: usize, sent: usize) -> tokio::net::UnixStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&vec![b' '; sent]).await.expect("part");
    s
}

/// Uploads hold an in-flight permit from the moment their headers are read: slow bodies count
/// against the cap (so a flood of them holds no memory beyond it), and each is cut with 408 at
/// the body-read timeout, after which the broker serves again.
#[tokio::test(flavor = "multi_thread")]
async fn the_in_flight_permit_is_taken_before_the_body_is_read() {
    use tokio::io::AsyncReadExt;
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("MAX_CONCURRENT_REQUESTS", "2")
        .env("BODY_READ_TIMEOUT_MS", "3000")
        .start()
        .await;
    let mut uploads = Vec::new();
    for _ in 0..2 {
        uploads.push(slow_upload(&b.sock, 100_000, 10).await);
    }
    // Both uploads are admitted (they show among the running requests) before a byte of
    // their bodies arrived: the next request finds no permit.
    let admitted = wait_until(Duration::from_secs(10), async || {
        b.rpc("requests.list", serde_json::json!([]))
            .await
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    assert!(admitted, "two stalled uploads must hold both permits");
    b.post("/v1/chat/completions", &chat_body("chat"))
        .await
        .assert_error(503, "overloaded");
    assert_eq!(fake.call_count(), 0);
    for mut s in uploads {
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer))
            .await
            .expect("cut at the body-read timeout")
            .expect("read");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
