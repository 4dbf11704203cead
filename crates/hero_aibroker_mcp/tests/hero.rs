//! `mcp_hero` as an agent sees it: the real binary as an rmcp stdio child, over a socket tree
//! holding a real broker (`rpc.sock` answers heroservice.json and openrpc.json) and a socket
//! that is no hero service.

mod common;

use common::{Broker, call, mcp_hero, ok, text};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_broker_reads_its_methods_and_calls_them() {
    let broker = Broker::start().await;
    // A socket that is not a hero service (nothing answers on it) is skipped, not an error.
    let stray = broker.sockets().join("stray.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&stray).expect("bind");
    let c = mcp_hero(&broker.sockets()).await;

    let mut tools: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    tools.sort();
    assert_eq!(tools, ["call_method", "list_services", "service_methods"]);

    let (txt, found) = ok(&c, "list_services", json!({})).await;
    let services = found["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{found}");
    assert_eq!(services[0]["name"], "hero_aibroker", "{found}");
    let rpc_sock = broker.proc.rpc_sock();
    assert_eq!(services[0]["socket"], rpc_sock.to_str().expect("utf-8"));
    assert!(txt.starts_with("hero_aibroker "), "{txt}");

    let (txt, methods) = ok(&c, "service_methods", json!({"service": "hero_aibroker"})).await;
    let names: Vec<&str> = methods["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    for m in ["health", "keys.create", "usage.summary", "models.list"] {
        assert!(names.contains(&m), "{m} missing: {names:?}");
    }
    assert!(txt.contains("models.get(id) — "), "{txt}");

    // By name, by socket path, with params by name and by position.
    let (_, health) = ok(
        &c,
        "call_method",
        json!({"service": "hero_aibroker", "method": "health"}),
    )
    .await;
    assert_eq!(health["result"]["status"], "ok", "{health}");
    let (_, model) = ok(
        &c,
        "call_method",
        json!({"service": rpc_sock, "method": "models.get", "params": {"id": "talk"}}),
    )
    .await;
    assert_eq!(model["result"]["id"], "chat", "the alias resolves: {model}");
    let (_, model) = ok(
        &c,
        "call_method",
        json!({"service": "hero_aibroker", "method": "models.get", "params": ["solo"]}),
    )
    .await;
    assert_eq!(model["result"]["tier"], "cheap", "{model}");

    // Errors are tool errors with one line: the service's own, or what is wrong.
    let r = call(
        &c,
        "call_method",
        json!({"service": "hero_aibroker", "method": "no.such"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("error -32601"), "{}", text(&r));
    let r = call(&c, "service_methods", json!({"service": "nobody"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("no hero service \"nobody\"") && text(&r).contains("hero_aibroker"),
        "{}",
        text(&r)
    );
    let r = call(
        &c,
        "call_method",
        json!({"service": "hero_aibroker", "method": "health", "params": 3}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("params must be an object or an array"),
        "{}",
        text(&r)
    );
}

/// Through the aggregator, as an agent reaches it: `mcp_hero` run by `hero_aibroker_services` on
/// the broker's socket root finds the broker and calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_aggregator_it_lists_and_calls_the_broker() {
    use hero_aibroker_testkit::{AggregatorConfig, uds_http};
    let broker = Broker::start().await;
    let servers = json!([
        {"name": "hero", "command": common::MCP_HERO, "transport": "stdio", "timeout_secs": 10},
    ]);
    let agg = AggregatorConfig::new(servers)
        .in_dir(broker.proc.dir())
        .start(1)
        .await;
    let call = async |tool: &str, args: serde_json::Value| {
        let (status, v) = uds_http(
            &agg.mcp_sock(),
            "POST",
            &format!("/tools/{tool}"),
            &[],
            Some(&args.to_string()),
        )
        .await
        .expect("mcp.sock");
        assert_eq!(status, 200, "{v}");
        v
    };
    let listed = call("list_services", json!({})).await;
    let names: Vec<&str> = listed["structuredContent"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"hero_aibroker"), "{listed}");
    let info = call(
        "call_method",
        json!({"service": "hero_aibroker", "method": "info"}),
    )
    .await;
    assert_eq!(info["isError"], false, "{info}");
    assert_eq!(
        info["structuredContent"]["result"]["name"], "hero_aibroker",
        "{info}"
    );
}
