//! Health: the live state routing reads and attempts change — per (provider, key) instance
//! health and cooldowns ([`pool`]), per-backend circuits ([`circuit`]) and latency and
//! throughput measurements ([`stats`]), and session affinity ([`affinity`]). Lock-free on the
//! request path; [`observe`] is the one place an attempt's outcome changes any of it.

pub mod affinity;
pub mod circuit;
pub mod pool;
pub mod stats;
