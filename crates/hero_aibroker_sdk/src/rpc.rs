//! The JSON-RPC admin API, declared once. The broker implements the generated server trait
//! (`feature = "server"`); clients use the generated `HeroAiBrokerApiClient` methods on any
//! jsonrpsee client, such as [`crate::client::RpcClient`] over `rpc.sock`.
#![allow(
    clippy::too_many_arguments,
    reason = "mothers.update takes its patch as flat named params, as the API documents; the generated server and client methods repeat them"
)]

#[cfg_attr(
    not(feature = "server"),
    expect(
        unused_imports,
        reason = "the client-only expansion rewrites RpcResult away"
    )
)]
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

use crate::admin::*;
use crate::mcp::{McpCall, McpCallQuery, McpServer, McpTool};
use crate::wire::ModelObject;

/// JSON-RPC error codes the broker answers with (besides the standard -32700..-32603); each
/// is the [`crate::ErrorCode::rpc_code`] of its row in the one error table.
pub use crate::error::rpc_codes as codes;

/// Methods that change state (or, like `providers.check`, use the provider keys; or, like
/// `mcp.call_tool`, run an operator-configured tool that may change anything): they need the
/// admin token when `ADMIN_TOKEN` is set.
pub const MUTATING_METHODS: &[&str] = &[
    "providers.check",
    "keys.create",
    "keys.update",
    "keys.revoke",
    "providers.reset",
    "providers.disable",
    "priority.set",
    "config.reload",
    "mcp.call_tool",
    "requests.cancel",
    "mothers.add",
    "mothers.update",
    "mothers.remove",
];

/// Methods whose one structured parameter may also be given flat, as the seed's methods take
/// them: `keys.create {name, budget_usd, …}` for `{"params": {…}}`, `keys.update {id, …patch}`
/// for `{"id", "update": {…}}`, `usage.summary {group_by, since, …}` for `{"query": {…}}`. The
/// method, the parameter that wraps the rest, and the fields that stay beside it. `openrpc.json`
/// declares each as `x-flat-params` (the wrapping parameter) on the method.
pub const FLAT_PARAMS: &[(&str, &str, &[&str])] = &[
    ("keys.create", "params", &[]),
    ("keys.update", "update", &["id"]),
    ("usage.summary", "query", &[]),
    ("usage.series", "query", &[]),
    ("usage.logs", "query", &[]),
    ("routing.explain", "query", &[]),
    ("mcp.calls", "query", &[]),
];

/// The admin API of hero_aibroker.
#[cfg_attr(feature = "server", rpc(server, client))]
#[cfg_attr(not(feature = "server"), rpc(client))]
pub trait HeroAiBrokerApi {
    /// Liveness and ledger state.
    #[method(name = "health")]
    async fn health(&self) -> RpcResult<Health>;

    /// Version, uptime, sockets and counts.
    #[method(name = "info")]
    async fn info(&self) -> RpcResult<Info>;

    /// Every model of the registry.
    #[method(name = "models.list")]
    async fn models_list(&self) -> RpcResult<Vec<ModelObject>>;

    /// One model by name or alias.
    #[method(name = "models.get")]
    async fn models_get(&self, id: String) -> RpcResult<ModelObject>;

    /// Providers, their instances (masked keys, state), the models they serve and the circuit
    /// of each backend.
    #[method(name = "providers.list")]
    async fn providers_list(&self) -> RpcResult<Vec<ProviderInfo>>;

    /// Returns an instance to healthy (clears auth_failed, disabled, cooldowns) and closes the
    /// circuits of every backend on its provider; persisted.
    #[method(name = "providers.reset")]
    async fn providers_reset(&self, instance: String) -> RpcResult<InstanceInfo>;

    /// Tests each provider key with a cheap `GET {base_url}/models` (5 s timeout, all at
    /// once); `provider` limits it to one provider. Read-only: instance states do not change.
    #[method(name = "providers.check")]
    async fn providers_check(&self, provider: Option<String>) -> RpcResult<Vec<KeyCheck>>;

    /// Stops routing to an instance until `providers.reset`; persisted.
    #[method(name = "providers.disable")]
    async fn providers_disable(
        &self,
        instance: String,
        reason: Option<String>,
    ) -> RpcResult<InstanceInfo>;

    /// Creates a broker API key; its secret is in the result and nowhere else.
    #[method(name = "keys.create")]
    async fn keys_create(&self, params: KeyCreate) -> RpcResult<KeyCreated>;

    /// Every key (never secrets).
    #[method(name = "keys.list")]
    async fn keys_list(&self) -> RpcResult<Vec<ApiKeyInfo>>;

    /// Changes a key's name, allowed models, limits or budget.
    #[method(name = "keys.update")]
    async fn keys_update(&self, id: String, update: KeyUpdate) -> RpcResult<ApiKeyInfo>;

