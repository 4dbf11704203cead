//! A broker's life, start to stop, in one place: [`start`] prepares the socket directory,
//! opens the store, starts the ledger writer, builds the state and binds `rest.sock` and
//! `rpc.sock` last (once they accept, everything behind them is ready); [`Broker::run`] serves
//! both (through the host crate's [`hero_aibroker_host::serve`]) until `shutdown`, drains
//! in-flight requests and streams up to the deadline, persists key health, commits the ledger,
//! checkpoints the store and removes the sockets. `hero_aibroker_server`'s `main` only wires
//! flags to this; tests run a broker in-process the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hero_aibroker_host::env::Env;
use hero_aibroker_host::socket::{self, BoundSocket, SocketError};
use hero_aibroker_host::{Drained, ServeOptions};
use hero_aibroker_sdk::admin::Sockets;
use hero_aibroker_sdk::paths::{REST_SOCK, RPC_SOCK};
use tokio::net::UnixListener;

use crate::accounting::ledger::{Ledger, LedgerConfig, LedgerWriter};
use crate::accounting::store::{Store, StoreError};
use crate::config::{ModelsConfig, Settings};
use crate::providers::Drivers;
use crate::state::{AppState, StateError};
use crate::surfaces::api::{rest_router, tcp_router};
use crate::surfaces::rpc::methods::{Admin, module};
use crate::surfaces::rpc::serve::{ServiceMeta, rpc_router};

/// How long shutdown gives the ledger to commit what is queued (a failing database included).
const LEDGER_DRAIN: Duration = Duration::from_secs(10);

/// Why a broker could not start. One line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("cannot open the store {url}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Tcp(String),
}

/// The sockets a broker serves.
#[derive(Debug)]
struct Listeners {
    rest: UnixListener,
    rpc: UnixListener,
    tcp: Option<tokio::net::TcpListener>,
}

/// A started broker: state built, sockets bound, nothing served yet.
#[derive(Debug)]
pub struct Broker {
    state: Arc<AppState>,
    store: Store,
    writer: LedgerWriter,
    rest: BoundSocket,
    rpc: BoundSocket,
    /// The optional TCP listener (`--address`/`--port`).
    tcp: Option<tokio::net::TcpListener>,
    rpc_app: axum::Router,
    sockets: Sockets,
    options: ServeOptions,
}

/// How a broker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Whether every in-flight request finished before the drain deadline.
    pub drained: Drained,
    /// Ledger rows committed during the drain.
    pub rows_flushed: u64,
}

/// Starts a broker with `settings` and `models`, its provider keys from `env` and the provider
/// kinds of `drivers` (see the module doc).
pub async fn start(
    settings: Settings,
    models: ModelsConfig,
    env: Env,
    drivers: Drivers,
) -> Result<Broker, StartError> {
    let dir = settings.socket_dir();
    socket::prepare_dir(&dir)?;
    let store = Store::open(&settings.database_url)
        .await
        .map_err(|source| StartError::Store {
            url: settings.database_url.clone(),
            source,
        })?;
    let (ledger, writer) = Ledger::start(
        store.clone(),
        LedgerConfig {
            queue: settings.ledger_queue,
            batch: settings.ledger_batch,
            ..LedgerConfig::default()
        },
    );
    let options = settings.serve_options();
    let access = crate::surfaces::rpc::serve::RpcAccess {
        token: settings.admin_token.clone(),
        gate_reads: settings.rpc_reads_need_token,
    };
    let state =
        AppState::with_drivers(settings, models, env, store.clone(), ledger, drivers).await?;
    let tcp = match state.settings.listen {
        Some(addr) => Some(bind_tcp(&state, addr).await?),
        None => None,
    };
    let sockets = Sockets {
        rest: dir.join(REST_SOCK).display().to_string(),
        rpc: dir.join(RPC_SOCK).display().to_string(),
        tcp: tcp
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
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
        access,
    );
    // Bind last: once the sockets accept connections, everything behind them is ready.
    let rest = socket::bind(&dir.join(REST_SOCK))?;
    let rpc = socket::bind(&dir.join(RPC_SOCK))?;
    for line in &state.settings.deprecations {
        tracing::warn!("{line}");
    }
    log_listening(&state, &store, &sockets);
    Ok(Broker {
        state,
        store,
        writer,
        rest,
        rpc,
        tcp,
        rpc_app,
        sockets,
        options,
    })
}

