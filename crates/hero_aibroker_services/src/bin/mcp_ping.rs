//! `mcp_ping`: a small stdio MCP server bundled for smoke tests and for checking the
//! aggregator's supervision: `ping`, `echo`, `whoami`, `sleep` (a call that takes as long as
//! asked, for timeouts and crashes mid-call), `env` (the names, never the values, of its
//! environment variables: proof that the broker's keys do not reach children) and `pid`.

use std::time::Duration;

use clap::Parser;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp_ping", env!("CARGO_PKG_VERSION")))
            .with_instructions("A test server: ping, echo, whoami, sleep, env, pid.")
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // stdout carries the protocol: logs go to stderr only.
    hero_aibroker_lib::telemetry::init_logging("warn");
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp_ping: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
        let running = server.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    })
}
