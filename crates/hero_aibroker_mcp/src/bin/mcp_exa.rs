//! `mcp_exa`: semantic web search and page contents through Exa (`POST https://api.exa.ai/search`
//! with `{query, type, numResults, includeDomains, excludeDomains, startPublishedDate,
//! endPublishedDate, category, contents: {text}}` and `POST /contents` with `{urls, text}`, key in
//! `x-api-key`). Keys from `EXA_API_KEYS` (comma-separated; see `hero_aibroker_mcp::web`), URL
//! from `EXA_BASE_URL`. Answers: results as a numbered list, Exa's JSON as `structuredContent`.

use std::sync::Arc;

use hero_aibroker_mcp::web::{self, Service};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Exa's search parameters.
#[derive(Debug, Deserialize, JsonSchema)]
struct SearchArgs {
    /// What to find, in words (Exa searches by meaning).
    query: String,
    /// `auto` (default), `neural`, `keyword` or `fast`.
    #[serde(default)]
    r#type: Option<String>,
    /// Number of results (10 by default, at most 100).
    #[serde(default)]
    num_results: Option<u32>,
    /// Only results from these domains.
    #[serde(default)]
    include_domains: Option<Vec<String>>,
    /// No results from these domains.
    #[serde(default)]
    exclude_domains: Option<Vec<String>>,
    /// Only pages published after this date (ISO 8601, e.g. `2025-01-01T00:00:00.000Z`).
    #[serde(default)]
    start_published_date: Option<String>,
    /// Only pages published before this date (ISO 8601).
    #[serde(default)]
    end_published_date: Option<String>,
    /// A category: `company`, `research paper`, `news`, `pdf`, `github`, `tweet`,
    /// `personal site`, `linkedin profile`, `financial report`.
    #[serde(default)]
    category: Option<String>,
    /// Also return each page's text.
    #[serde(default)]
    text: Option<bool>,
}

/// Exa's contents parameters.
#[derive(Debug, Deserialize, JsonSchema)]
struct ContentsArgs {
    /// The pages to read.
    urls: Vec<String>,
}

#[derive(Debug, Clone)]
struct Exa {
    api: Arc<Service>,
    tool_router: ToolRouter<Self>,
}

impl Exa {
    async fn post(&self, path: &str, body: Value) -> CallToolResult {
        let url = format!("{}{path}", self.api.base_url);
        let reply = match self
            .api
            .send(|c, key| c.post(&url).header("x-api-key", key).json(&body))
            .await
        {
            Ok(r) => r,
            Err(e) => return web::failure(e),
        };
        let answer = match reply.json("Exa") {
            Ok(v) => v,
            Err(e) => return web::failure(e),
        };
        if reply.status >= 300 {
            return web::failure(self.api.failed(&reply, answer["error"].as_str()));
        }
        let mut text = web::numbered(answer.get("results"), "title", "url", "publishedDate");
        for (i, r) in answer["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(page) = r["text"].as_str() {
                text.push_str(&format!(
                    "\n--- {}. {}\n{page}\n",
                    i + 1,
                    r["url"].as_str().unwrap_or("")
                ));
            }
        }
        if text.is_empty() {
            text = "no results".to_owned();
        }
        web::answer(text.trim_end().to_owned(), answer)
    }
}

#[tool_router]
impl Exa {
    #[tool(
        description = "Semantic web search (Exa): pages that match the meaning of the query, with title, URL and publication date; optionally their text."
    )]
    async fn search(&self, Parameters(a): Parameters<SearchArgs>) -> CallToolResult {
        let mut body = Map::new();
        body.insert("query".into(), a.query.into());
        let fields: [(&str, Option<Value>); 7] = [
            ("type", a.r#type.map(Value::from)),
            ("numResults", a.num_results.map(Value::from)),
            ("includeDomains", a.include_domains.map(Value::from)),
            ("excludeDomains", a.exclude_domains.map(Value::from)),
            (
                "startPublishedDate",
                a.start_published_date.map(Value::from),
            ),
            ("endPublishedDate", a.end_published_date.map(Value::from)),
            ("category", a.category.map(Value::from)),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        }
        if a.text == Some(true) {
            body.insert("contents".into(), json!({"text": true}));
        }
        self.post("/search", Value::Object(body)).await
    }

    #[tool(description = "The text of web pages by URL (Exa contents).")]
    async fn get_contents(&self, Parameters(a): Parameters<ContentsArgs>) -> CallToolResult {
        self.post("/contents", json!({"urls": a.urls, "text": true}))
            .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Exa {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp_exa", env!("CARGO_PKG_VERSION")))
            .with_instructions("Semantic web search and page contents through Exa (exa.ai).")
    }
}

fn main() -> std::process::ExitCode {
    hero_aibroker_host::logging::run_main("mcp_exa", "warn", || {
        let api = web::from_env("Exa", "EXA_API_KEYS", "EXA_BASE_URL", "https://api.exa.ai")
            .map_err(anyhow::Error::msg)?;
        hero_aibroker_mcp::serve_stdio(Exa {
            api: Arc::new(api),
            tool_router: Exa::tool_router(),
        })
    })
}