/// Binds the TCP listener. One off the loopback is refused unless requests there can be
/// authenticated: a broker key exists or the cascade token is set.
async fn bind_tcp(
    state: &AppState,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, StartError> {
    let s = &state.settings;
    if !addr.ip().is_loopback() && s.cascade_token.is_none() && state.keys.count() == 0 {
        return Err(StartError::Tcp(format!(
            "refusing to listen on {addr}, off the loopback, with no way to authenticate callers: create a broker key (keys.create) or set HERO_AIBROKER_CASCADE_TOKEN"
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Tcp(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(
        address = %listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string()),
        mother = s.is_mother,
        "TCP listener: REST and /rpc, a broker key or the cascade token on every request"
    );
    Ok(listener)
}

fn log_listening(state: &AppState, store: &Store, sockets: &Sockets) {
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

impl Broker {
    /// The broker's shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Where it listens.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    /// The TCP listener's address, when it has one.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then stops: drain (up to the drain deadline), persist
    /// key health, commit the ledger and checkpoint, remove the sockets.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Stopped> {
        let Broker {
            state,
            store,
            writer,
            rest,
            rpc,
            tcp,
            rpc_app,
            sockets: _,
            options,
        } = self;
        let listeners = Listeners {
            rest: rest.listener,
            rpc: rpc.listener,
            tcp,
        };
        let served = serve_both(listeners, state.clone(), rpc_app, shutdown, &options).await;
        state.persist_health().await;
        if served.as_ref().is_ok_and(|d| *d == Drained::DeadlineHit) {
            tracing::warn!("stopped with requests still in flight after the drain deadline");
        }
        // Every accepted request has ended (or was cut, which ends it as cancelled): commit
        // the ledger, checkpoint, then remove the sockets.
        let rows_flushed = writer.shutdown(LEDGER_DRAIN).await;
        state.ledger.persist_unlogged_spend().await;
        if store.shared()
            && let Err(e) = store.release_leases().await
        {
            tracing::warn!(error = %e, "cannot return the budget leases (they expire by themselves)");
        }
        store.close().await;
        drop(rest.guard);
        drop(rpc.guard);
        tracing::info!(ledger_rows_flushed = rows_flushed, "stopped");
        Ok(Stopped {
            drained: served?,
            rows_flushed,
        })
    }
}

/// Serves REST and JSON-RPC until `shutdown` resolves; then stops accepting on both, lets
/// in-flight requests and streams finish for at most `options.drain`, and returns.
async fn serve_both(
    listeners: Listeners,
    state: Arc<AppState>,
    rpc: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: &ServeOptions,
) -> std::io::Result<Drained> {
    // One signal, two listeners: both stop accepting at the same moment.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let tcp = async {
        match listeners.tcp {
            Some(l) => {
                let app = tcp_router(state.clone(), rpc.clone());
                hero_aibroker_host::serve(l, app, stopping(rx.clone()), options).await
            }
            None => Ok(Drained::Clean),
        }
    };
    let (rest, rpc, tcp) = tokio::join!(
        hero_aibroker_host::serve(
            listeners.rest,
            rest_router(state.clone()),
            stopping(rx.clone()),
            options
        ),
        hero_aibroker_host::serve(listeners.rpc, rpc.clone(), stopping(rx.clone()), options),
        tcp,
    );
    Ok(
        if rest? == Drained::Clean && rpc? == Drained::Clean && tcp? == Drained::Clean {
            Drained::Clean
        } else {
            Drained::DeadlineHit
        },
    )
}
