//! Broker API keys on the real binary: a key's model list, budget and token limits hold for
//! every candidate and under concurrency, `REQUIRE_API_KEY`, and `x-api-key`.

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

/// Budgets hold under concurrency: 50 requests at once on a key whose budget covers 5 serve at
/// most 5, and the recorded spend stays within the budget (each admitted request reserves its
/// worst case until it ends).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_cannot_overspend_a_budget() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let per_request = expected_cost(IN_COST, OUT_COST);
    let budget = 5.0 * per_request;
    let (id, key) = create_key(&b, json!({"name": "tight", "budget_usd": budget})).await;
    let body = chat_body("chat");
    let sends = (0..50).map(|_| b.post_key("/v1/chat/completions", &body, &key));
    let replies = futures_util::future::join_all(sends).await;
    let served = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 402).count();
    assert_eq!(served + refused, 50, "only 200 or 402");
    assert!(
        (1..=5).contains(&served),
        "{served} served on a budget for 5"
    );
    for r in replies.iter().filter(|r| r.status == 402) {
        assert_eq!(r.json["error"]["code"], "budget_exceeded", "{}", r.text);
    }
    let keys = b.rpc("keys.list", json!([])).await;
    let spent = keys
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == id)
        .expect("key")["spent_usd"]
        .as_f64()
        .expect("spent");
    assert!(
        spent <= budget + 1e-12,
        "spent {spent} of a {budget} budget"
    );
    assert!(
        (spent - served as f64 * per_request).abs() < 1e-12,
        "spent {spent} for {served}"
    );
}

/// `REQUIRE_API_KEY=true` through the binary: before any key exists, a request without one (or
/// with an SDK's placeholder) is refused; `/health` stays open.
#[tokio::test(flavor = "multi_thread")]
async fn require_api_key_refuses_keyless_requests_before_any_key_exists() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("REQUIRE_API_KEY", "true")
        .start()
        .await;
    b.post("/v1/chat/completions", &chat_body("chat"))
        .await
        .assert_error(401, "invalid_api_key");
    b.post_key("/v1/chat/completions", &chat_body("chat"), "sk-placeholder")
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(fake.call_count(), 0, "nothing reached the upstream");
    assert_eq!(b.get("/health").await.status, 200);
    let (_, key) = create_key(&b, json!({"name": "k"})).await;
    assert_eq!(
        b.post_key("/v1/chat/completions", &chat_body("chat"), &key)
            .await
            .status,
        200
    );
}

/// Per-key `tpm` through the binary: once this minute's tokens reach the limit, the key gets
/// 429 `rate_limit_exceeded` with `Retry-After` until the minute turns.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_tokens_per_minute_limit_applies() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    // Every fake reply is 14 + 30 = 44 tokens.
    let (_, key) = create_key(&b, json!({"name": "tpm", "tpm": 50})).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = b
            .post_key("/v1/chat/completions", &chat_body("chat"), &key)
            .await;
        if r.status == 429 {
            r.assert_error(429, "rate_limit_exceeded");
            let secs: u64 = r.header("retry-after").parse().expect("retry-after");
            assert!((1..=60).contains(&secs), "{secs}");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        served <= 2,
        "{served} served past a 50-token limit: {statuses:?}"
    );
}

/// Broker keys are accepted as `x-api-key` too (what Anthropic's clients send), with the same
/// checks as `Authorization: Bearer`.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_x_api_key_counts_like_a_bearer_token() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let (_, secret) = create_key(&b, json!({"name": "x"})).await;
    let send = |value: String| {
        b.client
            .post(Broker::url("/v1/chat/completions"))
            .header("x-api-key", value)
            .json(&chat_body("chat"))
            .send()
    };
    let ok = send(secret.clone()).await.expect("send");
    assert_eq!(ok.status().as_u16(), 200);
    let bad = send("sk-hab-not-a-key".into()).await.expect("send");
    assert_eq!(bad.status().as_u16(), 401);
    let rows = b.wait_rows(1).await;
    assert!(
        rows.iter()
            .any(|r| r["status"] == "ok" && r["key_id"].is_string()),
        "the request was attributed to the key: {rows:?}"
    );
}

/// A key's `allowed_models` holds for every candidate: a `models` fallback, the candidates
/// `provider` preferences leave, and failover never serve a model the key may not use.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_model_list_holds_on_every_candidate() {
    let fake = FakeProvider::start().await;
    // `backup` answers too (on the same fake), so a fallback to `chat` would succeed.
    let b = Start::new(models_yaml(&fake.base_url(), &fake.base_url()))
        .start()
        .await;
    let (_, narrow) = create_key(&b, json!({"name": "narrow", "allowed_models": ["solo"]})).await;
    let ask = |extra: Value| {
        let mut body = chat_body("solo");
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let served_chat = || fake.count(None, Some("up-chat")) + fake.count(None, Some("up-backup"));

    // `solo` fails on every key: the `models` fallback to `chat` is not taken for this key.
    fake.script(Rule::for_model(
        "up-solo",
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    ));
    b.post_key(
        "/v1/chat/completions",
        &ask(json!({"models": ["chat"]})),
        &narrow,
    )
    .await
    .assert_error(502, "upstream_failed");
    assert!(fake.count(None, Some("up-solo")) >= 1, "solo was tried");
    assert_eq!(
        served_chat(),
        0,
        "no attempt went to a model the key may not use"
    );
    fake.clear_rules();

    // `provider.ignore` removes every backend of `solo`; what is left is `chat`: refused.
    b.post_key(
        "/v1/chat/completions",
        &ask(json!({"models": ["chat"], "provider": {"ignore": ["fake"]}})),
        &narrow,
    )
    .await
    .assert_error(403, "model_not_allowed");
    assert_eq!(served_chat(), 0);

    // What the key may use still works, and failover inside an allowed model still happens.
    assert_eq!(
        b.post_key(
            "/v1/chat/completions",
            &ask(json!({"models": ["chat"]})),
            &narrow
        )
        .await
        .status,
        200
    );
    let (_, chat_only) = create_key(&b, json!({"name": "chat", "allowed_models": ["chat"]})).await;
    fake.script(Rule::for_model(
        "up-chat",
        Behavior::Status {
            status: 500,
            retry_after: None,
        },
    ));
    let r = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &chat_only)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["model"], "up-backup",
        "failed over to chat's second backend"
    );
}

/// Tokens per minute hold under concurrency: each admitted request reserves its prompt
/// estimate plus `max_tokens` (or 256) in the key's minute, so 50 requests sent at once on a
/// 100-token limit are not all served on the same unused tokens.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_cannot_overrun_a_tokens_per_minute_limit() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::DelayFirstByte(
        std::time::Duration::from_millis(500),
    )));
    let b = Start::with_fake(&fake).start().await;
    let (_, key) = create_key(&b, json!({"name": "tpm", "tpm": 100})).await;
    let mut body = chat_body("chat");
    body["max_tokens"] = json!(60);
    let sends = (0..50).map(|_| b.post_key("/v1/chat/completions", &body, &key));
    let replies = futures_util::future::join_all(sends).await;
    let served = replies.iter().filter(|r| r.status == 200).count();
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(429, "rate_limit_exceeded");
    }
    // Each reserves ~14 + 60 tokens: one fits under 100, a second only once the first
    // settled to its real 44 (a minute boundary mid-burst allows one more window).
    assert!(
        (1..=3).contains(&served),
        "{served} of 50 served on a 100-token minute"
    );
}
