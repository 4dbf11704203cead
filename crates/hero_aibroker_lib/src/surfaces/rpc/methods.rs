//! The admin API's implementation: every method of `HeroAiBrokerApi` over the broker's state.

use std::sync::Arc;

use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::*;
use hero_aibroker_sdk::mcp::{McpCall, McpCallQuery, McpServer, McpTool};
use hero_aibroker_sdk::rpc::{HeroAiBrokerApiServer, codes};
use hero_aibroker_sdk::wire::ModelObject;
use jsonrpsee::core::{RpcResult, async_trait};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;

use crate::accounting::keys::KeyError;
use crate::accounting::store::StoreError;
use crate::config::registry::{Backend, Target};
use crate::health::pool::Instance;
use crate::mcp::McpError;
use crate::state::AppState;
use crate::surfaces::api::model_object;

/// The admin API over a broker's state.
#[derive(Debug, Clone)]
pub struct Admin {
    pub state: Arc<AppState>,
    pub sockets: Sockets,
}

/// The jsonrpsee module serving [`Admin`].
pub fn module(admin: Admin) -> jsonrpsee::RpcModule<()> {
    let mut m = jsonrpsee::RpcModule::new(());
    // Merging can only fail on duplicate method names, which the trait rules out.
    if let Err(e) = m.merge(admin.into_rpc()) {
        tracing::error!("cannot build the RPC module: {e}");
    }
    m
}

/// An RPC error with the JSON-RPC code of `code`'s row in the one error table.
fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code.rpc_code(), msg.into(), None::<()>)
}

fn store_err(e: StoreError) -> ErrorObjectOwned {
    tracing::error!("store error in an RPC call: {e}");
    err(ErrorCode::Store, "the store failed; see the broker's log")
}

fn key_err(e: KeyError) -> ErrorObjectOwned {
    match e {
        KeyError::NotFound(_) => err(ErrorCode::NotFound, e.to_string()),
        KeyError::Invalid(m) => err(ErrorCode::InvalidRequest, m),
        KeyError::Store(s) => store_err(s),
    }
}

/// An aggregator failure as a JSON-RPC error: not running → `MCP_UNAVAILABLE`; unknown tool →
/// `NOT_FOUND`; bad arguments → invalid params; any other failure → `MCP_CALL` with the
/// aggregator's error object (`code`, `server`, `tool`) as `data`.
fn mcp_err(e: McpError) -> ErrorObjectOwned {
    let message = e.message();
    match e {
        McpError::Unavailable { .. } => err(ErrorCode::McpUnavailable, message),
        McpError::Status { status: 404, .. } => err(ErrorCode::NotFound, message),
        McpError::Status { status: 400, .. } => err(ErrorCode::InvalidRequest, message),
        McpError::Status { body, .. } => {
            ErrorObjectOwned::owned(codes::MCP_CALL, message, Some(body["error"].clone()))
        }
    }
}

/// `field` of an aggregator answer, decoded.
fn decode_field<T: serde::de::DeserializeOwned>(mut v: Value, field: &str) -> RpcResult<T> {
    serde_json::from_value(v[field].take()).map_err(|e| {
        err(
            ErrorCode::Internal,
            format!("the MCP aggregator answered an unexpected `{field}`: {e}"),
        )
    })
}

/// The operator's view of an instance: never its key, at most its last four characters.
fn instance_info(i: &Instance) -> InstanceInfo {
    InstanceInfo {
        id: i.id.clone(),
        key_hint: i.key.as_ref().map(crate::secret::Secret::masked),
        state: i.health().as_str().into(),
        reason: i.reason(),
        cooldown_seconds: i.cooldown_left().map(|d| d.as_secs_f64()),
    }
}

/// The operator's view of a backend's circuit breaker.
fn circuit_info(model: &str, b: &Backend, now_ms: u64) -> CircuitInfo {
    let snap = b.circuit.snapshot();
    CircuitInfo {
        model: model.to_owned(),
        upstream_model: b.model_id.clone(),
        state: snap.state.as_str().into(),
        failures: snap.failures,
        open_seconds: snap.probe_in(now_ms).map(|d| d.as_secs_f64()),
    }
}

