//! `mcp_hero`'s tools: the hero services on this host, found by their sockets, and their
//! JSON-RPC methods.
//!
//! A hero service is a Unix socket under the socket root (`$HERO_SOCKET_DIR`, default
//! `~/hero/var/sockets`; the sockets directly in it and one directory down, as
//! `<root>/<service>/<name>.sock`) that answers `GET /.well-known/heroservice.json` with its
//! `name` (and optionally `version`, `description`, `spec`: the path of its OpenRPC document,
//! default `/openrpc.json`, and `endpoints.rpc`: where JSON-RPC goes, default `/rpc`). Sockets
//! that do not answer it are not services and are skipped. Discovery runs at every call, so a
//! service started later is found.
//!
//! Calls go without a token: methods a service guards (the broker's mutating ones when it has an
//! `ADMIN_TOKEN`) answer their own error, which the tool reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hero_aibroker_sdk::client::uds;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::tools::{answer, failure};

/// How long a socket may take to say what it is (a service on a local socket answers in
/// milliseconds; a socket whose owner does not answer HTTP must not hold every call up).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a method call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One discovered service.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub socket: PathBuf,
    /// The path of its OpenRPC document.
    pub spec: String,
    /// The path JSON-RPC calls are posted to.
    pub rpc: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ServiceArgs {
    /// The service: its name as `list_services` shows it, or its socket path.
    pub service: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CallArgs {
    /// The service: its name as `list_services` shows it, or its socket path.
    pub service: String,
    /// The JSON-RPC method, as `service_methods` lists it (e.g. `health`).
    pub method: String,
    /// Its params: an object (by name) or an array (by position); none when absent.
    #[serde(default)]
    pub params: Option<Value>,
}

/// The MCP server: the hero services under one socket root.
#[derive(Debug, Clone)]
pub struct HeroTools {
    root: PathBuf,
    /// The services of the last discovery: a call to one of them whose socket is still there
    /// does not probe every socket again.
    known: std::sync::Arc<std::sync::Mutex<Vec<Service>>>,
    tool_router: ToolRouter<Self>,
}

/// The sockets under `root`: directly in it, then one directory down, sorted.
fn sockets(root: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            found.push(entry.path());
        } else if kind.is_dir()
            && let Ok(inner) = std::fs::read_dir(entry.path())
        {
            found.extend(
                inner
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|k| k.is_socket()))
                    .map(|e| e.path()),
            );
        }
    }
    found.sort();
    found
}

/// What the socket says it is, if it is a hero service.
async fn probe(socket: PathBuf) -> Option<Service> {
    let (status, body) = tokio::time::timeout(
        PROBE_TIMEOUT,
        uds::get(&socket, "/.well-known/heroservice.json"),
    )
    .await
    .ok()?
    .ok()?;
    if !status.is_success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(Service {
        name: text("name")?,
        version: text("version"),
        description: text("description"),
        spec: text("spec").unwrap_or_else(|| "/openrpc.json".to_owned()),
        rpc: v["endpoints"]["rpc"].as_str().unwrap_or("/rpc").to_owned(),
        socket,
    })
}

#[tool_router]
impl HeroTools {
    /// The services under `root` (the socket root, as `HERO_SOCKET_DIR`).
    pub fn new(root: impl Into<PathBuf>) -> HeroTools {
        HeroTools {
            root: root.into(),
            known: Default::default(),
            tool_router: Self::tool_router(),
        }
    }

    /// Every hero service answering under the root, in socket order.
    pub async fn discover(&self) -> Vec<Service> {
        let probes = sockets(&self.root).into_iter().map(probe);
        let found: Vec<Service> = futures_util::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect();
        *self.known_lock() = found.clone();
        found
    }

