//! hero_aibroker_services: the MCP aggregator. It reads `mcp_servers.json` ([`config`]),
//! supervises each server ([`supervisor`]), and serves all their tools as one MCP server on
//! `mcp.sock` ([`aggregate`], [`serve`]), with a plain JSON API for the broker ([`rest`]) and
//! an audit of every tool call ([`audit`]).

pub mod aggregate;
pub mod audit;
pub mod audit_db;
pub mod catalog;
pub mod child;
pub mod config;
pub mod hub;
pub mod legacy_sse;
pub mod listings;
pub mod rest;
pub mod serve;
pub mod sessions;
pub mod sse_client;
pub mod supervisor;
