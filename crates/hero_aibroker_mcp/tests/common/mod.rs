//! A real broker (`hero_aibroker_server`) on a temporary socket directory in front of the
//! scripted fake provider, `mcp_broker` as an rmcp stdio child, and helpers to call tools.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this harness"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use hero_aibroker_testkit::{BrokerConfig, BrokerProcess, FakeProvider};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::Value;

pub const MCP_BROKER: &str = env!("CARGO_BIN_EXE_mcp_broker");

/// Providers: `fake` (two keys), `backup` (keyless); `groq` is known to the broker but has no
/// key here. Models:
/// - `chat` (standard, alias `talk`): fake p1 $2/$8, backup p2 $1/$1;
/// - `solo` (cheap): groq p1 $0.1/$0.1 (no key), fake p2 $0.5/$1.5;
/// - `unkeyed` (cheap): groq only, $0.2/$0.6.
fn models_yaml(fake: &str) -> String {
    format!(
        r#"
providers:
  - {{name: fake, base_url: "{fake}", api_key_env: FAKE_KEYS}}
  - {{name: backup, base_url: "{fake}"}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    aliases: [talk]
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: 2.0, output_cost: 8.0}}
      - {{provider: backup, model_id: up-backup, priority: 2, input_cost: 1.0, output_cost: 1.0}}
  solo:
    display_name: Solo
    tier: cheap
    context_window: 4096
    backends:
      - {{provider: groq, model_id: llama, priority: 1, input_cost: 0.1, output_cost: 0.1}}
      - {{provider: fake, model_id: up-solo, priority: 2, input_cost: 0.5, output_cost: 1.5}}
  unkeyed:
    display_name: Unkeyed
    tier: cheap
    context_window: 2048
    backends:
      - {{provider: groq, model_id: llama-small, priority: 1, input_cost: 0.2, output_cost: 0.6}}
"#
    )
}

pub struct Broker {
    pub proc: BrokerProcess,
    /// Runs on the test's runtime (a multi-thread one: the broker calls it while tests wait).
    pub fake: FakeProvider,
}

impl Broker {
    /// Starts a broker whose sockets go in `<dir>/sockets/hero_aibroker/`.
    pub async fn start() -> Broker {
        let fake = FakeProvider::start().await;
        let proc = BrokerConfig::new(models_yaml(&fake.base_url()))
            .env("FAKE_KEYS", "key-a,key-b")
            .env("RUST_LOG", "warn")
            // Deterministic order for explain_route (the default is round_robin).
            .env("BACKEND_STRATEGY", "priority")
            .start()
            .await;
        Broker { proc, fake }
    }

    /// The root of the socket tree (`--socket-dir` for clients).
    pub fn sockets(&self) -> PathBuf {
        self.proc.socket_root()
    }

    pub fn server_log(&self) -> String {
        self.proc.logs()
    }
}

pub const MCP_HERO: &str = env!("CARGO_BIN_EXE_mcp_hero");

/// `mcp_broker --socket-dir <root>` as an rmcp stdio child, handshake done.
pub async fn mcp_broker(socket_root: &Path) -> RunningService<RoleClient, ()> {
    stdio_server(MCP_BROKER, socket_root).await
}

/// `mcp_hero --socket-dir <root>` as an rmcp stdio child, handshake done.
pub async fn mcp_hero(socket_root: &Path) -> RunningService<RoleClient, ()> {
    stdio_server(MCP_HERO, socket_root).await
}

/// A bundled server `bin --socket-dir <root>` as an rmcp stdio child, handshake done.
async fn stdio_server(bin: &str, socket_root: &Path) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_remove("HERO_SOCKET_DIR")
        .env("RUST_LOG", "warn")
        .arg("--socket-dir")
        .arg(socket_root);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    ().serve(transport)
        .await
        .unwrap_or_else(|e| panic!("MCP handshake with {bin}: {e}"))
}

/// Calls `tool`; panics on a protocol error (tool errors come back as `isError`).
pub async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    c.call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"))
}

/// The text content of a result, joined.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

/// Calls `tool`, asserts it succeeded and returns (text, structured content).
pub async fn ok(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> (String, Value) {
    let r = call(c, tool, args).await;
    assert_eq!(r.is_error, Some(false), "{tool} failed: {}", text(&r));
    let structured = r
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{tool}: no structuredContent"));
    (text(&r), structured)
}
