//! `mcp_broker`: wiring only. Parses arguments, sends logs to stderr (stdout is the MCP
//! channel) and serves [`BrokerTools`] on stdio until the client closes it.

use std::path::PathBuf;

use clap::Parser;
use hero_aibroker_mcp::broker::{Broker, default_socket_root};
use hero_aibroker_mcp::tools::BrokerTools;

/// A stdio MCP server that answers, from a running hero_aibroker, what models cost, how a
/// request would route and what has been spent. Read-only; needs no admin token.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the socket tree; the broker's sockets are in <DIR>/hero_aibroker/ [default: ~/hero/var/sockets]
    #[arg(long, value_name = "DIR", env = "HERO_SOCKET_DIR")]
    socket_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("mcp_broker", "warn", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let broker = Broker::new(args.socket_dir.unwrap_or_else(default_socket_root));
    tracing::info!(socket = %broker.rpc_socket().display(), "serving MCP on stdio");
    hero_aibroker_mcp::serve_stdio(BrokerTools::new(broker))
}
