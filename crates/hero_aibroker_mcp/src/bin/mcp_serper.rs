//! `mcp_serper`: Google web and news search through Serper (`POST https://google.serper.dev/search`
//! and `/news`, key in `X-API-KEY`, JSON body `{q, gl, hl, num, page, location, tbs,
//! autocorrect}`). Keys from `SERPER_API_KEYS` (comma-separated; see `hero_aibroker_mcp::web`),
//! URL from `SERPER_BASE_URL`. Answers: a numbered list as text, Serper's JSON as
//! `structuredContent`.

use std::sync::Arc;

use hero_aibroker_mcp::web::{self, Service};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Serper's search parameters.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct SearchArgs {
    /// The query.
    q: String,
    /// Country of the results, two letters (e.g. `us`, `fr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gl: Option<String>,
    /// Language of the results (e.g. `en`, `fr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hl: Option<String>,
    /// Number of results (10 by default; 10, 20, 30, 40, 50 or 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num: Option<u32>,
    /// Results page, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<u32>,
    /// Where the search is made from (e.g. `Paris, Ile-de-France, France`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Time range: `qdr:h` (past hour), `qdr:d`, `qdr:w`, `qdr:m`, `qdr:y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tbs: Option<String>,
    /// Whether Google may correct the query's spelling (true by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    autocorrect: Option<bool>,
}

#[derive(Debug, Clone)]
struct Serper {
    api: Arc<Service>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Serper {
    async fn call(&self, path: &str, args: &SearchArgs, list_key: &str) -> CallToolResult {
        let url = format!("{}{path}", self.api.base_url);
        let reply = match self
            .api
            .send(|c, key| c.post(&url).header("X-API-KEY", key).json(args))
            .await
        {
            Ok(r) => r,
            Err(e) => return web::failure(e),
        };
        let body = match reply.json("Serper") {
            Ok(v) => v,
            Err(e) => return web::failure(e),
        };
        if reply.status >= 300 {
            return web::failure(self.api.failed(&reply, body["message"].as_str()));
        }
        let mut text = String::new();
        if let Some(answer) = body["answerBox"]["answer"]
            .as_str()
            .or(body["answerBox"]["snippet"].as_str())
        {
            text.push_str(&format!("Answer: {answer}\n\n"));
        }
        if let Some(kg) = body["knowledgeGraph"]["title"].as_str() {
            let about = body["knowledgeGraph"]["description"].as_str().unwrap_or("");
            text.push_str(&format!("{kg}: {about}\n\n"));
        }
        text.push_str(&web::numbered(
            body.get(list_key),
            "title",
            "link",
            "snippet",
        ));
        if text.is_empty() {
            text = format!("no results for {:?}", args.q);
        }
        web::answer(text.trim_end().to_owned(), body)
    }

    #[tool(
        description = "Google web search (Serper): organic results with title, link and snippet, plus the answer box and knowledge graph when Google shows them."
    )]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        self.call("/search", &args, "organic").await
    }

    #[tool(
        description = "Google News search (Serper): articles with title, link, snippet, date and source."
    )]
    async fn news(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        self.call("/news", &args, "news").await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Serper {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp_serper", env!("CARGO_PKG_VERSION")))
            .with_instructions("Google web and news search through Serper (serper.dev).")
    }
}

fn main() -> std::process::ExitCode {
    hero_aibroker_host::logging::run_main("mcp_serper", "warn", || {
        let api = web::from_env(
            "Serper",
            "SERPER_API_KEYS",
            "SERPER_BASE_URL",
            "https://google.serper.dev",
        )
        .map_err(anyhow::Error::msg)?;
        let server = Serper {
            api: Arc::new(api),
            tool_router: Serper::tool_router(),
        };
        hero_aibroker_mcp::serve_stdio(server)
    })
}
