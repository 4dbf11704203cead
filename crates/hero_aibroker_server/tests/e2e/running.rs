//! The requests running now (`requests.list`) and the operator's cancel (`requests.cancel`):
//! a stream ends with one error event and no `[DONE]`, a request still waiting on its upstream
//! gets a 503 `request_cancelled`, and each is recorded as cancelled.

use std::time::Duration;

use futures_util::StreamExt;
use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::*;

async fn running(b: &Broker) -> Vec<Value> {
    b.rpc("requests.list", json!([]))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_stream_is_listed_and_the_operator_cancels_it() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::any(Behavior::SlowChunks(Duration::from_millis(300))));
    let b = Start::with_fake(&fake).start().await;
    let resp = b.open_stream("chat").await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let mut body = resp.bytes_stream();
    body.next().await.expect("a first chunk").expect("bytes");

    let listed = running(&b).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(
        (r["model"].as_str(), r["stream"].as_bool()),
        (Some("chat"), Some(true))
    );
    assert!(
        r["provider"]
            .as_str()
            .is_some_and(|p| p.starts_with("fake-")),
        "{r}"
    );
    assert!(r["bytes"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert_eq!(r["client"], format!("uds:uid={}", rustix_uid()).as_str());

    let cancelled = b.rpc("requests.cancel", json!({"id": id})).await;
    assert_eq!(cancelled["cancelled"], true);
    let mut rest = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        rest.extend_from_slice(&chunk);
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("request_cancelled"), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    let row = b.wait_row(&id).await;
    assert_eq!(row["status"], "client_cancelled", "{row}");
    assert!(
        row["error"]
            .as_str()
            .is_some_and(|e| e.contains("cancelled")),
        "{row}"
    );
    assert!(
        wait_until(Duration::from_secs(5), async || running(&b)
            .await
            .is_empty())
        .await,
        "an ended request leaves the list"
    );
    let missing = b
        .rpc_with("requests.cancel", json!({"id": "req_nope"}), None)
        .await;
    assert_eq!(missing["error"]["code"], -32004, "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_waiting_on_its_upstream_is_cancelled_with_a_clear_error() {
    let fake = FakeProvider::start().await;
    fake.script(Rule::for_model("up-solo", Behavior::Hang));
    let b = Start::with_fake(&fake).start().await;
    let client = b.client.clone();
    let waiting = tokio::spawn(async move {
        let r = client
            .post(Broker::url("/v1/chat/completions"))
            .json(&chat_body("solo"))
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    assert!(
        wait_until(Duration::from_secs(10), async || running(&b).await.len()
            == 1)
        .await,
        "the request shows while it waits"
    );
    // Cancel once the upstream has the call (it is listed from admission on, a moment before).
    assert!(
        wait_until(Duration::from_secs(10), async || fake.call_count() == 1).await,
        "the upstream got the call"
    );
    let id = running(&b).await[0]["id"].as_str().expect("id").to_owned();
    b.rpc("requests.cancel", json!({"id": id})).await;
    let (status, text) = waiting.await.expect("join");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("request_cancelled"), "{text}");
    let row = b.wait_row(&id).await;
    assert_eq!(row["status"], "client_cancelled", "{row}");
    assert_eq!(fake.cancelled(), 1, "the upstream call was dropped");
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}
