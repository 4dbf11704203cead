//! The hostile-input battery on the real binary: a flood of random model names, a slowloris
//! client and slow bodies, and a secret canary looked for everywhere the broker writes.

use std::time::{Duration, Instant};

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// 10 000 requests naming random models: each is a clear 404, no name becomes a metric label,
/// and neither `/metrics` nor the broker's memory grows with them.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_random_model_names_leaves_metrics_and_memory_flat() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let flood = |from: usize, to: usize| {
        let b = &b;
        async move {
            let names: Vec<String> = (from..to)
                .map(|i| format!("zz-{:x}-{}", rand_like(i), i))
                .collect();
            for batch in names.chunks(16) {
                let bodies: Vec<Value> = batch.iter().map(|n| chat_body(n)).collect();
                let replies = futures_util::future::join_all(
                    bodies
                        .iter()
                        .map(|body| b.post("/v1/chat/completions", body)),
                )
                .await;
                for r in replies {
                    r.assert_error(404, "model_not_found");
                }
            }
        }
    };
    // Warm up first: allocator pools, connection buffers, the ledger's statement cache.
    flood(0, 500).await;
    b.wait_rows(500).await;
    let metrics_before = b.get("/metrics").await.text.len();
    let rss_before = rss_kib(b.pid());
    let t0 = Instant::now();
    flood(500, 10_000).await;
    let took = t0.elapsed();
    let metrics = b.get("/metrics").await.text;
    let rss_after = rss_kib(b.pid());
    println!(
        "flood: 9500 random model names in {took:?}; /metrics {metrics_before} -> {} bytes; RSS {rss_before} -> {rss_after} KiB",
        metrics.len()
    );
    assert!(
        !metrics.contains("zz-"),
        "a client's model name became a label"
    );
    assert!(metrics.contains(r#"model="unknown""#));
    assert!(
        metrics.len() < metrics_before + 1024,
        "/metrics grew from {metrics_before} to {} bytes",
        metrics.len()
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// A cheap deterministic scramble, so names differ in every character position.
fn rand_like(i: usize) -> u64 {
    (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// A client that sends its headers a byte at a time is cut at `HEADER_READ_TIMEOUT_MS`, and a
/// client that stalls its body at `BODY_READ_TIMEOUT_MS`; others are served all the while.
#[tokio::test(flavor = "multi_thread")]
async fn slowloris_and_slow_bodies_are_cut_while_others_are_served() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("HEADER_READ_TIMEOUT_MS", "1000")
        .env("BODY_READ_TIMEOUT_MS", "1000")
        .start()
        .await;
    let sock = b.sock.clone();
    let slowloris = tokio::spawn(async move {
        let mut s = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        let t0 = Instant::now();
        let head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if s.write_all(&[*byte]).await.is_err() || t0.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        t0.elapsed()
    });
    let sock = b.sock.clone();
    let slow_body = tokio::spawn(async move {
        let mut s = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        s.write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"model\"",
        )
        .await
        .expect("write");
        let t0 = Instant::now();
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer)).await;
        (t0.elapsed(), answer)
    });
    // Others are served while both hang on.
    for _ in 0..5 {
        let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut_after = slowloris.await.expect("join");
    assert!(
        cut_after < Duration::from_secs(4),
        "the slowloris connection was kept {cut_after:?}"
    );
    let (took, answer) = slow_body.await.expect("join");
    assert!(
        took < Duration::from_secs(4),
        "the slow body was kept {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Provider keys, a broker key and the admin token, planted and then looked for in the log,
/// the database and its WAL, every REST answer (upstream errors that echo the key included)
/// and every RPC answer: found nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn the_secret_canary_is_found_nowhere() {
    const PROVIDER: &str = "sk-canaryprov-5f1e2d3c4b5a6978";
    const ADMIN: &str = "canary-admin-token-0a1b2c3d4e5f";
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake)
        .env("FAKE_KEYS", PROVIDER)
        .env("ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "trace")
        .start()
        .await;
    let created = b
        .rpc_with(
            "keys.create",
            json!({"params": {"name": "canary", "budget_usd": 5}}),
            Some(ADMIN),
        )
        .await;
    let broker_key = created["result"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let canaries = [PROVIDER, ADMIN, broker_key.as_str()];
    let mut seen = String::new();

    // Served, refused and failed requests, with the key and the token as credentials.
    seen += &b
        .post_key("/v1/chat/completions", &chat_body("chat"), &broker_key)
        .await
        .text;
    seen += &b
        .stream("/v1/chat/completions", &stream_body("chat"))
        .await
        .rest;
    for behavior in [
        Behavior::EchoAuth(400),
        Behavior::EchoAuth(401),
        Behavior::EchoAuth(500),
    ] {
        fake.clear_rules();
        fake.script(Rule::any(behavior));
        seen += &b
            .post_key("/v1/chat/completions", &chat_body("solo"), &broker_key)
            .await
            .text;
    }
    fake.clear_rules();
    seen += &b
        .post_key("/v1/chat/completions", &chat_body("chat"), "sk-hab-wrong")
        .await
        .text;
    seen += &b
        .post_key("/v1/chat/completions", &json!({"model": 1}), &broker_key)
        .await
        .text;
    for path in [
        "/v1/key",
        "/v1/credits",
        "/billing/usage",
        "/metrics/detailed",
        "/v1/models",
        "/metrics",
        "/health",
    ] {
        seen += &b.get_key(path, &broker_key).await.text;
        seen += &b.get_key(path, ADMIN).await.text;
    }
    for method in [
        "keys.list",
        "providers.list",
        "info",
        "health",
        "models.list",
    ] {
        seen += &b.rpc_with(method, json!({}), Some(ADMIN)).await.to_string();
    }
    seen += &b
        .rpc_with("usage.logs", json!({"query": {"limit": 100}}), Some(ADMIN))
        .await
        .to_string();
    seen += &b
        .rpc_with("keys.create", json!({"params": {"name": ADMIN}}), None)
        .await
        .to_string();
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.key.as_deref() == Some(PROVIDER)),
        "the key went upstream"
    );

    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(10)).await.success());
    let logs = b.logs();
    let db = String::from_utf8_lossy(&std::fs::read(b.db_path()).expect("db")).into_owned();
    let wal = std::fs::read(b.db_path().with_extension("db-wal")).unwrap_or_default();
    let wal = String::from_utf8_lossy(&wal).into_owned();
    assert!(
        seen.len() > 5000 && logs.len() > 5000 && db.len() > 5000,
        "the search had material"
    );
    for canary in canaries {
        for (place, text) in [
            ("answers", &seen),
            ("log", &logs),
            ("database", &db),
            ("WAL", &wal),
        ] {
            if let Some(at) = text.find(canary) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(300)
                    .map_or(0, |(i, _)| i);
                panic!(
                    "a secret ({}…) was found in the {place}: …{}",
                    &canary[..10],
                    text[from..at].replace(canary, "<CANARY>")
                );
            }
        }
    }
}
