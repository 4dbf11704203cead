//! Aggregation with a real third-party MCP server: the real `hero_aibroker_services` binary
//! supervising `@modelcontextprotocol/server-everything` (node, from `tests/mcp`, pinned in its
//! package-lock.json), the bundled `mcp_ping`, and `mcp_broker` in front of a real broker; an
//! rmcp streamable-HTTP client over `mcp.sock` lists and calls tools of all three.
//!
//! `everything` and `mcp_ping` both offer `echo`, so the aggregator lists both with their
//! server's prefix (`everything__echo`, `ping__echo`); every other name stays as its server
//! calls it (`get-sum`, `ping`, `list_models`…).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Broker;
use hero_aibroker_testkit::sibling_bin;
use hero_aibroker_testkit::{AggregatorConfig, AggregatorProcess};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, UnixSocketHttpClient};
use serde_json::{Value, json};

/// `tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js`; fails (never
/// skips) when `npm ci` has not been run there.
fn everything_js() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let js =
        repo.join("tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        js.exists(),
        "{} is missing: run scripts/test.sh (it installs tests/mcp with npm ci)",
        js.display()
    );
    js
}

/// Starts `hero_aibroker_services` on `servers` and waits until `/health` shows `ready` ready.
async fn start_services(dir: &Path, servers: Value, ready: u64) -> AggregatorProcess {
    AggregatorConfig::new(servers)
        .in_dir(dir)
        // node starting server-everything takes a moment on a busy machine.
        .ready_within(Duration::from_secs(60))
        .start(ready)
        .await
}

async fn client(sock: &Path) -> RunningService<RoleClient, ()> {
    let uri = "http://localhost/mcp";
    let http = UnixSocketHttpClient::new(sock.to_str().expect("utf-8 path"), uri);
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(uri),
    );
    ().serve(transport)
        .await
        .expect("MCP handshake over mcp.sock")
}

async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    let r = c
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
    r
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_serves_server_everything_mcp_ping_and_mcp_broker_as_one_server() {
    let everything = everything_js();
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let servers = json!([
        {
            "name": "everything",
            "command": "node",
            "args": [everything, "stdio"],
            "transport": "stdio",
            "timeout_secs": 30
        },
        {
            "name": "ping",
            "command": sibling_bin("mcp_ping"),
            "args": ["--name", "ping"],
            "transport": "stdio"
        },
        {
            "name": "hero_aibroker",
            "command": common::MCP_BROKER,
            "args": ["--socket-dir", broker.sockets()],
            "transport": "stdio"
        }
    ]);
    let services = start_services(dir.path(), servers, 3).await;
    let c = client(&services.mcp_sock()).await;

    let names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    for expected in [
        // `echo` is offered by both everything and mcp_ping: prefixed.
        "everything__echo",
        "ping__echo",
        // Unique names stay as their servers call them.
        "get-sum",
        "get-env",
        "ping",
        "whoami",
        "list_models",
        "estimate_cost",
        "broker_health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "echo"), "{names:?}");

    let r = call(
        &c,
        "everything__echo",
        json!({"message": "through the aggregator"}),
    )
    .await;
    assert_eq!(text(&r), "Echo: through the aggregator");
    let r = call(&c, "get-sum", json!({"a": 2, "b": 40})).await;
    assert!(text(&r).contains("42"), "{}", text(&r));
    let r = call(&c, "ping__echo", json!({"text": "hi"})).await;
    assert_eq!(text(&r), "hi");
    let r = call(&c, "whoami", json!({})).await;
    assert_eq!(text(&r), "ping");

    let r = call(&c, "list_models", json!({"tier": "standard"})).await;
    assert!(
        text(&r).contains(
            "- chat [tier standard] context 8192 tokens, $2.00 / $8.00 per 1M tokens in/out"
        ),
        "{}",
        text(&r)
    );
    let models = r.structured_content.expect("structuredContent");
    assert_eq!(models["count"], 1);
    assert_eq!(models["models"][0]["name"], "chat");
    let r = call(
        &c,
        "estimate_cost",
        json!({"model": "chat", "input_tokens": 1000, "output_tokens": 500}),
    )
    .await;
    assert_eq!(
        r.structured_content.expect("structuredContent")["total_cost_usd"],
        0.006
    );

    c.cancel().await.expect("close");
    drop(services);
    drop(broker);
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `node index.js <mode>` on `port` (server-everything reads PORT), killed on drop; waits until
/// the port accepts connections.
async fn everything_remote(mode: &str, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("node")
        .arg(everything_js())
        .arg(mode)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "server-everything {mode} never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// Remote servers: server-everything run by itself in its `sse` mode (the deprecated HTTP+SSE
/// transport: GET /sse, POST /message) and in its `streamableHttp` mode (POST /mcp), each
/// aggregated as a remote (`transport: sse` / `http`) and called through mcp.sock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_servers_over_sse_and_streamable_http_are_aggregated_and_called() {
    let (sse_port, http_port) = (free_port(), free_port());
    let _sse = everything_remote("sse", sse_port).await;
    let _http = everything_remote("streamableHttp", http_port).await;
    let dir = tempfile::tempdir().expect("tmp");
    let servers = json!([
        {"name": "old", "url": format!("http://127.0.0.1:{sse_port}/sse"), "transport": "sse"},
        {"name": "new", "url": format!("http://127.0.0.1:{http_port}/mcp"), "transport": "http"},
    ]);
    let services = start_services(dir.path(), servers, 2).await;
    let c = client(&services.mcp_sock()).await;
    let names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    for expected in ["old__echo", "new__echo", "old__get-sum", "new__get-sum"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let r = call(
        &c,
        "old__echo",
        json!({"message": "over the old transport"}),
    )
    .await;
    assert_eq!(text(&r), "Echo: over the old transport");
    let r = call(&c, "new__echo", json!({"message": "over streamable HTTP"})).await;
    assert_eq!(text(&r), "Echo: over streamable HTTP");
    let r = call(&c, "old__get-sum", json!({"a": 40, "b": 2})).await;
    assert!(text(&r).contains("42"), "{}", text(&r));
    let (status, servers) =
        hero_aibroker_testkit::uds_http(&services.mcp_sock(), "GET", "/servers", &[], None)
            .await
            .expect("servers");
    assert_eq!(status, 200);
    let transports: Vec<(&str, &str)> = servers["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or(""),
                s["transport"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(transports.contains(&("old", "sse")), "{servers}");
}
