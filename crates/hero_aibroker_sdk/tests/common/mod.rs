//! A stub of the admin API for the SDK's tests: it answers every method of `HeroAiBrokerApi`
//! without a broker, echoing its params into the result where it can, so a test can see that a
//! param it sent by name was read. `full` stubs fill every optional field; minimal ones leave
//! them empty, so result schemas are checked for both presence and nullability.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use hero_aibroker_sdk::OPENRPC_JSON;
use hero_aibroker_sdk::admin::*;
use hero_aibroker_sdk::mcp::{McpCall, McpCallQuery, McpServer, McpTool};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiServer;
use hero_aibroker_sdk::wire::{ModelBackend, ModelObject};
use jsonrpsee::RpcModule;
use jsonrpsee::core::{RpcResult, async_trait};
use serde_json::{Map, Value};

/// Answers every method; `full` decides whether optional fields are filled.
#[derive(Debug, Clone, Copy)]
pub struct Stub {
    pub full: bool,
}

/// The stub as the `RpcModule<()>` a server mounts.
pub fn module(full: bool) -> RpcModule<()> {
    let mut module = RpcModule::new(());
    module
        .merge(Stub { full }.into_rpc())
        .expect("the trait has no duplicate method names");
    module
}

impl Stub {
    fn some<T>(&self, value: T) -> Option<T> {
        self.full.then_some(value)
    }

    fn vec<T>(&self, value: Vec<T>) -> Vec<T> {
        if self.full { value } else { Vec::new() }
    }

    pub fn mother(&self) -> MotherInfo {
        MotherInfo {
            id: "ai_broker_mother".to_owned(),
            address: "127.0.0.1".to_owned(),
            port: 33850,
            label: self.some("split-mode-mother".to_owned()),
            priority: 1,
            enabled: true,
            has_token: self.full,
            models: 12,
            state: "healthy".to_owned(),
            last_error: self.some("HTTP 401".to_owned()),
            created_ms: 1_735_689_600_000,
            updated_ms: 1_735_689_600_000,
        }
    }

    pub fn model(&self, id: &str) -> ModelObject {
        ModelObject {
            id: id.to_owned(),
            object: "model".to_owned(),
            created: 1_715_367_049,
            owned_by: "openai".to_owned(),
            display_name: self.some("GPT-4o".to_owned()),
            tier: self.some("premium".to_owned()),
            context_window: self.some(128_000),
            capabilities: self.vec(vec!["chat".to_owned()]),
            aliases: self.vec(vec!["4o".to_owned()]),
            servable: true,
            backends: self.vec(vec![ModelBackend {
                provider: "openai".to_owned(),
                model_id: id.to_owned(),
                priority: 1,
                input_cost: 2.5,
                output_cost: 10.5,
                instances: 2,
            }]),
            strategy: self.some("priority".to_owned()),
            extra: Map::new(),
        }
    }

    pub fn running(&self, id: &str) -> RunningRequest {
        RunningRequest {
            id: id.to_owned(),
            started_ms: 1_735_689_600_000,
            age_ms: 4200,
            client: "uds:uid=1000".to_owned(),
            key_id: self.some("key_3fa85f6457174562".to_owned()),
            model: "gpt-4o-mini".to_owned(),
            provider: self.some("openai-0".to_owned()),
            stream: true,
            bytes: 18_432,
            cancelled: false,
        }
    }

    pub fn key(&self, id: &str) -> ApiKeyInfo {
        ApiKeyInfo {
            id: id.to_owned(),
            name: "ci".to_owned(),
            hint: "sk-hab-…9f3a".to_owned(),
            allowed_models: self.some(vec!["gpt-4o-mini".to_owned()]),
            rpm: self.some(60),
            tpm: self.some(100_000),
            max_concurrent: self.some(8),
            budget_usd: self.some(5.5),
            spent_usd: 0.25,
            revoked: false,
            created_ms: 1_735_689_600_000,
        }
    }

