//! MCP tools through the broker: the real aggregator (`hero_aibroker_services`) with the bundled
//! `mcp_ping` on the broker's socket directory; REST (`/mcp/tools`, `/mcp/tools/{name}`,
//! `/mcp/sse`) and RPC (`mcp.*`) must give the same answers, and a clear 503 / -32030 when the
//! aggregator is not running.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use hero_aibroker_testkit::{AggregatorConfig, AggregatorProcess, FakeProvider, sibling_bin};
use serde_json::{Value, json};

use crate::harness::{Broker, Start};

/// The aggregator on the broker's socket directory, serving `mcp_ping` as `ping`.
async fn aggregator(b: &Broker, extra_env: &[(&str, &str)]) -> AggregatorProcess {
    let servers = json!([
        {"name": "ping", "command": sibling_bin("mcp_ping"), "args": ["--name", "ping"],
         "transport": "stdio", "timeout_secs": 2},
    ]);
    let mut cfg = AggregatorConfig::new(servers)
        .in_dir(b.dir())
        .env("RUST_LOG", "info");
    for (k, v) in extra_env {
        cfg = cfg.env(k, v);
    }
    cfg.start(1).await
}

async fn broker() -> (FakeProvider, Broker) {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    (fake, b)
}

fn our_uid(b: &Broker) -> u32 {
    std::fs::metadata(b.dir()).expect("tempdir").uid()
}

/// Polls `mcp.calls` until it has `n` rows (the aggregator commits its audit in batches).
async fn calls(b: &Broker, n: usize) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let r = b.rpc("mcp.calls", json!({"query": {"limit": 100}})).await;
        let rows = r.as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "mcp.calls never reached {n} rows: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rest_and_rpc_list_and_call_the_same_tools_and_every_call_is_audited() {
    let (_fake, b) = broker().await;
    let _agg = aggregator(&b, &[]).await;

    let rest = b.get("/mcp/tools").await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    let rpc = b.rpc("mcp.list_tools", json!({})).await;
    assert_eq!(rest.json["tools"], rpc, "REST and RPC list the same tools");
    let echo = rest.json["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "echo")
        .expect("ping's echo is listed")
        .clone();
    assert_eq!(echo["server"], "ping");
    assert_eq!(echo["inputSchema"]["type"], "object");

    let by_rest = b
        .post("/mcp/tools/echo", &json!({"text": "hi there"}))
        .await;
    assert_eq!(by_rest.status, 200, "{}", by_rest.text);
    assert_eq!(by_rest.json["isError"], false);
    assert!(
        by_rest.json["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("hi there")),
        "{}",
        by_rest.text
    );
    let by_rpc = b
        .rpc(
            "mcp.call_tool",
            json!({"name": "echo", "arguments": {"text": "hi there"}}),
        )
        .await;
    assert_eq!(by_rpc, by_rest.json, "REST and RPC give the same result");

    let servers = b.rpc("mcp.servers", json!({})).await;
    let ping = &servers[0];
    assert_eq!(ping["name"], "ping", "{servers}");
    assert_eq!(ping["state"], "ready");
    assert!(
        ping["tool_names"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("echo")))
    );

    // Both calls are audited, newest first, with who called and how.
    let rows = calls(&b, 2).await;
    assert_eq!(rows[0]["caller"], "rpc", "{rows:?}");
    assert_eq!(rows[1]["caller"], format!("uds:uid={}", our_uid(&b)));
    for r in &rows[..2] {
        assert_eq!(r["tool"], "echo");
        assert_eq!(r["server"], "ping");
        assert_eq!(r["ok"], true);
        assert_eq!(r["via"], "rest");
        assert!(
            r.get("arguments").is_none(),
            "arguments are off by default: {r}"
        );
    }
    let filtered = b
        .rpc(
            "mcp.calls",
            json!({"query": {"caller": "rpc", "limit": 10}}),
        )
        .await;
    assert_eq!(filtered.as_array().map(Vec::len), Some(1), "{filtered}");
}

