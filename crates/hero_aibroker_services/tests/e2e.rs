//! The real `hero_aibroker_services` binary on a temporary socket directory, driven by rmcp's
//! MCP client over `mcp.sock` and by plain HTTP for `/health` and `/servers`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, UnixSocketHttpClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVICES: &str = env!("CARGO_BIN_EXE_hero_aibroker_services");
const PING: &str = env!("CARGO_BIN_EXE_mcp_ping");

struct Instance {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `servers` and waits until `/health` shows `ready` servers ready.
async fn start(servers: Value, prefix: Option<&str>, ready: u64) -> Instance {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("mcp_servers.json");
    std::fs::write(&cfg, json!({ "mcpServers": servers }).to_string()).expect("write config");
    let mut cmd = Command::new(SERVICES);
    cmd.env("HERO_SOCKET_DIR", dir.path().join("sockets"))
        .env("MCP_CONFIG_PATH", &cfg)
        // A provider key in the aggregator's environment must not reach the children.
        .env("OPENAI_API_KEY", "sk-e2e-secret")
        .env("RUST_LOG", "warn")
        .env_remove("MCP_TOOL_PREFIX")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(p) = prefix {
        cmd.env("MCP_TOOL_PREFIX", p);
    }
    let child = cmd.spawn().expect("spawn hero_aibroker_services");
    let sock = dir.path().join("sockets/hero_aibroker/mcp.sock");
    let inst = Instance {
        child,
        sock,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, body)) = get(&inst.sock, "/health").await
            && body["ready"] == json!(ready)
        {
            return inst;
        }
        assert!(
            Instant::now() < deadline,
            "hero_aibroker_services never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP/1.1 GET over the Unix socket.
async fn get(sock: &Path, path: &str) -> std::io::Result<(u16, Value)> {
    let mut s = tokio::net::UnixStream::connect(sock).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

async fn client(sock: &Path) -> RunningService<RoleClient, ()> {
    let uri = "http://localhost/mcp";
    let http = UnixSocketHttpClient::new(sock.to_str().expect("utf-8 path"), uri);
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(uri),
    );
    ().serve(transport)
        .await
        .expect("MCP handshake over mcp.sock")
}

async fn call(
    c: &RunningService<RoleClient, ()>,
    tool: &str,
    args: Value,
) -> Result<String, String> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    match c.call_tool(params).await {
        Ok(r) => Ok(r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("")),
        Err(e) => Err(e.to_string()),
    }
}

fn ping(name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--name".to_owned(), name.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    json!({"name": name, "command": PING, "args": args, "transport": "stdio"})
}

#[tokio::test]
async fn mcp_client_lists_and_calls_tools_of_all_servers_over_mcp_sock() {
    let mut inst = start(
        json!([
            ping("a", &[]),
            ping("b", &["--only", "ping,whoami"]),
            {"name": "ghost", "command": "/nonexistent/server"}
        ]),
        None,
        2,
    )
    .await;
    let mode = std::fs::metadata(&inst.sock).expect("socket");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let c = client(&inst.sock).await;
    let mut names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a__ping",
            "a__whoami",
            "b__ping",
            "b__whoami",
            "echo",
            "env",
            "pid",
            "sleep"
        ]
    );
    assert_eq!(call(&c, "b__whoami", json!({})).await.as_deref(), Ok("b"));
    assert_eq!(call(&c, "a__ping", json!({})).await.as_deref(), Ok("pong"));
    assert_eq!(
        call(&c, "echo", json!({"text": "hi"})).await.as_deref(),
        Ok("hi")
    );
    let env = call(&c, "env", json!({})).await.expect("env");
    assert!(env.lines().any(|v| v == "PATH"), "{env}");
    assert!(
        !env.contains("OPENAI_API_KEY"),
        "provider key leaked: {env}"
    );
    let unknown = call(&c, "nope", json!({})).await.expect_err("unknown tool");
    assert!(unknown.contains("unknown tool \"nope\""), "{unknown}");

    let (status, health) = get(&inst.sock, "/health").await.expect("health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["servers"][2]["state"], "failed");
    assert_eq!(
        health["servers"][2]["error"],
        "cannot start \"/nonexistent/server\": No such file or directory (os error 2)"
    );
    let (_, servers) = get(&inst.sock, "/servers").await.expect("servers");
    assert_eq!(
        servers["servers"][1]["tool_names"],
        json!(["ping", "whoami"])
    );
    let pids: Vec<u64> = servers["servers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 2);

    // A second instance refuses the live socket, and starts no children.
    let out = Command::new(SERVICES)
        .env(
            "HERO_SOCKET_DIR",
            inst.sock.parent().and_then(Path::parent).expect("root"),
        )
        .env("MCP_CONFIG_PATH", "/nonexistent-but-unused.json")
        .output()
        .expect("second instance");
    assert!(!out.status.success());
    drop(c);

    // SIGTERM: clean exit, socket removed, no child left (not even a zombie).
    let pid = rustix::process::Pid::from_raw(inst.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = inst.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(!inst.sock.exists(), "socket removed");
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "child {p} left behind"
        );
    }
}

#[tokio::test]
async fn mcp_tool_prefix_always_prefixes_every_tool() {
    let inst = start(
        json!([ping("solo", &["--only", "ping"])]),
        Some("always"),
        1,
    )
    .await;
    let c = client(&inst.sock).await;
    let names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert_eq!(names, ["solo__ping"]);
    assert_eq!(
        call(&c, "solo__ping", json!({})).await.as_deref(),
        Ok("pong")
    );
}
