//! `hero_aibroker_server`: parse flags, load config, bind `rest.sock`, serve until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hero_aibroker_host::env::Env;
use hero_aibroker_host::{Drained, shutdown_signal, socket};
use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::providers::Drivers;
use hero_aibroker_lib::state::AppState;
use hero_aibroker_lib::surfaces::rpc::methods::{Admin, module};
use hero_aibroker_lib::surfaces::rpc::serve::{ServiceMeta, rpc_router};
use hero_aibroker_lib::surfaces::server::{self, Listeners};
use hero_aibroker_sdk::admin::Sockets;
use hero_aibroker_sdk::paths::{REST_SOCK, RPC_SOCK};

// glibc malloc was ~10% of the request path in profiles; mimalloc is faster for this many
// small, short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hero_aibroker: an OpenAI-compatible LLM broker on a Unix socket.
///
/// Settings not given as flags come from the environment (see docs/configuration.md):
/// provider keys (OPENAI_API_KEY, OPENROUTER_API_KEYS, ...), ROUTING_STRATEGY, timeouts.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the socket tree; sockets go in <DIR>/hero_aibroker/ [env: HERO_SOCKET_DIR, default ~/hero/var/sockets]
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// Models file [env: MODELS_CONFIG_PATH, default ./modelsconfig.yml]
    #[arg(long, value_name = "FILE")]
    models_config: Option<PathBuf>,
    /// Store: a SQLite path or `sqlite:` URL [env: DATABASE_URL, default ~/hero/var/hero_aibroker/hero_aibroker.db]
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Longest wait for in-flight requests on SIGTERM, in seconds [env: DRAIN_TIMEOUT_MS]
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<u64>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::init_logging("info");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hero_aibroker_server: {e:#}");
            ExitCode::FAILURE
        }
    }
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
    let models = ModelsConfig::load(&settings.models_config)?;
    models.check_kinds(&Drivers::builtin().kinds())?;
    if args.check {
        tracing::info!(models = models.models.len(), "configuration is valid");
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, models, env))
}

async fn serve(settings: Settings, models: ModelsConfig, env: Env) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let dir = settings.socket_dir();
    socket::prepare_dir(&dir)?;
    let store = Store::open(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the store {}", settings.database_url))?;
    let (ledger, writer) = Ledger::start(
        store.clone(),
        LedgerConfig {
            queue: settings.ledger_queue,
            batch: settings.ledger_batch,
            ..LedgerConfig::default()
        },
    );
    let serve_options = settings.serve_options();
    let admin_token = settings.admin_token.clone();
    let state = AppState::new(settings, models, env, store.clone(), ledger).await?;
    let sockets = Sockets {
        rest: dir.join(REST_SOCK).display().to_string(),
        rpc: dir.join(RPC_SOCK).display().to_string(),
    };
    let meta = ServiceMeta {
        name: "hero_aibroker".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        rest_socket: sockets.rest.clone(),
        rpc_socket: sockets.rpc.clone(),
    };
    let rpc_app = rpc_router(
        module(Admin {
            state: state.clone(),
            sockets: sockets.clone(),
        }),
        meta,
        admin_token,
    );
    // Bind last: once the sockets accept connections, everything behind them is ready.
    let rest = socket::bind(&dir.join(REST_SOCK))?;
    let rpc = socket::bind(&dir.join(RPC_SOCK))?;
    {
        let reg = state.registry.load();
        let servable = reg.models.values().filter(|m| reg.servable(m)).count();
        let instances: Vec<&str> = reg
            .providers
            .values()
            .flat_map(|p| p.instances.iter().map(|i| i.id.as_str()))
            .collect();
        tracing::info!(
            rest = %sockets.rest,
            rpc = %sockets.rpc,
            store = %store.describe(),
            models = reg.models.len(),
            servable,
            keys = state.keys.count(),
            instances = ?instances,
            "hero_aibroker_server listening"
        );
        if servable == 0 {
            tracing::warn!(
                "no model is servable: set a provider key (e.g. OPENAI_API_KEY) or declare a keyless provider"
            );
        }
    }
    let listeners = Listeners {
        rest: rest.listener,
        rpc: rpc.listener,
    };
    let drained = server::run(listeners, state.clone(), rpc_app, shutdown, &serve_options).await?;
    state.persist_health().await;
    if drained == Drained::DeadlineHit {
        tracing::warn!("stopped with requests still in flight after the drain deadline");
    }
    // Every accepted request has ended (or was cut, which ends it as cancelled): commit the
    // ledger, checkpoint, then remove the sockets.
    let written = writer.shutdown(Duration::from_secs(10)).await;
    store.close().await;
    drop(rest.guard);
    drop(rpc.guard);
    tracing::info!(ledger_rows_flushed = written, "stopped");
    Ok(())
}
