//! Supervision: one task per configured server keeps it connected. A stdio server is started
//! as a child ([`crate::child`]), connected with rmcp's client over its stdin/stdout, and its
//! tools listed; when it dies it is restarted with exponential backoff. A remote server is
//! connected over MCP streamable HTTP the same way. Calls are routed here with a per-server
//! timeout, and fail clearly when the server dies mid-call.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hero_aibroker_host::env::Env;
use hero_aibroker_sdk::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, GetPromptRequestParams,
    GetPromptResponse, Implementation, ReadResourceRequestParams, ReadResourceResponse, Tool,
};
use rmcp::service::{NotificationContext, Peer, RoleClient, ServiceError};
use rmcp::{ClientHandler, ErrorData};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Catalog};
use crate::child;
use crate::config::{McpConfig, ServerConfig, Transport};

/// Timings of supervision; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct Options {
    /// First restart delay; doubles per consecutive failure.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A server that stayed up this long starts its backoff over.
    pub stable_after: Duration,
    /// How long a child has after SIGTERM before SIGKILL.
    pub kill_grace: Duration,
    /// Longest stdout line a child may send before it is killed and restarted.
    pub max_line_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            kill_grace: Duration::from_secs(2),
            max_line_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Options {
    /// Delay before restart number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Where a server stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Being started or connected.
    Starting,
    /// Connected; its tools are served.
    Ready { tools: usize },
    /// It failed and will be tried again after `retry_in_ms`.
    Restarting {
        attempt: u32,
        last_error: String,
        retry_in_ms: u64,
    },
    /// It cannot run (e.g. the command does not exist); not retried.
    Failed { error: String },
    /// Shut down.
    Stopped,
}

/// One server's status as `/health` and `/servers` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub transport: &'static str,
    #[serde(flatten)]
    pub status: Status,
    /// Times it was restarted since we started.
    pub restarts: u32,
    /// The child's pid (also its process group), while one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Why a routed call failed. Messages name the server and the tool.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no MCP server named {0:?}")]
    UnknownServer(String),
    #[error("MCP server {server:?} is not ready ({state})")]
    NotReady { server: String, state: String },
    #[error(
        "MCP server {server:?} died during the call to {tool:?} ({detail}); it is being restarted"
    )]
    Died {
        server: String,
        tool: String,
        detail: String,
    },
    #[error("MCP server {server:?} did not answer the call to {tool:?} within {secs} s")]
    Timeout {
        server: String,
        tool: String,
        secs: u64,
    },
    /// The server answered with a JSON-RPC error: passed on as it is.
    #[error("{0}")]
    Mcp(ErrorData),
    #[error("MCP server {server:?}: {detail}")]
    Transport { server: String, detail: String },
}

impl CallError {
    /// This failure's row in the one error table (HTTP status, `type`, `code`).
    pub fn code(&self) -> ErrorCode {
        match self {
            // The server went away between routing and calling.
            CallError::UnknownServer(_) => ErrorCode::ToolNotFound,
            CallError::NotReady { .. } => ErrorCode::ServerNotReady,
            CallError::Died { .. } => ErrorCode::ServerDied,
            CallError::Timeout { .. } => ErrorCode::ToolTimeout,
            CallError::Mcp(_) | CallError::Transport { .. } => ErrorCode::ToolFailed,
        }
    }

    /// The server the call went to.
    pub fn server(&self) -> &str {
        match self {
            CallError::Mcp(_) => "",
            CallError::UnknownServer(server)
            | CallError::NotReady { server, .. }
            | CallError::Died { server, .. }
            | CallError::Timeout { server, .. }
            | CallError::Transport { server, .. } => server,
        }
    }
}

/// A connected server: what calls need.
#[derive(Clone)]
struct Live {
    peer: Peer<RoleClient>,
    catalog: Arc<Catalog>,
    /// Cancelled when the connection or the process ends, after `death` is set.
    dead: CancellationToken,
    /// Why it ended, for the errors of calls in flight.
    death: Arc<std::sync::OnceLock<String>>,
}

struct Slot {
    status: Status,
    live: Option<Live>,
    restarts: u32,
    pid: Option<u32>,
}

