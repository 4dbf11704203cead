//! `doctor`: one line per check with a verdict and, when something is wrong, how to fix it.
//! Socket directory and permissions, each service's socket answering, the broker's health, the
//! loaded configuration, and each provider key (a cheap models call made by the broker).

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use hero_aibroker_sdk::client::{ClientError, uds};
use hero_aibroker_sdk::paths;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Serialize;

use crate::conn::{Conn, ServerDown};
use crate::render::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn check(name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        verdict,
        detail: detail.into(),
        hint: None,
    }
}

impl Check {
    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }
}

/// Sockets of the hero_aibroker services: (file, service, required).
const SOCKETS: [(&str, &str, bool); 4] = [
    (paths::REST_SOCK, "hero_aibroker_server (REST)", true),
    (paths::RPC_SOCK, "hero_aibroker_server (JSON-RPC)", true),
    (paths::ADMIN_SOCK, "hero_aibroker_admin (dashboard)", false),
    (paths::MCP_SOCK, "hero_aibroker_services (MCP)", false),
];

/// Runs every check and prints them (or JSON); fails when a check failed (exit 2 when the
/// broker itself is not running).
pub async fn run(conn: &Conn, as_json: bool) -> anyhow::Result<()> {
    let mut checks = vec![socket_dir(conn.dir())];
    for (file, service, required) in SOCKETS {
        checks.push(socket(&conn.dir().join(file), service, required).await);
    }
    let rpc_up = checks
        .iter()
        .any(|c| c.check == paths::RPC_SOCK && c.verdict == Verdict::Ok);
    if rpc_up {
        checks.extend(broker(conn).await);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print(&checks, Style::detect(false));
    }
    if !rpc_up {
        return Err(ServerDown {
            socket: conn.rpc_socket(),
        }
        .into());
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

fn print(checks: &[Check], style: Style) {
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Ok => style.prompt("ok  "),
            Verdict::Warn => style.bold("warn"),
            Verdict::Fail => style.error("FAIL"),
            Verdict::Skip => style.dim("skip"),
        };
        println!("{verdict}  {:<width$}  {}", c.check, c.detail);
        if let Some(hint) = &c.hint {
            println!(
                "      {:<width$}  {}",
                "",
                style.dim(&format!("fix: {hint}"))
            );
        }
    }
}

fn socket_dir(dir: &Path) -> Check {
    let name = "socket directory";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return check(
                name,
                Verdict::Fail,
                format!("{} does not exist", dir.display()),
            )
            .hint("start the broker (scripts/start.sh): it creates the directory, mode 0700");
        }
        Err(e) => {
            return check(name, Verdict::Fail, format!("{}: {e}", dir.display()))
                .hint("check the path given by --socket-dir / HERO_SOCKET_DIR");
        }
    };
    if !meta.is_dir() {
        return check(
            name,
            Verdict::Fail,
            format!("{} is not a directory", dir.display()),
        )
        .hint("remove it; the broker creates the directory at start");
    }
    let mode = meta.permissions().mode() & 0o777;
    let me = current_uid();
    if mode & 0o022 != 0 {
        return check(
            name,
            Verdict::Fail,
            format!(
                "{} is writable by group or others (mode {mode:o})",
                dir.display()
            ),
        )
        .hint(format!("chmod 700 {}", dir.display()));
    }
    if me.is_some_and(|uid| uid != meta.uid()) {
        return check(
            name,
            Verdict::Warn,
            format!(
                "{} belongs to uid {}, not to you (mode {mode:o})",
                dir.display(),
                meta.uid()
            ),
        )
        .hint("run the CLI as the broker's user, or point --socket-dir at your own broker");
    }
    check(
        name,
        Verdict::Ok,
        format!("{} (mode {mode:o})", dir.display()),
    )
}

/// Our effective uid (the owner of `/proc/self`), without libc.
fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

async fn socket(path: &Path, service: &str, required: bool) -> Check {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) if !required => {
            return check(name, Verdict::Skip, format!("{service} is not running"));
        }
        Err(_) => {
            return check(
                name,
                Verdict::Fail,
                format!("{service}: {} is missing", path.display()),
            )
            .hint("start the broker: scripts/start.sh (or hero_aibroker_server)");
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    match get_health(path).await {
        Ok(status) if (200..300).contains(&status) => {
            if mode & 0o077 != 0 {
                check(
                    name,
                    Verdict::Warn,
                    format!("{service} answers, but the socket is mode {mode:o}"),
                )
                .hint(format!(
                    "chmod 600 {} (or restart the service)",
                    path.display()
                ))
            } else {
                check(name, Verdict::Ok, format!("{service} answers"))
            }
        }
        Ok(status) => check(
            name,
            Verdict::Fail,
            format!("{service} answered GET /health with HTTP {status}"),
        )
        .hint("see the service's log"),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => check(
            name,
            if required {
                Verdict::Fail
            } else {
                Verdict::Warn
            },
            format!("{service}: stale socket, nothing listens"),
        )
        .hint("the service exited without cleaning up: start it again (it replaces the socket)"),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            check(name, Verdict::Fail, format!("{service}: permission denied"))
                .hint("run the CLI as the user that runs the broker")
        }
        Err(e) => check(name, Verdict::Fail, format!("{service}: {e}"))
            .hint("the service is hung or not an HTTP server: restart it"),
    }
}

