//! The surfaces: the OpenAI/OpenRouter-compatible REST API on `rest.sock` ([`api`]), the
//! JSON-RPC admin API on `rpc.sock` ([`rpc`]), and serving both until shutdown ([`server`]).
//! They map HTTP to the pipeline and the state, and errors to each surface's own format.

pub mod api;
pub mod rpc;
pub mod server;
