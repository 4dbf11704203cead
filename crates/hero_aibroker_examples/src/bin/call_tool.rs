//! Calls a tool of the MCP servers the broker's aggregator runs (RPC `mcp.call_tool`) and prints
//! its text. `cargo run -p hero_aibroker_examples --bin call_tool -- [TOOL] [JSON_ARGUMENTS]`
//! (default: `ping` with `{}`; `hero_aibroker tools` lists the tools).

use hero_aibroker_examples::{arg, rpc};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let name = arg(1, "ping");
    let arguments: serde_json::Value = serde_json::from_str(&arg(2, "{}"))
        .map_err(|e| anyhow::anyhow!("the arguments are not JSON: {e}"))?;
    let result = rpc().mcp_call_tool(name.clone(), Some(arguments)).await?;
    let texts: Vec<&str> = result["content"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default();
    if result["isError"] == true {
        anyhow::bail!("{name} failed: {}", texts.join(" "));
    }
    println!("{}", texts.join("\n"));
    Ok(())
}
