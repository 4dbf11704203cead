//! Fallback before the first byte: next key, next backend; none on a client error.

use std::time::Duration;

use hero_aibroker_testkit::{Behavior, CHAT_TEXT, FakeProvider, Rule};

use crate::harness::*;

fn status(s: u16, retry_after: Option<u64>) -> Behavior {
    Behavior::Status {
        status: s,
        retry_after,
    }
}

/// A fresh broker (so no cooldown from an earlier case) whose first key fails with `failing`:
/// the request tries key-a (fake-0, first in rotation), then key-b (fake-1) answers.
async fn assert_second_key_answers(failing: Behavior, stream: bool) {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_key("key-a", failing.clone()));
    let b = Start::with_fake(&fake)
        .env("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "400")
        .start()
        .await;
    let (text, provider, attempts) = if stream {
        let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
        assert!(s.ended_with_done(), "{failing:?}: {:?}", s.events);
        (
            s.text(),
            s.headers["x-aibroker-provider"]
                .to_str()
                .expect("h")
                .to_owned(),
            s.headers["x-aibroker-attempts"]
                .to_str()
                .expect("h")
                .to_owned(),
        )
    } else {
        let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
        assert_eq!(r.status, 200, "{failing:?}: {}", r.text);
        (
            r.json["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            r.header("x-aibroker-provider").to_owned(),
            r.header("x-aibroker-attempts").to_owned(),
        )
    };
    assert_eq!(text, CHAT_TEXT, "{failing:?}");
    assert_eq!(provider, "fake-1", "{failing:?}: key-b is fake-1");
    assert_eq!(attempts, "2", "{failing:?}");
    assert_eq!(fake.count(Some("key-a"), None), 1, "{failing:?}");
    assert_eq!(fake.count(Some("key-b"), None), 1, "{failing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_to_the_next_key() {
    for (failing, stream) in [
        (status(429, Some(1)), false),
        (status(500, None), false),
        (status(503, None), true),
        (status(401, None), false),
        (Behavior::Hang, false),
        (Behavior::Hang, true),
        // A stream whose first event is an error has sent nothing to the client: fail over.
        (Behavior::ErrorEvent, true),
    ] {
        assert_second_key_answers(failing, stream).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_to_the_next_backend() {
    let fake = FakeProvider::start().await;
    let backup = FakeProvider::start().await;
    let b = Start::new(models_yaml(&fake.base_url(), &backup.base_url()))
        .start()
        .await;
    fake.script(Rule::for_model("up-chat", status(502, None)));
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["provider"], "backup");
    assert_eq!(r.json["model"], "up-backup");
    assert_eq!(
        r.header("x-aibroker-attempts"),
        "3",
        "both keys, then the backup"
    );
    assert_eq!(fake.count(None, Some("up-chat")), 2);
    assert_eq!(backup.count(None, Some("up-backup")), 1);
    let cost = r.json["usage"]["cost"].as_f64().expect("cost");
    assert!(
        (cost - expected_cost(1.0, 1.0)).abs() < 1e-12,
        "priced at the backup's prices"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_when_the_connection_is_refused() {
    let fake = FakeProvider::start().await;
    // Primary provider on a dead port, backup is the fake.
    let yaml = models_yaml(&dead_url(), &fake.base_url());
    let b = Start::new(yaml).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["provider"], "backup");
    let s = b.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert_eq!(s.text(), CHAT_TEXT);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_are_not_retried() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    fake.script(Rule::any(status(400, None)));
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json["error"]["message"].is_string(),
        "the upstream's error body is passed on: {}",
        r.text
    );
    assert_eq!(fake.call_count(), 1, "no fallback on 400");
    assert_eq!(r.header("x-aibroker-attempts"), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_everything_fails_the_error_lists_the_attempts() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("MAX_ATTEMPTS", "3")
        .env("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "300")
        .env("RETRY_AFTER_CAP_MS", "100")
        .start()
        .await;

    fake.script(Rule::any(status(500, None)));
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    let msg = r.assert_error(502, "upstream_failed");
    assert!(
        msg.contains("fake-0/up-chat: HTTP 500") && msg.contains("fake-1/up-chat: HTTP 500"),
        "{msg}"
    );
    assert!(
        msg.contains("backup-0/up-backup: connection failed"),
        "{msg}"
    );

    fake.clear_rules();
    fake.script(Rule::any(status(429, Some(7))));
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    let msg = r.assert_error(503, "upstream_rate_limited");
    assert!(msg.contains("HTTP 429"), "{msg}");
    assert_eq!(r.header("retry-after"), "7");

    fake.clear_rules();
    fake.script(Rule::any(Behavior::Hang));
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    let msg = r.assert_error(504, "upstream_timeout");
    assert!(
        msg.contains("timed out waiting for the first byte"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_candidate_is_retried_after_a_backoff() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("FAKE_KEYS", "only")
        .env("RETRY_AFTER_CAP_MS", "300")
        .start()
        .await;
    fake.script(Rule::any(status(503, Some(1))).times(1));
    let t0 = std::time::Instant::now();
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-attempts"), "2");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "waited Retry-After (capped at 300 ms)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_after_bytes_ends_with_one_error_event_and_no_done() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    fake.script(Rule::any(Behavior::DropAfterChunks(3)));
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert_eq!(s.status, 200);
    assert!(!s.ended_with_done());
    assert!(
        !s.broken && s.rest.is_empty(),
        "the broker ends its own stream cleanly"
    );
    let events = s.json_events();
    assert_eq!(
        events.len(),
        4,
        "3 relayed chunks + 1 error event: {:?}",
        s.events
    );
    assert_eq!(events[3]["error"]["code"], "stream_interrupted");
    assert_eq!(
        fake.call_count(),
        1,
        "no fallback after bytes reached the client"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_deadline_bounds_all_attempts() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::Hang));
    let b = Start::with_fake(&fake)
        .env("REQUEST_DEADLINE_MS", "400")
        .start()
        .await;
    let t0 = std::time::Instant::now();
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    let msg = r.assert_error(504, "upstream_timeout");
    assert!(msg.contains("REQUEST_DEADLINE_MS"), "{msg}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the 60 s first-byte timeout did not apply"
    );
    assert_eq!(fake.call_count(), 1, "the deadline stopped the plan");
}
