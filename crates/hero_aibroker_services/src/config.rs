//! `mcp_servers.json`: which MCP servers the aggregator runs or connects to.
//!
//! Two phases, as everywhere in the broker: the file is parsed into raw entries (each entry on
//! its own, with `serde_path_to_error`, so an error names the server and the field), then
//! validated into [`McpConfig`]. Both the seed's list form and the common map form are read:
//!
//! ```json
//! {"mcpServers": [{"name": "ping", "command": "mcp_ping", "args": [], "env": {}, "transport": "stdio"}]}
//! {"mcpServers": {"ping": {"command": "mcp_ping"}, "docs": {"url": "http://127.0.0.1:9000/mcp"}}}
//! ```
//!
//! **Secrets stay out of the file.** A value in `env`, `args` or `url` may say `${VAR}`: it is
//! replaced by the aggregator's own environment variable `VAR` when the file is read (an unset
//! one is an error naming the server, the field and the variable). A file that still holds
//! literal `env` values and that the group or others can read is warned about at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

/// Default per-call timeout when a server does not set `timeout_secs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `timeout_secs` accepted: a call that may hang an hour is a mistake in the file.
const MAX_TIMEOUT_SECS: u64 = 3600;
/// Longest server name; it prefixes tool names, which MCP caps at 128 characters.
const MAX_NAME_LEN: usize = 64;

/// Why `mcp_servers.json` was rejected. Each message is one line naming the file, the server
/// and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: server {server}: {message}")]
    Server {
        path: PathBuf,
        server: String,
        message: String,
    },
}

/// How the aggregator reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP over its stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: IndexMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// A remote server over MCP streamable HTTP.
    Http { url: String },
    /// A remote server over the deprecated HTTP+SSE transport.
    Sse { url: String },
}

impl Transport {
    /// `stdio`, `http` or `sse`, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
            Transport::Sse { .. } => "sse",
        }
    }
}

/// One validated server entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Unique name; `[A-Za-z0-9_-]`, no `__` (it separates server and tool in `server__tool`).
    pub name: String,
    pub transport: Transport,
    /// Longest wait for one tool call (and for start-up and listing tools).
    pub timeout: Duration,
}

/// The whole file, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpConfig {
    /// Servers in file order; entries with `"disabled": true` are left out.
    pub servers: Vec<ServerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: Value,
    /// JSON has no comments: a note for the reader, ignored.
    #[serde(rename = "$comment", default)]
    _comment: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: IndexMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    /// `type` is what the common map form (Claude Desktop, VS Code) calls it.
    #[serde(alias = "type")]
    transport: Option<String>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    disabled: bool,
    /// A note for the reader, ignored.
    #[serde(rename = "$comment", alias = "description", default)]
    _comment: Option<Value>,
}

impl McpConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text, path)?;
        if let Some(warning) = permission_warning(path, &text) {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// Parses and validates `text`, `${VAR}` read from the process environment; `path` is only
    /// used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let env = hero_aibroker_host::env::Env::from_process();
        Self::parse_with(text, path, &|var| env.get(var).map(str::to_owned))
    }

    /// [`McpConfig::parse`] with `lookup` as the environment `${VAR}` is read from.
    pub fn parse_with(
        text: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawFile = match serde_path_to_error::deserialize(&mut de) {
            Ok(raw) => raw,
            Err(e) => {
                let at = e.path().to_string();
                let inner = e.into_inner();
                return Err(if inner.is_syntax() || inner.is_eof() {
                    ConfigError::Json {
                        path: path.to_owned(),
                        source: inner,
                    }
                } else if at == "." {
                    invalid(inner.to_string())
                } else {
                    invalid(format!("{at}: {inner}"))
                });
            }
        };
        // Entries as (name from the map key or the entry, label for errors, value).
        let entries: Vec<(Option<String>, String, Value)> = match raw.mcp_servers {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let label = match v.get("name").and_then(Value::as_str) {
                        Some(n) => format!("\"{n}\""),
                        None => format!("#{i} (mcpServers[{i}])"),
                    };
                    (None, label, v)
                })
                .collect(),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (Some(k.clone()), format!("\"{k}\""), v))
                .collect(),
            other => {
                return Err(invalid(format!(
                    "mcpServers must be a list or an object of servers, not {}",
                    json_kind(&other)
                )));
            }
        };

        let mut servers: Vec<ServerConfig> = Vec::with_capacity(entries.len());
        for (key, label, value) in entries {
            let server_err = |message: String| ConfigError::Server {
                path: path.to_owned(),
                server: label.clone(),
                message,
            };
            let raw: RawServer = serde_path_to_error::deserialize(value).map_err(|e| {
                let at = e.path().to_string();
                let inner = e.into_inner();
                if at == "." {
                    server_err(inner.to_string())
                } else {
                    server_err(format!("field {at}: {inner}"))
                }
            })?;
            let name = match (key, raw.name.clone()) {
                (Some(k), Some(n)) if k != n => {
                    return Err(server_err(format!(
                        "field name: \"{n}\" differs from its key \"{k}\""
                    )));
                }
                (Some(k), _) => k,
                (None, Some(n)) => n,
                (None, None) => return Err(server_err("field name: missing".into())),
            };
            validate_name(&name).map_err(|m| server_err(format!("field name: {m}")))?;
            if servers.iter().any(|s| s.name == name) {
                return Err(server_err("field name: used by another server".into()));
            }
            let server = validate_server(name, raw, lookup).map_err(server_err)?;
            if let Some(server) = server {
                servers.push(server);
            }
        }
        Ok(McpConfig { servers })
    }
}

