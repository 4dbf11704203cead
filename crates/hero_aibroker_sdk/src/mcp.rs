//! The MCP tools the broker exposes from its aggregator (`hero_aibroker_services` on
//! `mcp.sock`): `mcp.list_tools`, `mcp.call_tool`, `mcp.servers`, `mcp.calls` on `rpc.sock`, and
//! `GET /mcp/tools`, `POST /mcp/tools/{name}` on `rest.sock`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One tool of the aggregated MCP server: MCP's `Tool` object (camelCase fields, as MCP
/// serializes them) plus the server that owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// The name to call it by: the server's own name, or `server__tool` when two servers offer
    /// the same name (or always, with `MCP_TOOL_PREFIX=always`).
    pub name: String,
    /// The MCP server (from `mcp_servers.json`) that runs it.
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(rename = "inputSchema")]
    pub input_schema: Value,
    #[serde(
        rename = "outputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Other fields of MCP's `Tool` (e.g. `icons`, `_meta`), as the server gave them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// One configured MCP server and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    pub name: String,
    /// `stdio`, `http` or `sse`.
    pub transport: String,
    /// `starting`, `ready`, `restarting`, `failed` or `stopped`.
    pub state: String,
    /// Number of tools, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<u64>,
    /// Restart attempt under way, when restarting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Why it is restarting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next restart is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Why it failed for good (e.g. the OS error of a missing command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Restarts since the aggregator started.
    #[serde(default)]
    pub restarts: u32,
    /// The child's pid (and process group), while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its tools' names, when ready.
    #[serde(default)]
    pub tool_names: Vec<String>,
}

/// `mcp.calls`: which audit rows to return, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McpCallQuery {
    /// At most this many rows (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// e.g. `key:key_ab12` or `uds:uid=1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Only calls that started at or after this time (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

/// One audited tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpCall {
    pub id: i64,
    /// When the call started (Unix milliseconds).
    pub ts_ms: i64,
    /// Who called: `key:<id>` for a broker API key, `uds:uid=N` for a local process.
    pub caller: String,
    /// The owning server; absent when the tool was unknown.
    #[serde(default)]
    pub server: Option<String>,
    pub tool: String,
    pub duration_ms: u64,
    /// False on a protocol error and on a result with `isError: true`.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Only recorded when the aggregator runs with `MCP_AUDIT_ARGS=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// `mcp` (an MCP session) or `rest` (`POST /mcp/tools/{name}`, `mcp.call_tool`).
    pub via: String,
}