struct Server {
    cfg: ServerConfig,
    slot: Mutex<Slot>,
}

impl Server {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs and watches every configured server.
pub struct Supervisor {
    servers: Vec<Arc<Server>>,
    stop: CancellationToken,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    changed: watch::Sender<u64>,
}

impl Supervisor {
    /// Starts supervising every server of `config`. `parent` is our environment, of which
    /// children see only [`child::ENV_ALLOWLIST`].
    pub fn start(config: &McpConfig, parent: &Env, options: Options) -> Arc<Self> {
        let (changed, _) = watch::channel(0u64);
        let stop = CancellationToken::new();
        let servers: Vec<Arc<Server>> = config
            .servers
            .iter()
            .map(|cfg| {
                Arc::new(Server {
                    cfg: cfg.clone(),
                    slot: Mutex::new(Slot {
                        status: Status::Starting,
                        live: None,
                        restarts: 0,
                        pid: None,
                    }),
                })
            })
            .collect();
        let mut tasks = JoinSet::new();
        for server in &servers {
            let ctx = Ctx {
                server: server.clone(),
                parent: parent.clone(),
                options: options.clone(),
                stop: stop.clone(),
                changed: changed.clone(),
            };
            tasks.spawn(ctx.supervise());
        }
        Arc::new(Supervisor {
            servers,
            stop,
            tasks: tokio::sync::Mutex::new(tasks),
            changed,
        })
    }

    /// Every server's status, in config order.
    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .map(|s| {
                let slot = s.slot();
                ServerStatus {
                    name: s.cfg.name.clone(),
                    transport: s.cfg.transport.kind(),
                    status: slot.status.clone(),
                    restarts: slot.restarts,
                    pid: slot.pid,
                }
            })
            .collect()
    }

    /// The tools of every ready server, in config order.
    pub fn tools(&self) -> Vec<(String, Arc<Vec<Tool>>)> {
        self.servers
            .iter()
            .filter_map(|s| {
                let slot = s.slot();
                slot.live
                    .as_ref()
                    .map(|l| (s.cfg.name.clone(), l.catalog.tools.clone()))
            })
            .collect()
    }

    /// Everything every ready server offers, in config order.
    pub fn catalogs(&self) -> Vec<(String, Arc<Catalog>)> {
        self.servers
            .iter()
            .filter_map(|s| {
                let slot = s.slot();
                slot.live
                    .as_ref()
                    .map(|l| (s.cfg.name.clone(), l.catalog.clone()))
            })
            .collect()
    }

    /// Whether `name` is a configured server (ready or not).
    pub fn has_server(&self, name: &str) -> bool {
        self.servers.iter().any(|s| s.cfg.name == name)
    }

    /// A receiver that sees a new value whenever a status or a tool list changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Calls `params.name` (the server's own tool name) on `server`, within its timeout.
    pub async fn call(
        &self,
        server: &str,
        params: CallToolRequestParams,
    ) -> Result<CallToolResponse, CallError> {
        let what = params.name.to_string();
        self.request(server, &what, move |peer| async move {
            peer.call_tool_once(params).await
        })
        .await
    }

