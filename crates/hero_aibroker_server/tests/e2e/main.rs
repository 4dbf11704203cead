//! End-to-end tests: the real `hero_aibroker_server` binary on a temporary socket directory,
//! driven over its Unix socket against the scripted fake provider. One test binary (faster to
//! link), one module per area.

mod harness;

mod admin;
mod anthropic;
mod audio;
mod auth;
mod battery;
mod cascade;
mod catalog;
mod durability;
mod errors;
mod fallback;
mod faults;
mod health;
mod hostile;
mod keys;
mod ledger;
mod lifecycle;
mod limits;
mod listed;
mod mcp;
mod messages;
mod openrouter;
mod policy;
mod relay;
mod responses;
mod routing;
mod running;
mod shared;
mod streams;
mod tcp;
