//! Aggregation: the tools of every ready server as one MCP server. A tool keeps its own name
//! unless two servers offer the same name (or `MCP_TOOL_PREFIX=always`); then it is listed as
//! `server__tool`. Calls are routed to the owning server through the [`Supervisor`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use hero_aibroker_host::PeerInfo;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, Prompt, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde_json::json;

use crate::audit::Via;
use crate::hub::{Hub, RouteError, caller};
use crate::supervisor::CallError;

/// Separates the server and the tool in a prefixed name.
pub const SEPARATOR: &str = "__";

/// When tool names get their server's prefix (`MCP_TOOL_PREFIX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrefixMode {
    /// Only names offered by more than one server (the default).
    #[default]
    Collisions,
    /// Every name.
    Always,
}

impl std::str::FromStr for PrefixMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(PrefixMode::Always),
            "collisions" | "auto" => Ok(PrefixMode::Collisions),
            other => Err(format!(
                "MCP_TOOL_PREFIX: {other:?} is not one of always, collisions"
            )),
        }
    }
}

/// Something listed under a name that may get its server's prefix: a tool or a prompt.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for Tool {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Prompt {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The names clients see for the items of `servers`, in order, as (exposed name, server,
/// index of the item in its server's list). A name gets its server's prefix when two servers
/// offer it (or in [`PrefixMode::Always`]).
pub fn exposed<T: Named>(
    servers: &[(&str, &[T])],
    mode: PrefixMode,
) -> Vec<(String, usize, usize)> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, items) in servers {
        for t in items.iter() {
            *count.entry(t.name()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (si, (server, items)) in servers.iter().enumerate() {
        for (i, t) in items.iter().enumerate() {
            let prefixed = mode == PrefixMode::Always || count[t.name()] > 1;
            let name = if prefixed {
                format!("{server}{SEPARATOR}{}", t.name())
            } else {
                t.name().to_owned()
            };
            out.push((name, si, i));
        }
    }
    out
}

/// The server and the server's own name a client's `name` refers to: a listed name, or
/// `server__name` for any of the servers' items (so prefixed names keep working when a
/// collision goes away).
pub fn resolve_in<T: Named>(
    servers: &[(&str, &[T])],
    mode: PrefixMode,
    name: &str,
) -> Option<(String, String)> {
    if let Some((_, si, i)) = exposed(servers, mode)
        .into_iter()
        .find(|(n, _, _)| n == name)
    {
        let (server, items) = servers[si];
        return Some((server.to_owned(), items[i].name().to_owned()));
    }
    let (server, item) = name.split_once(SEPARATOR)?;
    let (_, items) = servers.iter().find(|(s, _)| *s == server)?;
    items
        .iter()
        .any(|t| t.name() == item)
        .then(|| (server.to_owned(), item.to_owned()))
}

/// One listed tool: the name clients see, the owning server and the server's own tool.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub server: String,
    pub tool: Tool,
}

fn borrowed(servers: &[(String, Arc<Vec<Tool>>)]) -> Vec<(&str, &[Tool])> {
    servers
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_slice()))
        .collect()
}

/// The combined tool listing of `servers` (as [`Supervisor::tools`] returns them), in order.
///
/// [`Supervisor::tools`]: crate::supervisor::Supervisor::tools
pub fn listing(servers: &[(String, Arc<Vec<Tool>>)], mode: PrefixMode) -> Vec<Listed> {
    exposed(&borrowed(servers), mode)
        .into_iter()
        .map(|(name, si, i)| Listed {
            name,
            server: servers[si].0.clone(),
            tool: servers[si].1[i].clone(),
        })
        .collect()
}

/// The server and tool a client's tool `name` refers to (see [`resolve_in`]).
pub fn resolve(
    servers: &[(String, Arc<Vec<Tool>>)],
    mode: PrefixMode,
    name: &str,
) -> Option<(String, String)> {
    resolve_in(&borrowed(servers), mode, name)
}

/// The MCP server clients talk to on `mcp.sock`: one per session, all sharing the [`Hub`].
#[derive(Clone)]
pub struct Aggregator {
    hub: Arc<Hub>,
}

impl Aggregator {
    pub fn new(hub: Arc<Hub>) -> Self {
        Aggregator { hub }
    }
}