/// `GET /health` over a Unix socket: the HTTP status, within 3 seconds. A connect failure
/// keeps its OS error (refused, missing) for the verdict.
async fn get_health(path: &Path) -> std::io::Result<u16> {
    match tokio::time::timeout(Duration::from_secs(3), uds::get(path, "/health")).await {
        Err(_) => Err(std::io::Error::new(ErrorKind::TimedOut, "no answer in 3s")),
        Ok(Ok((status, _))) => Ok(status.as_u16()),
        Ok(Err(ClientError::Connect { source, .. })) => Err(source),
        Ok(Err(e)) => Err(std::io::Error::new(ErrorKind::InvalidData, e.to_string())),
    }
}

/// Health, configuration and provider keys, asked of the running broker.
async fn broker(conn: &Conn) -> Vec<Check> {
    let rpc = conn.rpc();
    let mut out = Vec::new();
    match conn.call(|| rpc.health()).await {
        Ok(h) => {
            let mut c = check(
                "broker health",
                if h.status == "ok" {
                    Verdict::Ok
                } else {
                    Verdict::Warn
                },
                format!(
                    "{} (version {}, up {}s)",
                    h.status, h.version, h.uptime_seconds
                ),
            );
            if !h.ledger.healthy {
                c = check(
                    "broker health",
                    Verdict::Fail,
                    "the ledger writer is failing",
                )
                .hint("check the database path and disk space; see the broker's log");
            } else if let Some(err) = h.catalog.as_ref().and_then(|c| c.last_error.clone()) {
                c = c.hint(format!("OpenRouter catalog refresh failed: {err}"));
            }
            out.push(c);
        }
        Err(e) => out.push(check("broker health", Verdict::Fail, e.to_string())),
    }
    match conn.call(|| rpc.models_list()).await {
        Ok(models) => {
            let unservable: Vec<_> = models
                .iter()
                .filter(|m| !m.servable)
                .map(|m| m.id.as_str())
                .collect();
            let servable = models.len() - unservable.len();
            let detail = format!("{} models loaded, {servable} servable", models.len());
            out.push(if models.is_empty() {
                check("configuration", Verdict::Fail, "no models loaded")
                    .hint("add models to modelsconfig.yml (MODELS_CONFIG_PATH), then hero_aibroker reload")
            } else if servable == 0 {
                check("configuration", Verdict::Fail, detail)
                    .hint("no model has a provider key: set the key variables (hero_aibroker providers shows which), restart")
            } else if !unservable.is_empty() {
                let names = unservable.iter().take(5).copied().collect::<Vec<_>>().join(", ");
                check("configuration", Verdict::Warn, format!("{detail}; without a key: {names}"))
                    .hint("set those providers' key variables (hero_aibroker providers), or drop the models")
            } else {
                check("configuration", Verdict::Ok, detail)
            });
        }
        Err(e) => out.push(check("configuration", Verdict::Fail, e.to_string())),
    }
    out.extend(keys(conn).await);
    out
}

async fn keys(conn: &Conn) -> Vec<Check> {
    let rpc = conn.rpc();
    let checks = match conn.call(|| rpc.providers_check(None)).await {
        Ok(c) => c,
        Err(e) if e.to_string().contains("admin token") => {
            return vec![
                check(
                    "provider keys",
                    Verdict::Skip,
                    "the broker wants the admin token to test keys",
                )
                .hint("pass --admin-token (or set ADMIN_TOKEN)"),
            ];
        }
        Err(e) => return vec![check("provider keys", Verdict::Fail, e.to_string())],
    };
    if checks.is_empty() {
        return vec![
            check("provider keys", Verdict::Warn, "no provider has a key")
                .hint("set the providers' key variables (see docs/configuration.md), restart"),
        ];
    }
    checks
        .into_iter()
        .map(|k| {
            let name = format!("key {}", k.instance);
            let key = k.key_hint.as_deref().unwrap_or("keyless");
            if k.ok {
                let models = k.models.map(|n| format!(", {n} models")).unwrap_or_default();
                return check(name, Verdict::Ok, format!("{key} works ({} ms{models})", k.latency_ms));
            }
            let error = k.error.unwrap_or_default();
            let hint = match k.http_status {
                Some(401 | 403) => format!(
                    "{} refused the key: replace it in the provider's key variable, restart, then hero_aibroker providers reset {}",
                    k.provider, k.instance
                ),
                Some(429) => "rate limited right now: the broker cools the key down by itself".to_owned(),
                Some(_) => format!("{} is failing: see its status page; the broker routes around it", k.provider),
                None => format!("cannot reach {}: check its base_url and the network", k.provider),
            };
            check(name, Verdict::Fail, format!("{key}: {error}")).hint(hint)
        })
        .collect()
}
