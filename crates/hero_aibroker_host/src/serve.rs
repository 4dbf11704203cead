//! Serving an axum router on a Unix (or TCP) listener, the same way in every binary: HTTP/1.1 on
//! hyper's connection builder *with a timer*, so a client that sends its headers slowly, or
//! holds a keep-alive connection idle, is cut after [`ServeOptions::header_read_timeout`];
//! headers bounded by [`ServeOptions::max_header_bytes`]; the peer's credentials in every
//! request as `ConnectInfo<PeerInfo>`; and a graceful stop: when `shutdown` resolves, stop
//! accepting, let in-flight requests and streams finish for at most [`ServeOptions::drain`],
//! then cut what is left.
//!
//! [`shutdown_signal`] is the SIGTERM/SIGINT future every binary passes in.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

use crate::peer::PeerInfo;

/// Connection limits and the drain deadline.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Longest a client may take to send a request's headers, counted from when the connection
    /// is ready for a request: so it also bounds how long a keep-alive connection may sit idle.
    /// `None` disables it (not advised: idle connections then pile up).
    pub header_read_timeout: Option<Duration>,
    /// Largest request head (start line and headers); beyond it the client gets 431.
    pub max_header_bytes: usize,
    /// Connections open at once; at the cap the listener stops accepting (new clients wait in
    /// the socket's backlog) until one closes.
    pub max_connections: usize,
    /// How long in-flight requests and streams may run on once shutdown begins.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(30)),
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
            drain: Duration::from_secs(10),
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight request finished.
    Clean,
    /// The drain deadline passed with requests still running; they were cut.
    DeadlineHit,
}

/// Pause after an accept error that is not the peer's (e.g. out of file descriptors), so a
/// persistent one does not spin the loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// A listener [`serve`] accepts connections on: a Unix socket (peer credentials) or TCP (peer
/// address, `TCP_NODELAY`).
pub trait Listener: Send {
    /// A connection.
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection and who is on its other end.
    fn accept_peer(&self) -> impl Future<Output = std::io::Result<(Self::Io, PeerInfo)>> + Send;
}

impl Listener for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Io, PeerInfo)> {
        let (stream, _) = self.accept().await?;
        let peer = PeerInfo::of(&stream);
        Ok((stream, peer))
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Io, PeerInfo)> {
        let (stream, addr) = self.accept().await?;
        // Small writes (stream events) go out at once.
        let _ = stream.set_nodelay(true);
        Ok((stream, PeerInfo::tcp(addr.ip())))
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc).
/// Returns once every connection has ended, or the drain deadline cut them.
pub async fn serve<L: Listener>(
    listener: L,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
    options: &ServeOptions,
) -> std::io::Result<Drained> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(options.max_header_bytes)
        .keep_alive(true);
    // Closed (sender dropped) when shutdown begins: every connection then finishes the request
    // it is on and closes instead of waiting for another.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    loop {
        // A free connection slot first: at the cap, nothing is accepted until one closes.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept_peer() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) if is_peer_error(&e) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                            () = &mut shutdown => break,
                        }
                    }
                };
                let app = app.clone();
                let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    // Cloning a router is an Arc clone; `Router::call` needs `&mut self`.
                    app.clone().call(req.map(axum::body::Body::new))
                });
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => return log_end(r),
                        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
                    }
                    log_end(conn.await);
                });
            }
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(stop_tx);
    if !connections.is_empty() {
        tracing::info!(
            connections = connections.len(),
            "shutting down: no new connections, draining in-flight requests"
        );
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    match tokio::time::timeout(options.drain, drained).await {
        Ok(()) => Ok(Drained::Clean),
        Err(_) => {
            tracing::warn!(
                drain_ms = u64::try_from(options.drain.as_millis()).unwrap_or(u64::MAX),
                connections = connections.len(),
                "drain deadline passed; cutting remaining requests"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            Ok(Drained::DeadlineHit)
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Peers that go away mid-request and header timeouts are routine; not worth a warning.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Accept errors caused by one peer (the listener is fine).
fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when the
/// future is first polled), so call it first thing: a signal that arrives while a service is
/// still starting then stops it cleanly instead of killing it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn app() -> axum::Router {
        axum::Router::new()
            .route(
                "/who",
                get(|ConnectInfo(p): ConnectInfo<PeerInfo>| async move { p.client() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    "never"
                }),
            )
    }

    async fn start(
        options: ServeOptions,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<Drained>>,
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(
                listener,
                app(),
                async {
                    let _ = rx.await;
                },
                &options,
            )
            .await
        });
        (tmp, path, tx, task)
    }

    async fn get_raw(path: &std::path::Path, target: &str) -> String {
        let mut s = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect");
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn peer_credentials_reach_the_handler() {
        let (_tmp, path, _tx, _task) = start(ServeOptions::default()).await;
        let answer = get_raw(&path, "/who").await;
        let uid = rustix::process::geteuid().as_raw();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&format!("uds:uid={uid}")), "{answer}");
    }

    #[tokio::test]
    async fn slow_headers_and_idle_keep_alive_are_cut() {
        let options = ServeOptions {
            header_read_timeout: Some(Duration::from_millis(200)),
            ..ServeOptions::default()
        };
        let (_tmp, path, _tx, _task) = start(options).await;
        // Half a request line, then silence: the server closes the connection.
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        s.write_all(b"GET /who HT").await.expect("write");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "connection still open after the header timeout"
        );
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

        // A keep-alive connection that answered once and then idles is closed too.
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        s.write_all(b"GET /who HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "idle keep-alive connection was not closed");
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
        let options = ServeOptions {
            max_connections: 1,
            ..ServeOptions::default()
        };
        let (_tmp, path, _tx, _task) = start(options).await;
        let hog = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        // Let the server accept the hog before the second client arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let p = path.clone();
        let mut waiting = tokio::spawn(async move { get_raw(&p, "/who").await });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
        assert!(early.is_err(), "served beyond the cap: {early:?}");
        drop(hog);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once the slot was free")
            .expect("join");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn oversized_headers_get_431() {
        let options = ServeOptions {
            max_header_bytes: 1024,
            ..ServeOptions::default()
        };
        let (_tmp, path, _tx, _task) = start(options).await;
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        let big = "a".repeat(4096);
        s.write_all(format!("GET /who HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        assert!(
            String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }

    #[tokio::test]
    async fn shutdown_drains_in_flight_then_stops_accepting() {
        let (_tmp, path, tx, task) = start(ServeOptions::default()).await;
        let p = path.clone();
        let slow = tokio::spawn(async move { get_raw(&p, "/slow").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(()).expect("stop");
        let answer = slow.await.expect("join");
        assert!(
            answer.ends_with("done"),
            "in-flight request finished: {answer}"
        );
        assert_eq!(task.await.expect("join").expect("served"), Drained::Clean);
        assert!(tokio::net::UnixStream::connect(&path).await.is_err());
    }

    #[tokio::test]
    async fn drain_deadline_cuts_what_is_left() {
        let options = ServeOptions {
            drain: Duration::from_millis(200),
            ..ServeOptions::default()
        };
        let (_tmp, path, tx, task) = start(options).await;
        let p = path.clone();
        let hang = tokio::spawn(async move { get_raw(&p, "/hang").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(()).expect("stop");
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        let drained = ended
            .expect("serve returned")
            .expect("join")
            .expect("served");
        assert_eq!(drained, Drained::DeadlineHit);
        let answer = hang.await.expect("join");
        assert!(!answer.contains("never"), "{answer}");
    }
}