    fn known_lock(&self) -> std::sync::MutexGuard<'_, Vec<Service>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A service by name or socket: from the last discovery while its socket exists, else
    /// from a new one.
    async fn find(&self, which: &str) -> Result<Service, String> {
        let matches = |s: &Service| s.name == which || s.socket == Path::new(which);
        let known = self.known_lock().iter().find(|s| matches(s)).cloned();
        if let Some(s) = known.filter(|s| s.socket.exists()) {
            return Ok(s);
        }
        let services = self.discover().await;
        services
            .iter()
            .find(|s| matches(s))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "no hero service {which:?} under {} (found: {})",
                    self.root.display(),
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            })
    }

    #[tool(
        description = "Lists the hero services running on this host: each Unix socket under the hero socket directory that answers /.well-known/heroservice.json, with its name, version, description and socket."
    )]
    async fn list_services(&self) -> CallToolResult {
        let services = self.discover().await;
        let mut text = String::new();
        for s in &services {
            text.push_str(&format!(
                "{} {} — {} ({})\n",
                s.name,
                s.version.as_deref().unwrap_or("?"),
                s.description.as_deref().unwrap_or("no description"),
                s.socket.display()
            ));
        }
        if services.is_empty() {
            text = format!("no hero service answers under {}", self.root.display());
        }
        answer(
            text.trim_end().to_owned(),
            json!({"root": self.root, "services": services}),
        )
    }

    #[tool(
        description = "The JSON-RPC methods of one hero service, from its OpenRPC document: name, summary and params (name, whether required, JSON schema)."
    )]
    async fn service_methods(
        &self,
        Parameters(ServiceArgs { service }): Parameters<ServiceArgs>,
    ) -> CallToolResult {
        let s = match self.find(&service).await {
            Ok(s) => s,
            Err(e) => return failure(e),
        };
        let doc: Value = match uds::get(&s.socket, &s.spec).await {
            Ok((status, body)) if status.is_success() => match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return failure(format!("{}{} is not JSON: {e}", s.name, s.spec)),
            },
            Ok((status, _)) => {
                return failure(format!("{} answered {status} for {}", s.name, s.spec));
            }
            Err(e) => return failure(format!("{}: {e}", s.name)),
        };
        let methods: Vec<Value> = doc["methods"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let params: Vec<Value> = m["params"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p["name"],
                            "required": p["required"].as_bool().unwrap_or(false),
                            "schema": p["schema"],
                        })
                    })
                    .collect();
                json!({"name": m["name"], "summary": m["summary"], "params": params})
            })
            .collect();
        let mut text = format!("{} methods of {}:\n", methods.len(), s.name);
        for m in &methods {
            let params: Vec<String> = m["params"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or("?");
                    if p["required"] == true {
                        name.to_owned()
                    } else {
                        format!("{name}?")
                    }
                })
                .collect();
            text.push_str(&format!(
                "{}({}) — {}\n",
                m["name"].as_str().unwrap_or("?"),
                params.join(", "),
                m["summary"].as_str().unwrap_or("")
            ));
        }
        answer(
            text.trim_end().to_owned(),
            json!({"service": s.name, "methods": methods}),
        )
    }

    #[tool(
        description = "Calls a JSON-RPC method of a hero service with JSON params (an object by name or an array by position) and returns its result. No token is sent: methods the service guards answer its own error."
    )]
    async fn call_method(
        &self,
        Parameters(CallArgs {
            service,
            method,
            params,
        }): Parameters<CallArgs>,
    ) -> CallToolResult {
        let s = match self.find(&service).await {
            Ok(s) => s,
            Err(e) => return failure(e),
        };
        let mut call = Map::new();
        call.insert("jsonrpc".into(), "2.0".into());
        call.insert("id".into(), 1.into());
        call.insert("method".into(), method.clone().into());
        match params {
            None | Some(Value::Null) => {}
            Some(p @ (Value::Object(_) | Value::Array(_))) => {
                call.insert("params".into(), p);
            }
            Some(other) => {
                return failure(format!("params must be an object or an array, not {other}"));
            }
        }
        let body = Bytes::from(Value::Object(call).to_string());
        let sent = tokio::time::timeout(
            CALL_TIMEOUT,
            uds::exchange(&s.socket, http::Method::POST, &s.rpc, body),
        )
        .await;
        let (status, body) = match sent {
            Err(_) => return failure(format!("{} did not answer {method} within 30 s", s.name)),
            Ok(Err(e)) => return failure(format!("{}: {e}", s.name)),
            Ok(Ok(answer)) => answer,
        };
        let reply: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return failure(format!(
                    "{} answered {status} without JSON-RPC: {}",
                    s.name,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
            }
        };
        if let Some(e) = reply.get("error") {
            return failure(format!(
                "{} answered {method} with error {}: {}",
                s.name,
                e["code"],
                e["message"].as_str().unwrap_or("")
            ));
        }
        let result = reply.get("result").cloned().unwrap_or(Value::Null);
        let text = serde_json::to_string_pretty(&result).unwrap_or_default();
        answer(
            text,
            json!({"service": s.name, "method": method, "result": result}),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HeroTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp_hero", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The hero services on this host: list_services finds them by their sockets, service_methods reads a service's OpenRPC methods, call_method calls one with JSON params.",
            )
    }
}
