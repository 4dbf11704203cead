//! What every example needs: the broker's sockets and the two clients.
//!
//! The sockets are found as every hero service finds them: `HERO_SOCKET_DIR` (default
//! `~/hero/var/sockets`), then `hero_aibroker/rest.sock` and `rpc.sock`. `HERO_AIBROKER_API_KEY`
//! (a broker key) goes on REST calls and `ADMIN_TOKEN` on RPC calls, when they are set.
//!
//! Run one against a started broker (`scripts/start.sh`, or `scripts/start.sh --demo` without
//! provider keys):
//!
//! ```sh
//! cargo run -p hero_aibroker_examples --bin list_models
//! cargo run -p hero_aibroker_examples --bin stream_chat -- auto "Count to 5"
//! ```

use std::path::PathBuf;

use hero_aibroker_sdk::client::{RestClient, RpcClient};
use hero_aibroker_sdk::paths;

/// `<HERO_SOCKET_DIR>/hero_aibroker`, where the broker's sockets are.
pub fn socket_dir() -> PathBuf {
    let root = paths::socket_root(
        None,
        var("HERO_SOCKET_DIR").as_deref(),
        var("HOME").as_deref(),
    );
    paths::socket_dir(&root)
}

/// The OpenAI REST API on `rest.sock`, with `HERO_AIBROKER_API_KEY` when it is set.
pub fn rest() -> RestClient {
    let client = RestClient::new(socket_dir().join(paths::REST_SOCK));
    match var("HERO_AIBROKER_API_KEY") {
        Some(key) => client.with_api_key(key),
        _ => client,
    }
}

/// The JSON-RPC admin API on `rpc.sock`, with `ADMIN_TOKEN` when it is set. Its methods are
/// those of [`hero_aibroker_sdk::rpc::HeroAiBrokerApiClient`].
pub fn rpc() -> RpcClient {
    let client = RpcClient::new(socket_dir().join(paths::RPC_SOCK));
    match var("ADMIN_TOKEN") {
        Some(token) => client.with_token(token),
        _ => client,
    }
}

/// A set, non-empty environment variable.
#[expect(
    clippy::disallowed_methods,
    reason = "the examples are SDK clients: they read the environment as any program does, not through the services' Env seam"
)]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The `n`th command-line argument, or `default`.
pub fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_owned())
}
