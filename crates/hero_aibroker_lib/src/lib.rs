//! hero_aibroker core library. Binaries are wiring; everything a test may want to call lives
//! here: configuration, the model registry, routing, provider drivers, the relay loop and the
//! HTTP surfaces.
#![warn(clippy::print_stdout)]

pub mod api;
pub mod circuit;
pub mod config;
pub mod error;
pub mod keys;
pub mod ledger;
pub mod mcp;
pub mod pool;
pub mod providers;
pub mod registry;
pub mod relay;
pub mod request;
pub mod router;
pub mod rpc;
pub mod secret;
pub mod server;
pub mod sse;
pub mod sse_parse;
pub mod state;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod transforms;