    fn log(&self) -> RequestLog {
        RequestLog {
            id: "req_1".to_owned(),
            response_id: self.some("chatcmpl-1".to_owned()),
            started_ms: 1_735_689_600_000,
            ended_ms: 1_735_689_601_250,
            client: "uds:uid=1000,pid=4242".to_owned(),
            key_id: self.some("k_01".to_owned()),
            endpoint: "/v1/chat/completions".to_owned(),
            requested_model: "auto".to_owned(),
            model: self.some("gpt-4o-mini".to_owned()),
            provider: self.some("openai-1".to_owned()),
            upstream_model: self.some("gpt-4o-mini-2024-07-18".to_owned()),
            stream: true,
            attempts: self.vec(vec![AttemptLog {
                candidate: "openai-1/gpt-4o-mini-2024-07-18".to_owned(),
                outcome: "ok".to_owned(),
                http_status: self.some(200),
                latency_ms: 310.5,
            }]),
            prompt_tokens: 12,
            completion_tokens: 40,
            cached_tokens: 3,
            reasoning_tokens: 4,
            cost_usd: 0.0000258,
            upstream_cost_usd: self.some(0.0000261),
            list_cost_usd: self.some(0.0000258),
            audio_seconds: self.some(12.5),
            characters: self.some(42),
            latency_ms: 1250.5,
            ttfb_ms: self.some(310.5),
            status: RequestStatus::Ok,
            http_status: 200,
            error: self.some("none, but the field must exist".to_owned()),
            trace: self.some(self.trace("auto", None)),
        }
    }

    /// A routing decision for `model`: one ranked candidate (cooling down, when `full`) and
    /// one skipped for a missing key; `session` sets the affinity.
    fn trace(&self, model: &str, session: Option<String>) -> RouteTrace {
        RouteTrace {
            requested: model.to_owned(),
            fallbacks: self.vec(vec!["gpt-4o".to_owned()]),
            strategy: "round_robin".to_owned(),
            affinity: session.map(|_| "openai-1/gpt-4o-mini".to_owned()),
            waited_ms: self.some(0),
            candidates: vec![
                TraceCandidate {
                    model: model.to_owned(),
                    provider: "openai".to_owned(),
                    instance: Some("openai-1".to_owned()),
                    upstream_model: "gpt-4o-mini".to_owned(),
                    rank: Some(0),
                    skipped: None,
                    note: self.some("cooling down 1.5s".to_owned()),
                },
                TraceCandidate {
                    model: "gpt-4o-mini".to_owned(),
                    provider: "groq".to_owned(),
                    instance: None,
                    upstream_model: "gpt-4o-mini".to_owned(),
                    rank: None,
                    skipped: Some("provider groq has no API key".to_owned()),
                    note: None,
                },
            ],
            error: self.some("only set when nothing is left".to_owned()),
            dropped: self.vec(vec!["thinking".to_owned()]),
        }
    }
}

#[async_trait]
impl HeroAiBrokerApiServer for Stub {
    async fn health(&self) -> RpcResult<Health> {
        Ok(Health {
            status: "ok".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: 3600,
            ledger: LedgerHealth {
                queued: 1,
                written: 2,
                dropped: 3,
                write_errors: 4,
                healthy: true,
            },
            catalog: self.some(CatalogHealth {
                models: 5,
                refreshed_ms: self.some(1_760_000_000_000),
                last_error: self.some("HTTP 500".to_owned()),
                next_refresh_ms: self.some(1_760_003_600_000),
            }),
            store: self.some(StoreHealth {
                kind: "postgres".to_owned(),
                database: "postgres://broker:***@db/broker".to_owned(),
                reachable: false,
                last_error: self.some("pool timed out".to_owned()),
                config_version: 7,
                checked_ms: self.some(1_760_000_000_500),
            }),
        })
    }

