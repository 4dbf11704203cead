//! `mcp_ping`: a small stdio MCP server bundled for smoke tests and for checking the
//! aggregator's supervision: `ping`, `echo`, `whoami`, `sleep` (a call that takes as long as
//! asked, for timeouts and crashes mid-call), `env` (the names, never the values, of its
//! environment variables: proof that the broker's keys do not reach children) and `pid`.
//! It also offers one resource (`ping://<name>/about`), one resource template
//! (`ping://<name>/echo/{text}`) and one prompt (`greet`), for the aggregation of resources
//! and prompts.

use std::time::Duration;

use clap::Parser;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, Prompt,
    PromptArgument, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// A stdio MCP server for smoke tests: ping, echo, whoami, sleep, env, pid.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// What `whoami` answers (tells instances apart).
    #[arg(long, default_value = "mcp_ping")]
    name: String,
    /// Offer only these tools (comma-separated), e.g. `--only ping,echo`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Wait this long before answering anything (a server that is slow to become ready).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    start_delay_ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SleepArgs {
    /// How long to sleep, in seconds (at most 3600).
    seconds: f64,
}

#[derive(Debug, Clone)]
struct Ping {
    name: String,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Ping {
    #[tool(description = "Answers \"pong\".")]
    async fn ping(&self) -> String {
        "pong".to_owned()
    }

    #[tool(description = "Sends back the given text.")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "The name this instance was started with (--name).")]
    async fn whoami(&self) -> String {
        self.name.clone()
    }

    #[tool(description = "Sleeps for the given number of seconds, then answers \"slept\".")]
    async fn sleep(
        &self,
        Parameters(SleepArgs { seconds }): Parameters<SleepArgs>,
    ) -> Result<String, String> {
        if !(0.0..=3600.0).contains(&seconds) {
            return Err(format!("seconds must be between 0 and 3600, not {seconds}"));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(format!("slept {seconds} s"))
    }

    #[tool(
        description = "The names (not the values) of this process's environment variables, one per line, sorted."
    )]
    async fn env(&self) -> String {
        let mut names: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.join("\n")
    }

    #[tool(description = "This server's process id.")]
    async fn pid(&self) -> String {
        std::process::id().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Ping {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("mcp_ping", env!("CARGO_PKG_VERSION")))
        .with_instructions("A test server: ping, echo, whoami, sleep, env, pid.")
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut about = Resource::new(self.about_uri(), "about");
        about.description = Some(format!("About the mcp_ping instance {:?}.", self.name));
        about.mime_type = Some("text/plain".into());
        Ok(ListResourcesResult::with_all_items(vec![about]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let echo = ResourceTemplate::new(format!("ping://{}/echo/{{text}}", self.name), "echo");
        Ok(ListResourceTemplatesResult::with_all_items(vec![echo]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let echo = format!("ping://{}/echo/", self.name);
        let text = if uri == self.about_uri() {
            format!("mcp_ping {}", self.name)
        } else if let Some(text) = uri.strip_prefix(&echo) {
            text.to_owned()
        } else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {uri:?}"),
                None,
            ));
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri)]).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let who = PromptArgument::new("who")
            .with_description("Whom to greet.")
            .with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greet",
            Some("A greeting from this instance."),
            Some(vec![who]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greet" {
            return Err(ErrorData::invalid_params(
                format!("no prompt {:?}", request.name),
                None,
            ));
        }
        let who = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("who"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| ErrorData::invalid_params("greet needs the argument \"who\"", None))?;
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Say hello to {who} from {}.", self.name),
        )])
        .into())
    }
}

impl Ping {
    fn about_uri(&self) -> String {
        format!("ping://{}/about", self.name)
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // stdout carries the protocol: logs go to stderr only.
    hero_aibroker_host::logging::run_main("mcp_ping", "warn", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut tool_router = Ping::tool_router();
    if !args.only.is_empty() {
        if let Some(unknown) = args.only.iter().find(|n| !tool_router.has_route(n)) {
            anyhow::bail!("--only: no tool named {unknown:?}");
        }
        let names: Vec<String> = tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        for name in names.iter().filter(|n| !args.only.contains(n)) {
            tool_router.remove_route(name);
        }
    }
    let server = Ping {
        name: args.name,
        tool_router,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::time::sleep(Duration::from_millis(args.start_delay_ms)).await;
        let running = server.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    })
}
