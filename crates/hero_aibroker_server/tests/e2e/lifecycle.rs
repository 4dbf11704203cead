//! Sockets, startup errors and graceful shutdown of the real binary.

use std::process::Command;
use std::time::Duration;

use hero_aibroker_testkit::{Behavior, CHAT_TEXT, FakeProvider, Rule};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn socket_dir_is_0700_and_socket_0600() {
    let fake = FakeProvider::start().await;
    let b = Start::with_fake(&fake).start().await;
    assert_eq!(mode(b.sock.parent().expect("dir")), 0o700);
    assert_eq!(mode(&b.sock), 0o600);
    assert_eq!(mode(&b.db_path()), 0o600);
}

/// A database file others can read (made by hand, or by an older version) is tightened to
/// 0600 at start; it holds key hashes and who asked for what.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_readable_database_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("broker.db");
    std::fs::write(&db, b"").expect("create");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let b = Start::with_fake(&fake).in_dir(dir).start().await;
    assert_eq!(mode(&b.db_path()), 0o600);
    assert_eq!(b.get("/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let fake = FakeProvider::start().await;
    let first = Start::with_fake(&fake).start().await;

    // Second broker on the same directory: clear error, non-zero exit.
    let out = Command::new(BIN)
        .env_clear()
        .env("HOME", first.dir())
        .env("HERO_SOCKET_DIR", first.dir().join("sockets"))
        .env("MODELS_CONFIG_PATH", first.dir().join("models.yml"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rest.sock is in use"), "{err}");

    // kill -9 leaves the socket file behind; the next start replaces it.
    first.signal("KILL");
    let dir = {
        let mut first = first;
        first.wait_exit(Duration::from_secs(5)).await;
        assert!(first.sock.exists(), "stale socket file left behind");
        // Keep the directory for the next broker.
        first.into_dir()
    };
    let again = Start::with_fake(&fake).in_dir(dir).start().await;
    assert_eq!(again.get("/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_fails_with_file_and_key() {
    let fake = FakeProvider::start().await;
    let yaml =
        models_yaml(&fake.base_url(), &dead_url()).replace("input_cost: 0.5", "input_cost: -0.5");
    let mut b = Start::new(yaml).spawn();
    let status = b.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let logs = b.logs();
    assert!(
        logs.contains("models.yml: models.embed.backends[0].input_cost: -0.5 is not a valid price"),
        "{logs}"
    );

    let yaml = models_yaml(&fake.base_url(), &dead_url())
        .replace("tier: standard", "tier: standard\n    colour: red");
    let mut b = Start::new(yaml).spawn();
    assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
    assert!(
        b.logs().contains("models.chat: unknown field `colour`"),
        "{}",
        b.logs()
    );
}

/// Secrets in the configuration: a guessable admin token and a provider that would send
/// another secret (the admin token, a built-in provider's key) upstream are refused at start.
#[tokio::test(flavor = "multi_thread")]
async fn weak_or_borrowed_secrets_are_refused_at_start() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake)
        .env("ADMIN_TOKEN", "letmein")
        .spawn();
    assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
    let logs = b.logs();
    assert!(
        logs.contains("ADMIN_TOKEN: is 7 characters long; use at least 16"),
        "{logs}"
    );
    assert!(!logs.contains("letmein"), "the token was echoed: {logs}");

    // A base URL override is checked like the file's base_url, and names its variable.
    let mut b = Start::with_fake(&fake)
        .env("GROQ_BASE_URL", "ftp://files.example")
        .spawn();
    assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
    assert!(
        b.logs().contains(
            "GROQ_BASE_URL: \"ftp://files.example\" is not an http:// or https:// URL with a host"
        ),
        "{}",
        b.logs()
    );
    // A key sent over plain http:// beyond loopback is warned about at start.
    let b = Start::with_fake(&fake)
        .env("OPENAI_BASE_URL", "http://10.255.0.1:8080/v1")
        .env("OPENAI_API_KEY", "sk-cleartext-0123456789")
        .start()
        .await;
    let logs = b.logs();
    assert!(
        logs.contains("provider \"openai\" sends its API key over plain http:// to 10.255.0.1"),
        "{logs}"
    );
    assert!(!logs.contains("sk-cleartext-0123456789"), "{logs}");
    drop(b);

    for var in ["ADMIN_TOKEN", "OPENAI_API_KEY"] {
        let yaml = models_yaml(&fake.base_url(), &dead_url())
            .replace("api_key_env: FAKE_KEYS", &format!("api_key_env: {var}"));
        let mut b = Start::new(yaml)
            .env("ADMIN_TOKEN", "0123456789abcdef0123")
            .spawn();
        assert!(!b.wait_exit(Duration::from_secs(10)).await.success());
        let logs = b.logs();
        assert!(
            logs.contains(&format!(
                "models.yml: providers[0].api_key_env: \"{var}\" is"
            )),
            "{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_in_flight_stream_then_exits_cleanly() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(60))));
    let mut b = Start::with_fake(&fake).start().await;
    let client = b.client.clone();
    let stream = tokio::spawn({
        let body = stream_body("chat");
        async move {
            let r = client
                .post(Broker::url("/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .expect("send");
            r.text().await.expect("complete body")
        }
    });
    // Once the stream is upstream, ask the broker to stop.
    assert!(eventually(Duration::from_secs(10), || fake.call_count() >= 1).await);
    b.signal("TERM");
    let refused = wait_until(Duration::from_secs(5), async || {
        tokio::net::UnixStream::connect(&b.sock).await.is_err()
    })
    .await;
    assert!(refused, "no new connections while draining");
    let body = stream.await.expect("join");
    assert!(
        body.trim_end().ends_with("data: [DONE]"),
        "the stream finished: {body}"
    );
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, CHAT_TEXT);
    let status = b.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit 0 after drain: {status}\n{}",
        b.logs()
    );
    assert!(!b.sock.exists(), "socket removed");
}

/// A stream still running at the drain deadline is cut — it was in flight (its first events
/// reached the client), it ends without `[DONE]` — and its `client_cancelled` row is in the
/// database after the process exited: the ledger closes only after the cut requests recorded.
#[tokio::test(flavor = "multi_thread")]
async fn drain_deadline_cuts_a_stream_that_will_not_end() {
    use futures_util::StreamExt;
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_secs(5))));
    let mut b = Start::with_fake(&fake)
        .env("DRAIN_TIMEOUT_MS", "300")
        .start()
        .await;
    let resp = b.open_stream("chat").await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(
        String::from_utf8_lossy(&first).starts_with("data: "),
        "the stream was in flight"
    );
    let t0 = std::time::Instant::now();
    b.signal("TERM");
    let mut rest = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        rest.extend_from_slice(&chunk);
    }
    assert!(
        !String::from_utf8_lossy(&rest).contains("[DONE]"),
        "cut, not finished"
    );
    let status = b.wait_exit(Duration::from_secs(5)).await;
    assert!(status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stopped at the drain deadline"
    );
    let row = row_in_db(&b.db_path(), &id).await;
    assert_eq!(
        row,
        Some(("client_cancelled".to_owned(), 499)),
        "the cut stream's row"
    );
}

/// Status and HTTP status of the ledger row `id`, read from the database file.
async fn row_in_db(path: &std::path::Path, id: &str) -> Option<(String, i64)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open db");
    sqlx::query_as("SELECT status, http_status FROM request_logs WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut conn)
        .await
        .expect("query")
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_keys_never_reach_the_logs() {
    let fake = FakeProvider::start().await;
    let canary = "sk-canary-7d3f9e1a2b4c";
    fake.script(Rule::any(Behavior::Status {
        status: 401,
        retry_after: None,
    }));
    let mut b = Start::with_fake(&fake)
        .env("FAKE_KEYS", canary)
        .env("RUST_LOG", "trace")
        .start()
        .await;
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    assert_eq!(r.status, 502);
    assert!(!r.text.contains(canary));
    assert_eq!(
        fake.calls()[0].key.as_deref(),
        Some(canary),
        "the key did go upstream"
    );
    b.signal("TERM");
    b.wait_exit(Duration::from_secs(10)).await;
    let logs = b.logs();
    assert!(
        logs.contains("refused the API key"),
        "the failure is logged: {logs}"
    );
    assert!(!logs.contains(canary), "secret leaked into logs");
}