    async fn info(&self) -> RpcResult<Info> {
        Ok(Info {
            name: "hero_aibroker".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: 3600,
            sockets: Sockets {
                rest: "/tmp/rest.sock".to_owned(),
                rpc: "/tmp/rpc.sock".to_owned(),
                tcp: self.some("127.0.0.1:33850".to_owned()),
            },
            database: "sqlite://broker.db".to_owned(),
            models: 42,
            servable_models: 17,
            providers: 4,
            instances: 6,
            keys: 3,
            requests: 1200,
            is_mother: self.full,
            mother_count: u64::from(self.full),
        })
    }

    async fn models_list(&self) -> RpcResult<Vec<ModelObject>> {
        Ok(vec![self.model("gpt-4o")])
    }

    async fn models_get(&self, id: String) -> RpcResult<ModelObject> {
        Ok(self.model(&id))
    }

    async fn providers_list(&self) -> RpcResult<Vec<ProviderInfo>> {
        Ok(vec![ProviderInfo {
            name: "openai".to_owned(),
            kind: "openai_compat".to_owned(),
            base_url: "https://api.openai.com/v1".to_owned(),
            keyless: false,
            key_source: "OPENAI_API_KEY".to_owned(),
            priority_override: self.some(3),
            instances: self.vec(vec![InstanceInfo {
                id: "openai-1".to_owned(),
                key_hint: self.some("***abcd".to_owned()),
                state: "cooldown".to_owned(),
                reason: self.some("rate limited (429)".to_owned()),
                cooldown_seconds: self.some(12.5),
            }]),
            models: self.vec(vec!["gpt-4o".to_owned()]),
            circuits: self.vec(vec![CircuitInfo {
                model: "gpt-4o".to_owned(),
                upstream_model: "gpt-4o-2024-08-06".to_owned(),
                state: "open".to_owned(),
                failures: 5,
                open_seconds: self.some(21.5),
            }]),
        }])
    }

    async fn providers_reset(&self, instance: String) -> RpcResult<InstanceInfo> {
        Ok(InstanceInfo {
            id: instance,
            key_hint: self.some("***abcd".to_owned()),
            state: "healthy".to_owned(),
            reason: None,
            cooldown_seconds: None,
        })
    }

    async fn providers_check(&self, provider: Option<String>) -> RpcResult<Vec<KeyCheck>> {
        Ok(vec![KeyCheck {
            instance: "openai-0".to_owned(),
            provider: provider.unwrap_or_else(|| "every provider".to_owned()),
            key_hint: self.some("***abcd".to_owned()),
            ok: !self.full,
            http_status: self.some(401),
            latency_ms: 12,
            models: self.some(92),
            error: self.some("HTTP 401: Incorrect API key provided.".to_owned()),
        }])
    }

    async fn providers_disable(
        &self,
        instance: String,
        reason: Option<String>,
    ) -> RpcResult<InstanceInfo> {
        Ok(InstanceInfo {
            id: instance,
            key_hint: self.some("***abcd".to_owned()),
            state: "disabled".to_owned(),
            reason: Some(reason.unwrap_or_else(|| "disabled by an operator".to_owned())),
            cooldown_seconds: None,
        })
    }

    async fn keys_create(&self, params: KeyCreate) -> RpcResult<KeyCreated> {
        let key = ApiKeyInfo {
            name: params.name,
            allowed_models: params.allowed_models,
            rpm: params.rpm,
            tpm: params.tpm,
            max_concurrent: params.max_concurrent,
            budget_usd: params.budget_usd,
            ..self.key("k_new")
        };
        Ok(KeyCreated {
            key,
            secret: "sk-hab-secret".to_owned(),
        })
    }

    async fn keys_list(&self) -> RpcResult<Vec<ApiKeyInfo>> {
        Ok(vec![self.key("k_01")])
    }

