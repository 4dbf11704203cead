//! The real `hero_aibroker_services` binary on a temporary socket directory, driven by rmcp's
//! MCP client over `mcp.sock` and by plain HTTP for `/health` and `/servers`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{SERVICES, call, client, get, ping, start};
use serde_json::json;

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
    let mode = std::fs::metadata(inst.mcp_sock()).expect("socket");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let c = client(&inst.mcp_sock()).await;
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

    let (status, health) = get(&inst.mcp_sock(), "/health").await.expect("health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["servers"][2]["state"], "failed");
    assert_eq!(
        health["servers"][2]["error"],
        "cannot start \"/nonexistent/server\": No such file or directory (os error 2)"
    );
    let (_, servers) = get(&inst.mcp_sock(), "/servers").await.expect("servers");
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
            inst.mcp_sock()
                .parent()
                .and_then(Path::parent)
                .expect("root"),
        )
        .env("MCP_CONFIG_PATH", "/nonexistent-but-unused.json")
        .output()
        .expect("second instance");
    assert!(!out.status.success());
    drop(c);

    // SIGTERM: clean exit, socket removed, no child left (not even a zombie).
    let status = inst.terminate().await;
    assert!(status.success(), "{status}");
    assert!(!inst.mcp_sock().exists(), "socket removed");
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "child {p} left behind"
        );
    }
}

