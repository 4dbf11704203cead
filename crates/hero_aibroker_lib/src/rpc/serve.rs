//! Serving JSON-RPC on rpc.sock. (being written)
