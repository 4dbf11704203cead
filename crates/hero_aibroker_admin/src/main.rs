//! `hero_aibroker_admin`: the web console on `admin.sock` (and, with `--http`, on a loopback
//! TCP port a browser can open), until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use hero_aibroker_admin::console::Console;
use hero_aibroker_host::env::Env;
use hero_aibroker_host::{ServeOptions, shutdown_signal, socket};
use hero_aibroker_sdk::paths;

/// hero_aibroker_admin: the broker's web console.
///
/// Serves the console on <socket dir>/hero_aibroker/admin.sock, and on --http ADDR:PORT for a
/// browser. It reaches the broker through rpc.sock and rest.sock only. With ADMIN_TOKEN set
/// (the broker's admin token) the console asks for it at a login page; without it, anyone
/// who can reach the console can change the broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root of the socket tree; the sockets are in <DIR>/hero_aibroker/ [env: HERO_SOCKET_DIR, default ~/hero/var/sockets]
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// Where the console's own socket goes [default <socket dir>/hero_aibroker/admin.sock]
    #[arg(long, value_name = "FILE")]
    admin_sock: Option<PathBuf>,
    /// Also serve on this TCP address, e.g. 127.0.0.1:8088 (loopback only unless ADMIN_TOKEN is set)
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("hero_aibroker_admin", "info", || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let env = Env::from_process();
    let home = env.get("HOME").unwrap_or("/root").to_owned();
    let root = paths::socket_root(args.socket_dir, env.get("HERO_SOCKET_DIR"), Some(&home));
    let token = env.get("ADMIN_TOKEN").map(str::to_owned);
    if let Some(addr) = args.http
        && !addr.ip().is_loopback()
        && token.is_none()
    {
        anyhow::bail!(
            "--http {addr} is not a loopback address and ADMIN_TOKEN is not set: the console would be open to the network"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let dir = paths::socket_dir(&root);
        socket::prepare_dir(&dir)?;
        let admin_sock = args
            .admin_sock
            .clone()
            .unwrap_or_else(|| dir.join(paths::ADMIN_SOCK));
        let bound = socket::bind(&admin_sock)?;
        let console = Arc::new(Console::new(&dir, token));
        let app = hero_aibroker_admin::router(console.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let tcp = match args.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --http {addr}"))?;
                tracing::info!("console on http://{addr}/");
                let app = app.clone();
                let stop = stopping(stop_rx.clone());
                Some(tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                }))
            }
            None => None,
        };
        tracing::info!(
            socket = %admin_sock.display(),
            protected = console.protected(),
            "hero_aibroker_admin listening"
        );
        hero_aibroker_host::serve(
            bound.listener,
            app,
            stopping(stop_rx),
            &ServeOptions::default(),
        )
        .await?;
        if let Some(t) = tcp {
            t.await.context("the TCP listener task")??;
        }
        drop(bound.guard);
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}
