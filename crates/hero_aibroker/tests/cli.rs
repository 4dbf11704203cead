//! The `hero_aibroker` binary against a real broker and the fake provider: every operator
//! command's table and `--json`, one-shot chat (streamed and JSON, prompt on stdin), and the
//! exit codes when the broker is down or a call is refused.

#[allow(dead_code)] // shared with tests/chat.rs, which uses other parts
mod common;

use std::time::{Duration, Instant};

use common::{Broker, cli_at, ok, ok_json, row};
use hero_aibroker_testkit::CHAT_TEXT;

#[test]
fn health_and_info() {
    let b = Broker::start();
    let table = ok(b.cli().arg("health"));
    assert!(row(&table, "status").contains("ok"), "{table}");
    assert!(row(&table, "ledger").contains("healthy"), "{table}");
    let health = ok_json(b.cli().arg("health"));
    assert_eq!(health["status"], "ok");
    assert!(health["ledger"]["healthy"].as_bool().expect("bool"));

    let table = ok(b.cli().arg("info"));
    assert!(row(&table, "models").contains("3 (2 servable)"), "{table}");
    assert!(row(&table, "rpc socket").contains("rpc.sock"), "{table}");
    let info = ok_json(b.cli().arg("info"));
    assert_eq!(info["models"], 3);
    assert_eq!(info["servable_models"], 2);
}

#[test]
fn models_lists_tier_context_price_and_backends() {
    let b = Broker::start();
    let table = ok(b.cli().arg("models"));
    let chat = row(&table, "chat");
    for cell in ["standard", "8192", "fake (2×)", "backup (1×)"] {
        assert!(chat.contains(cell), "{cell} missing in {chat}");
    }
    let solo = row(&table, "solo");
    for cell in ["cheap", "4096", "0.5", "1.5", "fake (2×)"] {
        assert!(solo.contains(cell), "{cell} missing in {solo}");
    }
    assert!(row(&table, "unkeyed").contains("none (no keys)"), "{table}");
    let models = ok_json(b.cli().arg("models"));
    let ids: Vec<&str> = models
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3);
    for id in ["chat", "solo", "unkeyed"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
}

#[test]
fn providers_shows_instances_and_states() {
    let b = Broker::start();
    let table = ok(b.cli().arg("providers"));
    assert!(row(&table, "fake-0").contains("healthy"), "{table}");
    assert!(row(&table, "fake-1").contains("healthy"), "{table}");
    assert!(table.contains("All circuits closed."), "{table}");
    let providers = ok_json(b.cli().arg("providers"));
    let fake = providers
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["name"] == "fake")
        .expect("provider fake");
    assert_eq!(fake["instances"].as_array().expect("instances").len(), 2);
}

#[test]
fn keys_create_list_update_revoke() {
    let b = Broker::start();
    let out = ok(b
        .cli()
        .args(["keys", "create", "ci", "--budget", "5", "--rpm", "60"]));
    assert!(out.contains("Secret: sk-hab-"), "{out}");
    assert!(out.contains("shown once"), "{out}");
    assert!(row(&out, "ci").contains("$5.00"), "{out}");

    let created = ok_json(
        b.cli()
            .args(["keys", "create", "agent", "--models", "chat,solo"]),
    );
    let id = created["key"]["id"].as_str().expect("id").to_owned();
    assert!(
        created["secret"]
            .as_str()
            .expect("secret")
            .starts_with("sk-hab-")
    );
    assert_eq!(created["key"]["allowed_models"][1], "solo");

    let list = ok(b.cli().args(["keys", "list"]));
    assert!(row(&list, "agent").contains("chat,solo"), "{list}");
    assert!(row(&list, "ci").contains("active"), "{list}");
    assert!(
        !list.contains("Secret"),
        "list must never show secrets: {list}"
    );

    let updated = ok_json(
        b.cli()
            .args(["keys", "update", &id, "--budget", "10", "--name", "bot"]),
    );
    assert_eq!(updated["name"], "bot");
    assert_eq!(updated["budget_usd"], 10.0);

    let revoked = ok(b.cli().args(["keys", "revoke", &id]));
    assert!(row(&revoked, "bot").contains("revoked"), "{revoked}");
    let keys = ok_json(b.cli().args(["keys", "list"]));
    let bot = keys
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("key listed");
    assert_eq!(bot["revoked"], true);
}

