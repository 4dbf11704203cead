//! `mcp_hero`: wiring only. Parses arguments, sends logs to stderr (stdout is the MCP channel)
//! and serves [`HeroTools`] on stdio until the client closes it.

use std::path::PathBuf;

use clap::Parser;
use hero_aibroker_mcp::broker::default_socket_root;
use hero_aibroker_mcp::hero::HeroTools;

/// A stdio MCP server over the hero services on this host: lists them (each socket under the
/// socket directory that answers /.well-known/heroservice.json), reads a service's OpenRPC
/// methods, and calls a method with JSON params.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the hero socket tree [default: ~/hero/var/sockets]
    #[arg(long, value_name = "DIR", env = "HERO_SOCKET_DIR")]
    socket_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("mcp_hero", "warn", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let root = args.socket_dir.unwrap_or_else(default_socket_root);
    tracing::info!(root = %root.display(), "serving MCP on stdio");
    hero_aibroker_mcp::serve_stdio(HeroTools::new(root))
}
