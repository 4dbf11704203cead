//! Authentication as a layer: with keys in use only the open routes answer without one; usage
//! and generation lookups see the caller's own key unless it shows the admin token; invalid
//! keys are counted, not logged, and throttled; per-key and per-client limits.

use std::time::Duration;

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

const ADMIN: &str = "admin-token-0123456789abcdef";

/// The counter `hero_aibroker_refused_total{reason="…"}` in `/metrics`, 0 when absent.
async fn refused_count(b: &Broker, reason: &str) -> u64 {
    let text = b.get("/metrics").await.text;
    let prefix = format!("hero_aibroker_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("counter"))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_keys_in_use_only_the_open_routes_answer_without_one() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    let (_, secret) = create_key(&b, json!({"name": "a"})).await;
    let served = b
        .post_key("/v1/chat/completions", &chat_body("chat"), &secret)
        .await;
    assert_eq!(served.status, 200, "{}", served.text);
    let id = served.header("x-aibroker-request-id").to_owned();
    b.wait_row(&id).await;

    for open in [
        "/health",
        "/metrics",
        "/v1/models",
        "/v1/models/chat/endpoints",
    ] {
        assert_eq!(b.get(open).await.status, 200, "{open} is open");
    }
    for closed in [
        "/billing/usage".to_owned(),
        "/billing/usage/uds:uid=0".to_owned(),
        format!("/v1/generation?id={id}"),
        "/metrics/detailed".to_owned(),
        "/v1/key".to_owned(),
        "/v1/credits".to_owned(),
        "/mcp/tools".to_owned(),
        "/no/such/route".to_owned(),
    ] {
        let r = b.get(&closed).await;
        r.assert_error(401, "invalid_api_key");
        assert!(
            !r.text.contains(&id),
            "{closed} leaked the request: {}",
            r.text
        );
    }
    b.post("/mcp/tools/ping", &json!({}))
        .await
        .assert_error(401, "invalid_api_key");
    b.post("/v1/chat/completions", &chat_body("chat"))
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(
        fake.call_count(),
        1,
        "nothing unauthenticated went upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_generation_are_scoped_to_the_callers_key() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("ADMIN_TOKEN", ADMIN)
        .start()
        .await;
    let create = |name: &'static str| {
        let b = &b;
        async move {
            let k = b
                .rpc_with(
                    "keys.create",
                    json!({"params": {"name": name}}),
                    Some(ADMIN),
                )
                .await;
            let k = &k["result"];
            (
                k["key"]["id"].as_str().expect("id").to_owned(),
                k["secret"].as_str().expect("secret").to_owned(),
            )
        }
    };
    let (a_id, a) = create("a").await;
    let (b_id, bk) = create("b").await;
    let mut ids = Vec::new();
    for key in [&a, &bk] {
        let r = b
            .post_key("/v1/chat/completions", &chat_body("chat"), key)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        ids.push(r.header("x-aibroker-request-id").to_owned());
    }
    for id in &ids {
        b.wait_row(id).await;
    }
    let groups = |v: &Value| -> Vec<String> {
        v["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["group"].as_str().expect("group").to_owned())
            .collect()
    };

    let mine = b.get_key("/billing/usage?group_by=key", &a).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(groups(&mine.json), vec![a_id.clone()], "{}", mine.text);
    assert_eq!(mine.json["total"]["requests"], 1);
    let all = b.get_key("/billing/usage?group_by=key", ADMIN).await;
    let mut both = groups(&all.json);
    both.sort();
    let mut want = vec![a_id.clone(), b_id.clone()];
    want.sort();
    assert_eq!(both, want, "the admin token sees every key");

    // B's request is not A's to read: the same 404 as an id that does not exist.
    let theirs = b
        .get_key(&format!("/v1/generation?id={}", ids[1]), &a)
        .await;
    theirs.assert_error(404, "not_found");
    let own = b
        .get_key(&format!("/v1/generation?id={}", ids[0]), &a)
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    let admin = b
        .get_key(&format!("/v1/generation?id={}", ids[1]), ADMIN)
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);

    let detailed = b.get_key("/metrics/detailed", &a).await;
    assert_eq!(detailed.status, 200, "{}", detailed.text);
    let seen: Vec<&str> = detailed.json["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .flat_map(|c| c["last_requests"].as_array().expect("rows").iter())
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(seen, vec![ids[0].as_str()], "only A's own requests");
    let client = b.get_key("/billing/usage/uds:uid=0", &bk).await;
    if client.status == 200 {
        assert_eq!(client.json["usage"]["requests"], 1, "{}", client.text);
        assert!(!client.text.contains(&ids[0]), "{}", client.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_keys_are_counted_not_logged_and_throttled() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake)
        .env("AUTH_FAILURES_PER_MINUTE", "3")
        .start()
        .await;
    let (_, good) = create_key(&b, json!({"name": "good"})).await;
    // The throttle's window is the minute: redo the round if one began in the middle of it.
    for round in 0..2 {
        let m = this_minute();
        for _ in 0..3 {
            b.post_key("/v1/chat/completions", &chat_body("chat"), "sk-hab-wrong")
                .await
                .assert_error(401, "invalid_api_key");
        }
        let r = b
            .post_key("/v1/chat/completions", &chat_body("chat"), &good)
            .await;
        if this_minute() != m && round == 0 {
            continue;
        }
        let msg = r.assert_error(429, "rate_limit_exceeded");
        assert!(msg.contains("invalid API key"), "{msg}");
        assert!(
            r.header("retry-after")
                .parse::<u64>()
                .is_ok_and(|s| s <= 60)
        );
        break;
    }
    assert!(refused_count(&b, "unauthorized").await >= 3);
    assert!(refused_count(&b, "auth_throttled").await >= 1);
    assert_eq!(fake.call_count(), 0);
    let logs = b.rpc("usage.logs", json!({"query": {"limit": 100}})).await;
    assert_eq!(logs["rows"], json!([]), "no ledger row per refused key");
}

/// Sends `n` chat requests at once with `key` (or none); returns how many were served and the
/// error codes of the others.
async fn burst(b: &Broker, n: usize, key: Option<&str>) -> (usize, Vec<String>) {
    let sends = (0..n).map(|_| async {
        let mut rb = b
            .client
            .post(Broker::url("/v1/chat/completions"))
            .json(&chat_body("chat"));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        let r = rb.send().await.expect("send");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        (status, v["error"]["code"].as_str().unwrap_or("").to_owned())
    });
    let all = futures_util::future::join_all(sends).await;
    let served = all.iter().filter(|(s, _)| *s == 200).count();
    let refused = all
        .into_iter()
        .filter(|(s, _)| *s != 200)
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    (served, refused)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_max_concurrent_limit_holds() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::DelayFirstByte(Duration::from_secs(2))));
    let b = Start::with_fake(&fake).start().await;
    let (id, key) = create_key(&b, json!({"name": "c", "max_concurrent": 3})).await;
    let listed = b.rpc("keys.list", json!({})).await;
    assert_eq!(listed[0]["max_concurrent"], 3, "{listed}");
    let (served, refused) = burst(&b, 50, Some(&key)).await;
    assert_eq!(served, 3, "refused: {refused:?}");
    assert!(
        refused.iter().all(|r| r == "429 rate_limit_exceeded"),
        "{refused:?}"
    );
    // Cleared, the limit is gone.
    b.rpc(
        "keys.update",
        json!({"id": id, "update": {"clear": ["max_concurrent"]}}),
    )
    .await;
    let (served, refused) = burst(&b, 6, Some(&key)).await;
    assert_eq!(served, 6, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_limits_hold_whatever_the_key() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::DelayFirstByte(Duration::from_secs(2))));
    let b = Start::with_fake(&fake)
        .env("CLIENT_MAX_CONCURRENT", "2")
        .start()
        .await;
    let (served, refused) = burst(&b, 8, None).await;
    assert_eq!(served, 2, "refused: {refused:?}");
    assert!(
        refused.iter().all(|r| r == "429 rate_limit_exceeded"),
        "{refused:?}"
    );
    assert!(refused_count(&b, "client_limit").await >= 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_requests_per_minute_hold() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).env("CLIENT_RPM", "3").start().await;
    let m = this_minute();
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            b.post("/v1/chat/completions", &chat_body("chat"))
                .await
                .status,
        );
    }
    if this_minute() == m {
        assert_eq!(codes, vec![200, 200, 200, 429]);
    } else {
        // A minute began mid-way: its window allows three more.
        assert!(
            codes.iter().filter(|c| **c == 200).count() >= 3,
            "{codes:?}"
        );
    }
}
