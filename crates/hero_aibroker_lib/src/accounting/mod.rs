//! Accounting: who may call (per-client limits in [`clients`]) and what every request cost — broker API keys with their limits
//! and budgets ([`keys`]), the usage ledger's group-commit writer ([`ledger`]), the SQLite
//! store behind both ([`store`]), and the Prometheus metrics ([`telemetry`]). Nothing here
//! writes to the database on the request path.

pub mod clients;
pub mod keys;
pub mod ledger;
pub mod running;
pub mod store;
pub mod telemetry;
