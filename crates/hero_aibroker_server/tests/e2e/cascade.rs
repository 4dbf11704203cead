//! Cascade: a child broker (sockets only) forwards to a mother over TCP, the mother to its
//! provider. Mothers are registered through `mothers.add`, their models come from the
//! mother's `/v1/models`, and a loop is refused before any upstream call.

use std::time::Duration;

use hero_aibroker_testkit::FakeProvider;
use serde_json::{Value, json};

use crate::harness::*;
use crate::tcp::{TOKEN, tcp_broker};

/// A child whose only model `chat` has a direct backend on `direct` (priority 5); the mother
/// is added at priority 1, so it is tried first.
async fn child(direct: &str) -> Broker {
    let yaml = format!(
        "providers:\n  - {{name: direct, base_url: \"{direct}\", api_key_env: FAKE_KEYS}}\nmodels:\n  chat:\n    display_name: Chat\n    tier: standard\n    context_window: 8192\n    backends:\n      - {{provider: direct, model_id: up-direct, priority: 5, input_cost: 1, output_cost: 1}}\n"
    );
    Start::new(yaml).start().await
}

/// Registers `mother_url` (`http://IP:port`) on `b` with `token` at priority 1; returns the
/// mother's id.
async fn add_mother(b: &Broker, mother_url: &str, token: &str) -> String {
    add_mother_at(b, mother_url, token, 1).await
}

