//! Running the broker: serve REST and JSON-RPC on their Unix listeners until `shutdown` resolves, then
//! drain in-flight requests and streams up to the drain deadline.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use crate::api::{PeerInfo, rest_router};
use crate::state::AppState;

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight request finished.
    Clean,
    /// The drain deadline passed with requests still running; they were cut.
    DeadlineHit,
}

/// The sockets a broker serves.
#[derive(Debug)]
pub struct Listeners {
    pub rest: UnixListener,
    pub rpc: UnixListener,
}

/// Serves REST and JSON-RPC until `shutdown` resolves; then stops accepting, lets in-flight
/// requests and streams finish for at most `drain`, and returns. The caller then closes the
/// ledger (committing every queued row) and removes the sockets.
pub async fn run(
    listeners: Listeners,
    state: Arc<AppState>,
    rpc: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<Drained> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let rest = axum::serve(
        listeners.rest,
        rest_router(state).into_make_service_with_connect_info::<PeerInfo>(),
    )
    .with_graceful_shutdown(stopping(rx.clone()));
    let rpc = axum::serve(listeners.rpc, rpc).with_graceful_shutdown(stopping(rx.clone()));
    let mut rx_deadline = rx;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = tx.send(true);
    });
    let deadline = async move {
        let _ = rx_deadline.wait_for(|v| *v).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        (a, b) = async { tokio::join!(rest.into_future(), rpc.into_future()) } => a.and(b).map(|()| Drained::Clean),
        () = deadline => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain deadline passed; cutting remaining requests");
            Ok(Drained::DeadlineHit)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when
/// the future is first polled), so call it first thing: a signal that arrives while the broker
/// is still starting then stops it cleanly instead of killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot listen for SIGTERM/SIGINT: {e}");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
