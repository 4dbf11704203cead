//! The one place tool calls are routed: [`Hub::call_tool`] serves both `tools/call` in MCP
//! sessions and `POST /tools/{name}`, so both give the same results, and records every call in
//! the [`Audit`]. Also who the caller is ([`caller`]).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use hero_aibroker_host::PeerInfo;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool};
use serde_json::Value;

use crate::aggregate::{Listed, PrefixMode, SEPARATOR, listing, resolve};
use crate::audit::{Audit, CallRow, Via};
use crate::sessions::Sessions;
use crate::supervisor::{CallError, Supervisor};

/// The request header that names the caller (set by the broker: `key:<id>`, `uds:uid=1000`).
/// Trusted: `mcp.sock` is a 0600 socket only our user can open.
pub const CALLER_HEADER: &str = "x-aibroker-caller";

/// Longest error text kept in an audit row.
const ERROR_CHARS: usize = 500;

/// Longest `x-aibroker-caller` accepted; a longer or unprintable one is ignored.
const CALLER_MAX: usize = 256;

/// What the HTTP surfaces share: the servers, the naming mode, the audit and the live MCP
/// sessions.
pub struct Hub {
    pub sup: Arc<Supervisor>,
    pub mode: PrefixMode,
    pub audit: Audit,
    pub sessions: Sessions,
}

/// Why a call was not answered by the tool.
#[derive(Debug)]
pub enum RouteError {
    /// No ready server offers this name.
    UnknownTool { tool: String },
    /// The owning server could not answer.
    Call {
        tool: String,
        server: String,
        error: CallError,
    },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::UnknownTool { tool } => write!(
                f,
                "unknown tool {tool:?} (tools/list shows the tools of the ready servers)"
            ),
            RouteError::Call { error, .. } => write!(f, "{error}"),
        }
    }
}

impl Hub {
    /// The combined tool listing (the names `tools/list` and `GET /tools` show), in order.
    pub fn listing(&self) -> Vec<Listed> {
        listing(&self.sup.tools(), self.mode)
    }

    /// The tools as MCP lists them: each with its exposed name.
    pub fn tools(&self) -> Vec<Tool> {
        self.listing()
            .into_iter()
            .map(|l| {
                let mut tool = l.tool;
                tool.name = l.name.into();
                tool
            })
            .collect()
    }

    /// Routes a call by its exposed name to the owning server, and records it.
    pub async fn call_tool(
        &self,
        mut params: CallToolRequestParams,
        caller: &str,
        via: Via,
    ) -> Result<CallToolResponse, RouteError> {
        let ts_ms = now_ms();
        let started = Instant::now();
        let name = params.name.to_string();
        let arguments = self
            .audit
            .records_arguments()
            .then(|| Value::Object(params.arguments.clone().unwrap_or_default()));
        // `server__tool` of a configured server that is not ready goes to that server, so the
        // caller hears "not ready" rather than "no such tool".
        let ready = self.sup.tools();
        let routed = resolve(&ready, self.mode, &name).or_else(|| {
            let (server, tool) = name.split_once(SEPARATOR)?;
            (self.sup.has_server(server) && !ready.iter().any(|(s, _)| s == server))
                .then(|| (server.to_owned(), tool.to_owned()))
        });
        let (server, result) = match routed {
            None => (None, Err(RouteError::UnknownTool { tool: name.clone() })),
            Some((server, tool)) => {
                params.name = tool.into();
                let r = self.sup.call(&server, params).await;
                let r = r.map_err(|error| RouteError::Call {
                    tool: name.clone(),
                    server: server.clone(),
                    error,
                });
                (Some(server), r)
            }
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let error = match &result {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => Some(
                r.content
                    .iter()
                    .find_map(|c| c.as_text().map(|t| t.text.clone()))
                    .unwrap_or_else(|| "the tool reported an error (isError)".to_owned()),
            ),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        match &error {
            None => {
                tracing::info!(tool = %name, server = ?server, ms = duration_ms, ?via, %caller, "tool call")
            }
            Some(e) => {
                tracing::warn!(tool = %name, server = ?server, ms = duration_ms, ?via, %caller, "tool call failed: {e}")
            }
        }
        self.audit.record(CallRow {
            id: 0,
            ts_ms,
            caller: caller.to_owned(),
            server,
            tool: name,
            duration_ms,
            ok: error.is_none(),
            error: error.map(|e| truncate(e, ERROR_CHARS)),
            arguments,
            via,
        });
        result
    }
}

/// Who made a request: the `x-aibroker-caller` header when present and sane, else
/// `uds:uid=<peer uid>` from the connection's `SO_PEERCRED`.
pub fn caller(headers: &HeaderMap, peer: Option<&ConnectInfo<PeerInfo>>) -> String {
    if let Some(v) = headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !v.is_empty() && v.len() <= CALLER_MAX && v.chars().all(|c| c.is_ascii_graphic()) {
            return v.to_owned();
        }
    }
    match peer {
        Some(ConnectInfo(p)) => p.client(),
        None => "uds".to_owned(),
    }
}

/// Unix time in ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `s` cut to at most `max` characters (marked with `…`).
fn truncate(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_prefers_a_sane_header_over_the_peer() {
        let peer = ConnectInfo(PeerInfo {
            uid: Some(1000),
            pid: Some(4),
            ip: None,
        });
        let mut h = HeaderMap::new();
        assert_eq!(caller(&h, Some(&peer)), "uds:uid=1000");
        assert_eq!(caller(&h, None), "uds");
        h.insert(CALLER_HEADER, "key:k_123".parse().expect("header"));
        assert_eq!(caller(&h, Some(&peer)), "key:k_123");
        h.insert(CALLER_HEADER, "two words".parse().expect("header"));
        assert_eq!(caller(&h, Some(&peer)), "uds:uid=1000");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo".into(), 10), "héllo");
        assert_eq!(truncate("héllo".into(), 2), "hé…");
    }
}