    /// Reads a resource (`resources/read`) from `server`, within its timeout.
    pub async fn read_resource(
        &self,
        server: &str,
        params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, CallError> {
        let what = format!("resources/read {}", params.uri);
        self.request(server, &what, move |peer| async move {
            peer.read_resource_once(params).await
        })
        .await
    }

    /// Gets a prompt (`prompts/get`, the server's own prompt name) from `server`, within its
    /// timeout.
    pub async fn get_prompt(
        &self,
        server: &str,
        params: GetPromptRequestParams,
    ) -> Result<GetPromptResponse, CallError> {
        let what = format!("prompts/get {}", params.name);
        self.request(server, &what, move |peer| async move {
            peer.get_prompt_once(params).await
        })
        .await
    }

    /// One request to `server` (`what` names it in errors): fails fast when the server is not
    /// ready, and clearly when it dies or does not answer within its timeout.
    async fn request<T, F, Fut>(&self, server: &str, what: &str, send: F) -> Result<T, CallError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let srv = self
            .servers
            .iter()
            .find(|s| s.cfg.name == server)
            .ok_or_else(|| CallError::UnknownServer(server.to_owned()))?;
        let live = {
            let slot = srv.slot();
            match &slot.live {
                Some(l) => l.clone(),
                None => {
                    return Err(CallError::NotReady {
                        server: server.to_owned(),
                        state: describe(&slot.status),
                    });
                }
            }
        };
        let tool = what.to_owned();
        let timeout = srv.cfg.timeout;
        let died = |live: &Live| CallError::Died {
            server: server.to_owned(),
            tool: tool.clone(),
            detail: live
                .death
                .get()
                .cloned()
                .unwrap_or_else(|| "its connection closed".to_owned()),
        };
        // Dropping the request future (on timeout or death) makes rmcp send
        // notifications/cancelled to the server.
        tokio::select! {
            r = send(live.peer.clone()) => match r {
                Ok(resp) => Ok(resp),
                Err(ServiceError::McpError(e)) => Err(CallError::Mcp(e)),
                Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)) => {
                    // The process is probably exiting: give the supervisor a moment to see
                    // why, so the error can say.
                    let _ = tokio::time::timeout(Duration::from_secs(1), live.dead.cancelled()).await;
                    Err(died(&live))
                }
                Err(e) => Err(CallError::Transport { server: server.to_owned(), detail: e.to_string() }),
            },
            () = live.dead.cancelled() => Err(died(&live)),
            () = tokio::time::sleep(timeout) => Err(CallError::Timeout {
                server: server.to_owned(),
                tool: tool.clone(),
                secs: timeout.as_secs(),
            }),
        }
    }

    /// Stops every server (children get SIGTERM, then SIGKILL, and are reaped) and waits for
    /// the supervising tasks to end.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}

/// A status in words, for errors.
fn describe(status: &Status) -> String {
    match status {
        Status::Starting => "starting".into(),
        Status::Ready { tools } => format!("ready, {tools} tools"),
        Status::Restarting {
            attempt,
            last_error,
            ..
        } => format!("restarting, attempt {attempt}: {last_error}"),
        Status::Failed { error } => format!("failed: {error}"),
        Status::Stopped => "stopped".into(),
    }
}

/// Our side of each server connection: re-lists what the server offers when it says its
/// tools, resources or prompts changed.
struct ChildClient {
    tools_changed: Arc<Notify>,
}

