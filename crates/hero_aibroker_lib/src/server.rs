//! Running the broker: serve the REST router on a Unix listener until `shutdown` resolves, then
//! drain in-flight requests and streams up to the drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use crate::api::rest_router;
use crate::state::AppState;

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight request finished.
    Clean,
    /// The drain deadline passed with requests still running; they were cut.
    DeadlineHit,
}

/// Serves REST on `listener` until `shutdown` resolves; then stops accepting, lets in-flight
/// requests and streams finish for at most `drain`, and returns.
pub async fn run(
    listener: UnixListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<Drained> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let app = rest_router(state);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = tx.send(true);
    });
    let deadline = async move {
        let _ = rx.wait_for(|v| *v).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        r = serve => r.map(|()| Drained::Clean),
        () = deadline => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain deadline passed; cutting remaining requests");
            Ok(Drained::DeadlineHit)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT received"),
            Err(e) => { tracing::error!("cannot listen for SIGINT: {e}"); std::future::pending::<()>().await }
        },
    }
}
