//! `mcp_serpapi`: search engine results through SerpApi (`GET https://serpapi.com/search.json`
//! with `engine`, `q`, `location`, `hl`, `gl`, `google_domain`, `num`, `start`, `safe`, `tbm`
//! and the key as `api_key`). Keys from `SERPAPI_API_KEYS` (comma-separated; see
//! `hero_aibroker_mcp::web`), URL from `SERPAPI_BASE_URL`. Answers: the organic results (or
//! news results) as a numbered list, SerpApi's JSON as `structuredContent`.

use std::sync::Arc;

use hero_aibroker_mcp::web::{self, Service};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// SerpApi's search parameters (Google engine and the engines that share them).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct SearchArgs {
    /// The query.
    q: String,
    /// The engine: `google` (default), `bing`, `duckduckgo`, `google_news`, …
    #[serde(default = "google")]
    engine: String,
    /// Where the search is made from (e.g. `Austin, Texas, United States`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Interface language, two letters (e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hl: Option<String>,
    /// Country, two letters (e.g. `us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gl: Option<String>,
    /// The Google domain (e.g. `google.fr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    google_domain: Option<String>,
    /// Number of results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num: Option<u32>,
    /// Offset of the first result (0, 10, 20…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<u32>,
    /// `active` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    safe: Option<String>,
    /// Search type: `nws` (news), `isch` (images), `vid` (videos), `shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tbm: Option<String>,
}

fn google() -> String {
    "google".to_owned()
}

#[derive(Debug, Clone)]
struct SerpApi {
    api: Arc<Service>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl SerpApi {
    #[tool(
        description = "Search engine results through SerpApi (Google by default; `engine` picks another): organic results with title, link and snippet."
    )]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        let url = format!("{}/search.json", self.api.base_url);
        let params = web::query_pairs(&serde_json::to_value(&args).unwrap_or_default());
        let reply = match self
            .api
            .send(|c, key| c.get(&url).query(&params).query(&[("api_key", key)]))
            .await
        {
            Ok(r) => r,
            Err(e) => return web::failure(e),
        };
        let body = match reply.json("SerpApi") {
            Ok(v) => v,
            Err(e) => return web::failure(e),
        };
        if reply.status >= 300 {
            return web::failure(self.api.failed(&reply, body["error"].as_str()));
        }
        let list = ["organic_results", "news_results"]
            .iter()
            .find_map(|k| body.get(*k));
        let mut text = web::numbered(list, "title", "link", "snippet");
        if text.is_empty() {
            // A search without results is a 200 whose `error` says so.
            text = body["error"]
                .as_str()
                .map_or_else(|| format!("no results for {:?}", args.q), str::to_owned);
        }
        web::answer(text.trim_end().to_owned(), body)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SerpApi {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp_serpapi",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Search engine results through SerpApi (serpapi.com).")
    }
}

fn main() -> std::process::ExitCode {
    hero_aibroker_host::logging::run_main("mcp_serpapi", "warn", || {
        let api = web::from_env(
            "SerpApi",
            "SERPAPI_API_KEYS",
            "SERPAPI_BASE_URL",
            "https://serpapi.com",
        )
        .map_err(anyhow::Error::msg)?;
        hero_aibroker_mcp::serve_stdio(SerpApi {
            api: Arc::new(api),
            tool_router: SerpApi::tool_router(),
        })
    })
}
