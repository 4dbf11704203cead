//! Runs the `hero_aibroker_fake_provider` binary the way the benchmark and the Python tests
//! do: wait for the `listening` line, send requests, stop it with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hero_aibroker_testkit::CHAT_TEXT;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hero_aibroker_fake_provider");

#[tokio::test]
async fn binary_serves_paced_streams_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--chunk-delay-ms", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the fake provider");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let base = line
        .trim_end()
        .strip_prefix("listening ")
        .expect("`listening <url>`")
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base}"
    );

    let client = reqwest::Client::new();
    let body: Value = client
        .post(format!("{base}/chat/completions"))
        .json(&json!({"model": "bench", "messages": []}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["model"], "bench");
    assert_eq!(body["choices"][0]["message"]["content"], CHAT_TEXT);

    // --chunk-delay-ms paces every stream: 30+ events, 5 ms apart.
    let started = Instant::now();
    let text = client
        .post(format!("{base}/chat/completions"))
        .json(&json!({"model": "bench", "messages": [], "stream": true}))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("stream");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = child.wait().expect("wait for the fake provider");
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
}

#[test]
fn binary_refuses_non_loopback_hosts() {
    let output = Command::new(BIN)
        .args(["--host", "0.0.0.0"])
        .output()
        .expect("run the fake provider");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no `listening` line");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}
