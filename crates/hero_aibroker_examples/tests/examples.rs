//! Every example, run as a user runs it (the built binary, `HERO_SOCKET_DIR` pointing at the
//! broker), against a real broker, the scripted fake provider and the real MCP aggregator with
//! the bundled `mcp_ping`.

use std::path::Path;
use std::process::Command;

use hero_aibroker_testkit::{AggregatorConfig, BrokerConfig, FakeProvider, sibling_bin};
use serde_json::{Value, json};

fn models_yaml(fake: &str) -> String {
    format!(
        r#"
providers:
  - {{name: fake, base_url: "{fake}", api_key_env: FAKE_KEYS}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: 2.5, output_cost: 10}}
  unkeyed:
    display_name: Unkeyed
    tier: cheap
    context_window: 4096
    backends:
      - {{provider: groq, model_id: llama, priority: 1, input_cost: 0.1, output_cost: 0.1}}
"#
    )
}

/// Runs example `bin` with `args` against the sockets under `root`; its stdout, or a panic with
/// both streams when it fails.
fn run(bin: &str, root: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env_clear()
        .env("HERO_SOCKET_DIR", root)
        .env("HOME", root)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_runs_against_a_real_broker() {
    let fake = FakeProvider::start().await;
    let broker = BrokerConfig::new(models_yaml(&fake.base_url()))
        .env("FAKE_KEYS", "key-a")
        .start()
        .await;
    let servers = json!([
        {"name": "ping", "command": sibling_bin("mcp_ping"), "args": ["--name", "ping"],
         "transport": "stdio", "timeout_secs": 2},
    ]);
    let _aggregator = AggregatorConfig::new(servers)
        .in_dir(broker.dir())
        .start(1)
        .await;
    let root = broker.socket_root();

    let out = run(env!("CARGO_BIN_EXE_list_models"), &root, &[]);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id} not listed: {out}"))
            .to_owned()
    };
    assert!(
        line("chat").contains(" servable") && line("chat").contains("$2.5 / $10"),
        "{out}"
    );
    assert!(line("unkeyed").contains("not servable"), "{out}");
    assert!(out.contains("2 models"), "{out}");

    let out = run(
        env!("CARGO_BIN_EXE_stream_chat"),
        &root,
        &["chat", "Weather?"],
    );
    // The fake streams its recording of OpenAI's stream, piece by piece.
    assert!(
        out.starts_with("I'm unable to provide real-time weather updates."),
        "{out}"
    );
    let summary = out.lines().last().expect("a summary line");
    assert!(summary.contains("via fake]"), "{summary}");
    let pieces: u32 = summary
        .trim_start_matches('[')
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a piece count");
    assert!(pieces > 1, "streamed in pieces: {summary}");
    assert!(summary.contains("completion 30 tokens"), "{summary}");

    let out = run(
        env!("CARGO_BIN_EXE_create_key_and_use_it"),
        &root,
        &["chat"],
    );
    assert!(
        out.contains("answer: I'm unable to provide real-time weather"),
        "{out}"
    );
    let spent: f64 = out
        .lines()
        .find_map(|l| l.split("has spent $").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .expect("the spend line");
    assert!(spent > 0.0, "{out}");
    // The key is real: the broker lists it with that spend, and never the secret in the output.
    let keys: Value = rpc(&broker.rpc_sock(), "keys.list", json!({})).await;
    let key = keys
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["name"] == "sdk-example"))
        .expect("the example's key");
    assert!(
        (key["spent_usd"].as_f64().expect("spent") - spent).abs() < 1e-12,
        "{key}"
    );
    assert!(!out.contains("sk-") || out.contains('…'), "{out}");

    // The ledger commits in groups: wait for both rows before reading the summary.
    for _ in 0..200 {
        let page = rpc(&broker.rpc_sock(), "usage.logs", json!({"limit": 10})).await;
        if page["rows"].as_array().is_some_and(|r| r.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let out = run(env!("CARGO_BIN_EXE_read_usage"), &root, &["model"]);
    let chat = out
        .lines()
        .find(|l| l.starts_with("chat "))
        .unwrap_or_else(|| panic!("no chat row: {out}"));
    let requests: u64 = chat
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("requests");
    assert_eq!(requests, 2, "the streamed chat and the keyed chat: {out}");

    let out = run(env!("CARGO_BIN_EXE_call_tool"), &root, &["ping", "{}"]);
    assert_eq!(out.trim(), "pong", "{out}");
}

/// One JSON-RPC call over the broker's `rpc.sock`, independent of the SDK the examples use.
async fn rpc(sock: &Path, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (status, v) = hero_aibroker_testkit::uds_http(sock, "POST", "/rpc", &[], Some(&body))
        .await
        .expect("rpc.sock answers");
    assert_eq!(status, 200, "{v}");
    v["result"].clone()
}
