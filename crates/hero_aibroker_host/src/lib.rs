//! What every hero_aibroker binary needs to be a well-behaved service, and nothing of the
//! broker's logic: the environment seam ([`env`]), the socket directory, socket binding and
//! private files ([`socket`]), serving a router with header/keep-alive timeouts and a graceful
//! drain ([`serve`]), peer credentials ([`peer`]), logging ([`logging`]), and the bounded
//! group-commit writer behind the usage ledger and the MCP audit ([`group_commit`]).
#![warn(clippy::print_stdout)]

pub mod env;
pub mod group_commit;
pub mod logging;
pub mod peer;
pub mod serve;
pub mod socket;

pub use peer::PeerInfo;
pub use serve::{Drained, ServeOptions, serve, shutdown_signal};
