//! `hero_aibroker tools`, `tools call`, `tools servers`, `tools calls` against a real broker and
//! the real MCP aggregator serving the bundled `mcp_ping`.

#[allow(dead_code)] // shared with the other test binaries
mod common;

use common::{Broker, cli_at, ok, ok_json, row};

#[test]
fn lists_calls_and_audits_tools() {
    let b = Broker::start();
    let _agg = b.aggregator();

    let table = ok(b.cli().arg("tools"));
    let echo = row(&table, "echo");
    assert!(echo.contains("ping") && echo.contains("text*"), "{table}");
    row(&table, "sleep");
    let listed = ok_json(b.cli().arg("tools"));
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"whoami"),
        "{names:?}"
    );

    // Text content is printed as is; --json gives the whole CallToolResult.
    let out = ok(b
        .cli()
        .args(["tools", "call", "echo", "--args", r#"{"text": "a zebra"}"#]));
    assert_eq!(out.trim(), "a zebra");
    let full = ok_json(
        b.cli()
            .args(["tools", "call", "echo", "--args", r#"{"text": "x"}"#]),
    );
    assert_eq!(full["isError"], false);
    assert_eq!(full["content"][0]["text"], "x");
    // Arguments from stdin.
    let out = ok(b
        .cli()
        .args(["tools", "call", "echo", "--args", "-"])
        .write_stdin(r#"{"text": "from stdin"}"#));
    assert_eq!(out.trim(), "from stdin");

    // A tool's own error: its text, then exit 1.
    let out = b
        .cli()
        .args(["tools", "call", "sleep", "--args", r#"{"seconds": -1}"#])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("seconds must be between"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the tool sleep reported an error"));

    // Protocol failures: one line, exit 1.
    for (args, expect) in [
        (vec!["tools", "call", "nope"], "nope"),
        (
            vec!["tools", "call", "sleep", "--args", r#"{"seconds": 30}"#],
            "within 2 s",
        ),
        (
            vec!["tools", "call", "echo", "--args", "[1]"],
            "JSON object",
        ),
    ] {
        let out = b.cli().args(&args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }

    // Calling needs the admin token (tools may change anything).
    let out = cli_at(&b.sockets())
        .args(["tools", "call", "ping"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin token"));

    let servers = ok(b.cli().args(["tools", "servers"]));
    let ping = row(&servers, "ping");
    assert!(
        ping.contains("stdio") && ping.contains("ready"),
        "{servers}"
    );

    // The audit: newest first, with the caller and the outcome.
    let calls = ok_json(b.cli().args(["tools", "calls", "--tool", "echo"]));
    let calls = calls.as_array().expect("a list");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c["caller"] == "rpc" && c["ok"] == true)
    );
    let table = ok(b.cli().args(["tools", "calls", "--limit", "50"]));
    assert!(row(&table, "sleep").contains("error"), "{table}");
}

#[test]
fn without_the_aggregator_tools_say_how_to_start_it() {
    let b = Broker::start();
    let out = b.cli().arg("tools").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mcp.sock") && err.contains("scripts/start.sh"),
        "{err}"
    );
}