impl ClientHandler for ChildClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            Default::default(),
            Implementation::new("hero_aibroker_services", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// The end of one connection, shared with the calls in flight on it.
#[derive(Default)]
struct Gone {
    dead: CancellationToken,
    death: Arc<std::sync::OnceLock<String>>,
}

/// How one connection attempt ended.
enum Ended {
    /// Shut down on request.
    Stopped,
    /// Cannot run at all: do not retry.
    Fatal(String),
    /// Failed or died: retry after a backoff.
    Retry(String),
}

struct Ctx {
    server: Arc<Server>,
    parent: Env,
    options: Options,
    stop: CancellationToken,
    changed: watch::Sender<u64>,
}

impl Ctx {
    fn set(&self, f: impl FnOnce(&mut Slot)) {
        f(&mut self.server.slot());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    async fn supervise(self) {
        let name = self.server.cfg.name.clone();
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let ended = match &self.server.cfg.transport {
                Transport::Stdio { .. } => self.run_stdio().await,
                Transport::Http { url } => self.run_remote(url, false).await,
                Transport::Sse { url } => self.run_remote(url, true).await,
            };
            let error = match ended {
                Ended::Stopped => {
                    self.set(|s| {
                        s.status = Status::Stopped;
                        s.live = None;
                        s.pid = None;
                    });
                    return;
                }
                Ended::Fatal(error) => {
                    tracing::error!(server = %name, "MCP server failed: {error}");
                    self.set(|s| {
                        s.status = Status::Failed { error };
                        s.live = None;
                        s.pid = None;
                    });
                    return;
                }
                Ended::Retry(error) => error,
            };
            if started.elapsed() >= self.options.stable_after {
                attempt = 0;
            }
            attempt = attempt.saturating_add(1);
            let delay = self.options.backoff(attempt);
            tracing::warn!(server = %name, attempt, retry_in_ms = delay.as_millis() as u64, "MCP server down: {error}");
            self.set(|s| {
                s.status = Status::Restarting {
                    attempt,
                    last_error: error,
                    retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                };
                s.live = None;
                s.pid = None;
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {
                    self.set(|s| s.status = Status::Stopped);
                    return;
                }
            }
            self.set(|s| s.restarts = s.restarts.saturating_add(1));
        }
    }

    /// Marks the server ready with what it offers.
    fn ready(&self, peer: Peer<RoleClient>, catalog: Catalog, live: &Gone) {
        let tools = catalog.tools.len();
        tracing::info!(server = %self.server.cfg.name, tools, resources = catalog.resources.len(), prompts = catalog.prompts.len(), "MCP server ready");
        self.set(|s| {
            s.status = Status::Ready { tools };
            s.live = Some(Live {
                peer,
                catalog: Arc::new(catalog),
                dead: live.dead.clone(),
                death: live.death.clone(),
            });
        });
    }

    /// The connection ended: record why for calls in flight, then fail them.
    fn gone(&self, gone: &Gone, ended: &Ended) {
        let why = match ended {
            Ended::Stopped => "the aggregator is shutting down".to_owned(),
            Ended::Fatal(e) | Ended::Retry(e) => e.clone(),
        };
        let _ = gone.death.set(why);
        self.set(|s| s.live = None);
        gone.dead.cancel();
    }

    /// Re-lists everything after a `notifications/*/list_changed`.
    async fn relist(&self, peer: &Peer<RoleClient>) {
        let name = &self.server.cfg.name;
        match tokio::time::timeout(self.server.cfg.timeout, catalog::fetch(name, peer)).await {
            Ok(Ok(catalog)) => self.set(|s| {
                s.status = Status::Ready {
                    tools: catalog.tools.len(),
                };
                if let Some(live) = s.live.as_mut() {
                    live.catalog = Arc::new(catalog);
                }
            }),
            Ok(Err(e)) => tracing::warn!(server = %name, "cannot re-list: {e}"),
            Err(_) => tracing::warn!(server = %name, "re-listing timed out"),
        }
    }

    async fn run_stdio(&self) -> Ended {
        let cfg = &self.server.cfg;
        let Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } = &cfg.transport
        else {
            return Ended::Fatal("not a stdio server".into());
        };
        self.set(|s| s.status = Status::Starting);
        let spec = child::Spec {
            name: &cfg.name,
            command,
            args,
            env,
            cwd: cwd.as_deref(),
        };
        let (mut proc, stdout, stdin, overflow) =
            match child::spawn(&spec, &self.parent, self.options.max_line_bytes) {
                Ok(parts) => parts,
                Err(e) => return Ended::Fatal(format!("cannot start {command:?}: {e}")),
            };
        let pid = proc.pid();
        self.set(|s| s.pid = Some(pid));
        tracing::info!(server = %cfg.name, pid, "MCP child started");
        let tools_changed = Arc::new(Notify::new());
        let handler = ChildClient {
            tools_changed: tools_changed.clone(),
        };
        let connect = async {
            let svc = rmcp::serve_client(handler, (stdout, stdin))
                .await
                .map_err(|e| format!("MCP handshake failed: {e}"))?;
            let catalog = catalog::fetch(&cfg.name, svc.peer()).await?;
            Ok::<_, String>((svc, catalog))
        };
        let connected = tokio::select! {
            r = tokio::time::timeout(cfg.timeout, connect) => match r {
                Ok(Ok(pair)) => Ok(pair),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer to initialize/tools/list within {} s", cfg.timeout.as_secs())),
            },
            status = proc.wait() => Err(exit_text(status, "during start-up")),
            () = self.stop.cancelled() => {
                proc.stop(self.options.kill_grace).await;
                return Ended::Stopped;
            }
        };
        let (svc, catalog) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                proc.stop(self.options.kill_grace).await;
                return Ended::Retry(overflow_or(&overflow, e, self.options.max_line_bytes));
            }
        };
        let peer = svc.peer().clone();
        let gone = Gone::default();
        self.ready(peer.clone(), catalog, &gone);
        let mut waiting = Box::pin(svc.waiting());
        let ended = loop {
            tokio::select! {
                status = proc.wait() => break Ended::Retry(exit_text(status, "")),
                _ = &mut waiting => {
                    // Usually the process died: its exit status says more than the EOF.
                    let why = match tokio::time::timeout(Duration::from_millis(500), proc.wait()).await {
                        Ok(status) => exit_text(status, ""),
                        Err(_) => "closed its stdout".into(),
                    };
                    break Ended::Retry(overflow_or(&overflow, why, self.options.max_line_bytes));
                }
                () = tools_changed.notified() => self.relist(&peer).await,
                () = self.stop.cancelled() => break Ended::Stopped,
            }
        };
        self.gone(&gone, &ended);
        drop(waiting);
        proc.stop(self.options.kill_grace).await;
        ended
    }

    /// A remote server: streamable HTTP, or the deprecated HTTP+SSE transport when `sse`.
    async fn run_remote(&self, url: &str, sse: bool) -> Ended {
        let cfg = &self.server.cfg;
        self.set(|s| s.status = Status::Starting);
        let tools_changed = Arc::new(Notify::new());
        let handler = ChildClient {
            tools_changed: tools_changed.clone(),
        };
        let connect = async {
            let svc = connect_remote(handler, url.to_owned(), sse).await?;
            let catalog = catalog::fetch(&cfg.name, svc.peer()).await?;
            Ok::<_, String>((svc, catalog))
        };
        let (svc, catalog) = tokio::select! {
            r = tokio::time::timeout(cfg.timeout, connect) => match r {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Ended::Retry(e),
                Err(_) => return Ended::Retry(format!("{url} did not answer within {} s", cfg.timeout.as_secs())),
            },
            () = self.stop.cancelled() => return Ended::Stopped,
        };
        let peer = svc.peer().clone();
        let gone = Gone::default();
        self.ready(peer.clone(), catalog, &gone);
        let mut waiting = Box::pin(svc.waiting());
        let ended = loop {
            tokio::select! {
                _ = &mut waiting => break Ended::Retry(format!("the connection to {url} closed")),
                () = tools_changed.notified() => self.relist(&peer).await,
                () = self.stop.cancelled() => break Ended::Stopped,
            }
        };
        self.gone(&gone, &ended);
        ended
    }
}