#[test]
fn mutating_without_the_admin_token_is_one_line_and_exit_1() {
    let b = Broker::start();
    let out = cli_at(&b.sockets())
        .args(["keys", "create", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("admin token"), "{stderr}");
}

#[test]
fn priority_set_list_clear() {
    let b = Broker::start();
    let out = ok(b.cli().args(["priority", "set", "backup", "0"]));
    assert!(row(&out, "backup").contains('0'), "{out}");
    let list = ok(b.cli().args(["priority", "list"]));
    assert!(row(&list, "backup").contains('0'), "{list}");
    let json = ok_json(b.cli().args(["priority", "list"]));
    assert!(
        json.as_array()
            .expect("array")
            .iter()
            .any(|e| e["provider"] == "backup" && e["priority"] == 0),
        "{json}"
    );
    // With backup first, explain ranks it first.
    let trace = ok_json(b.cli().args(["explain", "chat"]));
    assert_eq!(trace["candidates"][0]["provider"], "backup", "{trace}");

    let cleared = ok_json(b.cli().args(["priority", "clear", "backup"]));
    assert_eq!(cleared["priority"], serde_json::Value::Null);
    let after = ok_json(b.cli().args(["priority", "list"]));
    assert!(
        !after
            .as_array()
            .expect("array")
            .iter()
            .any(|e| e["provider"] == "backup" && e["priority"].is_i64()),
        "{after}"
    );
}

#[test]
fn explain_ranks_candidates_and_names_skipped() {
    let b = Broker::start();
    let table = ok(b.cli().args(["explain", "chat"]));
    assert!(
        table.contains("Routing chat (chat) with strategy"),
        "{table}"
    );
    assert!(row(&table, "fake-0").contains("up-chat"), "{table}");
    assert!(row(&table, "backup").contains("up-backup"), "{table}");
    let trace = ok_json(b.cli().args(["explain", "chat"]));
    assert_eq!(trace["requested"], "chat");
    assert_eq!(trace["candidates"][0]["rank"], 0);
    assert_eq!(trace["candidates"][0]["provider"], "fake");

    let unkeyed = ok_json(b.cli().args(["explain", "unkeyed"]));
    let skipped = &unkeyed["candidates"][0]["skipped"];
    assert!(skipped.is_string(), "{unkeyed}");
    let table = ok(b.cli().args(["explain", "unkeyed"]));
    assert!(
        row(&table, "groq").contains(
            skipped
                .as_str()
                .expect("str")
                .split(' ')
                .next()
                .expect("word")
        ),
        "{table}"
    );
}

#[test]
fn reload_rereads_the_models_file() {
    let b = Broker::start();
    let out = ok(b.cli().arg("reload"));
    assert!(out.starts_with("Reloaded "), "{out}");
    assert!(out.contains("3 models (2 servable)"), "{out}");
    let json = ok_json(b.cli().arg("reload"));
    assert_eq!(json["models"], 3);
}

#[test]
fn chat_json_from_stdin_then_usage_and_logs() {
    let b = Broker::start();
    let resp = ok_json(
        b.cli()
            .args(["chat", "-p", "-", "-m", "chat"])
            .write_stdin("hi\n"),
    );
    assert_eq!(resp["choices"][0]["message"]["content"], CHAT_TEXT);
    assert_eq!(resp["object"], "chat.completion");

    // The ledger writes in the background: wait for the row.
    let t0 = Instant::now();
    let logs = loop {
        let logs = ok_json(b.cli().args(["logs", "--limit", "5"]));
        if !logs["rows"].as_array().expect("rows").is_empty() {
            break logs;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no ledger row");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(logs["rows"][0]["model"], "chat");
    let table = ok(b.cli().arg("logs"));
    let r = row(&table, "fake-0");
    assert!(
        r.contains("chat") && r.contains("ok 200") && r.contains("14/30"),
        "{table}"
    );

    let usage = ok(b.cli().args(["usage", "--by", "model", "--since", "24h"]));
    assert!(row(&usage, "chat").contains(" 1 "), "{usage}");
    let by_provider = ok_json(b.cli().args(["usage", "--by", "provider"]));
    assert_eq!(by_provider[0]["group"], "fake-0", "{by_provider}");
    assert_eq!(by_provider[0]["requests"], 1);
    // A range that ends before the request: nothing.
    let none = ok(b.cli().args(["usage", "--since", "0s"]));
    assert_eq!(none.trim(), "No requests in this range.");
}

#[test]
fn chat_streams_the_answer() {
    let b = Broker::start();
    let out = ok(b.cli().args([
        "chat",
        "-p",
        "Say hi",
        "--system",
        "Be brief",
        "--temperature",
        "0.2",
        "--max-tokens",
        "50",
    ]));
    assert_eq!(out, format!("{CHAT_TEXT}\n"));
    let piped = ok(b.cli().args(["chat", "-p", "-"]).write_stdin("hello"));
    assert_eq!(piped, format!("{CHAT_TEXT}\n"));
}

#[test]
fn chat_errors_are_one_line_and_exit_1() {
    let b = Broker::start();
    let out = b
        .cli()
        .args(["chat", "-p", "hi", "-m", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn server_down_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["health"],
        vec!["models", "--json"],
        vec!["chat", "-p", "hi"],
    ] {
        let out = cli_at(dir.path()).args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&dir.path().join("hero_aibroker").display().to_string()),
            "{stderr}"
        );
        assert!(stderr.contains("scripts/start.sh"), "{stderr}");
    }
    // --max-retries backs off (200 + 400 ms) before giving up.
    let t0 = Instant::now();
    let out = cli_at(dir.path())
        .args(["--max-retries", "2", "health"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn max_retries_waits_for_a_broker_that_starts_late() {
    // The CLI starts first and retries while the broker is not there yet.
    let dir = tempfile::tempdir().expect("tempdir");
    let sockets = dir.path().join("sockets");
    let cli = std::process::Command::new(assert_cmd::cargo::cargo_bin("hero_aibroker"))
        .env_remove("HERO_SOCKET_DIR")
        .arg("--socket-dir")
        .arg(&sockets)
        .args(["--max-retries", "6", "health"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hero_aibroker");
    std::thread::sleep(Duration::from_millis(300));
    let _b = Broker::start_in(dir);
    let out = cli.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(row(&stdout, "status").contains("ok"), "{stdout}");
}

#[test]
fn completions_and_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(cli_at(dir.path()).args(["completions", shell]));
        assert!(out.contains("hero_aibroker"), "{shell}");
        assert!(out.contains("explain"), "{shell}");
    }
    let help = ok(cli_at(dir.path()).args(["usage", "--help"]));
    assert!(
        help.contains("Examples:") && help.contains("--since 24h"),
        "{help}"
    );
}

#[test]
fn mothers_add_list_update_remove_without_showing_the_token() {
    let b = Broker::start();
    // An unreachable mother still registers; its failing model list is shown.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let token = "sk-hab-delegated-0123456789abcdef0123456789";
    let added = ok(b
        .cli()
        .env("MOTHER_TOKEN", token)
        .args(["mothers", "add", "127.0.0.1", &port.to_string()])
        .args([
            "--label",
            "split-mode-mother",
            "--priority",
            "1",
            "--token-env",
            "MOTHER_TOKEN",
        ]));
    assert!(added.contains("Added ai_broker_mother"), "{added}");
    let list = ok(b.cli().args(["mothers", "list"]));
    let line = row(&list, "ai_broker_mother");
    assert!(
        line.contains("split-mode-mother") && line.contains("set"),
        "{list}"
    );
    assert!(!list.contains(token), "the token is never shown: {list}");
    let info = ok(b.cli().args(["info"]));
    assert!(row(&info, "mothers").contains('1'), "{info}");
    let updated = ok_json(b.cli().args([
        "mothers",
        "update",
        "ai_broker_mother",
        "--priority",
        "3",
        "--enabled",
        "false",
    ]));
    assert_eq!(
        (updated["priority"].as_i64(), updated["enabled"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(
        updated["state"], "absent",
        "a disabled mother is not a provider"
    );
    let removed = ok(b.cli().args(["mothers", "remove", "ai_broker_mother"]));
    assert!(removed.contains("Removed ai_broker_mother"), "{removed}");
    let empty = ok(b.cli().args(["mothers", "list"]));
    assert!(empty.contains("No mothers"), "{empty}");
    assert!(
        !b.server_log().contains(token),
        "the token never reaches the broker's log"
    );
}

/// The global flags: `-m/--model` (default `auto`) that `chat -m` overrides, `--socket` (the
/// rpc.sock path; rest.sock beside it) instead of `--socket-dir`, `--max-retries` (default 3,
/// backing off 200 + 400 + 800 ms), and `chat --stream` / `--no-stream`.
#[test]
fn global_model_socket_retries_and_stream_flags() {
    let b = Broker::start();
    // A global -m before the subcommand picks the model; chat -m overrides it.
    let out = ok(b
        .cli()
        .args(["-m", "solo", "chat", "-p", "hi", "--no-stream"]));
    assert_eq!(out, format!("{CHAT_TEXT}\n"));
    let out = ok(b.cli().args([
        "--model", "solo", "chat", "-p", "hi", "-m", "chat", "--stream",
    ]));
    assert_eq!(out, format!("{CHAT_TEXT}\n"));
    let t0 = Instant::now();
    let logs = loop {
        let logs = ok_json(b.cli().args(["logs", "--limit", "5"]));
        if logs["rows"].as_array().expect("rows").len() >= 2 {
            break logs;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no ledger rows");
        std::thread::sleep(Duration::from_millis(50));
    };
    let models: Vec<&str> = logs["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["requested_model"].as_str().expect("model"))
        .collect();
    assert_eq!(
        models,
        ["chat", "solo"],
        "newest first: chat -m won, then the global -m"
    );
    let streamed: Vec<bool> = logs["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["stream"].as_bool().expect("stream"))
        .collect();
    assert_eq!(
        streamed,
        [true, false],
        "--stream streamed, --no-stream did not"
    );

    // --socket names rpc.sock itself; the (empty) --socket-dir is not used.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let rpc = b.sockets().join("hero_aibroker").join("rpc.sock");
    let health = ok(cli_at(elsewhere.path())
        .arg("--socket")
        .arg(&rpc)
        .arg("health"));
    assert!(row(&health, "status").contains("ok"), "{health}");
    let chat = ok(cli_at(elsewhere.path())
        .arg("--socket")
        .arg(&rpc)
        .args(["chat", "-p", "hi", "-m", "chat"]));
    assert_eq!(
        chat,
        format!("{CHAT_TEXT}\n"),
        "rest.sock is found beside it"
    );

    // Without a broker the default --max-retries (3) backs off 200 + 400 + 800 ms.
    let t0 = Instant::now();
    let out = cli_at(elsewhere.path())
        .arg("health")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t0.elapsed()
    );
    let help = ok(cli_at(elsewhere.path()).arg("--help"));
    assert!(
        help.contains("--max-retries <N>") && help.contains("[default: 3]"),
        "{help}"
    );
    assert!(
        help.contains("-m, --model <MODEL>") && help.contains("[default: auto]"),
        "{help}"
    );
    assert!(help.contains("--socket <PATH>"), "{help}");
}
