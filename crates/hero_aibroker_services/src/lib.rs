//! hero_aibroker_services: the MCP aggregator. It reads `mcp_servers.json` ([`config`]),
//! supervises each server ([`supervisor`]), and serves all their tools as one MCP server on
//! `mcp.sock` ([`aggregate`], [`serve`]).

pub mod aggregate;
pub mod child;
pub mod config;
pub mod serve;
pub mod supervisor;