/// The MCP client session with the remote server at `url`.
async fn connect_remote(
    handler: ChildClient,
    url: String,
    sse: bool,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ChildClient>, String> {
    use rmcp::transport::StreamableHttpClientTransport;
    let served = if sse {
        let transport = crate::sse_client::connect(&url).await?;
        rmcp::serve_client(handler, transport).await
    } else {
        let transport = StreamableHttpClientTransport::from_uri(url.clone());
        rmcp::serve_client(handler, transport).await
    };
    served.map_err(|e| format!("cannot connect to {url}: {e}"))
}

fn exit_text(status: std::io::Result<std::process::ExitStatus>, when: &str) -> String {
    let when = if when.is_empty() {
        String::new()
    } else {
        format!(" {when}")
    };
    match status {
        Ok(status) => format!("the process exited{when} ({status})"),
        Err(e) => format!("cannot wait for the process{when}: {e}"),
    }
}

fn overflow_or(flag: &std::sync::atomic::AtomicBool, other: String, max: usize) -> String {
    if flag.load(std::sync::atomic::Ordering::Relaxed) {
        format!("killed: it sent a line longer than {max} bytes")
    } else {
        other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = Options::default();
        let ms: Vec<u128> = (1..=9).map(|a| o.backoff(a).as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(o.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn status_json_shape() {
        let s = ServerStatus {
            name: "ping".into(),
            transport: "stdio",
            status: Status::Restarting {
                attempt: 2,
                last_error: "the process exited (signal: 9 (SIGKILL))".into(),
                retry_in_ms: 1000,
            },
            restarts: 1,
            pid: None,
        };
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({
                "name": "ping", "transport": "stdio", "state": "restarting", "attempt": 2,
                "last_error": "the process exited (signal: 9 (SIGKILL))", "retry_in_ms": 1000,
                "restarts": 1
            })
        );
    }
}