    /// Revokes a key at once.
    #[method(name = "keys.revoke")]
    async fn keys_revoke(&self, id: String) -> RpcResult<ApiKeyInfo>;

    /// Usage grouped by model, provider, key or client over a time range.
    #[method(name = "usage.summary")]
    async fn usage_summary(&self, query: UsageQuery) -> RpcResult<Vec<UsageGroup>>;

    /// Usage in time buckets (for charts), aligned to the viewer's time zone.
    #[method(name = "usage.series")]
    async fn usage_series(&self, query: SeriesQuery) -> RpcResult<Vec<UsageBucket>>;

    /// Ledger rows, newest first, filtered and paged.
    #[method(name = "usage.logs")]
    async fn usage_logs(&self, query: LogQuery) -> RpcResult<LogPage>;

    /// One ledger row by the broker's request id (or the upstream's response id).
    #[method(name = "usage.log")]
    async fn usage_log(&self, id: String) -> RpcResult<RequestLog>;

    /// Runs the router for `model` (and optionally a request body and routing headers)
    /// without calling any upstream: the candidates in the order a real request would try
    /// them and why the others were left out. The same code path as real routing.
    #[method(name = "routing.explain")]
    async fn routing_explain(&self, query: ExplainQuery) -> RpcResult<RouteTrace>;

    /// The requests running now, oldest first.
    #[method(name = "requests.list")]
    async fn requests_list(&self) -> RpcResult<Vec<RunningRequest>>;

    /// Cancels a running request: it ends at once (a stream with an error event), recorded as
    /// cancelled.
    #[method(name = "requests.cancel")]
    async fn requests_cancel(&self, id: String) -> RpcResult<RunningRequest>;

    /// Runtime provider priorities.
    #[method(name = "priority.list")]
    async fn priority_list(&self) -> RpcResult<Vec<PriorityEntry>>;

    /// Sets (or with `null` clears) a provider's priority for all its backends; persisted and
    /// applied without restart.
    #[method(name = "priority.set")]
    async fn priority_set(
        &self,
        provider: String,
        priority: Option<i64>,
    ) -> RpcResult<PriorityEntry>;

    /// The mother brokers this broker forwards to (cascade).
    #[method(name = "mothers.list")]
    async fn mothers_list(&self) -> RpcResult<Vec<MotherInfo>>;

    /// Registers a mother broker (its TCP listener at `address:port`); persisted and applied
    /// without restart. `token` is what this broker presents to it: a broker key the mother
    /// issued, or its cascade token.
    #[method(name = "mothers.add")]
    async fn mothers_add(
        &self,
        address: String,
        port: u16,
        label: Option<String>,
        priority: Option<i64>,
        enabled: Option<bool>,
        token: Option<String>,
    ) -> RpcResult<MotherChange>;

    /// Changes a mother's fields (those given); applied without restart.
    #[method(name = "mothers.update")]
    async fn mothers_update(
        &self,
        id: String,
        address: Option<String>,
        port: Option<u16>,
        label: Option<String>,
        priority: Option<i64>,
        enabled: Option<bool>,
        token: Option<String>,
    ) -> RpcResult<MotherInfo>;

    /// Removes a mother; applied without restart.
    #[method(name = "mothers.remove")]
    async fn mothers_remove(&self, id: String) -> RpcResult<MotherChange>;

    /// Re-reads `modelsconfig.yml`; an invalid file changes nothing.
    #[method(name = "config.reload")]
    async fn config_reload(&self) -> RpcResult<ReloadResult>;

    /// The tools of every ready MCP server of the aggregator, with their argument schemas.
    #[method(name = "mcp.list_tools")]
    async fn mcp_list_tools(&self) -> RpcResult<Vec<McpTool>>;

    /// Calls a tool by its aggregated name; `arguments` is a JSON object (absent means `{}`).
    /// Returns MCP's `CallToolResult` (`content`, `structuredContent`, `isError`) as the tool
    /// gave it; audited like every tool call.
    #[method(name = "mcp.call_tool")]
    async fn mcp_call_tool(&self, name: String, arguments: Option<Value>) -> RpcResult<Value>;

    /// Every configured MCP server and its status.
    #[method(name = "mcp.servers")]
    async fn mcp_servers(&self) -> RpcResult<Vec<McpServer>>;

    /// The audit of tool calls, newest first.
    #[method(name = "mcp.calls")]
    async fn mcp_calls(&self, query: Option<McpCallQuery>) -> RpcResult<Vec<McpCall>>;

    /// The OpenRPC document of this API.
    #[method(name = "rpc.discover")]
    async fn rpc_discover(&self) -> RpcResult<Value>;
}