#[tokio::test]
async fn tool_errors_keep_each_surface_s_format() {
    let (_fake, b) = broker().await;
    let _agg = aggregator(&b, &[("MCP_AUDIT_ARGS", "true")]).await;

    let missing = b.post("/mcp/tools/no_such_tool", &json!({})).await;
    let msg = missing.assert_error(404, "tool_not_found");
    assert!(msg.contains("no_such_tool"), "{msg}");
    let rpc = b
        .rpc_with("mcp.call_tool", json!({"name": "no_such_tool"}), None)
        .await;
    assert_eq!(rpc["error"]["code"], -32004, "{rpc}");

    let not_object = b.post("/mcp/tools/echo", &json!([1, 2])).await;
    not_object.assert_error(400, "invalid_request");
    let rpc = b
        .rpc_with(
            "mcp.call_tool",
            json!({"name": "echo", "arguments": [1]}),
            None,
        )
        .await;
    assert_eq!(rpc["error"]["code"], -32602, "{rpc}");

    // The server's call timeout (2 s here) ends a hanging tool.
    let slow = b.post("/mcp/tools/sleep", &json!({"seconds": 30})).await;
    slow.assert_error(504, "tool_timeout");
    let rpc = b
        .rpc_with(
            "mcp.call_tool",
            json!({"name": "sleep", "arguments": {"seconds": 30}}),
            None,
        )
        .await;
    assert_eq!(rpc["error"]["code"], -32031, "{rpc}");
    assert_eq!(rpc["error"]["data"]["code"], "tool_timeout", "{rpc}");
    assert_eq!(rpc["error"]["data"]["server"], "ping", "{rpc}");

    // With MCP_AUDIT_ARGS=true the arguments are kept, and failures are audited as such.
    let ok = b.post("/mcp/tools/echo", &json!({"text": "kept"})).await;
    assert_eq!(ok.status, 200);
    // Two unknown tools, two timeouts, then the echo: wait for all five audit rows (they are
    // committed in groups, so four can be visible before the fifth).
    let rows = calls(&b, 5).await;
    assert_eq!(rows[0]["arguments"], json!({"text": "kept"}), "{rows:?}");
    let timeouts: Vec<&Value> = rows.iter().filter(|r| r["tool"] == "sleep").collect();
    assert_eq!(timeouts.len(), 2, "{rows:?}");
    assert!(
        timeouts
            .iter()
            .all(|r| r["ok"] == false && r["error"].is_string())
    );
}

#[tokio::test]
async fn without_the_aggregator_the_answer_is_a_clear_503() {
    let (_fake, b) = broker().await;
    let r = b.get("/mcp/tools").await;
    let msg = r.assert_error(503, "mcp_unavailable");
    assert!(
        msg.contains("mcp.sock") && msg.contains("scripts/start.sh"),
        "{msg}"
    );
    assert_eq!(r.header("retry-after"), "1");
    b.post("/mcp/tools/echo", &json!({}))
        .await
        .assert_error(503, "mcp_unavailable");
    for (method, params) in [
        ("mcp.list_tools", json!({})),
        ("mcp.servers", json!({})),
        ("mcp.calls", json!({})),
        ("mcp.call_tool", json!({"name": "echo"})),
    ] {
        let r = b.rpc_with(method, params, None).await;
        assert_eq!(r["error"]["code"], -32030, "{method}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("mcp.sock")),
            "{method}: {r}"
        );
    }
}

/// The `data:` payloads of an SSE body (or the body itself when it is plain JSON).
fn messages(text: &str) -> Vec<Value> {
    let sse: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    if sse.is_empty() {
        serde_json::from_str(text).into_iter().collect()
    } else {
        sse
    }
}

#[tokio::test]
async fn mcp_clients_can_use_the_broker_socket() {
    let (_fake, b) = broker().await;
    let _agg = aggregator(&b, &[]).await;
    let post = |body: Value, session: Option<String>| {
        let mut rb = b
            .client
            .post(Broker::url("/mcp/sse"))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            rb = rb
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        rb.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"}}}),
        None,
    )
    .await
    .expect("initialize");
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("the aggregator's session id passes through the proxy")
        .to_owned();
    let init = messages(&init.text().await.expect("body"));
    assert!(
        init[0]["result"]["serverInfo"]["name"].is_string(),
        "{init:?}"
    );

    let ack = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .expect("initialized");
    assert!(ack.status().is_success(), "{}", ack.status());

    let listed = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        Some(session.clone()),
    )
    .await
    .expect("tools/list");
    let listed = messages(&listed.text().await.expect("body"));
    let names: Vec<&str> = listed[0]["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"ping"),
        "{names:?}"
    );

    let called = post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": "via the broker"}}}),
        Some(session),
    )
    .await
    .expect("tools/call");
    let called = messages(&called.text().await.expect("body"));
    let rest = b
        .post("/mcp/tools/echo", &json!({"text": "via the broker"}))
        .await;
    assert_eq!(
        called[0]["result"], rest.json,
        "MCP and REST give the same result"
    );

    // The proxied session's call is audited as an MCP call by this process.
    let rows = calls(&b, 2).await;
    let mcp_row = rows.iter().find(|r| r["via"] == "mcp").expect("an mcp row");
    assert_eq!(mcp_row["caller"], format!("uds:uid={}", our_uid(&b)));
}
