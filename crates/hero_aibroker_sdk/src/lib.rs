//! hero_aibroker SDK: the wire types clients exchange with the broker and the one table of
//! error codes. It depends on serde only, so clients (CLI, dashboard, third parties) never
//! compile the broker core.
#![warn(clippy::print_stdout)]

pub mod admin;
pub mod client;
pub mod error;
pub mod rpc;
pub mod wire;

pub use error::{ErrorBody, ErrorCode, ErrorObject};
pub use wire::*;

/// The OpenRPC document of the JSON-RPC API (what `rpc.discover` and `GET /openrpc.json` serve).
pub const OPENRPC_JSON: &str = include_str!("../openrpc.json");
