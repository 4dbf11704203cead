//! The supervisor against real `mcp_ping` children: listing, routing, crashes mid-call,
//! restarts, a missing command, timeouts, the child environment and clean shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hero_aibroker_host::env::Env;
use hero_aibroker_services::config::McpConfig;
use hero_aibroker_services::supervisor::{CallError, Options, ServerStatus, Status, Supervisor};
use rmcp::model::{CallToolRequestParams, CallToolResponse};
use serde_json::json;

/// The bundled `mcp_ping` (crate hero_aibroker_mcp), built by `cargo build --workspace`.
fn ping_bin() -> String {
    hero_aibroker_testkit::sibling_bin("mcp_ping")
        .display()
        .to_string()
}

fn options() -> Options {
    Options {
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        kill_grace: Duration::from_millis(500),
        ..Options::default()
    }
}

fn parent_env() -> Env {
    Env::from_pairs([
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("OPENAI_API_KEY", "sk-parent-secret"),
        ("ADMIN_TOKEN", "admin-secret"),
    ])
}

fn start(servers: serde_json::Value, options: Options) -> Arc<Supervisor> {
    let text = json!({ "mcpServers": servers }).to_string();
    let cfg = McpConfig::parse(&text, Path::new("test.json")).expect("valid config");
    Supervisor::start(&cfg, &parent_env(), options)
}

fn ping(name: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--name".to_owned(), name.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    json!({"name": name, "command": ping_bin(), "args": args, "env": {"GREETING": "hi"}})
}

async fn wait_for(
    sup: &Supervisor,
    what: &str,
    pred: impl Fn(&[ServerStatus]) -> bool,
) -> Vec<ServerStatus> {
    let mut rx = sup.subscribe();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = sup.statuses();
        if pred(&now) {
            return now;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}: {now:?}");
        let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), rx.changed()).await;
    }
}

fn ready(s: &ServerStatus) -> bool {
    matches!(s.status, Status::Ready { .. })
}

async fn call(
    sup: &Supervisor,
    server: &str,
    tool: &str,
    args: serde_json::Value,
) -> Result<String, CallError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    match sup.call(server, params).await? {
        CallToolResponse::Complete(r) => Ok(r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("")),
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test]
async fn lists_routes_and_children_see_only_allowed_env() {
    let sup = start(
        json!([ping("a", &[]), ping("b", &["--only", "ping,whoami"])]),
        options(),
    );
    let st = wait_for(&sup, "both ready", |s| s.iter().all(ready)).await;
    assert_eq!(st[0].status, Status::Ready { tools: 6 });
    assert_eq!(st[1].status, Status::Ready { tools: 2 });
    let tools = sup.tools();
    let names: Vec<(&str, Vec<&str>)> = tools
        .iter()
        .map(|(s, t)| (s.as_str(), t.iter().map(|t| t.name.as_ref()).collect()))
        .collect();
    assert_eq!(names[1], ("b", vec!["ping", "whoami"]));

    assert_eq!(call(&sup, "a", "whoami", json!({})).await.expect("a"), "a");
    assert_eq!(call(&sup, "b", "whoami", json!({})).await.expect("b"), "b");
    assert_eq!(
        call(&sup, "a", "echo", json!({"text": "héllo"}))
            .await
            .expect("echo"),
        "héllo"
    );

    let env = call(&sup, "a", "env", json!({})).await.expect("env");
    let vars: Vec<&str> = env.lines().collect();
    assert_eq!(
        vars,
        ["GREETING", "HOME", "PATH"],
        "allowlist + configured only"
    );
    assert!(!env.contains("OPENAI_API_KEY") && !env.contains("ADMIN_TOKEN"));
    // Nothing of the test process's own environment leaks either (cargo sets these).
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!env.contains("CARGO"));

    match call(&sup, "b", "echo", json!({"text": "x"})).await {
        Err(CallError::Mcp(e)) => assert_eq!(e.message, "tool not found"),
        other => panic!("a tool b does not offer: {other:?}"),
    }
    assert!(matches!(
        call(&sup, "nope", "ping", json!({})).await,
        Err(CallError::UnknownServer(_))
    ));
    sup.shutdown().await;
}

