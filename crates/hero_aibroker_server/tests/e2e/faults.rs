//! The fault matrix of issue 4, each with its ledger row checked: a rate-limited key, a
//! refused key, a refused connection and a timing-out backend (circuit opens; calls counted at
//! the fake). Stream faults (first-event error, cut, client disconnect) are in `streams`,
//! all-keys-cooling with and without capacity wait in `routing`.

use std::time::Duration;

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::Value;

use crate::harness::{Start, chat_body, dead_url, models_yaml, wait_until};

fn attempts(row: &Value) -> Vec<(String, Option<u64>)> {
    row["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["candidate"].as_str().expect("candidate").to_owned(),
                a["http_status"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rate_limited_key_cools_for_retry_after_and_the_other_answers() {
    let fake = FakeProvider::start().await;
    fake.script(
        Rule::for_key(
            "key-a",
            Behavior::Status {
                status: 429,
                retry_after: Some(20),
            },
        )
        .times(1),
    );
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "fake-1");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(row["status"], "ok");
    assert_eq!(
        attempts(&row),
        [
            ("fake-0/up-solo".to_owned(), Some(429)),
            ("fake-1/up-solo".to_owned(), Some(200))
        ]
    );
    let a = b.instance("fake-0").await;
    assert_eq!(a["state"], "cooldown");
    assert!(
        a["cooldown_seconds"].as_f64().is_some_and(|s| s > 18.0),
        "{a}"
    );
    for _ in 0..4 {
        let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
        assert_eq!(r.header("x-aibroker-provider"), "fake-1");
    }
    assert_eq!(
        fake.count(Some("key-a"), None),
        1,
        "the cooling key is left alone"
    );
}

#[tokio::test]
async fn a_refused_key_is_auth_failed_and_never_tried_again() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_key(
        "key-a",
        Behavior::Status {
            status: 401,
            retry_after: None,
        },
    ));
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.header("x-aibroker-provider"), "fake-1");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(attempts(&row)[0], ("fake-0/up-solo".to_owned(), Some(401)));
    assert_eq!(b.instance("fake-0").await["state"], "auth_failed");
    for _ in 0..4 {
        let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
        let row = b.wait_row(r.header("x-aibroker-request-id")).await;
        assert_eq!(attempts(&row).len(), 1);
        let skipped = row["trace"]["candidates"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["instance"] == "fake-0").cloned())
            .expect("the refused key is in the trace");
        assert!(
            skipped["skipped"]
                .as_str()
                .is_some_and(|s| s.starts_with("auth_failed")),
            "{skipped}"
        );
    }
    assert_eq!(fake.count(Some("key-a"), None), 1);
}

#[tokio::test]
async fn refused_connections_open_the_circuit_and_the_dead_backend_is_skipped() {
    let fake = FakeProvider::start().await;
    // `chat`: provider fake (both keys) on a dead port first, keyless backup on the fake.
    let b = Start::new(models_yaml(&dead_url(), &fake.base_url()))
        .env("CIRCUIT_FAILURES", "2")
        .env("CIRCUIT_OPEN_MS", "60000")
        .start()
        .await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.header("x-aibroker-provider"), "backup-0");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    let first = attempts(&row);
    assert_eq!(first.len(), 3, "{row}");
    assert!(
        row["attempts"][0]["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("connection failed"))
    );
    for _ in 0..3 {
        let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
        assert_eq!(
            r.header("x-aibroker-attempts"),
            "1",
            "the open circuit keeps the dead backend out"
        );
        let row = b.wait_row(r.header("x-aibroker-request-id")).await;
        let dead: Vec<&Value> = row["trace"]["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .filter(|c| c["upstream_model"] == "up-chat")
            .collect();
        assert!(
            !dead.is_empty()
                && dead.iter().all(|c| c["skipped"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("circuit open"))),
            "{row}"
        );
    }
}

#[tokio::test]
async fn timeouts_open_the_circuit_until_one_probe() {
    let slow = FakeProvider::start().await;
    slow.script(Rule::any(Behavior::Hang));
    let ok = FakeProvider::start().await;
    let b = Start::new(models_yaml(&slow.base_url(), &ok.base_url()))
        .env("FAKE_KEYS", "key-a")
        .env("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "200")
        .env("CIRCUIT_FAILURES", "1")
        .env("CIRCUIT_OPEN_MS", "3000")
        .start()
        .await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.header("x-aibroker-provider"), "backup-0");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert!(
        row["attempts"][0]["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("timed out")),
        "{row}"
    );
    assert_eq!(slow.call_count(), 1);
    // The key's own cooldown (1 s after one failure) ends; the circuit (3 s) still holds:
    // the hanging backend gets nothing.
    let cooled = wait_until(Duration::from_secs(10), async || {
        b.instance("fake-0").await["cooldown_seconds"].is_null()
    })
    .await;
    assert!(cooled, "{}", b.instance("fake-0").await);
    assert_eq!(b.circuit("fake", "chat").await["state"], "open");
    for _ in 0..5 {
        let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
        assert_eq!(r.header("x-aibroker-attempts"), "1", "{}", r.text);
        assert_eq!(r.header("x-aibroker-provider"), "backup-0");
    }
    assert_eq!(slow.call_count(), 1);
    b.wait_probe_ready("fake", "chat", "fake-0").await;
    // Half-open: exactly one probe, which times out and opens it again.
    for _ in 0..3 {
        assert_eq!(
            b.post("/v1/chat/completions", &chat_body("chat"))
                .await
                .status,
            200
        );
    }
    let hung = 1;
    assert_eq!(slow.call_count(), hung + 1, "one probe");
}
