//! The JSON-RPC admin API on rpc.sock.

pub mod serve;
