//! `mcp_scraperapi`: fetches a page through ScraperAPI (`GET https://api.scraperapi.com/` with
//! `api_key`, `url`, `render`, `country_code`, `premium`, `ultra_premium`, `device_type`,
//! `output_format`), which answers with the page itself. Keys from `SCRAPERAPI_API_KEYS`
//! (comma-separated; see `hero_aibroker_mcp::web`), URL from `SCRAPERAPI_BASE_URL`. Answers: the
//! page as text, and `{url, status, content_type, length, content}` as `structuredContent`.

use std::sync::Arc;

use hero_aibroker_mcp::web::{self, Service};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// ScraperAPI's parameters.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct FetchArgs {
    /// The page to fetch.
    url: String,
    /// Render JavaScript in a headless browser first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    render: Option<bool>,
    /// Fetch from this country (two letters, e.g. `us`, `de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country_code: Option<String>,
    /// Use residential proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    premium: Option<bool>,
    /// Use the most advanced bypass (costs more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ultra_premium: Option<bool>,
    /// `desktop` or `mobile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_type: Option<String>,
    /// `markdown` or `text` instead of the page's HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_format: Option<String>,
}

#[derive(Debug, Clone)]
struct ScraperApi {
    api: Arc<Service>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl ScraperApi {
    #[tool(
        description = "Fetches a web page through ScraperAPI (proxies, retries, optional JavaScript rendering) and returns it: HTML, or markdown/text with output_format."
    )]
    async fn fetch_page(&self, Parameters(args): Parameters<FetchArgs>) -> CallToolResult {
        let url = format!("{}/", self.api.base_url);
        let params = web::query_pairs(&serde_json::to_value(&args).unwrap_or_default());
        let reply = match self
            .api
            .send(|c, key| c.get(&url).query(&[("api_key", key)]).query(&params))
            .await
        {
            Ok(r) => r,
            Err(e) => return web::failure(e),
        };
        if reply.status >= 300 {
            return web::failure(self.api.failed(&reply, None));
        }
        let content = String::from_utf8_lossy(&reply.body).into_owned();
        web::answer(
            content.clone(),
            json!({
                "url": args.url,
                "status": reply.status,
                "content_type": reply.content_type,
                "length": reply.body.len(),
                "content": content,
            }),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ScraperApi {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp_scraperapi",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Fetches web pages through ScraperAPI (scraperapi.com).")
    }
}

fn main() -> std::process::ExitCode {
    hero_aibroker_host::logging::run_main("mcp_scraperapi", "warn", || {
        let api = web::from_env(
            "ScraperAPI",
            "SCRAPERAPI_API_KEYS",
            "SCRAPERAPI_BASE_URL",
            "https://api.scraperapi.com",
        )
        .map_err(anyhow::Error::msg)?;
        hero_aibroker_mcp::serve_stdio(ScraperApi {
            api: Arc::new(api),
            tool_router: ScraperApi::tool_router(),
        })
    })
}
