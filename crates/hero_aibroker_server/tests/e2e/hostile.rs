//! Hostile upstreams: an absurd `Retry-After` neither panics the request nor cools a key for
//! days, and a key an upstream echoes back never reaches the client, the ledger or the log.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

/// `cooldown_seconds` of each instance of provider `fake`, by instance id.
async fn cooldowns(b: &Broker) -> Vec<(String, Option<f64>)> {
    let list = b.rpc("providers.list", json!([])).await;
    let fake = list
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["name"] == "fake")
        .expect("provider fake")
        .clone();
    fake["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().expect("id").to_owned(),
                i["cooldown_seconds"].as_f64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absurd_retry_after_is_clamped_and_never_panics() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    // u64::MAX seconds is more than a Duration holds (parsing it used to panic the request);
    // a billion seconds is 31 years.
    fake.script(Rule::for_key(
        "key-a",
        Behavior::Status {
            status: 429,
            retry_after: Some(u64::MAX),
        },
    ));
    fake.script(Rule::for_key(
        "key-b",
        Behavior::Status {
            status: 429,
            retry_after: Some(1_000_000_000),
        },
    ));
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert!(
        r.status >= 500,
        "an error answer, not a dropped connection: {}",
        r.text
    );
    assert!(r.json["error"]["code"].is_string(), "{}", r.text);
    assert!(fake.count(Some("key-a"), None) >= 1, "key-a was tried");
    assert!(fake.count(Some("key-b"), None) >= 1, "key-b was tried");
    let cool = cooldowns(&b).await;
    assert_eq!(cool.len(), 2, "{cool:?}");
    for (id, secs) in &cool {
        let secs = secs.unwrap_or_else(|| panic!("{id} is cooling down: {cool:?}"));
        assert!(
            secs <= 3600.0,
            "{id} cools for {secs} s, more than the 1 h cap"
        );
    }
    let b_secs = cool.iter().find(|(id, _)| id == "fake-1").and_then(|c| c.1);
    assert!(
        b_secs.is_some_and(|s| s > 3500.0),
        "a billion seconds is clamped to an hour: {cool:?}"
    );
    // The broker still serves once the fake behaves.
    fake.clear_rules();
    b.rpc("providers.reset", json!({"instance": "fake-0"}))
        .await;
    assert_eq!(
        b.post("/v1/chat/completions", &chat_body("chat"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_an_upstream_echoes_never_reach_client_ledger_or_log() {
    const CANARY: &str = "sk-canary-0123456789abcdef";
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake)
        .env("FAKE_KEYS", CANARY)
        .start()
        .await;

    // A 4xx about the request is passed on, with the echoed key taken out.
    fake.script(Rule::any(Behavior::EchoAuth(400)));
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        !r.text.contains(CANARY),
        "the key reached the client: {}",
        r.text
    );
    assert!(r.text.contains("Bearer ***"), "{}", r.text);

    // A 5xx is retried; the final error lists each attempt's reason, redacted.
    fake.clear_rules();
    fake.script(Rule::any(Behavior::EchoAuth(500)));
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(r.text.contains("HTTP 500"), "{}", r.text);
    assert!(
        !r.text.contains(CANARY),
        "the key reached the client: {}",
        r.text
    );

    let rows = b.wait_rows(2).await;
    let ledger = Value::from(rows).to_string();
    assert!(ledger.contains("Bearer ***"), "{ledger}");
    assert!(
        !ledger.contains(CANARY),
        "the key reached the ledger: {ledger}"
    );
    b.signal("TERM");
    b.wait_exit(std::time::Duration::from_secs(10)).await;
    let logs = b.logs();
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert!(!logs.contains(CANARY), "the key reached the log:\n{logs}");
}

/// `STREAM_MAX_DURATION_MS` bounds a committed stream: one that trickles on past it ends with
/// an error event and no `[DONE]`, and its row says `partial`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_past_its_maximum_duration_is_ended() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(
        std::time::Duration::from_millis(400),
    )));
    let b = Start::with_fake(&fake)
        .env("STREAM_MAX_DURATION_MS", "1000")
        .start()
        .await;
    let s = b.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert_eq!(s.status, 200);
    assert!(!s.ended_with_done(), "{:?}", s.events);
    let events = s.json_events();
    assert!(events.len() >= 2, "some events went out first: {events:?}");
    let last = events.last().expect("events");
    let msg = last["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("STREAM_MAX_DURATION_MS"), "{last}");
    let took = s.events.last().expect("events").1;
    assert!(
        took < std::time::Duration::from_secs(3),
        "ended near its limit: {took:?}"
    );
    let rows = b.wait_rows(1).await;
    assert_eq!(rows[0]["status"], "partial", "{}", rows[0]);
}

/// Upstream replies are bounded too: a JSON body over `UPSTREAM_MAX_BODY_BYTES`, or an SSE
/// event over `UPSTREAM_MAX_EVENT_BYTES`, fails the attempt with a message naming the setting
/// instead of being buffered.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_replies_over_their_caps_fail_the_attempt() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("UPSTREAM_MAX_BODY_BYTES", "100")
        .env("UPSTREAM_MAX_EVENT_BYTES", "64")
        .start()
        .await;
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    let msg = r.assert_error(502, "upstream_failed");
    assert!(msg.contains("UPSTREAM_MAX_BODY_BYTES"), "{msg}");
    let s = b.stream("/v1/chat/completions", &stream_body("solo")).await;
    assert_eq!(s.status, 502, "{:?} {}", s.events, s.rest);
    let text = format!("{:?}{}", s.events, s.rest);
    assert!(text.contains("longer than 64 bytes"), "{text}");
}
