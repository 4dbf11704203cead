//! `hero_aibroker_services`: parse flags, load `mcp_servers.json`, bind `mcp.sock`, start the
//! MCP servers and serve their tools until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hero_aibroker_host::env::Env;
use hero_aibroker_host::{shutdown_signal, socket};
use hero_aibroker_sdk::paths;
use hero_aibroker_services::aggregate::PrefixMode;
use hero_aibroker_services::audit::{self, Audit, AuditDb, AuditOptions};
use hero_aibroker_services::config::McpConfig;
use hero_aibroker_services::hub::Hub;
use hero_aibroker_services::sessions::Sessions;
use hero_aibroker_services::supervisor::{Options, Supervisor};

/// How long shutdown gives a failing audit database to take the queued rows.
const AUDIT_DRAIN: Duration = Duration::from_secs(5);

/// hero_aibroker_services: the MCP servers of mcp_servers.json as one MCP server on mcp.sock.
///
/// MCP streamable HTTP at /mcp, plus GET /tools, POST /tools/{name}, GET /calls, GET /health and
/// GET /servers, on <socket dir>/hero_aibroker/mcp.sock. MCP_TOOL_PREFIX=always names every
/// tool server__tool (default: only names two servers share). Every tool call is recorded in
/// the audit database; MCP_AUDIT_ARGS=true records the arguments too.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the socket tree; the socket is <DIR>/hero_aibroker/mcp.sock [env: HERO_SOCKET_DIR, default ~/hero/var/sockets]
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// MCP servers file [env: MCP_CONFIG_PATH, default ./mcp_servers.json]
    #[arg(long, value_name = "FILE")]
    mcp_config: Option<PathBuf>,
    /// Audit database of tool calls [env: MCP_AUDIT_DB, default ~/hero/var/hero_aibroker/mcp_audit.db]
    #[arg(long, value_name = "FILE")]
    audit_db: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("hero_aibroker_services", "info", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let env = Env::from_process();
    let explicit = args
        .mcp_config
        .or_else(|| env.get("MCP_CONFIG_PATH").map(PathBuf::from));
    let config = match &explicit {
        Some(path) => McpConfig::load(path)?,
        None => {
            let path = PathBuf::from("mcp_servers.json");
            if path.exists() {
                McpConfig::load(&path)?
            } else {
                tracing::warn!(
                    "no ./mcp_servers.json and no MCP_CONFIG_PATH / --mcp-config: serving no MCP servers (see mcp_servers.example.json)"
                );
                McpConfig::default()
            }
        }
    };
    let mode: PrefixMode = env
        .get("MCP_TOOL_PREFIX")
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or_default();
    let record_arguments = match env.get("MCP_AUDIT_ARGS") {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => anyhow::bail!("MCP_AUDIT_ARGS: {other:?} is not one of true, false"),
    };
    let home = env.get("HOME").unwrap_or("/root").to_owned();
    let audit_path = args
        .audit_db
        .or_else(|| env.get("MCP_AUDIT_DB").map(PathBuf::from))
        .unwrap_or_else(|| audit::default_path(&home));
    if args.check {
        tracing::info!(servers = config.servers.len(), "configuration is valid");
        return Ok(());
    }
    let root = paths::socket_root(args.socket_dir, env.get("HERO_SOCKET_DIR"), Some(&home));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let dir = paths::socket_dir(&root);
        socket::prepare_dir(&dir)?;
        // Bind before starting children: a second instance fails here without spawning any.
        let bound = socket::bind(&dir.join(paths::MCP_SOCK))?;
        let db = AuditDb::open(&audit_path).await?;
        let (audit, writer) = Audit::start(
            db,
            AuditOptions {
                record_arguments,
                ..AuditOptions::default()
            },
        );
        // Children get the allowlist, with HERO_SOCKET_DIR set to the root we actually use.
        let parent = Env::from_pairs(
            hero_aibroker_services::child::ENV_ALLOWLIST
                .iter()
                .filter(|k| **k != "HERO_SOCKET_DIR")
                .filter_map(|k| env.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
                .chain([(
                    "HERO_SOCKET_DIR".to_owned(),
                    root.to_string_lossy().into_owned(),
                )]),
        );
        let sup = Supervisor::start(&config, &parent, Options::default());
        let hub = Arc::new(Hub {
            sup,
            mode,
            audit,
            sessions: Sessions::default(),
        });
        tracing::info!(
            socket = %dir.join(paths::MCP_SOCK).display(),
            servers = config.servers.len(),
            prefix = ?mode,
            audit = %audit_path.display(),
            "hero_aibroker_services listening"
        );
        let served = hero_aibroker_services::serve::run(bound.listener, hub, shutdown).await;
        // Every call has ended (or been cut): commit the audit rows still queued.
        writer.shutdown(AUDIT_DRAIN).await;
        served?;
        drop(bound.guard);
        tracing::info!("stopped");
        Ok(())
    })
}
