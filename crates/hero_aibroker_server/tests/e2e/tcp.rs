//! The optional TCP listener (`--address`/`--port`): REST and `/rpc` on one port, every
//! request there with a broker key, the cascade token or the admin token; clients attributed
//! and limited by IP; a listener off the loopback refused without a way to authenticate.

use std::time::Duration;

use hero_aibroker_testkit::FakeProvider;
use serde_json::{Value, json};

use crate::harness::*;

pub const TOKEN: &str = "cascade-token-0123456789abcdef";

/// A broker with a TCP listener on a free loopback port; its `http://IP:port`.
pub async fn tcp_broker(start: Start) -> (Broker, String) {
    let b = start
        .args(&["--address", "127.0.0.1", "--port", "0", "--mother"])
        .env("HERO_AIBROKER_CASCADE_TOKEN", TOKEN)
        .start()
        .await;
    let info = b.rpc("info", json!({})).await;
    let addr = info["sockets"]["tcp"]
        .as_str()
        .expect("tcp address")
        .to_owned();
    (b, format!("http://{addr}"))
}

async fn send(
    url: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<&Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let c = reqwest::Client::new();
    let mut rb = match body {
        Some(b) => c.post(format!("{url}{path}")).json(b),
        None => c.get(format!("{url}{path}")),
    };
    if let Some((k, v)) = auth {
        rb = rb.header(k, v);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v, headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tcp_listener_serves_rest_and_rpc_to_callers_with_a_credential() {
    let fake = FakeProvider::start().await;
    let (b, url) = tcp_broker(Start::with_fake(&fake)).await;
    let bearer = format!("Bearer {TOKEN}");
    // No credential, a wrong one: 401, even on the routes open on the socket.
    for auth in [
        None,
        Some(("authorization", "Bearer not-the-token-at-all-0000")),
    ] {
        let (status, v, _) = send(&url, "/v1/models", auth, None).await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
    }
    let (status, _, _) = send(&url, "/v1/models", Some(("authorization", &bearer)), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&url, "/health", Some(("x-api-key", TOKEN)), None).await;
    assert_eq!(status, 200, "x-api-key works too");
    // A chat over TCP, attributed to the caller's IP.
    let (status, v, headers) = send(
        &url,
        "/v1/chat/completions",
        Some(("authorization", &bearer)),
        Some(&chat_body("chat")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let id = headers["x-aibroker-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let row = b.wait_row(&id).await;
    assert_eq!(row["client"], "127.0.0.1", "{row}");
    let usage = b.get("/billing/usage/127.0.0.1").await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    assert!(usage.text.contains(&id), "{}", usage.text);
    // /rpc on the same port: the mother says what it is.
    let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "info"});
    let (status, v, _) = send(&url, "/rpc", Some(("authorization", &bearer)), Some(&rpc)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["is_mother"], true, "{v}");
    assert_eq!(v["result"]["mother_count"], 0, "{v}");
    let (status, _, _) = send(&url, "/rpc", None, Some(&rpc)).await;
    assert_eq!(status, 401, "/rpc is behind the gate too");
    // The token never reaches the logs.
    assert!(!b.logs().contains(TOKEN), "the cascade token was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_key_opens_the_tcp_listener_and_counts_as_itself() {
    let fake = FakeProvider::start().await;
    let (b, url) = tcp_broker(Start::with_fake(&fake)).await;
    let (key_id, key) = create_key(&b, json!({"name": "host-7"})).await;
    let (status, v, headers) = send(
        &url,
        "/v1/chat/completions",
        Some(("authorization", &format!("Bearer {key}"))),
        Some(&chat_body("chat")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let row = b
        .wait_row(headers["x-aibroker-request-id"].to_str().expect("id"))
        .await;
    assert_eq!(row["key_id"], key_id.as_str(), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_client_limit_holds_per_ip_on_tcp() {
    let fake = FakeProvider::start().await;
    let (_b, url) = tcp_broker(Start::with_fake(&fake).env("CLIENT_RPM", "2")).await;
    let bearer = format!("Bearer {TOKEN}");
    for _ in 0..2 {
        let (status, v, _) = send(
            &url,
            "/v1/chat/completions",
            Some(("authorization", &bearer)),
            Some(&chat_body("chat")),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v, headers) = send(
        &url,
        "/v1/chat/completions",
        Some(("authorization", &bearer)),
        Some(&chat_body("chat")),
    )
    .await;
    assert_eq!(status, 429, "{v}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_off_the_loopback_needs_keys_or_a_token_and_flags_come_in_pairs() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake)
        .args(&["--address", "0.0.0.0", "--port", "0"])
        .spawn();
    assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
    assert!(
        b.logs()
            .contains("refusing to listen on 0.0.0.0:0, off the loopback"),
        "{}",
        b.logs()
    );
    let mut b = Start::with_fake(&fake).args(&["--port", "4000"]).spawn();
    assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
    assert!(b.logs().contains("--address"), "{}", b.logs());
    // With the token, the same listener starts.
    let b = Start::with_fake(&fake)
        .args(&["--address", "0.0.0.0", "--port", "0"])
        .env("HERO_AIBROKER_CASCADE_TOKEN", TOKEN)
        .start()
        .await;
    let info = b.rpc("info", json!({})).await;
    assert!(
        info["sockets"]["tcp"]
            .as_str()
            .is_some_and(|a| a.starts_with("0.0.0.0:")),
        "{info}"
    );
    assert_eq!(info["is_mother"], false);
}