    async fn keys_update(&self, id: String, update: KeyUpdate) -> RpcResult<ApiKeyInfo> {
        let mut key = self.key(&id);
        if let Some(name) = update.name {
            key.name = name;
        }
        key.allowed_models = update.allowed_models.or(key.allowed_models);
        key.rpm = update.rpm.or(key.rpm);
        key.tpm = update.tpm.or(key.tpm);
        key.max_concurrent = update.max_concurrent.or(key.max_concurrent);
        key.budget_usd = update.budget_usd.or(key.budget_usd);
        for field in &update.clear {
            match field.as_str() {
                "rpm" => key.rpm = None,
                "tpm" => key.tpm = None,
                "max_concurrent" => key.max_concurrent = None,
                "budget_usd" => key.budget_usd = None,
                "allowed_models" => key.allowed_models = None,
                _ => {}
            }
        }
        Ok(key)
    }

    async fn keys_revoke(&self, id: String) -> RpcResult<ApiKeyInfo> {
        Ok(ApiKeyInfo {
            revoked: true,
            ..self.key(&id)
        })
    }

    async fn usage_summary(&self, query: UsageQuery) -> RpcResult<Vec<UsageGroup>> {
        Ok(vec![UsageGroup {
            group: serde_json::to_value(query.group_by)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            requests: 120,
            errors: 2,
            prompt_tokens: 15_000,
            completion_tokens: 42_000,
            cost_usd: 0.0275,
            upstream_cost_usd: 0.0,
            avg_latency_ms: 830.5,
            first_ms: query.from_ms.unwrap_or(1),
            last_ms: query.to_ms.unwrap_or(2),
        }])
    }

    async fn usage_series(&self, query: SeriesQuery) -> RpcResult<Vec<UsageBucket>> {
        Ok(vec![UsageBucket {
            start_ms: query.from_ms,
            requests: 12,
            errors: 1,
            prompt_tokens: 1500,
            completion_tokens: 4200,
            cost_usd: 0.0031,
            avg_latency_ms: 640.2,
        }])
    }

    async fn usage_logs(&self, query: LogQuery) -> RpcResult<LogPage> {
        let mut row = self.log();
        if let Some(model) = query.model {
            row.model = Some(model);
        }
        Ok(LogPage {
            rows: vec![row],
            next_offset: self.some(query.offset.unwrap_or(0) + 1),
        })
    }

    async fn usage_log(&self, id: String) -> RpcResult<RequestLog> {
        Ok(RequestLog { id, ..self.log() })
    }

    async fn requests_list(&self) -> RpcResult<Vec<RunningRequest>> {
        Ok(vec![self.running("req_8c1f2a9e4b7d3c6a5f0e1d2b")])
    }

    async fn requests_cancel(&self, id: String) -> RpcResult<RunningRequest> {
        Ok(RunningRequest {
            cancelled: true,
            ..self.running(&id)
        })
    }

    async fn routing_explain(&self, query: ExplainQuery) -> RpcResult<RouteTrace> {
        Ok(self.trace(&query.model, query.session))
    }

    async fn priority_list(&self) -> RpcResult<Vec<PriorityEntry>> {
        Ok(vec![PriorityEntry {
            provider: "groq".to_owned(),
            priority: self.some(1),
        }])
    }

    async fn priority_set(
        &self,
        provider: String,
        priority: Option<i64>,
    ) -> RpcResult<PriorityEntry> {
        Ok(PriorityEntry { provider, priority })
    }

    async fn mothers_list(&self) -> RpcResult<Vec<MotherInfo>> {
        Ok(vec![self.mother()])
    }

    async fn mothers_add(
        &self,
        address: String,
        port: u16,
        label: Option<String>,
        priority: Option<i64>,
        enabled: Option<bool>,
        token: Option<String>,
    ) -> RpcResult<MotherChange> {
        // Echoes its params (see `params_by_name_and_by_position_match_the_trait`).
        Ok(MotherChange {
            id: format!("{address}:{port}:{label:?}:{priority:?}:{enabled:?}:{token:?}"),
            success: true,
        })
    }

