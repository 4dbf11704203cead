//! The MCP server: six read-only tools over the broker's JSON-RPC API. Every answer carries a
//! readable text and the same facts as `structuredContent`; a broker that is down or refuses
//! is a tool error (`isError: true`) with one line, and the server stays up.

use std::time::{SystemTime, UNIX_EPOCH};

use hero_aibroker_sdk::admin::{ExplainQuery, GroupBy, UsageQuery};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::broker::Broker;
use crate::report::{self, By, Model};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListModelsArgs {
    /// Only models of this tier (as the broker's models file names them, e.g. `cheap`,
    /// `standard`); every model when absent.
    #[serde(default)]
    pub tier: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ModelArgs {
    /// A model name or alias, as a client would request it.
    pub model: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EstimateArgs {
    /// A model name or alias.
    pub model: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

fn default_since() -> String {
    "24h".to_owned()
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UsageArgs {
    /// How to group: `model` (default), `provider` (key instance), `key` (broker API key id)
    /// or `client`.
    #[serde(default)]
    pub by: By,
    /// How far back: a number and a unit, e.g. `90s`, `30m`, `24h` (default), `7d`, `2w`.
    #[serde(default = "default_since")]
    pub since: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainArgs {
    /// The model as a client would request it (a name, an alias, `auto`…).
    pub model: String,
    /// An optional request body whose routing fields shape the decision as they would for a
    /// real request (`models` fallbacks, `provider` preferences, tools, images…); its `model`
    /// is replaced by `model`. Nothing is sent upstream.
    #[serde(default)]
    pub body: Option<Map<String, Value>>,
    /// `chat` (default), `completions` or `embeddings`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The MCP server: read-only questions to one broker.
#[derive(Debug, Clone)]
pub struct BrokerTools {
    broker: Broker,
    tool_router: ToolRouter<Self>,
}

/// A successful answer: the text, and the same facts as structured content.
pub(crate) fn answer(text: String, value: impl Serialize) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(serde_json::to_value(value).unwrap_or(Value::Null));
    r
}

/// A tool error: one line, `isError: true`.
pub(crate) fn failure(line: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(line)])
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tool_router]
impl BrokerTools {
    pub fn new(broker: Broker) -> BrokerTools {
        BrokerTools {
            broker,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Lists the broker's models: name, tier, context window, price per 1M input and output tokens (of the preferred backend: the first by priority that has a provider key) and the backends (provider, upstream model id, priority, prices, keys). Optional `tier` filter."
    )]
    async fn list_models(
        &self,
        Parameters(ListModelsArgs { tier }): Parameters<ListModelsArgs>,
    ) -> CallToolResult {
        let listed = match self.broker.rpc().models_list().await {
            Ok(m) => m,
            Err(e) => return failure(self.broker.describe(&e)),
        };
        let all: Vec<Model> = listed.iter().map(Model::from).collect();
        let models: Vec<Model> = match &tier {
            Some(t) => all
                .iter()
                .filter(|m| {
                    m.tier
                        .as_deref()
                        .is_some_and(|mt| mt.eq_ignore_ascii_case(t))
                })
                .cloned()
                .collect(),
            None => all.clone(),
        };
        let mut text = report::models_text(&models, tier.as_deref());
        if models.is_empty() && tier.is_some() {
            let mut tiers: Vec<&str> = all.iter().filter_map(|m| m.tier.as_deref()).collect();
            tiers.sort_unstable();
            tiers.dedup();
            text.push_str(&format!("Tiers the broker knows: {}\n", tiers.join(", ")));
        }
        answer(
            text,
            json!({"tier": tier, "count": models.len(), "models": models}),
        )
    }

    #[tool(
        description = "One model by name or alias: tier, context window, capabilities, aliases, whether it is servable, and every backend with its provider, upstream model id, priority and prices per 1M tokens."
    )]
    async fn model_info(
        &self,
        Parameters(ModelArgs { model }): Parameters<ModelArgs>,
    ) -> CallToolResult {
        match self.broker.rpc().models_get(model).await {
            Ok(m) => {
                let m = Model::from(&m);
                answer(report::model_text(&m), &m)
            }
            Err(e) => failure(self.broker.describe(&e)),
        }
    }

    #[tool(
        description = "Estimates the USD cost of a request to `model` with the given input and output token counts, using the prices of the backend routing would try first (or the cheapest backend when routing picks none), and shows the arithmetic and the cost on every backend. Sends nothing upstream."
    )]
    async fn estimate_cost(
        &self,
        Parameters(EstimateArgs {
            model,
            input_tokens,
            output_tokens,
        }): Parameters<EstimateArgs>,
    ) -> CallToolResult {
        let rpc = self.broker.rpc();
        let m = match rpc.models_get(model.clone()).await {
            Ok(m) => Model::from(&m),
            Err(e) => return failure(self.broker.describe(&e)),
        };
        let query = ExplainQuery {
            model: m.name.clone(),
            ..ExplainQuery::default()
        };
        let trace = rpc
            .routing_explain(query)
            .await
            .map_err(|e| format!("routing.explain failed: {}", self.broker.describe(&e)));
        match report::estimate(
            &m,
            trace.as_ref().map_err(Clone::clone),
            input_tokens,
            output_tokens,
        ) {
            Some(est) => answer(report::estimate_text(&est), &est),
            None => failure(format!("model {} has no backend, so no price", m.name)),
        }
    }

    #[tool(
        description = "Requests, errors, tokens and USD cost recorded by the broker's ledger, grouped `by` model (default), provider, key or client, over the last `since` (default 24h; e.g. 30m, 7d)."
    )]
    async fn usage(
        &self,
        Parameters(UsageArgs { by, since }): Parameters<UsageArgs>,
    ) -> CallToolResult {
        let age = match report::parse_age(&since) {
            Ok(a) => a,
            Err(e) => return failure(e),
        };
        let from_ms = now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let query = UsageQuery {
            group_by: match by {
                By::Model => GroupBy::Model,
                By::Provider => GroupBy::Provider,
                By::Key => GroupBy::Key,
                By::Client => GroupBy::Client,
            },
            from_ms: Some(from_ms),
            to_ms: None,
            key_id: None,
        };
        let groups = match self.broker.rpc().usage_summary(query).await {
            Ok(g) => g,
            Err(e) => return failure(self.broker.describe(&e)),
        };
        let total = report::usage_total(&groups);
        answer(
            report::usage_text(by, &since, &groups, &total),
            json!({"by": by, "since": since, "from_ms": from_ms, "groups": groups, "total": total}),
        )
    }

    #[tool(
        description = "Explains how the broker would route a request for `model` (optionally with a request `body`), without calling any provider: the candidates (provider, upstream model, key) in the order they would be tried, and why the others were excluded."
    )]
    async fn explain_route(
        &self,
        Parameters(ExplainArgs {
            model,
            body,
            endpoint,
        }): Parameters<ExplainArgs>,
    ) -> CallToolResult {
        let query = ExplainQuery {
            model,
            endpoint,
            request: body.map(Value::Object),
            session: None,
        };
        match self.broker.rpc().routing_explain(query).await {
            Ok(t) => answer(report::route_text(&t), &t),
            Err(e) => failure(self.broker.describe(&e)),
        }
    }

    #[tool(
        description = "The broker's health and facts: status, version, uptime, usage-ledger state, model/provider/key counts and socket paths."
    )]
    async fn broker_health(&self) -> CallToolResult {
        let rpc = self.broker.rpc();
        let (health, info) = tokio::join!(rpc.health(), rpc.info());
        match (health, info) {
            (Ok(h), Ok(i)) => answer(report::health_text(&h, &i), json!({"health": h, "info": i})),
            (Err(e), _) | (_, Err(e)) => failure(self.broker.describe(&e)),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BrokerTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "hero_aibroker",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Read-only questions to the local hero_aibroker LLM broker: which models exist \
                 and what they cost (list_models, model_info, estimate_cost), how a request \
                 would route (explain_route), what was spent (usage) and whether it is healthy \
                 (broker_health). Nothing is sent to any provider.",
            )
    }
}