#[tokio::test]
async fn kill_9_mid_call_errors_then_restarts_while_others_serve() {
    let sup = start(json!([ping("a", &[]), ping("b", &[])]), options());
    let st = wait_for(&sup, "both ready", |s| s.iter().all(ready)).await;
    let pid = st[0].pid.expect("pid");

    let sup2 = sup.clone();
    let slow = tokio::spawn(async move { call(&sup2, "a", "sleep", json!({"seconds": 30})).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill -9");
    let err = slow.await.expect("join").expect_err("the call must fail");
    assert!(t0.elapsed() < Duration::from_secs(3), "failed promptly");
    match &err {
        CallError::Died {
            server,
            tool,
            detail,
        } => {
            assert_eq!((server.as_str(), tool.as_str()), ("a", "sleep"));
            assert!(
                detail.contains("SIGKILL") || detail.contains("signal: 9"),
                "{detail}"
            );
        }
        other => panic!("expected Died, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("died during the call to \"sleep\"")
    );
    // The other server is unaffected.
    assert_eq!(call(&sup, "b", "ping", json!({})).await.expect("b"), "pong");

    let st = wait_for(&sup, "a restarted", |s| ready(&s[0]) && s[0].restarts == 1).await;
    assert_ne!(st[0].pid, Some(pid), "a new process");
    assert_eq!(
        call(&sup, "a", "ping", json!({})).await.expect("a again"),
        "pong"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn missing_command_fails_with_the_os_error_and_others_serve() {
    let sup = start(
        json!([
            {"name": "ghost", "command": "/nonexistent/mcp-server", "args": []},
            ping("a", &[])
        ]),
        options(),
    );
    let st = wait_for(&sup, "ghost failed, a ready", |s| {
        matches!(s[0].status, Status::Failed { .. }) && ready(&s[1])
    })
    .await;
    let Status::Failed { error } = &st[0].status else {
        unreachable!()
    };
    assert_eq!(
        error,
        "cannot start \"/nonexistent/mcp-server\": No such file or directory (os error 2)"
    );
    match call(&sup, "ghost", "ping", json!({})).await {
        Err(e @ CallError::NotReady { .. }) => assert!(
            e.to_string().contains("not ready (failed: cannot start"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(call(&sup, "a", "ping", json!({})).await.expect("a"), "pong");
    sup.shutdown().await;
}

#[tokio::test]
async fn a_hanging_call_times_out_and_the_server_keeps_serving() {
    let mut server = ping("slow", &[]);
    server["timeout_secs"] = json!(1);
    let sup = start(json!([server]), options());
    wait_for(&sup, "ready", |s| ready(&s[0])).await;
    let t0 = Instant::now();
    match call(&sup, "slow", "sleep", json!({"seconds": 20})).await {
        Err(e @ CallError::Timeout { .. }) => assert_eq!(
            e.to_string(),
            "MCP server \"slow\" did not answer the call to \"sleep\" within 1 s"
        ),
        other => panic!("{other:?}"),
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        call(&sup, "slow", "ping", json!({})).await.expect("ping"),
        "pong"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn an_overlong_output_line_kills_and_restarts_the_child() {
    let sup = start(
        json!([ping("a", &[])]),
        Options {
            max_line_bytes: 4096,
            ..options()
        },
    );
    wait_for(&sup, "ready", |s| ready(&s[0])).await;
    let long = "x".repeat(10_000);
    match call(&sup, "a", "echo", json!({ "text": long })).await {
        Err(CallError::Died { detail, .. }) => {
            assert_eq!(detail, "killed: it sent a line longer than 4096 bytes")
        }
        other => panic!("{other:?}"),
    }
    wait_for(&sup, "restarted", |s| ready(&s[0]) && s[0].restarts == 1).await;
    assert_eq!(
        call(&sup, "a", "ping", json!({})).await.expect("ping"),
        "pong"
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_and_reaps_every_child() {
    let sup = start(json!([ping("a", &[]), ping("b", &[])]), options());
    let st = wait_for(&sup, "both ready", |s| s.iter().all(ready)).await;
    let pids: Vec<u32> = st.iter().map(|s| s.pid.expect("pid")).collect();
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    let t0 = Instant::now();
    sup.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Reaped, not zombies: the /proc entry is gone.
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still exists"
        );
    }
    assert!(sup.statuses().iter().all(|s| s.status == Status::Stopped));
    assert!(sup.tools().is_empty());
}
