//! The JSON-RPC admin API on rpc.sock.

pub mod methods;
mod mothers;
pub mod serve;
