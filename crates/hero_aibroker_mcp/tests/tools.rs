//! `mcp_broker` as an agent sees it: the real binary as an rmcp stdio child, in front of a real
//! `hero_aibroker_server` (priority routing) and the fake provider. See `common` for the models.

mod common;

use common::{Broker, call, mcp_broker, ok, text};
use hero_aibroker_sdk::ChatCompletionRequest;
use hero_aibroker_sdk::ChatMessage;
use hero_aibroker_sdk::client::RestClient;
use hero_aibroker_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS};
use serde_json::{Value, json};

fn names(models: &Value) -> Vec<&str> {
    models["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_six_tools_and_models_with_tiers_prices_and_backends() {
    let broker = Broker::start().await;
    let c = mcp_broker(&broker.sockets()).await;
    let mut tools: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    tools.sort();
    assert_eq!(
        tools,
        [
            "broker_health",
            "estimate_cost",
            "explain_route",
            "list_models",
            "model_info",
            "usage"
        ]
    );

    let (txt, all) = ok(&c, "list_models", json!({})).await;
    assert_eq!(names(&all), ["chat", "solo", "unkeyed"]);
    let chat = &all["models"][0];
    assert_eq!(chat["tier"], "standard");
    assert_eq!(chat["context_window"], 8192);
    assert_eq!(
        (
            chat["input_per_1m_usd"].as_f64(),
            chat["output_per_1m_usd"].as_f64()
        ),
        (Some(2.0), Some(8.0))
    );
    assert_eq!(chat["backends"][1]["provider"], "backup");
    assert_eq!(chat["backends"][1]["output_per_1m_usd"], 1.0);
    // solo's priority-1 backend (groq) has no key: the price shown is the one it would use.
    assert_eq!(all["models"][1]["input_per_1m_usd"], 0.5);
    assert!(
        txt.contains(
            "- chat [tier standard] context 8192 tokens, $2.00 / $8.00 per 1M tokens in/out; backends: fake, backup"
        ),
        "{txt}"
    );
    assert!(
        txt.contains("- unkeyed [tier cheap] context 2048 tokens, $0.20 / $0.60 per 1M tokens in/out; backends: groq (not servable: no provider key)"),
        "{txt}"
    );

    let (_, cheap) = ok(&c, "list_models", json!({"tier": "CHEAP"})).await;
    assert_eq!(names(&cheap), ["solo", "unkeyed"]);
    let (txt, none) = ok(&c, "list_models", json!({"tier": "premium"})).await;
    assert_eq!(none["count"], 0);
    assert!(
        txt.contains("Tiers the broker knows: cheap, standard"),
        "{txt}"
    );

    // By alias.
    let (txt, info) = ok(&c, "model_info", json!({"model": "talk"})).await;
    assert_eq!(info["name"], "chat");
    assert_eq!(info["aliases"], json!(["talk"]));
    assert_eq!(info["backends"][0]["model_id"], "up-chat");
    assert_eq!(info["backends"][0]["instances"], 2);
    assert!(
        txt.contains("  - fake/up-chat (priority 1, $2.00 per 1M in / $8.00 per 1M out, 2 keys)"),
        "{txt}"
    );

    let missing = call(&c, "model_info", json!({"model": "nope"})).await;
    assert_eq!(missing.is_error, Some(true));
    assert_eq!(text(&missing), "the broker answered: no model \"nope\"");
    c.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_cost_prices_the_routed_backend_and_shows_the_arithmetic() {
    let broker = Broker::start().await;
    let c = mcp_broker(&broker.sockets()).await;

    let args = json!({"model": "chat", "input_tokens": 1000, "output_tokens": 500});
    let (txt, e) = ok(&c, "estimate_cost", args).await;
    assert_eq!(e["price_source"], "routing");
    assert_eq!(e["backend"]["provider"], "fake");
    // 1000 × $2 / 1M + 500 × $8 / 1M
    assert_eq!(e["input_cost_usd"], 0.002);
    assert_eq!(e["output_cost_usd"], 0.004);
    assert_eq!(e["total_cost_usd"], 0.006);
    assert_eq!(
        e["by_backend"],
        json!([
            {"provider": "fake", "model_id": "up-chat", "total_cost_usd": 0.006},
            {"provider": "backup", "model_id": "up-backup", "total_cost_usd": 0.0015}
        ])
    );
    assert!(
        txt.starts_with(
            "chat: $0.006 for 1000 input + 500 output tokens on fake/up-chat (the backend routing would try first)\n\
             1000 input tokens × $2.00 / 1M = $0.002; 500 output tokens × $8.00 / 1M = $0.004; total $0.002 + $0.004 = $0.006\n"
        ),
        "{txt}"
    );

    // solo: groq is cheaper but has no key, so routing (and the price) is fake's.
    let args = json!({"model": "solo", "input_tokens": 14, "output_tokens": 30});
    let (_, e) = ok(&c, "estimate_cost", args).await;
    assert_eq!(
        (&e["price_source"], &e["backend"]["provider"]),
        (&json!("routing"), &json!("fake"))
    );
    // 14 × $0.5 / 1M + 30 × $1.5 / 1M = 0.000007 + 0.000045
    assert_eq!(e["total_cost_usd"], 0.000052);
    assert_eq!(
        e["arithmetic"],
        "14 input tokens × $0.50 / 1M = $0.000007; 30 output tokens × $1.50 / 1M = $0.000045; total $0.000007 + $0.000045 = $0.000052"
    );

    // unkeyed: routing picks nothing, so the cheapest backend's price is used, and it says why.
    let args = json!({"model": "unkeyed", "input_tokens": 1000, "output_tokens": 500});
    let (txt, e) = ok(&c, "estimate_cost", args).await;
    assert_eq!(e["price_source"], "cheapest");
    assert_eq!(e["total_cost_usd"], 0.0005);
    let note = e["note"].as_str().expect("note");
    assert!(
        note.starts_with("routing picked no candidate: ") && note.contains("groq"),
        "{note}"
    );
    assert!(
        txt.contains("(the cheapest backend: routing picked no candidate"),
        "{txt}"
    );

    let bad = call(
        &c,
        "estimate_cost",
        json!({"model": "nope", "input_tokens": 1, "output_tokens": 1}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    assert_eq!(text(&bad), "the broker answered: no model \"nope\"");
    c.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_route_gives_the_candidates_in_order_and_why_others_are_excluded() {
    let broker = Broker::start().await;
    let c = mcp_broker(&broker.sockets()).await;

    let (txt, t) = ok(&c, "explain_route", json!({"model": "talk"})).await;
    assert_eq!(t["strategy"], "priority");
    let order: Vec<(&str, Option<u64>)> = t["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| {
            (
                c["instance"].as_str().expect("instance"),
                c["rank"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("fake-0", Some(0)),
            ("fake-1", Some(1)),
            ("backup-0", Some(2))
        ]
    );
    assert!(
        txt.starts_with(
            "Routing \"talk\" with strategy priority: 3 candidate(s) in the order tried, 0 excluded\n\
             \x20 1. fake/up-chat (model chat, key fake-0)\n\
             \x20 2. fake/up-chat (model chat, key fake-1)\n\
             \x20 3. backup/up-backup (model chat, key backup-0)\n"
        ),
        "{txt}"
    );

    let (txt, t) = ok(&c, "explain_route", json!({"model": "solo"})).await;
    let groq = &t["candidates"][2];
    assert_eq!(
        (&groq["provider"], &groq["rank"]),
        (&json!("groq"), &Value::Null)
    );
    assert!(
        txt.contains("Excluded:\n  - groq/llama (model solo): provider groq has no API key"),
        "{txt}"
    );

    // A request body shapes the decision as it would for a real request.
    let body = json!({"provider": {"ignore": ["fake"]}});
    let (txt, t) = ok(&c, "explain_route", json!({"model": "chat", "body": body})).await;
    let ranked: Vec<&str> = t["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter(|c| c["rank"].is_u64())
        .map(|c| c["provider"].as_str().expect("provider"))
        .collect();
    assert_eq!(ranked, ["backup"], "{txt}");
    assert!(txt.contains("1 candidate(s) in the order tried, "), "{txt}");
    assert!(txt.contains("  - fake/up-chat (model chat"), "{txt}");
    c.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_health_count_a_real_request_through_the_fake_provider() {
    let broker = Broker::start().await;
    let c = mcp_broker(&broker.sockets()).await;

    let (txt, empty) = ok(&c, "usage", json!({})).await;
    assert_eq!(txt, "No requests in the last 24h.\n");
    assert_eq!(empty["total"]["requests"], 0);

    let rest = RestClient::new(broker.sockets().join("hero_aibroker/rest.sock"));
    let req = ChatCompletionRequest {
        model: "chat".to_owned(),
        messages: vec![ChatMessage::text("user", "hi")],
        ..ChatCompletionRequest::default()
    };
    rest.chat(&req).await.expect("chat through the broker");
    assert_eq!(broker.fake.count(None, None), 1);

    // The ledger writes asynchronously: wait for the row.
    let mut tries = 0;
    let usage = loop {
        let (txt, u) = ok(&c, "usage", json!({"by": "model", "since": "1h"})).await;
        if u["total"]["requests"] == 1 || tries == 100 {
            break (txt, u);
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (txt, u) = usage;
    let g = &u["groups"][0];
    assert_eq!(g["group"], "chat", "{u}");
    assert_eq!(
        (&g["requests"], &g["prompt_tokens"], &g["completion_tokens"]),
        (&json!(1), &json!(PROMPT_TOKENS), &json!(COMPLETION_TOKENS))
    );
    // 14 × $2 / 1M + 30 × $8 / 1M on fake (priority routing).
    assert!(
        (g["cost_usd"].as_f64().expect("cost") - 0.000268).abs() < 1e-12,
        "{g}"
    );
    assert!(
        txt.starts_with(
            "Usage by model in the last 1h:\n- chat: 1 request(s), 0 error(s), 14 input + 30 output tokens, $0.000268, avg "
        ),
        "{txt}"
    );
    let (_, by_provider) = ok(&c, "usage", json!({"by": "provider", "since": "7d"})).await;
    assert_eq!(by_provider["groups"][0]["group"], "fake-0", "{by_provider}");

    let bad = call(&c, "usage", json!({"since": "yesterday"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).starts_with("since must be a number and a unit"));

    let (txt, h) = ok(&c, "broker_health", json!({})).await;
    assert_eq!(h["health"]["status"], "ok");
    assert_eq!(h["health"]["ledger"]["written"], 1);
    assert_eq!(h["info"]["models"], 3);
    assert_eq!(h["info"]["servable_models"], 2);
    assert_eq!(h["info"]["requests"], 1);
    assert!(
        txt.starts_with("Broker ok (hero_aibroker 0.1.0), up "),
        "{txt}"
    );
    assert!(
        txt.contains("Ledger: healthy, 1 written, 0 queued, 0 dropped, 0 write error(s)"),
        "{txt}"
    );
    c.cancel().await.expect("close");
}

#[tokio::test]
async fn without_a_broker_every_tool_is_an_error_naming_the_socket_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = mcp_broker(dir.path()).await;
    let sock = dir.path().join("hero_aibroker/rpc.sock");
    let expected = format!(
        "the broker is not running: nothing answers on {} (start it with scripts/start.sh, \
         or `hero_aibroker_server --socket-dir {}`)",
        sock.display(),
        dir.path().display()
    );
    for (tool, args) in [
        ("list_models", json!({})),
        ("model_info", json!({"model": "chat"})),
        (
            "estimate_cost",
            json!({"model": "chat", "input_tokens": 1, "output_tokens": 1}),
        ),
        ("usage", json!({})),
        ("explain_route", json!({"model": "chat"})),
        ("broker_health", json!({})),
    ] {
        let r = call(&c, tool, args).await;
        assert_eq!(r.is_error, Some(true), "{tool}");
        assert_eq!(text(&r), expected, "{tool}");
        assert_eq!(r.structured_content, None, "{tool}");
    }
    // Still serving after six failures.
    assert_eq!(c.list_all_tools().await.expect("tools/list").len(), 6);
    c.cancel().await.expect("close");
}
