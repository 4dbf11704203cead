//! The MCP servers bundled with hero_aibroker, each a stdio binary the aggregator runs. Like
//! any client they reach the broker through the SDK only, never the core.
//!
//! - `mcp_ping` (`src/bin/mcp_ping.rs`): ping, echo, whoami, sleep; the test and demo server.
//! - `mcp_broker` (`src/bin/mcp_broker.rs`): lets agents ask a running hero_aibroker what
//!   models cost, how a request would route and what has been spent, without sending any
//!   request to a provider. It uses only read-only JSON-RPC methods on `rpc.sock`, so it needs
//!   no admin token. Its modules:
//!
//! - `mcp_hero` (`src/bin/mcp_hero.rs`, [`hero`]): the hero services on this host, found by
//!   their sockets (`/.well-known/heroservice.json`), their OpenRPC methods, and calls to them.
//!
//! - `mcp_serper`, `mcp_serpapi`, `mcp_exa` (web and semantic search) and `mcp_scraperapi`,
//!   `mcp_scrapfly` (page fetch and scraping), on [`web`]: their keys and HTTP exchange.
//!
//! - [`broker`]: where the broker's sockets are and how its failures read as one line.
//! - [`report`]: the answers as data (`structuredContent`) and as text, and the cost arithmetic.
//! - [`tools`]: the MCP server and its tools.

pub mod broker;
pub mod hero;
pub mod report;
pub mod tools;
pub mod web;

/// Serves `server` on stdio until the client closes it (every bundled binary's `main`).
pub fn serve_stdio<S: rmcp::ServerHandler>(server: S) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            server
                .serve(rmcp::transport::stdio())
                .await?
                .waiting()
                .await?;
            Ok(())
        })
}
