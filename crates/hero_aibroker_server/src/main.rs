//! `hero_aibroker_server`: wiring only. Parse flags, load and check the configuration, then
//! start the broker, serve until SIGTERM/SIGINT and stop it cleanly
//! ([`hero_aibroker_lib::surfaces::server`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hero_aibroker_host::env::Env;
use hero_aibroker_host::shutdown_signal;
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::providers::Drivers;
use hero_aibroker_lib::surfaces::server;

// glibc malloc was ~10% of the request path in profiles; mimalloc is faster for this many
// small, short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hero_aibroker: an OpenAI-compatible LLM broker on a Unix socket.
///
/// Settings not given as flags come from the environment (see docs/configuration.md):
/// provider keys (OPENAI_API_KEY, OPENROUTER_API_KEYS, ...), ROUTING_STRATEGY (what auto picks), BACKEND_STRATEGY, timeouts.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the socket tree; sockets go in <DIR>/hero_aibroker/ [env: HERO_SOCKET_DIR, default ~/hero/var/sockets]
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// Models file [env: MODELS_CONFIG_PATH, default ./modelsconfig.yml]
    #[arg(long, value_name = "FILE")]
    models_config: Option<PathBuf>,
    /// Store: a SQLite path or `sqlite:` URL, or a `postgres://` URL shared by several brokers [env: DATABASE_URL, default ~/hero/var/hero_aibroker/hero_aibroker.db]
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Longest wait for in-flight requests on SIGTERM, in seconds [env: DRAIN_TIMEOUT_MS]
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<u64>,
    /// Also serve REST and /rpc on TCP at this address (with --port); every request there needs
    /// a broker API key or HERO_AIBROKER_CASCADE_TOKEN
    #[arg(long, value_name = "IP", requires = "port")]
    address: Option<std::net::IpAddr>,
    /// The TCP listener's port (with --address; 0 picks a free one)
    #[arg(long, value_name = "N", requires = "address")]
    port: Option<u16>,
    /// Identify as a mother broker that child brokers forward to (needs --address and --port)
    #[arg(long, requires = "address")]
    mother: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("hero_aibroker_server", "info", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let env = Env::from_process();
    let mut settings = Settings::from_env(&env)?;
    if let Some(dir) = args.socket_dir {
        settings.socket_root = dir;
    }
    if let Some(path) = args.models_config {
        settings.models_config = path;
    }
    if let Some(db) = args.db {
        settings.database_url = db;
    }
    if let Some(secs) = args.drain_timeout {
        settings.drain_timeout = Duration::from_secs(secs);
    }
    if let (Some(ip), Some(port)) = (args.address, args.port) {
        settings.listen = Some(std::net::SocketAddr::new(ip, port));
    }
    settings.is_mother = args.mother;
    let models = ModelsConfig::load(&settings.models_config)?;
    models.check_kinds(&Drivers::builtin().kinds())?;
    if args.check {
        tracing::info!(models = models.models.len(), "configuration is valid");
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.worker_threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // First thing: a signal while the broker is still starting stops it cleanly.
        let shutdown = shutdown_signal();
        let broker = server::start(settings, models, env, Drivers::builtin()).await?;
        broker.run(shutdown).await?;
        Ok(())
    })
}
