//! Helpers of the end-to-end tests: the real `hero_aibroker_services` binary on a temporary
//! socket directory (audit database inside it), plain HTTP/1.1 over `mcp.sock`, and rmcp's
//! MCP client.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use hero_aibroker_testkit::{AggregatorConfig, AggregatorProcess};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, Service};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, UnixSocketHttpClient};
use serde_json::{Value, json};

pub const SERVICES: &str = env!("CARGO_BIN_EXE_hero_aibroker_services");
/// The bundled `mcp_ping` (crate hero_aibroker_mcp), built by `cargo build --workspace`.
pub fn ping_bin() -> String {
    hero_aibroker_testkit::sibling_bin("mcp_ping")
        .display()
        .to_string()
}

/// The aggregator under test: the testkit's process harness (temp dir, clean env with a
/// provider-key canary, log printed on failure, killed on drop).
pub type Instance = AggregatorProcess;

/// Starts the binary with `servers` and waits until `/health` shows `ready` servers ready.
pub async fn start(servers: Value, prefix: Option<&str>, ready: u64) -> Instance {
    let env: Vec<(&str, &str)> = prefix.map(|p| ("MCP_TOOL_PREFIX", p)).into_iter().collect();
    start_with(servers, &env, ready).await
}

/// [`start`] with extra environment variables, in a new temporary directory.
pub async fn start_with(servers: Value, env: &[(&str, &str)], ready: u64) -> Instance {
    config(servers, env).start(ready).await
}

/// Starts the binary in `dir` (which may hold the database of an earlier run).
pub async fn start_in(dir: &Path, servers: Value, env: &[(&str, &str)], ready: u64) -> Instance {
    config(servers, env).in_dir(dir).start(ready).await
}

fn config(servers: Value, env: &[(&str, &str)]) -> AggregatorConfig {
    env.iter()
        .fold(AggregatorConfig::new(servers), |cfg, (k, v)| cfg.env(k, v))
}

#[allow(unused_imports)] // not every test binary uses both
pub use hero_aibroker_testkit::{uds_get as get, uds_http as http};

/// An rmcp client session on `mcp.sock` with `handler` (`()` ignores notifications),
/// sending `x-aibroker-caller: <caller>` when given.
pub async fn client_as<S: Service<RoleClient>>(
    sock: &Path,
    handler: S,
    caller: Option<&str>,
) -> RunningService<RoleClient, S> {
    let uri = "http://localhost/mcp";
    let http = UnixSocketHttpClient::new(sock.to_str().expect("utf-8 path"), uri);
    let mut config = StreamableHttpClientTransportConfig::with_uri(uri);
    if let Some(c) = caller {
        config = config.custom_headers(
            [(
                axum::http::HeaderName::from_static("x-aibroker-caller"),
                axum::http::HeaderValue::from_str(c).expect("header value"),
            )]
            .into(),
        );
    }
    let transport = StreamableHttpClientTransport::with_client(http, config);
    handler
        .serve(transport)
        .await
        .expect("MCP handshake over mcp.sock")
}

pub async fn client(sock: &Path) -> RunningService<RoleClient, ()> {
    client_as(sock, (), None).await
}

pub async fn call<S: Service<RoleClient>>(
    c: &RunningService<RoleClient, S>,
    tool: &str,
    args: Value,
) -> Result<String, String> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    match c.call_tool(params).await {
        Ok(r) => Ok(r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("")),
        Err(e) => Err(e.to_string()),
    }
}

pub fn ping(name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--name".to_owned(), name.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    json!({"name": name, "command": ping_bin(), "args": args, "transport": "stdio"})
}

/// Polls `GET /calls{query}` until it lists `n` calls (the audit commits every ~20 ms).
pub async fn calls(sock: &Path, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(sock, &format!("/calls{query}"))
            .await
            .expect("GET /calls");
        assert_eq!(status, 200, "{body}");
        let list = body["calls"].as_array().cloned().expect("calls");
        if list.len() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} calls listed: {body}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Our uid, as the aggregator attributes calls without a caller header.
pub fn our_caller() -> String {
    format!("uds:uid={}", rustix::process::getuid().as_raw())
}
