//! hero_aibroker SDK: the wire types clients exchange with the broker, the one table of error
//! codes, the JSON-RPC admin API declared once (`rpc`, with `openrpc.json`), and clients for
//! both sockets over Unix-domain HTTP (`client`). It never depends on the broker core, so the
//! CLI, the dashboard and third parties stay light.
#![warn(clippy::print_stdout)]

pub mod admin;
pub mod client;
pub mod error;
pub mod mcp;
pub mod multipart;
pub mod paths;
pub mod rpc;
pub mod sse;
pub mod time;
pub mod wire;

pub use error::{ErrorBody, ErrorCode, ErrorObject};
pub use wire::*;

/// The OpenRPC document of the JSON-RPC API (what `rpc.discover` and `GET /openrpc.json` serve).
pub const OPENRPC_JSON: &str = include_str!("../openrpc.json");