/// Also: a bare `command` naming a bundled server next to the binary runs it (no PATH).
#[tokio::test]
async fn mcp_tool_prefix_always_prefixes_every_tool() {
    let mut solo = ping("solo", &["--only", "ping"]);
    solo["command"] = json!("mcp_ping");
    let inst = common::start_with(
        json!([solo]),
        &[("MCP_TOOL_PREFIX", "always"), ("PATH", "/usr/bin:/bin")],
        1,
    )
    .await;
    let c = client(&inst.mcp_sock()).await;
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

/// The tools of `GET /tools` are those of MCP `tools/list` (names, schemas, order), plus
/// their server; `POST /tools/{name}` answers what `tools/call` answers; every failure has
/// its status and code; `GET /calls` shows both paths with caller, via, ok and arguments.
#[tokio::test]
async fn rest_api_matches_mcp_and_every_call_is_audited() {
    let mut slow = ping("a", &[]);
    slow["timeout_secs"] = json!(1);
    let inst = common::start_with(
        json!([slow, ping("b", &["--only", "ping"]), {"name": "ghost", "command": "/nonexistent/server"}]),
        &[("MCP_AUDIT_ARGS", "true")],
        2,
    )
    .await;
    let sock = &inst.mcp_sock();
    let c = client(sock).await;

    // GET /tools = tools/list, with the server.
    let listed = c.list_all_tools().await.expect("tools/list");
    let (status, body) = get(sock, "/tools").await.expect("GET /tools");
    assert_eq!(status, 200);
    let rest = body["tools"].as_array().expect("tools");
    assert_eq!(rest.len(), listed.len());
    for (r, m) in rest.iter().zip(&listed) {
        let mut m = serde_json::to_value(m).expect("tool json");
        m["server"] = json!(if r["name"] == "b__ping" { "b" } else { "a" });
        assert_eq!(r, &m);
    }
    let names: Vec<&str> = rest.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "echo", "env", "pid", "a__ping", "sleep", "whoami", "b__ping"
        ]
    );
    assert_eq!(rest[0]["inputSchema"]["required"], json!(["text"]));

    // POST /tools/echo = tools/call echo.
    let mut params = rmcp::model::CallToolRequestParams::new("echo");
    params.arguments = json!({"text": "hi"}).as_object().cloned();
    let via_mcp = c.call_tool(params).await.expect("tools/call");
    let (status, via_rest) = common::http(
        sock,
        "POST",
        "/tools/echo",
        &[("x-aibroker-caller", "key:k_test")],
        Some(r#"{"text": "hi"}"#),
    )
    .await
    .expect("POST /tools/echo");
    assert_eq!(status, 200, "{via_rest}");
    assert_eq!(
        via_rest["content"],
        serde_json::to_value(&via_mcp.content).expect("json")
    );
    assert_eq!(via_rest["content"][0]["text"], "hi");
    assert_eq!(via_rest["isError"], false);
    // An empty body means no arguments.
    let (status, pong) = common::http(sock, "POST", "/tools/b__ping", &[], Some(""))
        .await
        .expect("POST");
    assert_eq!((status, &pong["content"][0]["text"]), (200, &json!("pong")));
    // A tool-level error is still 200, with isError.
    let (status, bad_sleep) = common::http(
        sock,
        "POST",
        "/tools/sleep",
        &[],
        Some(r#"{"seconds": -1}"#),
    )
    .await
    .expect("POST");
    assert_eq!(status, 200);
    assert_eq!(bad_sleep["isError"], true, "{bad_sleep}");

    let error = |status: u16,
                 body: &serde_json::Value,
                 code: &str,
                 server: serde_json::Value,
                 tool: &str| {
        assert_eq!(
            status,
            match code {
                "tool_not_found" => 404,
                "invalid_arguments" => 400,
                "server_not_ready" => 503,
                "tool_timeout" => 504,
                _ => 502,
            },
            "{body}"
        );
        let e = &body["error"];
        assert_eq!(e["code"], code, "{body}");
        assert_eq!(e["server"], server, "{body}");
        assert_eq!(e["tool"], tool, "{body}");
        let message = e["message"].as_str().expect("message");
        assert!(message.contains(tool), "{message}");
        assert!(!message.contains("sk-e2e-secret"), "{message}");
    };
    let (s, b) = common::http(sock, "POST", "/tools/nope", &[], Some("{}"))
        .await
        .expect("POST");
    error(s, &b, "tool_not_found", json!(null), "nope");
    assert_eq!(b["error"]["type"], "invalid_request_error");
    let (s, b) = common::http(sock, "POST", "/tools/echo", &[], Some("[1]"))
        .await
        .expect("POST");
    error(s, &b, "invalid_arguments", json!(null), "echo");
    let (s, b) = common::http(sock, "POST", "/tools/echo", &[], Some("{nope"))
        .await
        .expect("POST");
    error(s, &b, "invalid_arguments", json!(null), "echo");
    let (s, b) = common::http(sock, "POST", "/tools/ghost__anything", &[], Some("{}"))
        .await
        .expect("POST");
    error(s, &b, "server_not_ready", json!("ghost"), "ghost__anything");
    let t0 = Instant::now();
    let (s, b) = common::http(
        sock,
        "POST",
        "/tools/sleep",
        &[],
        Some(r#"{"seconds": 30}"#),
    )
    .await
    .expect("POST");
    error(s, &b, "tool_timeout", json!("a"), "sleep");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "timeout_secs 1 not applied"
    );

    // The audit: newest first, caller from the header or our uid, via, ok, arguments.
    let all = common::calls(sock, "", 7).await;
    assert_eq!(all.len(), 7, "{all:#?}");
    let tools: Vec<&str> = all.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(
        tools,
        [
            "sleep",
            "ghost__anything",
            "nope",
            "sleep",
            "b__ping",
            "echo",
            "echo"
        ],
        "the two 400s never reached a tool and are not calls"
    );
    let echo_rest = &all[5];
    assert_eq!(echo_rest["via"], "rest");
    assert_eq!(echo_rest["caller"], "key:k_test");
    assert_eq!(echo_rest["server"], "a");
    assert_eq!(echo_rest["ok"], true);
    assert_eq!(echo_rest["arguments"], json!({"text": "hi"}));
    assert!(echo_rest.get("error").is_none());
    let echo_mcp = &all[6];
    assert_eq!(echo_mcp["via"], "mcp");
    assert_eq!(echo_mcp["caller"], common::our_caller());
    assert!(echo_mcp["ts_ms"].as_i64() <= echo_rest["ts_ms"].as_i64());
    assert_eq!(all[4]["caller"], common::our_caller());
    assert_eq!(all[3]["ok"], false, "isError counts as a failure");
    assert!(
        all[3]["error"]
            .as_str()
            .expect("error")
            .contains("seconds must be between")
    );
    assert_eq!(all[0]["ok"], false);
    assert!(all[0]["duration_ms"].as_i64().expect("ms") >= 900);
    assert!(
        all[0]["error"]
            .as_str()
            .expect("error")
            .contains("within 1 s")
    );
    assert_eq!(all[1]["server"], "ghost");
    assert_eq!(all[2]["server"], json!(null));

    // Filters and limits.
    let echo_calls = common::calls(sock, "?tool=echo&limit=1", 1).await;
    assert_eq!(echo_calls.len(), 1);
    assert_eq!(echo_calls[0]["via"], "rest");
    let by_key = common::calls(sock, "?caller=key:k_test", 1).await;
    assert_eq!(by_key.len(), 1);
    let since = echo_rest["ts_ms"].as_i64().expect("ts");
    assert_eq!(
        common::calls(sock, &format!("?since_ms={since}&server=b"), 1)
            .await
            .len(),
        1
    );
    for bad in [
        "?limit=0",
        "?limit=5000",
        "?since_ms=yesterday",
        "?colour=red",
    ] {
        let (s, b) = get(sock, &format!("/calls{bad}")).await.expect("GET");
        assert_eq!(
            (s, &b["error"]["code"]),
            (400, &json!("invalid_query")),
            "{bad}: {b}"
        );
    }
    let (_, health) = get(sock, "/health").await.expect("health");
    assert_eq!(health["audit"]["dropped"], 0);
    assert_eq!(health["audit"]["arguments"], true);
    assert!(
        health["audit"]["path"]
            .as_str()
            .expect("path")
            .ends_with("mcp_audit.db")
    );
}

/// Without MCP_AUDIT_ARGS arguments are not recorded; rows queued when SIGTERM arrives are
/// committed before exit and are there after a restart on the same database; an MCP session
/// can name its caller with the header too.
#[tokio::test]
async fn audit_rows_survive_a_sigterm_restart_without_arguments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut first = common::start_in(tmp.path(), json!([ping("a", &[])]), &[], 1).await;
    let c = common::client_as(&first.mcp_sock(), (), Some("key:k_mcp")).await;
    assert_eq!(
        call(&c, "echo", json!({"text": "secret words"}))
            .await
            .as_deref(),
        Ok("secret words")
    );
    drop(c);
    // SIGTERM straight after the call: the row may still be queued, and must be committed.
    let (s, _) = common::http(&first.mcp_sock(), "POST", "/tools/ping", &[], None)
        .await
        .expect("POST");
    assert_eq!(s, 200);
    assert!(first.terminate().await.success());
    drop(first);
    let db = tmp.path().join("audit/mcp_audit.db");
    let mode = std::fs::metadata(&db).expect("db").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let dir = std::fs::metadata(db.parent().expect("dir"))
        .expect("dir")
        .permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&dir) & 0o777, 0o700);

    let second = common::start_in(tmp.path(), json!([ping("a", &[])]), &[], 1).await;
    let rows = common::calls(&second.mcp_sock(), "", 2).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        (&rows[0]["tool"], &rows[0]["via"]),
        (&json!("ping"), &json!("rest"))
    );
    assert_eq!(
        (&rows[1]["tool"], &rows[1]["caller"]),
        (&json!("echo"), &json!("key:k_mcp"))
    );
    assert_eq!(rows[1]["via"], "mcp");
    for r in &rows {
        assert!(
            r.get("arguments").is_none(),
            "arguments recorded without MCP_AUDIT_ARGS: {r}"
        );
    }
    let raw = std::fs::read(&db).expect("read db");
    assert!(!String::from_utf8_lossy(&raw).contains("secret words"));
}