impl Admin {
    fn instance(&self, id: &str) -> Result<Arc<Instance>, ErrorObjectOwned> {
        let reg = self.state.registry.load();
        reg.providers
            .values()
            .flat_map(|p| p.instances.iter())
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| {
                err(
                    ErrorCode::NotFound,
                    format!("no provider instance {:?}", crate::error::printable(id)),
                )
            })
    }
}

#[async_trait]
impl HeroAiBrokerApiServer for Admin {
    async fn health(&self) -> RpcResult<Health> {
        Ok(self.state.health())
    }

    async fn info(&self) -> RpcResult<Info> {
        let reg = self.state.registry.load();
        let requests = self.state.store.count_logs().await.map_err(store_err)?;
        Ok(Info {
            name: "hero_aibroker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.state.started.elapsed().as_secs(),
            sockets: self.sockets.clone(),
            database: self.state.store.describe(),
            models: reg.models.len() as u64,
            servable_models: reg.models.values().filter(|m| reg.servable(m)).count() as u64,
            providers: reg.providers.len() as u64,
            instances: reg
                .providers
                .values()
                .map(|p| p.instances.len() as u64)
                .sum(),
            keys: self.state.keys.count() as u64,
            requests,
            is_mother: self.state.settings.is_mother,
            mother_count: self.state.store.count_mothers().await.map_err(store_err)?,
        })
    }

    async fn models_list(&self) -> RpcResult<Vec<ModelObject>> {
        let reg = self.state.registry.load();
        Ok(reg
            .models
            .values()
            .map(|m| model_object(&reg, m, 0))
            .collect())
    }

    async fn models_get(&self, id: String) -> RpcResult<ModelObject> {
        let reg = self.state.registry.load();
        match reg.resolve(&id) {
            Some(Target::Model { model, .. }) => Ok(model_object(&reg, &model, 0)),
            _ => Err(err(
                ErrorCode::NotFound,
                format!("no model {:?}", crate::error::printable(&id)),
            )),
        }
    }

    async fn providers_list(&self) -> RpcResult<Vec<ProviderInfo>> {
        let reg = self.state.registry.load();
        let prio = self.state.priorities.load();
        let now = crate::health::pool::unix_ms();
        Ok(reg
            .providers
            .values()
            .map(|p| ProviderInfo {
                name: p.name.clone(),
                kind: p.kind.clone(),
                base_url: p.base_url.clone(),
                keyless: p.keyless,
                key_source: p.key_source.clone(),
                priority_override: prio.get(&p.name).copied(),
                instances: p
                    .instances
                    .iter()
                    .map(|i| instance_info(i))
                    .collect::<Vec<_>>(),
                models: reg
                    .models
                    .values()
                    .filter(|m| m.backends.iter().any(|b| b.provider == p.name))
                    .map(|m| m.name.clone())
                    .collect(),
                circuits: reg
                    .models
                    .values()
                    .flat_map(|m| m.backends.iter().map(move |b| (m, b)))
                    .filter(|(_, b)| b.provider == p.name)
                    .map(|(m, b)| circuit_info(&m.name, b, now))
                    .collect(),
            })
            .collect())
    }

    async fn providers_reset(&self, instance: String) -> RpcResult<InstanceInfo> {
        let i = self.instance(&instance)?;
        i.reset();
        // The operator says the provider works again: its backends' circuits close too.
        let reg = self.state.registry.load();
        reg.models
            .values()
            .flat_map(|m| m.backends.iter())
            .filter(|b| b.provider == i.provider)
            .for_each(|b| b.circuit.reset());
        tracing::info!(instance = %i.id, "instance reset by an operator");
        self.state.persist_health().await;
        Ok(instance_info(&i))
    }

