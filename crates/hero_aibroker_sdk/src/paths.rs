//! Where hero_aibroker's sockets and files live, once for every binary and client: the socket
//! root (`$HERO_SOCKET_DIR`, default `~/hero/var/sockets`), the service directory
//! `<root>/hero_aibroker/` and the socket names in it, and the data directory
//! `~/hero/var/hero_aibroker/` (store, audit, history).

use std::path::{Path, PathBuf};

/// The service's folder under the socket root.
pub const SERVICE_DIR: &str = "hero_aibroker";
/// OpenAI/OpenRouter-compatible REST (`hero_aibroker_server`).
pub const REST_SOCK: &str = "rest.sock";
/// JSON-RPC admin (`hero_aibroker_server`).
pub const RPC_SOCK: &str = "rpc.sock";
/// The MCP aggregator (`hero_aibroker_services`).
pub const MCP_SOCK: &str = "mcp.sock";
/// The web dashboard (`hero_aibroker_admin`).
pub const ADMIN_SOCK: &str = "admin.sock";

/// `<home>/hero/var/sockets`, the socket root when neither a flag nor `HERO_SOCKET_DIR` names one.
pub fn default_socket_root(home: &Path) -> PathBuf {
    home.join("hero/var/sockets")
}

/// The socket root: `explicit` (a `--socket-dir` flag), else `HERO_SOCKET_DIR`, else the
/// default under `home` (`/root` when `HOME` is unset too).
pub fn socket_root(
    explicit: Option<PathBuf>,
    hero_socket_dir: Option<&str>,
    home: Option<&str>,
) -> PathBuf {
    explicit
        .or_else(|| hero_socket_dir.map(PathBuf::from))
        .unwrap_or_else(|| default_socket_root(Path::new(home.unwrap_or("/root"))))
}

/// `<root>/hero_aibroker`, the directory of all the service's sockets.
pub fn socket_dir(root: &Path) -> PathBuf {
    root.join(SERVICE_DIR)
}

/// `<home>/hero/var/hero_aibroker`, where the store, the MCP audit and the chat history live.
pub fn data_dir(home: &Path) -> PathBuf {
    home.join("hero/var").join(SERVICE_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_env_then_home() {
        let flag = Some(PathBuf::from("/f"));
        assert_eq!(
            socket_root(flag, Some("/e"), Some("/h")),
            PathBuf::from("/f")
        );
        assert_eq!(
            socket_root(None, Some("/e"), Some("/h")),
            PathBuf::from("/e")
        );
        assert_eq!(
            socket_root(None, None, Some("/h")),
            PathBuf::from("/h/hero/var/sockets")
        );
        assert_eq!(
            socket_dir(&socket_root(None, None, None)).join(REST_SOCK),
            PathBuf::from("/root/hero/var/sockets/hero_aibroker/rest.sock")
        );
        assert_eq!(
            data_dir(Path::new("/h")),
            PathBuf::from("/h/hero/var/hero_aibroker")
        );
    }
}