    async fn mothers_update(
        &self,
        id: String,
        address: Option<String>,
        port: Option<u16>,
        label: Option<String>,
        priority: Option<i64>,
        enabled: Option<bool>,
        token: Option<String>,
    ) -> RpcResult<MotherInfo> {
        let m = self.mother();
        Ok(MotherInfo {
            id,
            address: address.unwrap_or(m.address),
            port: port.unwrap_or(m.port),
            label: label.or(m.label),
            priority: priority.unwrap_or(m.priority),
            enabled: enabled.unwrap_or(m.enabled),
            has_token: token.is_some(),
            ..m
        })
    }

    async fn mothers_remove(&self, id: String) -> RpcResult<MotherChange> {
        Ok(MotherChange { id, success: true })
    }

    async fn config_reload(&self) -> RpcResult<ReloadResult> {
        Ok(ReloadResult {
            path: "modelsconfig.yml".to_owned(),
            models: 42,
            servable_models: 17,
        })
    }

    async fn mcp_list_tools(&self) -> RpcResult<Vec<McpTool>> {
        Ok(vec![McpTool {
            name: "echo".to_owned(),
            server: "ping".to_owned(),
            title: self.some("Echo".to_owned()),
            description: self.some("Echoes the text back.".to_owned()),
            input_schema: serde_json::json!({"type": "object"}),
            output_schema: self.some(serde_json::json!({"type": "object"})),
            annotations: self.some(serde_json::json!({"readOnlyHint": true})),
            extra: Map::new(),
        }])
    }

    async fn mcp_call_tool(&self, name: String, arguments: Option<Value>) -> RpcResult<Value> {
        Ok(serde_json::json!({
            "content": [{"type": "text", "text": name}],
            "structuredContent": arguments,
            "isError": false,
        }))
    }

    async fn mcp_servers(&self) -> RpcResult<Vec<McpServer>> {
        Ok(vec![McpServer {
            name: "ping".to_owned(),
            transport: "stdio".to_owned(),
            state: "restarting".to_owned(),
            tools: self.some(6),
            attempt: self.some(2),
            last_error: self.some("exited with signal 9".to_owned()),
            retry_in_ms: self.some(1000),
            error: self.some("cannot start".to_owned()),
            restarts: 2,
            pid: self.some(4242),
            tool_names: self.vec(vec!["echo".to_owned()]),
        }])
    }

    async fn mcp_calls(&self, query: Option<McpCallQuery>) -> RpcResult<Vec<McpCall>> {
        let q = query.unwrap_or_default();
        Ok(vec![McpCall {
            id: q.limit.map_or(0, i64::from),
            ts_ms: q.since_ms.unwrap_or(1_735_689_600_000),
            caller: q.caller.unwrap_or_else(|| "uds:uid=1000".to_owned()),
            server: self.some(q.server.unwrap_or_else(|| "ping".to_owned())),
            tool: q.tool.unwrap_or_else(|| "echo".to_owned()),
            duration_ms: 3,
            ok: !self.full,
            error: self.some("HTTP 504: the tool timed out".to_owned()),
            arguments: self.some(serde_json::json!({"text": "hi"})),
            via: "rest".to_owned(),
        }])
    }

    async fn rpc_discover(&self) -> RpcResult<Value> {
        Ok(serde_json::from_str(hero_aibroker_sdk::OPENRPC_JSON).expect("openrpc.json is JSON"))
    }
}

/// `openrpc.json`, parsed.
pub fn doc() -> Value {
    serde_json::from_str(OPENRPC_JSON).expect("openrpc.json is valid JSON")
}

/// The document's methods.
pub fn methods(doc: &Value) -> &[Value] {
    doc["methods"]
        .as_array()
        .expect("openrpc.json has a methods array")
}

/// The `name` of a method or param.
pub fn name(v: &Value) -> &str {
    v["name"]
        .as_str()
        .expect("every method and param has a name")
}

/// A method's params.
pub fn params(method: &Value) -> &[Value] {
    method["params"].as_array().map_or(&[], Vec::as_slice)
}
