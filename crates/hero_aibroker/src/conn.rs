//! Reaching the broker: socket paths, the SDK clients, retries with exponential backoff on
//! transient socket errors, and [`ServerDown`], the error that becomes exit code 2.

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hero_aibroker_sdk::client::{ClientError, RestClient, RpcClient};
use hero_aibroker_sdk::paths;
use jsonrpsee::core::ClientError as RpcError;

use crate::cli::Global;

/// First backoff delay; doubled after every failed attempt, capped at [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The broker is not running (its socket is missing or refuses connections).
#[derive(Debug)]
pub struct ServerDown {
    pub socket: PathBuf,
}

impl std::fmt::Display for ServerDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the broker is not running: nothing answers on {} \
             (start it with scripts/start.sh or hero_aibroker_server)",
            self.socket.display()
        )
    }
}

impl std::error::Error for ServerDown {}

/// The broker's socket directory (`<root>/hero_aibroker`) and clients for it.
pub struct Conn {
    dir: PathBuf,
    /// `--socket`: the rpc.sock to use (rest.sock is beside it).
    rpc_override: Option<PathBuf>,
    max_retries: u32,
    admin_token: Option<String>,
    api_key: Option<String>,
}

impl Conn {
    pub fn new(global: &Global) -> Conn {
        let root = global.socket_dir.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            paths::default_socket_root(Path::new(&home))
        });
        let rpc_override = global.socket.clone();
        let dir = match rpc_override.as_ref().and_then(|s| s.parent()) {
            Some(parent) => parent.to_owned(),
            None => paths::socket_dir(&root),
        };
        Conn {
            dir,
            rpc_override,
            max_retries: global.max_retries,
            admin_token: global.admin_token.clone(),
            api_key: global.api_key.clone(),
        }
    }

    /// `<root>/hero_aibroker`, where the services' sockets are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rpc_socket(&self) -> PathBuf {
        self.rpc_override
            .clone()
            .unwrap_or_else(|| self.dir.join(paths::RPC_SOCK))
    }

    pub fn rest_socket(&self) -> PathBuf {
        self.dir.join(paths::REST_SOCK)
    }

    pub fn rpc(&self) -> RpcClient {
        let client = RpcClient::new(self.rpc_socket());
        match &self.admin_token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        }
    }

    pub fn rest(&self) -> RestClient {
        let client = RestClient::new(self.rest_socket());
        match &self.api_key {
            Some(key) => client.with_api_key(key.clone()),
            None => client,
        }
    }

    /// Runs an RPC call, retrying while the socket is unreachable; errors become one line.
    pub async fn call<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let socket = self.rpc_socket();
        retry(self.max_retries, f, |e| {
            rpc_client_error(e).is_some_and(is_unreachable)
        })
        .await
        .map_err(|e| match rpc_client_error(&e) {
            Some(ce) if is_unreachable(ce) => ServerDown { socket }.into(),
            _ => anyhow::anyhow!(rpc_message(&e)),
        })
    }

    /// Runs a REST call, retrying while the socket is unreachable; errors become one line.
    pub async fn rest_call<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let socket = self.rest_socket();
        retry(self.max_retries, f, is_unreachable)
            .await
            .map_err(|e| {
                if is_unreachable(&e) {
                    ServerDown { socket }.into()
                } else {
                    anyhow::anyhow!(e.to_string())
                }
            })
    }
}

/// Calls `f` up to `1 + max_retries` times while `transient` says the error may pass, sleeping
/// 200 ms, 400 ms, 800 ms… (at most 5 s) in between.
pub async fn retry<T, E, F, Fut>(
    max_retries: u32,
    mut f: F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if attempt < max_retries && transient(&e) => {
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            other => return other,
        }
    }
}

/// A socket that is missing or refuses connections: the broker is not (yet) running.
fn is_unreachable(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect { source, .. }
            if matches!(source.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused)
    )
}

/// The SDK error inside a jsonrpsee transport error.
fn rpc_client_error(e: &RpcError) -> Option<&ClientError> {
    match e {
        RpcError::Transport(inner) => inner.downcast_ref::<ClientError>(),
        _ => None,
    }
}

/// One line for an RPC failure: the broker's error message when it sent one.
fn rpc_message(e: &RpcError) -> String {
    match e {
        RpcError::Call(obj) => obj.message().to_owned(),
        RpcError::Transport(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_transient_errors_then_gives_up() {
        let calls = AtomicU32::new(0);
        let out: Result<(), &str> = retry(
            3,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err("refused") }
            },
            |_| true,
        )
        .await;
        assert_eq!(out, Err("refused"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_other_errors() {
        let calls = AtomicU32::new(0);
        let out: Result<(), &str> = retry(
            3,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err("bad request") }
            },
            |_| false,
        )
        .await;
        assert_eq!(out, Err("bad request"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
