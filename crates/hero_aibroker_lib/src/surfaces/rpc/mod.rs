//! The JSON-RPC admin API on rpc.sock.

pub mod methods;
pub mod serve;
