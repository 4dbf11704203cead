//! Provider instance health: a refused key is not tried again until an operator resets it,
//! rate limits cool a key for at least Retry-After, operators can disable a key, and all of it
//! survives a restart.

use std::time::Duration;

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_is_not_tried_again_until_reset_and_that_survives_a_restart() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_key(
        "key-a",
        Behavior::Status {
            status: 401,
            retry_after: None,
        },
    ));
    let mut b = Start::with_fake(&fake).start().await;
    for _ in 0..6 {
        let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-aibroker-provider"), "fake-1");
    }
    assert_eq!(
        fake.count(Some("key-a"), None),
        1,
        "key-a was tried once, then left out"
    );
    let a = b.instance("fake-0").await;
    assert_eq!(a["state"], "auth_failed");
    assert!(
        a["reason"].as_str().expect("reason").contains("HTTP 401"),
        "{a}"
    );
    assert!(
        !a.to_string().contains("key-a"),
        "the key itself is never shown"
    );

    // Persisted (SIGTERM writes instance health before the process exits): a restart keeps
    // key-a out.
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let dir = b.into_dir();
    let b = Start::with_fake(&fake).in_dir(dir).start().await;
    assert_eq!(b.instance("fake-0").await["state"], "auth_failed");
    for _ in 0..3 {
        assert_eq!(
            b.post("/v1/chat/completions", &chat_body("solo"))
                .await
                .header("x-aibroker-provider"),
            "fake-1"
        );
    }
    assert_eq!(fake.count(Some("key-a"), None), 1);

    // The operator fixes the key and resets the instance: it serves again.
    fake.clear_rules();
    let reset = b
        .rpc("providers.reset", json!({"instance": "fake-0"}))
        .await;
    assert_eq!(reset["state"], "healthy");
    assert!(reset["reason"].is_null());
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..4 {
        used.insert(
            b.post("/v1/chat/completions", &chat_body("solo"))
                .await
                .header("x-aibroker-provider")
                .to_owned(),
        );
    }
    assert!(used.contains("fake-0"), "{used:?}");
    let e = b
        .rpc_with("providers.reset", json!({"instance": "nope-9"}), None)
        .await;
    assert_eq!(e["error"]["code"], -32004);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_cool_a_key_for_retry_after_and_disable_takes_it_out() {
    let fake = FakeProvider::start().await;
    fake.script(
        Rule::for_key(
            "key-a",
            Behavior::Status {
                status: 429,
                retry_after: Some(30),
            },
        )
        .times(1),
    );
    let b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.header("x-aibroker-provider"), "fake-1");
    let a = b.instance("fake-0").await;
    assert_eq!(a["state"], "cooldown");
    let left = a["cooldown_seconds"].as_f64().expect("cooldown");
    assert!(
        (28.0..=30.0).contains(&left),
        "cooled for Retry-After: {left}"
    );
    // While cooling, key-a goes last: key-b answers every request.
    for _ in 0..4 {
        assert_eq!(
            b.post("/v1/chat/completions", &chat_body("solo"))
                .await
                .header("x-aibroker-provider"),
            "fake-1"
        );
    }
    assert_eq!(fake.count(Some("key-a"), None), 1);

    let d = b
        .rpc(
            "providers.disable",
            json!({"instance": "fake-1", "reason": "rotating"}),
        )
        .await;
    assert_eq!(
        (d["state"].as_str(), d["reason"].as_str()),
        (Some("disabled"), Some("rotating"))
    );
    // key-b is out; key-a is still cooling but is the last candidate, so it is tried rather
    // than failing without trying.
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "fake-0");
    b.rpc("providers.disable", json!({"instance": "fake-0"}))
        .await;
    let m = b
        .post("/v1/chat/completions", &chat_body("solo"))
        .await
        .assert_error(503, "no_backend_available");
    assert!(m.contains("providers.reset"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_backend_trips_its_circuit_and_gets_no_traffic_until_the_probe() {
    let fake = FakeProvider::start().await;
    let backup = FakeProvider::start().await;
    fake.script(Rule::for_model(
        "up-chat",
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    ));
    let b = Start::new(models_yaml(&fake.base_url(), &backup.base_url()))
        .env("FAKE_KEYS", "only")
        .env("CIRCUIT_FAILURES", "2")
        .env("CIRCUIT_OPEN_MS", "600")
        .env("MAX_ATTEMPTS", "2")
        .env("RETRY_AFTER_CAP_MS", "50")
        .start()
        .await;
    let chat = || async { b.post("/v1/chat/completions", &chat_body("chat")).await };
    // Pinned to the failing backend: two failures in a row open its circuit.
    b.post("/v1/chat/completions", &chat_body("fake/up-chat"))
        .await
        .assert_error(502, "upstream_failed");
    assert_eq!(fake.count(None, Some("up-chat")), 2);
    for _ in 0..5 {
        let r = chat().await;
        assert_eq!(r.json["provider"], "backup");
        assert_eq!(
            r.header("x-aibroker-attempts"),
            "1",
            "the open backend is not even tried"
        );
    }
    assert_eq!(
        fake.count(None, Some("up-chat")),
        2,
        "no traffic while open"
    );

    // Once both the circuit's open time and the key's own 2 s backoff have passed, exactly one
    // probe goes through; it fails and the circuit opens again.
    b.wait_probe_ready("fake", "chat", "fake-0").await;
    assert_eq!(
        chat().await.json["provider"],
        "backup",
        "the probe failed, the backup answered"
    );
    assert_eq!(fake.count(None, Some("up-chat")), 3, "exactly one probe");
    for _ in 0..3 {
        assert_eq!(chat().await.json["provider"], "backup");
    }
    assert_eq!(
        fake.count(None, Some("up-chat")),
        3,
        "open again after a failed probe"
    );

    // The backend recovers: the next probe (after the key's 4 s backoff) closes the circuit.
    fake.clear_rules();
    b.wait_probe_ready("fake", "chat", "fake-0").await;
    assert_eq!(
        chat().await.json["provider"],
        "fake",
        "a successful probe closes the circuit"
    );
    assert_eq!(chat().await.json["provider"], "fake");
}

/// A broker over `fake` (one key) and `backup` whose circuits open after two failures.
fn circuit_broker(fake: &FakeProvider, backup: &FakeProvider, open_ms: &str) -> Start {
    Start::new(models_yaml(&fake.base_url(), &backup.base_url()))
        .env("FAKE_KEYS", "only")
        .env("CIRCUIT_FAILURES", "2")
        .env("CIRCUIT_OPEN_MS", open_ms)
        .env("MAX_ATTEMPTS", "2")
        .env("RETRY_AFTER_CAP_MS", "50")
}

/// Opens the circuit of `chat`'s backend on `fake` with two failing calls pinned to it.
async fn open_fake_circuit(b: &Broker, fake: &FakeProvider) {
    fake.script(Rule::for_model(
        "up-chat",
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    ));
    b.post("/v1/chat/completions", &chat_body("fake/up-chat"))
        .await
        .assert_error(502, "upstream_failed");
    assert_eq!(fake.count(None, Some("up-chat")), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_circuit_is_listed_and_survives_a_restart_until_its_probe() {
    let fake = FakeProvider::start().await;
    let backup = FakeProvider::start().await;
    let mut b = circuit_broker(&fake, &backup, "6000").start().await;
    let closed = b.circuit("fake", "chat").await;
    assert_eq!(
        closed,
        json!({"model": "chat", "upstream_model": "up-chat", "state": "closed",
               "failures": 0, "open_seconds": null})
    );
    open_fake_circuit(&b, &fake).await;
    let open = b.circuit("fake", "chat").await;
    assert_eq!(
        (open["state"].as_str(), open["failures"].as_u64()),
        (Some("open"), Some(2))
    );
    let left = open["open_seconds"].as_f64().expect("open_seconds");
    assert!((5.0..=6.0).contains(&left), "{open}");
    assert_eq!(b.circuit("backup", "chat").await["state"], "closed");

    // SIGTERM right away (no time for the once-a-second writer): shutdown persists it.
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let dir = b.into_dir();
    let b = circuit_broker(&fake, &backup, "6000")
        .in_dir(dir)
        .start()
        .await;
    let open = b.circuit("fake", "chat").await;
    assert_eq!(
        (open["state"].as_str(), open["failures"].as_u64()),
        (Some("open"), Some(2))
    );
    let left_after = open["open_seconds"].as_f64().expect("open_seconds");
    assert!(
        0.0 < left_after && left_after < left,
        "the same probe time, not a new one: {left_after} after {left}"
    );

    // Once the key's own 2 s backoff is over, only the restored circuit keeps the (priority 1)
    // dead backend out: it gets no traffic at all.
    let t0 = std::time::Instant::now();
    while b.instance("fake-0").await["state"] != "healthy" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the key stays cooled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..4 {
        let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
        assert_eq!(r.json["provider"], "backup", "{}", r.text);
        assert_eq!(
            r.header("x-aibroker-attempts"),
            "1",
            "the open backend is not tried"
        );
    }
    assert_eq!(
        fake.count(None, Some("up-chat")),
        2,
        "no traffic while open"
    );

    // The backend recovered meanwhile; when the restored open time ends, one probe closes it.
    fake.clear_rules();
    assert!(
        b.circuit("fake", "chat").await["open_seconds"]
            .as_f64()
            .is_some(),
        "still open"
    );
    let half_open = wait_until(Duration::from_secs(15), async || {
        b.circuit("fake", "chat").await["state"] == "half_open"
    })
    .await;
    assert!(half_open, "{}", b.circuit("fake", "chat").await);
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.json["provider"], "fake", "the probe: {}", r.text);
    assert_eq!(fake.count(None, Some("up-chat")), 3, "exactly one probe");
    assert_eq!(
        b.circuit("fake", "chat").await,
        json!({"model": "chat", "upstream_model": "up-chat", "state": "closed",
               "failures": 0, "open_seconds": null})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_reset_closes_the_circuits_of_that_provider() {
    let fake = FakeProvider::start().await;
    let backup = FakeProvider::start().await;
    let b = circuit_broker(&fake, &backup, "60000").start().await;
    open_fake_circuit(&b, &fake).await;
    fake.clear_rules();
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.json["provider"], "backup");
    assert_eq!(b.circuit("fake", "chat").await["state"], "open");

    // The operator says the provider works again: key and circuits are back at once.
    let reset = b
        .rpc("providers.reset", json!({"instance": "fake-0"}))
        .await;
    assert_eq!(reset["state"], "healthy");
    let closed = b.circuit("fake", "chat").await;
    assert_eq!(
        (closed["state"].as_str(), closed["failures"].as_u64()),
        (Some("closed"), Some(0))
    );
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.json["provider"], "fake", "{}", r.text);
    assert_eq!(fake.count(None, Some("up-chat")), 3);
}