/// The caller of an MCP request: rmcp hands the HTTP request's parts to the handler in the
/// request context's extensions.
fn mcp_caller(extensions: &rmcp::model::Extensions) -> String {
    match extensions.get::<Parts>() {
        Some(parts) => caller(
            &parts.headers,
            parts.extensions.get::<ConnectInfo<PeerInfo>>(),
        ),
        None => "uds".to_owned(),
    }
}

/// A routed call's failure as the JSON-RPC error the client gets; `data` says which server and
/// why, for programs.
pub fn call_error(name: &str, e: CallError) -> ErrorData {
    // `reason` is the error table's code string, as on the REST API.
    let data = match &e {
        CallError::Mcp(_) => None,
        other => {
            Some(json!({"tool": name, "server": other.server(), "reason": other.code().as_str()}))
        }
    };
    match e {
        CallError::Mcp(inner) => inner,
        CallError::UnknownServer(_) => ErrorData::invalid_params(e.to_string(), data),
        CallError::NotReady { .. }
        | CallError::Died { .. }
        | CallError::Timeout { .. }
        | CallError::Transport { .. } => ErrorData::internal_error(e.to_string(), data),
    }
}

impl ServerHandler for Aggregator {
    /// Tools always; resources and prompts when a ready server offers them at the time the
    /// session starts. Every list announces list_changed: we forward them.
    fn get_info(&self) -> ServerConfig {
        let (resources, prompts) = self.hub.offers();
        let mut caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_tool_list_changed()
            .enable_resources_list_changed()
            .enable_prompts_list_changed()
            .build();
        if !resources {
            caps.resources = None;
        }
        if !prompts {
            caps.prompts = None;
        }
        ServerConfig::new(caps)
            .with_server_info(Implementation::new(
                "hero_aibroker_services",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "The tools, resources and prompts of every MCP server hero_aibroker runs, as \
                 one server. A tool or prompt named server__name belongs to that server.",
            )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(self.hub.resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.hub.resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.hub.read_resource(request).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(self.hub.prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.hub.get_prompt(request).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.hub.sessions.add(context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.hub.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = mcp_caller(&context.extensions);
        match self.hub.call_tool(request, &who, Via::Mcp).await {
            Ok(r) => Ok(r),
            Err(RouteError::UnknownTool { tool }) => Err(ErrorData::invalid_params(
                format!("unknown tool {tool:?} (tools/list shows the tools of the ready servers)"),
                Some(json!({"tool": tool, "reason": "unknown_tool"})),
            )),
            Err(RouteError::Call { tool, error, .. }) => Err(call_error(&tool, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_owned(), "d", Arc::new(serde_json::Map::new()))
    }

    fn servers() -> Vec<(String, Arc<Vec<Tool>>)> {
        vec![
            ("a".into(), Arc::new(vec![tool("ping"), tool("echo")])),
            ("b".into(), Arc::new(vec![tool("ping"), tool("whoami")])),
        ]
    }

    #[test]
    fn collisions_get_the_prefix_and_others_keep_their_name() {
        let names: Vec<String> = listing(&servers(), PrefixMode::Collisions)
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["a__ping", "echo", "b__ping", "whoami"]);
        let always: Vec<String> = listing(&servers(), PrefixMode::Always)
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(always, ["a__ping", "a__echo", "b__ping", "b__whoami"]);
    }

    #[test]
    fn resolve_listed_and_prefixed_names() {
        let s = servers();
        let r = |n: &str| resolve(&s, PrefixMode::Collisions, n);
        assert_eq!(r("b__ping"), Some(("b".into(), "ping".into())));
        assert_eq!(r("echo"), Some(("a".into(), "echo".into())));
        assert_eq!(
            r("a__echo"),
            Some(("a".into(), "echo".into())),
            "prefix always accepted"
        );
        assert_eq!(r("ping"), None, "ambiguous");
        assert_eq!(r("c__ping"), None);
        assert_eq!(r("a__whoami"), None);
        assert_eq!(resolve(&s, PrefixMode::Always, "echo"), None);
    }

    #[test]
    fn prefix_mode_parses() {
        assert_eq!("always".parse(), Ok(PrefixMode::Always));
        assert_eq!("collisions".parse(), Ok(PrefixMode::Collisions));
        assert!("sometimes".parse::<PrefixMode>().is_err());
    }
}
