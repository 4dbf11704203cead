//! `mcp_scrapfly`: scrapes a page through Scrapfly (`GET https://api.scrapfly.io/scrape` with
//! `key`, `url`, `render_js`, `asp`, `country`, `format`, `wait_for_selector`, `proxy_pool`),
//! which answers JSON with the page in `result.content`. Keys from `SCRAPFLY_API_KEYS`
//! (comma-separated; see `hero_aibroker_mcp::web`), URL from `SCRAPFLY_BASE_URL`. Answers: the
//! page's content as text, Scrapfly's `result` as `structuredContent`.

use std::sync::Arc;

use hero_aibroker_mcp::web::{self, Service};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scrapfly's scrape parameters.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct ScrapeArgs {
    /// The page to scrape.
    url: String,
    /// Render JavaScript in a browser first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    render_js: Option<bool>,
    /// Anti-scraping protection bypass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asp: Option<bool>,
    /// Proxy country (two letters, e.g. `us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    /// `raw` (default), `text`, `markdown`, `clean_html` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    /// With render_js: a CSS selector to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_for_selector: Option<String>,
    /// `public_datacenter_pool` (default) or `public_residential_pool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy_pool: Option<String>,
}

#[derive(Debug, Clone)]
struct Scrapfly {
    api: Arc<Service>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Scrapfly {
    #[tool(
        description = "Scrapes a web page through Scrapfly (proxies, anti-bot bypass, optional JavaScript rendering) and returns its content: raw HTML, or text/markdown/clean_html with format."
    )]
    async fn scrape(&self, Parameters(args): Parameters<ScrapeArgs>) -> CallToolResult {
        let url = format!("{}/scrape", self.api.base_url);
        let params = web::query_pairs(&serde_json::to_value(&args).unwrap_or_default());
        let reply = match self
            .api
            .send(|c, key| c.get(&url).query(&[("key", key)]).query(&params))
            .await
        {
            Ok(r) => r,
            Err(e) => return web::failure(e),
        };
        let body = match reply.json("Scrapfly") {
            Ok(v) => v,
            Err(e) => return web::failure(e),
        };
        if reply.status >= 300 {
            let message = body["message"]
                .as_str()
                .or(body["result"]["error"]["message"].as_str());
            let code = body["code"]
                .as_str()
                .or(body["result"]["error"]["code"].as_str());
            let line = match (message, code) {
                (Some(m), Some(c)) => format!("{m} ({c})"),
                (Some(m), None) => m.to_owned(),
                _ => String::new(),
            };
            return web::failure(
                self.api
                    .failed(&reply, (!line.is_empty()).then_some(line.as_str())),
            );
        }
        let result = body.get("result").cloned().unwrap_or_default();
        let content = result["content"].as_str().unwrap_or("").to_owned();
        web::answer(content, result)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Scrapfly {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp_scrapfly",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Scrapes web pages through Scrapfly (scrapfly.io).")
    }
}

fn main() -> std::process::ExitCode {
    hero_aibroker_host::logging::run_main("mcp_scrapfly", "warn", || {
        let api = web::from_env(
            "Scrapfly",
            "SCRAPFLY_API_KEYS",
            "SCRAPFLY_BASE_URL",
            "https://api.scrapfly.io",
        )
        .map_err(anyhow::Error::msg)?;
        hero_aibroker_mcp::serve_stdio(Scrapfly {
            api: Arc::new(api),
            tool_router: Scrapfly::tool_router(),
        })
    })
}
