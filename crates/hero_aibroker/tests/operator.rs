//! `doctor`, `providers check|reset|disable`, `logs -f` and the health column of `models`,
//! against a real broker and the fake provider.

#[allow(dead_code)] // shared with tests/cli.rs and tests/chat.rs
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ADMIN, Broker, cli_at, ok, ok_json, row};
use hero_aibroker_testkit::{Behavior, Rule};

fn refuse_key_b(b: &Broker) {
    b.fake.script(Rule::for_key(
        "key-b",
        Behavior::Status {
            status: 401,
            retry_after: None,
        },
    ));
}

#[test]
fn doctor_passes_on_a_healthy_broker() {
    let b = Broker::start();
    let out = ok(b.cli().arg("doctor"));
    for (check, verdict) in [
        ("socket directory", "ok"),
        ("rest.sock", "ok"),
        ("rpc.sock", "ok"),
        ("admin.sock", "skip"),
        ("mcp.sock", "skip"),
        ("broker health", "ok"),
        ("configuration", "warn"), // `unkeyed` has no key
        ("key fake-0", "ok"),
        ("key fake-1", "ok"),
        ("key backup-0", "ok"),
    ] {
        assert!(row(&out, check).starts_with(verdict), "{check}: {out}");
    }
    assert!(
        row(&out, "configuration").contains("without a key: unkeyed"),
        "{out}"
    );
    assert!(row(&out, "key fake-0").contains("works"), "{out}");
    // The provider keys never show, only their last characters.
    assert!(!out.contains("key-a") && !out.contains("key-b"), "{out}");

    let checks = ok_json(b.cli().arg("doctor"));
    let rpc = checks
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["check"] == "rpc.sock")
        .expect("rpc.sock check");
    assert_eq!(rpc["verdict"], "ok");
}

#[test]
fn doctor_fails_with_a_hint_for_a_refused_key_and_skips_keys_without_token() {
    let b = Broker::start();
    refuse_key_b(&b);
    let out = b.cli().arg("doctor").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(row(&stdout, "key fake-1").starts_with("FAIL"), "{stdout}");
    assert!(row(&stdout, "key fake-1").contains("HTTP 401"), "{stdout}");
    assert!(stdout.contains("fix: fake refused the key"), "{stdout}");
    assert!(row(&stdout, "key fake-0").starts_with("ok"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 check(s) failed"),
        "{out:?}"
    );

    // Without the admin token the key checks are skipped, with the way to run them.
    let out = ok(cli_at(&b.sockets()).arg("doctor"));
    assert!(row(&out, "provider keys").starts_with("skip"), "{out}");
    assert!(out.contains("--admin-token"), "{out}");
}

#[test]
fn doctor_on_a_stopped_broker_says_how_to_start_it_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cli_at(dir.path()).arg("doctor").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        row(&stdout, "socket directory").starts_with("FAIL"),
        "{stdout}"
    );
    assert!(row(&stdout, "rpc.sock").starts_with("FAIL"), "{stdout}");
    assert!(stdout.contains("fix: start the broker"), "{stdout}");

    // A world-writable socket directory is named as the problem, with the chmod to run.
    let sockets = dir.path().join("hero_aibroker");
    std::fs::create_dir(&sockets).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = cli_at(dir.path()).arg("doctor").output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        row(&stdout, "socket directory").contains("mode 777"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("fix: chmod 700 {}", sockets.display())),
        "{stdout}"
    );
}

#[test]
fn providers_check_reset_disable_and_models_health() {
    let b = Broker::start();
    refuse_key_b(&b);
    let table = ok(b.cli().args(["providers", "check", "fake"]));
    assert!(row(&table, "fake-0").contains("works"), "{table}");
    assert!(row(&table, "fake-1").contains("FAILS"), "{table}");
    assert!(row(&table, "fake-1").contains("401"), "{table}");
    let checks = ok_json(b.cli().args(["providers", "check"]));
    assert_eq!(checks.as_array().expect("array").len(), 3, "{checks}");
    let out = b
        .cli()
        .args(["providers", "check", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no provider \"nope\""));

    let out = ok(b
        .cli()
        .args(["providers", "disable", "fake-1", "--reason", "billing"]));
    assert_eq!(out.trim(), "fake-1: disabled (billing)");
    let models = ok(b.cli().arg("models"));
    assert!(
        row(&models, "solo").contains("fake: 1/2 keys ready (disabled)"),
        "{models}"
    );
    let reset = ok_json(b.cli().args(["providers", "reset", "fake-1"]));
    assert_eq!(reset["state"], "healthy");
    let models = ok(b.cli().arg("models"));
    let health = row(&models, "solo").rsplit('┆').next().expect("cells");
    assert_eq!(health.trim_end_matches('│').trim(), "ok", "{models}");
}

#[test]
fn logs_follow_prints_new_requests_as_they_are_recorded() {
    let b = Broker::start();
    ok(b.cli().args(["chat", "-m", "solo", "-p", "first"]));
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("hero_aibroker"))
        .env_remove("HERO_SOCKET_DIR")
        .arg("--socket-dir")
        .arg(b.sockets())
        .args(["--admin-token", ADMIN, "logs", "-f", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from logs -f");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not NDJSON ({e}): {line}"))
    };
    let old = next();
    assert_eq!(old["requested_model"], "solo");
    ok(b.cli().args(["chat", "-m", "chat", "-p", "second"]));
    let new = next();
    assert_eq!(new["requested_model"], "chat");
    assert_eq!(new["status"], "ok");
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a row is printed once"
    );
    let _ = child.kill();
    let _ = child.wait();
}
