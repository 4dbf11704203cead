//! hero_aibroker core library. Binaries are wiring; everything a test may want to call lives
//! here, grouped by the pipeline, each folder depending only on those listed before it:
//!
//! - [`health`]: key instances, circuits, measurements, affinity, and `observe`.
//! - [`config`]: settings, the models file and the registry snapshot built from them.
//! - [`accounting`]: broker API keys, the ledger, the store, metrics.
//! - [`translate`]: OpenAI Chat, Anthropic Messages and OpenAI Responses translated into one
//!   another (requests, replies, streams), one file per direction; pure functions.
//! - [`providers`]: one driver per wire protocol, the OpenRouter catalog, key checks.
//! - [`pipeline`]: parse, route, relay, transforms, SSE.
//! - [`surfaces`]: REST and JSON-RPC, and [`surfaces::server`]'s start → serve → drain → flush.
//!
//! Leaves any folder may use: [`endpoint`], [`error`], [`secret`], [`mcp`] (the aggregator
//! client); [`state`] ties the folders below the pipeline into one shared state.
#![warn(clippy::print_stdout)]

pub mod accounting;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod mcp;
pub mod pipeline;
pub mod providers;
pub mod secret;
pub mod state;
pub mod surfaces;
pub mod translate;
