//! Upstream policy and process end: the broker follows no redirect and uses no proxy from the
//! environment (an upstream cannot send a key elsewhere, a variable cannot route traffic
//! through a third party); SIGINT stops it like SIGTERM, with the WAL checkpointed into the
//! database file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hero_aibroker_testkit::FakeProvider;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// A TCP listener that answers every connection with `answer` (after reading the request
/// head) and counts the connections.
async fn canned(answer: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("127.0.0.1:{}", addr.port()), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed_and_proxies_are_not_used() {
    let fake = FakeProvider::start().await;
    // An upstream that redirects every call to the (working) fake.
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {}/chat/completions\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        fake.base_url()
    );
    let (redirector, redirected) = canned(redirect).await;
    // A "proxy" that would answer everything, if anything came to it.
    let (proxy, proxied) = canned(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
    )
    .await;
    let proxy_url = format!("http://{proxy}");
    let b = Start::new(models_yaml(
        &format!("http://{redirector}/v1"),
        &fake.base_url(),
    ))
    .env("HTTPS_PROXY", &proxy_url)
    .env("HTTP_PROXY", &proxy_url)
    .env("ALL_PROXY", &proxy_url)
    .env("https_proxy", &proxy_url)
    .env("http_proxy", &proxy_url)
    .start()
    .await;

    // `solo` lives only behind the redirector: refused, and the redirect is not followed.
    let r = b.post("/v1/chat/completions", &chat_body("solo")).await;
    let msg = r.assert_error(502, "upstream_failed");
    assert!(msg.contains("307"), "{msg}");
    assert!(
        redirected.load(Ordering::SeqCst) >= 1,
        "the redirector was asked"
    );
    assert_eq!(fake.call_count(), 0, "the redirect was followed");

    // `chat` fails over to `backup` on the fake: reached directly, not through the proxy.
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(fake.call_count(), 1);
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        0,
        "a proxy from the environment was used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_cleanly_and_checkpoints_the_wal() {
    let fake = FakeProvider::start().await;
    let mut b = Start::with_fake(&fake).start().await;
    let r = b.post("/v1/chat/completions", &chat_body("chat")).await;
    assert_eq!(r.status, 200);
    let id = r.header("x-aibroker-request-id").to_owned();
    b.wait_row(&id).await;
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    assert!(!b.sock.exists(), "socket removed");
    let logs = b.logs();
    assert!(logs.contains("SIGINT received"), "{logs}");

    let wal = b.db_path().with_extension("db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "the WAL was checkpointed and truncated");
    // The database file alone, copied without its WAL, holds the row.
    let copy = tempfile::tempdir().expect("tmp");
    let alone = copy.path().join("copy.db");
    std::fs::copy(b.db_path(), &alone).expect("copy");
    let url = format!("sqlite://{}?mode=ro", alone.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE id = ?")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 1);
}