async fn add_mother_at(b: &Broker, mother_url: &str, token: &str, priority: i64) -> String {
    let (address, port) = mother_url
        .trim_start_matches("http://")
        .rsplit_once(':')
        .expect("host:port");
    let r = b
        .rpc(
            "mothers.add",
            json!({"address": address, "port": port.parse::<u16>().expect("port"),
                   "label": "root", "priority": priority, "token": token}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    r["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_forwards_chat_and_streams_through_its_mother() {
    let upstream = FakeProvider::start().await;
    let direct = FakeProvider::start().await;
    let (mother, url) = tcp_broker(Start::with_fake(&upstream)).await;
    let c = child(&direct.base_url()).await;
    let id = add_mother(&c, &url, TOKEN).await;
    assert_eq!(id, "ai_broker_mother");
    let list = c.rpc("mothers.list", json!({})).await;
    assert_eq!(list[0]["has_token"], true, "{list}");
    assert!(
        list[0]["models"].as_u64() > Some(0),
        "the mother's models were listed: {list}"
    );
    assert!(
        !list.to_string().contains(TOKEN),
        "the token is never shown"
    );
    let info = c.rpc("info", json!({})).await;
    assert_eq!(info["mother_count"], 1);

    let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "ai_broker_mother-0");
    assert_eq!(direct.call_count(), 0, "the mother answered");
    assert_eq!(upstream.call_count(), 1);
    let child_row = c.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(child_row["provider"], "ai_broker_mother-0");
    // The mother's row: the same tokens, the child's request seen from 127.0.0.1, and its id
    // recorded on the child's row.
    let mother_rows = mother.wait_rows(1).await;
    assert_eq!(mother_rows[0]["client"], "127.0.0.1");
    assert_eq!(
        child_row["response_id"], mother_rows[0]["id"],
        "{child_row}"
    );
    for k in ["prompt_tokens", "completion_tokens"] {
        assert_eq!(child_row[k], mother_rows[0][k], "{k}");
    }
    // Streamed, chunk by chunk, to the end.
    let s = c.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert_eq!(s.status, 200);
    assert!(s.ended_with_done(), "{:?}", s.events);
    assert!(s.events.len() > 3);
    // The mother's other models and endpoints: embeddings and legacy completions (models only
    // the mother has), Anthropic Messages and Responses (translated at the child).
    let r = c
        .post("/v1/embeddings", &json!({"model": "embed", "input": "hi"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-aibroker-provider"), "ai_broker_mother-0");
    let r = c
        .post(
            "/v1/completions",
            &json!({"model": "legacy", "prompt": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .post("/v1/messages", &json!({"model": "chat", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["type"], "message");
    let r = c
        .post(
            "/v1/responses",
            &json!({"model": "chat", "input": "hi", "store": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "response");
    assert_eq!(r.header("x-aibroker-provider"), "ai_broker_mother-0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mother_that_goes_away_falls_back_to_the_direct_provider() {
    let upstream = FakeProvider::start().await;
    let direct = FakeProvider::start().await;
    let (mother, url) = tcp_broker(Start::with_fake(&upstream)).await;
    let c = child(&direct.base_url()).await;
    add_mother(&c, &url, TOKEN).await;
    drop(mother);
    let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-aibroker-provider").starts_with("direct-"),
        "fell back"
    );
    assert_eq!(direct.call_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_a_loop_and_a_chain_too_long_are_refused() {
    let fake_a = FakeProvider::start().await;
    let fake_b = FakeProvider::start().await;
    let (a, url_a) = tcp_broker(Start::with_fake(&fake_a)).await;
    let (b, url_b) = tcp_broker(Start::with_fake(&fake_b)).await;
    // A wrong token: the mother's model list fails with 401, said in mothers.list.
    let bad = add_mother(&a, &url_b, "wrong-token-wrong-token-wrong").await;
    let list = a.rpc("mothers.list", json!({})).await;
    assert!(
        list[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{list}"
    );
    a.rpc("mothers.remove", json!({"id": bad})).await;
    // A → B → A: each is the other's mother, tried before its own provider.
    add_mother_at(&a, &url_b, TOKEN, 0).await;
    add_mother_at(&b, &url_a, TOKEN, 0).await;
    let r = a.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("Cascade loop"), "{}", r.text);
    assert_eq!(
        (fake_a.call_count(), fake_b.call_count()),
        (0, 0),
        "no upstream call"
    );
    // More brokers in the chain than CASCADE_MAX_HOPS (4): refused too.
    let hops: Vec<String> = (0..4).map(|i| format!("brk_{i}")).collect();
    let r = reqwest::Client::new()
        .post(format!("{url_b}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-aibroker-chain", hops.join(","))
        .json(&chat_body("chat"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CASCADE_MAX_HOPS")),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!((fake_a.call_count(), fake_b.call_count()), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegated_key_carries_the_childs_traffic_and_its_budget_stops_it() {
    let upstream = FakeProvider::start().await;
    let direct = FakeProvider::start().await;
    let (mother, url) = tcp_broker(Start::with_fake(&upstream)).await;
    // The mother's operator hands the host a key with a budget of about two requests.
    let one = expected_cost(IN_COST, OUT_COST);
    let (key_id, key) =
        create_key(&mother, json!({"name": "host-7", "budget_usd": one * 2.5})).await;
    let c = child(&direct.base_url()).await;
    add_mother(&c, &url, &key).await;
    let mut served = 0;
    for _ in 0..5 {
        let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
        if r.status == 200 {
            served += 1;
        } else {
            assert_eq!(r.status, 402, "{}", r.text);
        }
    }
    // The mother's budget rule decides (a request is admitted while the key's budget has
    // room); what matters here is that it is the mother's, applied to the child's traffic:
    // it served some, then refused.
    assert!(
        (1..5).contains(&served),
        "{served} of 5 served on a budget for 2.5"
    );
    assert_eq!(
        direct.call_count(),
        0,
        "a refusal by budget is not a reason to go around it"
    );
    // The mother sees the child's traffic as that key's; usage reconciles across the chain.
    let keys = mother.rpc("keys.list", json!({})).await;
    let spent = spent_of(&keys, "host-7");
    assert!((spent - served as f64 * one).abs() < 1e-9, "{keys}");
    let mother_rows = mother.wait_rows(5).await;
    assert!(
        mother_rows.iter().all(|r| r["key_id"] == key_id.as_str()),
        "{mother_rows:?}"
    );
    let child_rows = c.wait_rows(5).await;
    let child_cost: f64 = child_rows
        .iter()
        .filter_map(|r| r["cost_usd"].as_f64())
        .sum();
    assert!(
        (child_cost - spent).abs() < 1e-9,
        "child {child_cost} vs mother {spent}"
    );
    assert!(
        !c.logs().contains(&key),
        "the delegated key never reaches the child's logs"
    );
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A broker with a TCP listener on `port`.
async fn tcp_on(start: Start, port: u16) -> (Broker, String) {
    let b = start
        .args(&[
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--mother",
        ])
        .env("HERO_AIBROKER_CASCADE_TOKEN", TOKEN)
        .start()
        .await;
    (b, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_brokers_in_a_chain_and_the_middle_one_restarting() {
    let top = FakeProvider::start().await;
    let middle_fake = FakeProvider::start().await;
    let direct = FakeProvider::start().await;
    // Grandmother → its provider; mother → grandmother first; child → mother first.
    let (grandmother, url_g) = tcp_broker(Start::with_fake(&top)).await;
    let port_m = free_port();
    let (mother, url_m) = tcp_on(Start::with_fake(&middle_fake), port_m).await;
    add_mother_at(&mother, &url_g, TOKEN, 0).await;
    let c = child(&direct.base_url()).await;
    add_mother(&c, &url_m, TOKEN).await;

    let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            top.call_count(),
            middle_fake.call_count(),
            direct.call_count()
        ),
        (1, 0, 0)
    );
    let s = c.stream("/v1/chat/completions", &stream_body("chat")).await;
    assert!(s.ended_with_done(), "{:?}", s.events);
    assert_eq!(top.call_count(), 2, "the stream went up the chain too");
    // The same tokens on each broker's ledger, for both requests.
    let mut totals = Vec::new();
    for b in [&c, &mother, &grandmother] {
        let rows = b.wait_rows(2).await;
        let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
        totals.push((sum("prompt_tokens"), sum("completion_tokens")));
    }
    assert!(totals.windows(2).all(|w| w[0] == w[1]), "{totals:?}");

    // The middle broker goes away: the child falls back to its direct provider.
    let dir = mother.into_dir();
    let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-aibroker-provider").starts_with("direct-"),
        "fell back"
    );
    // It comes back on the same port (its mothers kept in its store): the route recovers.
    let (_mother, _) = tcp_on(Start::with_fake(&middle_fake).in_dir(dir), port_m).await;
    let recovered = wait_until(Duration::from_secs(15), async || {
        let r = c.post("/v1/chat/completions", &chat_body("chat")).await;
        r.status == 200 && r.header("x-aibroker-provider") == "ai_broker_mother-0"
    })
    .await;
    assert!(recovered, "the child went back to its mother");
}