/// Validates one entry; `None` when it is disabled.
fn validate_server(
    name: String,
    mut raw: RawServer,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ServerConfig>, String> {
    if raw.disabled {
        return Ok(None);
    }
    for (i, a) in raw.args.iter_mut().enumerate() {
        *a = expand(a, lookup).map_err(|m| format!("field args[{i}]: {m}"))?;
    }
    for (k, v) in raw.env.iter_mut() {
        *v = expand(v, lookup).map_err(|m| format!("field env.{k}: {m}"))?;
    }
    if let Some(url) = raw.url.as_mut() {
        *url = expand(url, lookup).map_err(|m| format!("field url: {m}"))?;
    }
    let timeout = match raw.timeout_secs {
        None => DEFAULT_TIMEOUT,
        Some(0) => return Err("field timeout_secs: must be at least 1".into()),
        Some(s) if s > MAX_TIMEOUT_SECS => {
            return Err(format!(
                "field timeout_secs: {s} is more than the maximum {MAX_TIMEOUT_SECS}"
            ));
        }
        Some(s) => Duration::from_secs(s),
    };
    let kind = match raw.transport.as_deref() {
        Some(t) => t.to_owned(),
        // The map form often leaves the transport out: a command means stdio, a URL means HTTP.
        None if raw.command.is_some() => "stdio".into(),
        None if raw.url.is_some() => "http".into(),
        None => return Err("field command: missing (or give a url for a remote server)".into()),
    };
    let transport = match kind.as_str() {
        "stdio" => {
            if raw.url.is_some() {
                return Err("field url: not used by a stdio server (give command)".into());
            }
            let command = raw
                .command
                .ok_or_else(|| "field command: missing for a stdio server".to_owned())?;
            if command.trim().is_empty() {
                return Err("field command: must not be empty".into());
            }
            if command.contains('\0') || raw.args.iter().any(|a| a.contains('\0')) {
                return Err("field args: must not contain NUL bytes".into());
            }
            for (k, v) in &raw.env {
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    return Err(format!("field env: invalid variable name {k:?}"));
                }
                if v.contains('\0') {
                    return Err(format!("field env.{k}: must not contain NUL bytes"));
                }
            }
            Transport::Stdio {
                command,
                args: raw.args,
                env: raw.env,
                cwd: raw.cwd,
            }
        }
        "http" | "streamable-http" | "streamable_http" | "streamableHttp" | "sse" => {
            if raw.command.is_some() || !raw.args.is_empty() || !raw.env.is_empty() {
                return Err(format!(
                    "field command: a {kind} server is remote; command, args and env are for stdio servers"
                ));
            }
            let url = raw
                .url
                .ok_or_else(|| format!("field url: missing for a {kind} server"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "field url: {url:?} must start with http:// or https://"
                ));
            }
            if kind == "sse" {
                Transport::Sse { url }
            } else {
                Transport::Http { url }
            }
        }
        other => {
            return Err(format!(
                "field transport: unknown transport {other:?} (use stdio, http or sse)"
            ));
        }
    };
    Ok(Some(ServerConfig {
        name,
        transport,
        timeout,
    }))
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{name:?} may only use letters, digits, '_' and '-'"
        ));
    }
    if name.contains("__") {
        return Err(format!(
            "{name:?} must not contain \"__\" (it separates server and tool in tool names)"
        ));
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `value` with every `${VAR}` replaced by `lookup(VAR)`; an unset variable, an unclosed
/// `${`, or a name that is not `[A-Za-z0-9_]+` is an error.
fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{value:?} has a \"${{\" without its \"}}\""));
        };
        let var = &after[..end];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("${{{var}}} is not an environment variable name"));
        }
        let Some(resolved) = lookup(var) else {
            return Err(format!(
                "${{{var}}} is not set in the aggregator's environment"
            ));
        };
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A warning when the file at `path` holds literal `env` values (not `${VAR}`) and the group
/// or others may read it.
fn permission_warning(path: &Path, text: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o077 == 0 {
        return None;
    }
    let raw: Value = serde_json::from_str(text).ok()?;
    let servers: Vec<&Value> = match raw.get("mcpServers")? {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => return None,
    };
    let literal = servers.iter().any(|s| {
        s.get("env").and_then(Value::as_object).is_some_and(|env| {
            env.values()
                .any(|v| v.as_str().is_some_and(|v| !v.contains("${")))
        })
    });
    literal.then(|| {
        format!(
            "{} holds literal env values and is readable by {} (mode {:o}); it may hold secrets: use ${{VAR}} references or chmod 600",
            path.display(),
            if mode & 0o007 != 0 { "every user" } else { "its group" },
            mode & 0o777
        )
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
