//! Running the broker: serve REST and JSON-RPC on their Unix listeners (through the host
//! crate's [`hero_aibroker_host::serve`]) until `shutdown` resolves, then drain in-flight
//! requests and streams up to the drain deadline.

use std::future::Future;
use std::sync::Arc;

use hero_aibroker_host::ServeOptions;
pub use hero_aibroker_host::{Drained, shutdown_signal};
use tokio::net::UnixListener;

use crate::state::AppState;
use crate::surfaces::api::rest_router;

/// The sockets a broker serves.
#[derive(Debug)]
pub struct Listeners {
    pub rest: UnixListener,
    pub rpc: UnixListener,
}

/// Serves REST and JSON-RPC until `shutdown` resolves; then stops accepting on both, lets
/// in-flight requests and streams finish for at most `options.drain`, and returns. The caller
/// then closes the ledger (committing every queued row) and removes the sockets.
pub async fn run(
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
    let (rest, rpc) = tokio::join!(
        hero_aibroker_host::serve(
            listeners.rest,
            rest_router(state),
            stopping(rx.clone()),
            options
        ),
        hero_aibroker_host::serve(listeners.rpc, rpc, stopping(rx), options),
    );
    Ok(if rest? == Drained::Clean && rpc? == Drained::Clean {
        Drained::Clean
    } else {
        Drained::DeadlineHit
    })
}
