//! Routing on the real binary: strategies' distributions, session affinity, capacity wait,
//! the decision trace in the ledger, and `routing.explain` agreeing with real routing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::{Broker, Start, chat_body};

/// Three keyless providers on one fake (told apart by upstream model id), a 3-key provider,
/// and one model per strategy.
pub fn yaml(fake: &str) -> String {
    let model = |name: &str, strategy: &str| {
        format!(
            r#"  {name}:
    display_name: {name}
    tier: standard
    context_window: 8192
    strategy: {strategy}
    backends:
      - {{provider: p1, model_id: {name}-p1, priority: 1, input_cost: 1, output_cost: 2}}
      - {{provider: p2, model_id: {name}-p2, priority: 1, input_cost: 0.5, output_cost: 1, parameters: [temperature, max_tokens]}}
      - {{provider: p3, model_id: {name}-p3, priority: 2, input_cost: 3, output_cost: 9}}
"#
        )
    };
    let mut s = format!(
        r#"
providers:
  - {{name: p1, base_url: "{fake}"}}
  - {{name: p2, base_url: "{fake}"}}
  - {{name: p3, base_url: "{fake}"}}
  - {{name: keys, base_url: "{fake}", api_key_env: THREE_KEYS}}
models:
  tiny:
    display_name: Tiny
    tier: cheap
    context_window: 200
    backends:
      - {{provider: p1, model_id: up-tiny, input_cost: 0.1, output_cost: 0.1}}
  routed:
    display_name: Routed
    tier: standard
    context_window: 8192
    backends:
      - {{provider: openrouter, model_id: vendor/routed, input_cost: 1, output_cost: 1}}
  rr3:
    display_name: RR3
    tier: standard
    context_window: 8192
    strategy: round_robin
    backends:
      - {{provider: keys, model_id: up-rr3, input_cost: 1, output_cost: 1}}
"#
    );
    for st in [
        "priority",
        "round_robin",
        "least_busy",
        "latency",
        "cheapest",
        "best",
    ] {
        s.push_str(&model(st, st));
    }
    s
}

pub async fn start(fake: &FakeProvider) -> Broker {
    Start::new(yaml(&fake.base_url()))
        .env("THREE_KEYS", "k1,k2,k3")
        .start()
        .await
}

pub fn served(r: &crate::harness::Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    format!(
        "{}/{}",
        r.header("x-aibroker-provider"),
        r.header("x-aibroker-upstream-model")
    )
}

#[tokio::test]
async fn round_robin_spreads_over_three_keys_within_one() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    for _ in 0..30 {
        assert_eq!(
            b.post("/v1/chat/completions", &chat_body("rr3"))
                .await
                .status,
            200
        );
    }
    let counts: Vec<usize> = ["k1", "k2", "k3"]
        .iter()
        .map(|k| fake.count(Some(k), Some("up-rr3")))
        .collect();
    assert!(counts.iter().all(|c| c.abs_diff(10) <= 1), "{counts:?}");
}

#[tokio::test]
async fn latency_prefers_the_faster_backend() {
    let fake = FakeProvider::start().await;
    for slow in ["latency-p2", "latency-p3"] {
        fake.script(Rule::for_model(
            slow,
            Behavior::DelayFirstByte(Duration::from_millis(150)),
        ));
    }
    fake.script(Rule::for_model(
        "latency-p1",
        Behavior::DelayFirstByte(Duration::from_millis(20)),
    ));
    let b = start(&fake).await;
    let mut by: HashMap<String, u32> = HashMap::new();
    for _ in 0..40 {
        let r = b.post("/v1/chat/completions", &chat_body("latency")).await;
        *by.entry(served(&r)).or_default() += 1;
    }
    // The first requests measure each backend once (unmeasured ones go first); after that
    // p1 (20 ms, the others 150 ms) must lead.
    let fast = by.get("p1-0/latency-p1").copied().unwrap_or(0);
    assert!(fast >= 32, "the faster backend answered {fast}/40: {by:?}");
}

