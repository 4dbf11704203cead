//! `mcp_broker`: a stdio MCP server that lets agents ask a running hero_aibroker what models
//! cost, how a request would route and what has been spent, without sending any request to a
//! provider. It uses only read-only JSON-RPC methods on `rpc.sock`, so it needs no admin token.
//!
//! - [`broker`]: where the broker's sockets are and how its failures read as one line.
//! - [`report`]: the answers as data (`structuredContent`) and as text, and the cost arithmetic.
//! - [`tools`]: the MCP server and its tools.

pub mod broker;
pub mod report;
pub mod tools;
