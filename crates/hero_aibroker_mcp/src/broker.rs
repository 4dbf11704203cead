//! Reaching the broker: the socket tree (`<root>/hero_aibroker/{rest,rpc}.sock`), the SDK's RPC
//! client, and [`describe`], which turns any failure into the one line an agent sees.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hero_aibroker_sdk::client::{ClientError, RpcClient};
use hero_aibroker_sdk::paths;
use jsonrpsee::core::ClientError as RpcError;

/// Deadline of one RPC call: these are cheap reads, and an agent should not wait long for a
/// broker that hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// `$HOME/hero/var/sockets`, the root of the socket tree when neither `--socket-dir` nor
/// `HERO_SOCKET_DIR` says otherwise.
pub fn default_socket_root() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    paths::default_socket_root(Path::new(&home))
}

/// One broker, addressed by its socket tree.
#[derive(Debug, Clone)]
pub struct Broker {
    root: PathBuf,
    rpc: RpcClient,
}

impl Broker {
    /// The broker whose sockets are in `<root>/hero_aibroker/`. Nothing is dialled yet: a
    /// broker started later is found by the next call.
    pub fn new(root: impl Into<PathBuf>) -> Broker {
        let root = root.into();
        let rpc = RpcClient::new(paths::socket_dir(&root).join(paths::RPC_SOCK))
            .with_timeout(Some(CALL_TIMEOUT));
        Broker { root, rpc }
    }

    /// The JSON-RPC client for `rpc.sock`.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// `<root>/hero_aibroker/rpc.sock`.
    pub fn rpc_socket(&self) -> &Path {
        self.rpc.socket_path()
    }

    /// One line for a failed RPC call: "not running" with the socket and how to start the
    /// broker, or the broker's own message.
    pub fn describe(&self, e: &RpcError) -> String {
        match e {
            RpcError::Call(obj) => format!("the broker answered: {}", obj.message()),
            RpcError::Transport(inner) => match inner.downcast_ref::<ClientError>() {
                Some(ClientError::Connect { path, source })
                    if matches!(
                        source.kind(),
                        ErrorKind::NotFound | ErrorKind::ConnectionRefused
                    ) =>
                {
                    format!(
                        "the broker is not running: nothing answers on {} (start it with \
                         scripts/start.sh, or `hero_aibroker_server --socket-dir {}`)",
                        path.display(),
                        self.root.display()
                    )
                }
                Some(ce) => ce.to_string(),
                None => inner.to_string(),
            },
            other => format!("talking to {} failed: {other}", self.rpc_socket().display()),
        }
    }
}