#[tokio::test]
async fn least_busy_avoids_the_key_with_a_request_in_flight() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model(
        "least_busy-p2",
        Behavior::SlowChunks(Duration::from_millis(300)),
    ));
    let b = start(&fake).await;
    // p1 and p2 share priority 1; hold a slow stream on p2, then every request goes to p1,
    // and once it is done the two share again.
    let slow = {
        let body = json!({"model": "p2/least_busy-p2", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        let client = b.client.clone();
        tokio::spawn(async move {
            client
                .post(Broker::url("/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .expect("send")
                .bytes()
                .await
                .expect("body")
        })
    };
    // The stream is on p2 once the fake has its call.
    let t0 = Instant::now();
    while fake.count(None, Some("least_busy-p2")) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..6 {
        let r = b
            .post("/v1/chat/completions", &chat_body("least_busy"))
            .await;
        assert_eq!(served(&r), "p1-0/least_busy-p1");
    }
    slow.await.expect("stream");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(served(
            &b.post("/v1/chat/completions", &chat_body("least_busy"))
                .await,
        ));
    }
    assert_eq!(seen.len(), 2, "idle again: both share {seen:?}");
}

#[tokio::test]
async fn priority_cheapest_and_best_pick_their_backend() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    for _ in 0..4 {
        // priority: level 1 = p1, p2; p2 is cheaper.
        assert_eq!(
            served(&b.post("/v1/chat/completions", &chat_body("priority")).await),
            "p2-0/priority-p2"
        );
        assert_eq!(
            served(&b.post("/v1/chat/completions", &chat_body("cheapest")).await),
            "p2-0/cheapest-p2"
        );
    }
    // best: equal tier; after p1 fails its success rate drops below the others.
    fake.script(
        Rule::for_model(
            "best-p1",
            Behavior::Status {
                status: 500,
                retry_after: None,
            },
        )
        .times(3),
    );
    fake.script(
        Rule::for_model(
            "best-p2",
            Behavior::Status {
                status: 500,
                retry_after: None,
            },
        )
        .times(3),
    );
    for _ in 0..3 {
        b.post("/v1/chat/completions", &chat_body("best")).await;
    }
    assert_eq!(
        served(&b.post("/v1/chat/completions", &chat_body("best")).await),
        "p3-0/best-p3"
    );
}

#[tokio::test]
async fn a_session_sticks_to_its_key() {
    let fake = FakeProvider::start().await;
    let b = start(&fake).await;
    let mut sticky = std::collections::HashSet::new();
    for _ in 0..6 {
        let r = b
            .post_with(
                "/v1/chat/completions",
                &chat_body("rr3"),
                &[("x-session-id", "conv-42")],
            )
            .await;
        sticky.insert(served(&r));
    }
    assert_eq!(sticky.len(), 1, "{sticky:?}");
    let mut body = chat_body("rr3");
    body["user"] = json!("user-7");
    let mut by_user = std::collections::HashSet::new();
    for _ in 0..6 {
        by_user.insert(served(&b.post("/v1/chat/completions", &body).await));
    }
    assert_eq!(
        by_user.len(),
        1,
        "the `user` field is a session too: {by_user:?}"
    );
    let mut free = std::collections::HashSet::new();
    for _ in 0..6 {
        free.insert(served(
            &b.post("/v1/chat/completions", &chat_body("rr3")).await,
        ));
    }
    assert_eq!(free.len(), 3, "without a session the keys rotate: {free:?}");
}

#[tokio::test]
async fn all_keys_cooling_fails_fast_or_waits_when_asked() {
    let fake = FakeProvider::start().await;
    for k in ["k1", "k2", "k3"] {
        fake.script(
            Rule::for_key(
                k,
                Behavior::Status {
                    status: 429,
                    retry_after: Some(2),
                },
            )
            .times(2),
        );
    }
    let b = Start::new(yaml(&fake.base_url()))
        .env("THREE_KEYS", "k1,k2,k3")
        .env("MAX_ATTEMPTS", "3")
        .start()
        .await;
    // 1: every key answers 429 and cools down for 2 s.
    let r = b.post("/v1/chat/completions", &chat_body("rr3")).await;
    r.assert_error(503, "upstream_rate_limited");
    assert!(!r.header("retry-after").is_empty());
    // 2: without capacity wait the cooling keys are still tried (never fail without trying).
    let t0 = Instant::now();
    let r = b.post("/v1/chat/completions", &chat_body("rr3")).await;
    r.assert_error(503, "upstream_rate_limited");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(fake.call_count(), 6);
    // 3: with a wait, the request sleeps until the first key recovers, then succeeds.
    let t0 = Instant::now();
    let r = b
        .post_with(
            "/v1/chat/completions",
            &chat_body("rr3"),
            &[("x-aibroker-max-wait-ms", "5000")],
        )
        .await;
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= Duration::from_millis(1000), "waited {took:?}");
    assert_eq!(r.header("x-aibroker-attempts"), "1");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    let waited = row["trace"]["waited_ms"].as_u64().expect("waited_ms");
    assert!(waited >= 1000, "{row}");
    // A wait shorter than the recovery does not wait.
    for k in ["k1", "k2", "k3"] {
        fake.script(
            Rule::for_key(
                k,
                Behavior::Status {
                    status: 429,
                    retry_after: Some(30),
                },
            )
            .times(1),
        );
    }
    b.post("/v1/chat/completions", &chat_body("rr3")).await;
    let t0 = Instant::now();
    let r = b
        .post_with(
            "/v1/chat/completions",
            &chat_body("rr3"),
            &[("x-aibroker-max-wait-ms", "500")],
        )
        .await;
    assert!(t0.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        r.status, 200,
        "cooling keys are tried rather than refused: {}",
        r.text
    );
    let bad = b
        .post_with(
            "/v1/chat/completions",
            &chat_body("rr3"),
            &[("x-aibroker-max-wait-ms", "soon")],
        )
        .await;
    bad.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn the_ledger_keeps_the_decision_and_each_attempt() {
    let fake = FakeProvider::start().await;
    fake.script(
        Rule::for_model(
            "priority-p2",
            Behavior::Status {
                status: 502,
                retry_after: None,
            },
        )
        .times(1),
    );
    let b = start(&fake).await;
    let r = b.post("/v1/chat/completions", &chat_body("priority")).await;
    assert_eq!(served(&r), "p1-0/priority-p1");
    let id = r.header("x-aibroker-request-id").to_owned();
    let row = b.wait_row(&id).await;
    let trace = &row["trace"];
    assert_eq!(trace["strategy"], "priority");
    let ranked: Vec<&str> = trace["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter(|c| c["rank"].is_u64())
        .map(|c| c["upstream_model"].as_str().expect("model"))
        .collect();
    assert_eq!(ranked, ["priority-p2", "priority-p1", "priority-p3"]);
    let attempts = row["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["http_status"], 502);
    assert_eq!(attempts[1]["http_status"], 200);
    assert!(
        attempts
            .iter()
            .all(|a| a["latency_ms"].as_f64().is_some_and(|l| l > 0.0))
    );
    let g = b.get(&format!("/v1/generation?id={id}")).await;
    assert_eq!(g.json["data"]["routing"], *trace, "{}", g.text);
    // A refused request keeps why, too.
    let r = b
        .post(
            "/v1/chat/completions",
            &json!({"model": "priority", "messages": [], "provider": {"only": ["nobody"]}}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    let row = b.wait_row(r.header("x-aibroker-request-id")).await;
    assert_eq!(
        row["trace"]["candidates"].as_array().map(Vec::len),
        Some(3),
        "{row}"
    );
    assert!(row["trace"]["error"].is_string());
}

/// Requests of many shapes over models of every strategy: `routing.explain` names the key
/// and backend that then really answers.
#[tokio::test]
async fn explain_agrees_with_the_backend_that_answers() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model(
        "latency-p1",
        Behavior::DelayFirstByte(Duration::from_millis(30)),
    ));
    let b = start(&fake).await;
    let models = [
        "rr3",
        "priority",
        "round_robin",
        "least_busy",
        "latency",
        "cheapest",
        "best",
    ];
    let extras: Vec<Value> = vec![
        json!({}),
        json!({"provider": {"order": ["p3", "p1"]}}),
        json!({"provider": {"ignore": ["p2"]}}),
        json!({"provider": {"sort": "price"}}),
        json!({"provider": {"max_price": {"prompt": 2}}}),
        json!({"user": "session-9"}),
        json!({"models": ["cheapest"], "provider": {"only": ["p3", "keys"]}}),
    ];
    let mut checked = 0;
    for round in 0..3 {
        for model in models {
            for extra in &extras {
                let mut body = chat_body(model);
                for (k, v) in extra.as_object().expect("object") {
                    body[k] = v.clone();
                }
                let explained = b
                    .rpc(
                        "routing.explain",
                        json!({"query": {"model": model, "request": body}}),
                    )
                    .await;
                let first = explained["candidates"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["rank"] == 0))
                    .unwrap_or_else(|| panic!("no rank 0 for {model} {extra}: {explained}"));
                let r = b.post("/v1/chat/completions", &body).await;
                assert_eq!(
                    served(&r),
                    format!(
                        "{}/{}",
                        first["instance"].as_str().expect("instance"),
                        first["upstream_model"].as_str().expect("model")
                    ),
                    "round {round}, {model} {extra}: {explained}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * models.len() * extras.len());
}

/// `auto`, `autocheapest` and `autobest` through the binary, JSON and streamed: each picks the
/// backend its strategy ranks first among the servable chat models.
#[tokio::test(flavor = "multi_thread")]
async fn auto_names_route_json_and_streams_through_the_binary() {
    let fake = FakeProvider::start().await;
    // Both of chat's backends answer: `backup` ($1/$1) is the cheapest chat backend anywhere;
    // `fake` is what `best` prefers: same tier and success, so measured latency decides, and
    // `backup` answers 30 ms late (without it the order of two equally fast backends is a coin
    // toss once both are measured).
    fake.script(Rule::for_model(
        "up-backup",
        Behavior::DelayFirstByte(Duration::from_millis(30)),
    ));
    let b = Start::new(crate::harness::models_yaml(
        &fake.base_url(),
        &fake.base_url(),
    ))
    .start()
    .await;
    for (name, upstream) in [
        ("auto", "up-backup"),
        ("autocheapest", "up-backup"),
        ("autobest", "up-chat"),
    ] {
        let r = b.post("/v1/chat/completions", &chat_body(name)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.json["model"], upstream, "{name}");
        assert_eq!(r.header("x-aibroker-model"), "chat", "{name}");

        let s = b
            .stream("/v1/chat/completions", &crate::harness::stream_body(name))
            .await;
        assert_eq!(s.status, 200, "{name}");
        assert!(s.ended_with_done(), "{name}: {:?}", s.events);
        assert_eq!(s.json_events()[0]["model"], upstream, "{name} (stream)");
    }
    assert_eq!(fake.count(None, Some("up-backup")), 4);
    assert_eq!(fake.count(None, Some("up-chat")), 2);
}

/// `ROUTING_STRATEGY` is what `auto` picks: `best` sends `auto` where `autobest` goes; the old
/// name `AUTO_STRATEGY` and the old meaning of `ROUTING_STRATEGY` (a backend strategy) still
/// work, each with one deprecation line in the log.
#[tokio::test(flavor = "multi_thread")]
async fn routing_strategy_best_changes_what_auto_picks() {
    let fake = FakeProvider::start().await;
    let yaml = crate::harness::models_yaml(&fake.base_url(), &fake.base_url());
    for (env, auto_goes_to, warned) in [
        (vec![("ROUTING_STRATEGY", "best")], "up-chat", None),
        (vec![("ROUTING_STRATEGY", "cheapest")], "up-backup", None),
        (
            vec![("AUTO_STRATEGY", "best")],
            "up-chat",
            Some("AUTO_STRATEGY is deprecated"),
        ),
        (
            vec![("ROUTING_STRATEGY", "priority")],
            "up-backup",
            Some("set BACKEND_STRATEGY=priority"),
        ),
    ] {
        let mut start = Start::new(yaml.clone());
        for (k, v) in &env {
            start = start.env(k, v);
        }
        let b = start.start().await;
        let r = b.post("/v1/chat/completions", &chat_body("auto")).await;
        assert_eq!(r.status, 200, "{env:?}: {}", r.text);
        assert_eq!(r.json["model"], auto_goes_to, "{env:?}");
        let warnings = b
            .logs()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("STRATEGY"))
            .count();
        match warned {
            Some(text) => {
                assert!(b.logs().contains(text), "{env:?}: {}", b.logs());
                assert_eq!(warnings, 1, "{env:?}: {}", b.logs());
            }
            None => assert_eq!(warnings, 0, "{env:?}: {}", b.logs()),
        }
    }
}