    async fn providers_check(&self, provider: Option<String>) -> RpcResult<Vec<KeyCheck>> {
        let s = &self.state;
        crate::providers::keycheck::check(
            &s.registry.load(),
            &s.drivers,
            &s.client,
            provider.as_deref(),
        )
        .await
        .ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!(
                    "no provider {:?}",
                    crate::error::printable(provider.as_deref().unwrap_or_default())
                ),
            )
        })
    }

    async fn providers_disable(
        &self,
        instance: String,
        reason: Option<String>,
    ) -> RpcResult<InstanceInfo> {
        let i = self.instance(&instance)?;
        i.disable(reason.map(|r| crate::error::printable(&r)));
        tracing::info!(instance = %i.id, "instance disabled by an operator");
        self.state.persist_health().await;
        Ok(instance_info(&i))
    }

    async fn keys_create(&self, params: KeyCreate) -> RpcResult<KeyCreated> {
        self.state
            .keys
            .create(&self.state.store, params)
            .await
            .map_err(key_err)
    }

    async fn keys_list(&self) -> RpcResult<Vec<ApiKeyInfo>> {
        Ok(self.state.keys.list())
    }

    async fn keys_update(&self, id: String, update: KeyUpdate) -> RpcResult<ApiKeyInfo> {
        self.state
            .keys
            .update(&self.state.store, &id, update)
            .await
            .map_err(key_err)
    }

    async fn keys_revoke(&self, id: String) -> RpcResult<ApiKeyInfo> {
        self.state
            .keys
            .revoke(&self.state.store, &id)
            .await
            .map_err(key_err)
    }

    async fn usage_summary(&self, query: UsageQuery) -> RpcResult<Vec<UsageGroup>> {
        self.state.store.usage(&query).await.map_err(store_err)
    }

    async fn usage_series(&self, query: SeriesQuery) -> RpcResult<Vec<UsageBucket>> {
        if query.bucket_ms < 60_000 {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("bucket_ms {} is below a minute (60000)", query.bucket_ms),
            ));
        }
        if !(-1440..=1440).contains(&query.tz_offset_minutes) {
            return Err(err(
                ErrorCode::InvalidRequest,
                "tz_offset_minutes must be within a day of UTC (-1440..1440)",
            ));
        }
        let to = query
            .to_ms
            .unwrap_or_else(|| i64::try_from(crate::health::pool::unix_ms()).unwrap_or(i64::MAX));
        let buckets = to.saturating_sub(query.from_ms) / query.bucket_ms;
        if !(0..=10_000).contains(&buckets) {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("the range holds {buckets} buckets; 0 to 10000 are allowed"),
            ));
        }
        self.state
            .store
            .usage_series(&SeriesQuery {
                to_ms: Some(to),
                ..query
            })
            .await
            .map_err(store_err)
    }

    async fn requests_list(&self) -> RpcResult<Vec<RunningRequest>> {
        Ok(self.state.running.list())
    }

    async fn requests_cancel(&self, id: String) -> RpcResult<RunningRequest> {
        match self.state.running.cancel(&id) {
            Some(r) => {
                tracing::info!(request = %r.id, "request cancelled by the operator");
                Ok(r)
            }
            None => Err(err(
                ErrorCode::NotFound,
                format!(
                    "no running request {:?} (it may have ended)",
                    crate::error::printable(&id)
                ),
            )),
        }
    }

    async fn usage_log(&self, id: String) -> RpcResult<RequestLog> {
        match self.state.store.log(&id).await.map_err(store_err)? {
            Some(row) => Ok(row),
            None => Err(err(
                ErrorCode::NotFound,
                format!("no ledger row {:?}", crate::error::printable(&id)),
            )),
        }
    }

    async fn usage_logs(&self, query: LogQuery) -> RpcResult<LogPage> {
        self.state.store.logs(&query).await.map_err(store_err)
    }

    async fn routing_explain(&self, query: ExplainQuery) -> RpcResult<RouteTrace> {
        crate::pipeline::relay::explain(&self.state, &query)
            .map_err(|e| err(ErrorCode::InvalidRequest, e.message))
    }

    async fn priority_list(&self) -> RpcResult<Vec<PriorityEntry>> {
        let prio = self.state.priorities.load();
        let reg = self.state.registry.load();
        Ok(reg
            .providers
            .keys()
            .map(|p| PriorityEntry {
                provider: p.clone(),
                priority: prio.get(p).copied(),
            })
            .collect())
    }

    async fn priority_set(
        &self,
        provider: String,
        priority: Option<i64>,
    ) -> RpcResult<PriorityEntry> {
        if !self.state.registry.load().providers.contains_key(&provider) {
            return Err(err(
                ErrorCode::NotFound,
                format!("no provider {:?}", crate::error::printable(&provider)),
            ));
        }
        self.state
            .set_priority(&provider, priority)
            .await
            .map_err(store_err)?;
        Ok(PriorityEntry { provider, priority })
    }

    async fn mothers_list(&self) -> RpcResult<Vec<MotherInfo>> {
        super::mothers::list(&self.state).await
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
        let fields = super::mothers::Fields {
            address: Some(address),
            port: Some(port),
            label,
            priority,
            enabled,
            token,
        };
        super::mothers::add(&self.state, fields).await
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
        let fields = super::mothers::Fields {
            address,
            port,
            label,
            priority,
            enabled,
            token,
        };
        super::mothers::update(&self.state, &id, fields).await
    }

    async fn mothers_remove(&self, id: String) -> RpcResult<MotherChange> {
        super::mothers::remove(&self.state, &id).await
    }

    async fn config_reload(&self) -> RpcResult<ReloadResult> {
        match self.state.reload().await {
            Ok(reg) => Ok(ReloadResult {
                path: self.state.models.load().path.display().to_string(),
                models: reg.models.len() as u64,
                servable_models: reg.models.values().filter(|m| reg.servable(m)).count() as u64,
            }),
            Err(e) => Err(err(
                ErrorCode::InvalidConfig,
                format!("the configuration was not changed: {e}"),
            )),
        }
    }

    async fn mcp_list_tools(&self) -> RpcResult<Vec<McpTool>> {
        let v = self.state.mcp.get("/tools").await.map_err(mcp_err)?;
        decode_field(v, "tools")
    }

    async fn mcp_call_tool(&self, name: String, arguments: Option<Value>) -> RpcResult<Value> {
        let arguments = match arguments {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "arguments must be a JSON object of the tool's arguments",
                ));
            }
        };
        self.state
            .mcp
            .call_tool(&name, &arguments, "rpc")
            .await
            .map_err(mcp_err)
    }

    async fn mcp_servers(&self) -> RpcResult<Vec<McpServer>> {
        let v = self.state.mcp.get("/servers").await.map_err(mcp_err)?;
        decode_field(v, "servers")
    }

    async fn mcp_calls(&self, query: Option<McpCallQuery>) -> RpcResult<Vec<McpCall>> {
        let q = query.unwrap_or_default();
        let path = {
            let mut params = form_urlencoded::Serializer::new(String::new());
            if let Some(n) = q.limit {
                params.append_pair("limit", &n.to_string());
            }
            for (k, v) in [
                ("server", &q.server),
                ("tool", &q.tool),
                ("caller", &q.caller),
            ] {
                if let Some(v) = v {
                    params.append_pair(k, v);
                }
            }
            if let Some(ms) = q.since_ms {
                params.append_pair("since_ms", &ms.to_string());
            }
            format!("/calls?{}", params.finish())
        };
        let v = self.state.mcp.get(&path).await.map_err(mcp_err)?;
        decode_field(v, "calls")
    }

    async fn rpc_discover(&self) -> RpcResult<Value> {
        serde_json::from_str(hero_aibroker_sdk::OPENRPC_JSON)
            .map_err(|e| err(ErrorCode::Internal, format!("openrpc.json is invalid: {e}")))
    }
}
