//! The speech endpoints on the binary: text to speech streamed through byte for byte, speech to
//! text with the first provider failing over to the next, every transcript format, the ledger's
//! characters, seconds and cost, and the upload limit. The speech to transcribe is real: made by
//! `espeak-ng` and measured by `sox` (scripts/test.sh installs both).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hero_aibroker_sdk::multipart::{self, Part};
use hero_aibroker_testkit::audio::{HEARD, speech_bytes};
use hero_aibroker_testkit::{Behavior, FakeProvider, Rule};
use serde_json::{Value, json};

use crate::harness::{Broker, Start};

/// `tts-1` on `first` ($15 per million characters); `whisper-1` on `first`, `second`, `third`
/// in that order ($0.111, $0.04 and $0.36 per hour: per minute below).
fn yaml(first: &str, second: &str, third: &str) -> String {
    format!(
        r#"
providers:
  - {{name: first, base_url: "{first}"}}
  - {{name: second, base_url: "{second}"}}
  - {{name: third, base_url: "{third}"}}
models:
  tts-1:
    display_name: TTS 1
    tier: standard
    capabilities: [tts]
    context_window: 4096
    backends:
      - {{provider: first, model_id: tts-1, priority: 1, input_cost: 15.0, output_cost: 0}}
  whisper-1:
    display_name: Whisper
    tier: standard
    capabilities: [stt]
    context_window: 448
    backends:
      - {{provider: first, model_id: whisper-large-v3, priority: 1, input_cost: 0.00185, output_cost: 0}}
      - {{provider: second, model_id: whisper-large-v3, priority: 2, input_cost: 0.000667, output_cost: 0}}
      - {{provider: third, model_id: whisper-1, priority: 3, input_cost: 0.006, output_cost: 0}}
"#
    )
}

async fn brokers() -> (FakeProvider, FakeProvider, FakeProvider, Broker) {
    let (a, b, c) = (
        FakeProvider::start().await,
        FakeProvider::start().await,
        FakeProvider::start().await,
    );
    let broker = Start::new(yaml(&a.base_url(), &b.base_url(), &c.base_url()))
        .start()
        .await;
    (a, b, c, broker)
}

/// Speech made by espeak-ng, and its duration as sox measures it.
fn spoken(dir: &Path, text: &str) -> (Vec<u8>, f64) {
    let wav = dir.join("speech.wav");
    let made = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is missing: scripts/test.sh installs it (apt-get install espeak-ng)");
    assert!(made.success(), "espeak-ng failed");
    let out = Command::new("sox")
        .args(["--i", "-D"])
        .arg(&wav)
        .output()
        .expect("sox is missing: scripts/test.sh installs it (apt-get install sox)");
    let seconds: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("sox prints the duration");
    (std::fs::read(&wav).expect("wav"), seconds)
}

fn form(wav: &[u8], model: &str, format: Option<&str>) -> (String, bytes::Bytes) {
    let mut parts = vec![
        Part {
            name: "file".into(),
            filename: Some("speech.wav".into()),
            content_type: Some("audio/wav".into()),
            data: bytes::Bytes::copy_from_slice(wav),
        },
        Part::text("model", model),
        Part::text("language", "en"),
    ];
    if let Some(f) = format {
        parts.push(Part::text("response_format", f));
    }
    multipart::encode(&parts, "test-boundary-1234")
}

/// Posts a form (or any body) of `content_type` to `path` on the broker.
async fn upload(
    b: &Broker,
    path: &str,
    content_type: impl AsRef<str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    b.client
        .post(Broker::url(path))
        .header("content-type", content_type.as_ref())
        .body(body)
        .send()
        .await
        .expect("send")
}

async fn rows(b: &Broker, endpoint: &str, n: usize) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let page = b.rpc("usage.logs", json!({"limit": 100})).await;
        let rows: Vec<Value> = page["rows"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|r| r["endpoint"] == endpoint)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn speech_arrives_intact_and_streamed_and_is_priced_per_character() {
    let (first, _, _, b) = brokers().await;
    first.set_chunk_delay(Duration::from_millis(40));
    let text = "Hello from the broker, spoken.";
    let t0 = Instant::now();
    let resp = b
        .client
        .post(Broker::url("/v1/audio/speech"))
        .json(&json!({"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_eq!(resp.headers()["x-aibroker-provider"], "first-0");
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        first_at.get_or_insert_with(|| t0.elapsed());
        got.extend_from_slice(&chunk);
    }
    let last_at = t0.elapsed();
    assert_eq!(
        got,
        speech_bytes(text, "wav"),
        "the bytes the fake sent, intact"
    );
    let first_at = first_at.expect("bytes");
    // 8 pieces 40 ms apart: the first arrived well before the fake sent the last.
    assert!(
        last_at.saturating_sub(first_at) >= Duration::from_millis(200),
        "not streamed: first {first_at:?}, last {last_at:?}"
    );
    let row = &rows(&b, "audio.speech", 1).await[0];
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(row["characters"], text.chars().count(), "{row}");
    let cost = text.chars().count() as f64 * 15.0 / 1e6;
    assert!(
        (row["cost_usd"].as_f64().expect("cost") - cost).abs() < 1e-12,
        "{row}"
    );

    // Refused by name before any upstream call.
    let r = b
        .post("/v1/audio/speech", &json!({"model": "tts-1", "input": "x"}))
        .await;
    assert!(r.assert_error(400, "invalid_request").contains("`voice`"));
    let r = b
        .post(
            "/v1/audio/speech",
            &json!({"model": "tts-1", "input": "x", "voice": "alloy", "response_format": "ogg"}),
        )
        .await;
    assert!(
        r.assert_error(400, "invalid_request")
            .contains("`response_format`")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transcription_fails_over_and_answers_in_every_format_priced_per_minute() {
    let (first, second, third, b) = brokers().await;
    first.script(Rule::any(Behavior::Status {
        status: 503,
        retry_after: None,
    }));
    let dir = tempfile::tempdir().expect("tmp");
    let (wav, seconds) = spoken(dir.path(), "The quick brown fox jumps over the lazy dog.");
    assert!(seconds > 1.0, "espeak-ng spoke for {seconds} s");

    let mut answers = Vec::new();
    for format in ["json", "text", "srt", "vtt", "verbose_json"] {
        let (content_type, body) = form(&wav, "whisper-1", Some(format));
        let resp = upload(&b, "/v1/audio/transcriptions", content_type, body).await;
        assert_eq!(resp.status(), 200, "{format}");
        assert_eq!(
            resp.headers()["x-aibroker-provider"],
            "second-0",
            "{format}"
        );
        if format == "json" {
            // The first provider's 503 was an attempt; after it, that provider cools down and
            // the next requests go straight to the second.
            assert_eq!(resp.headers()["x-aibroker-attempts"], "2", "{format}");
        }
        answers.push((format, resp.text().await.expect("body")));
    }
    let json: Value = serde_json::from_str(&answers[0].1).expect("json");
    assert_eq!(json, json!({"text": HEARD}));
    assert_eq!(answers[1].1, format!("{HEARD}\n"));
    let end = |sep: char| {
        let ms = (seconds * 1000.0).round() as u64;
        format!("00:00:{:02}{sep}{:03}", ms / 1000, ms % 1000)
    };
    assert!(
        answers[2]
            .1
            .starts_with(&format!("1\n00:00:00,000 --> {}\n", end(','))),
        "{}",
        answers[2].1
    );
    assert!(
        answers[3]
            .1
            .starts_with(&format!("WEBVTT\n\n00:00:00.000 --> {}\n", end('.'))),
        "{}",
        answers[3].1
    );
    let verbose: Value = serde_json::from_str(&answers[4].1).expect("verbose");
    assert!((verbose["duration"].as_f64().expect("duration") - seconds).abs() < 0.01);
    // Every upstream was asked for verbose_json with its own model id; the third never.
    let sent = second.calls();
    let asked = multipart::parse(sent[0].header("content-type").expect("ct"), &sent[0].raw)
        .expect("a form");
    let field = |n: &str| {
        asked
            .iter()
            .find(|p| p.name == n)
            .and_then(|p| p.as_text().map(str::to_owned))
    };
    assert_eq!(field("model").as_deref(), Some("whisper-large-v3"));
    assert_eq!(field("response_format").as_deref(), Some("verbose_json"));
    assert_eq!(field("language").as_deref(), Some("en"));
    let file = asked.iter().find(|p| p.name == "file").expect("file");
    assert_eq!(file.data.as_ref(), wav.as_slice(), "the upload, intact");
    assert_eq!(third.call_count(), 0);
    assert!(first.call_count() >= 1, "the first provider was tried");

    let rows = rows(&b, "audio.transcriptions", 5).await;
    for row in &rows {
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["provider"], "second-0", "{row}");
        let heard = row["audio_seconds"].as_f64().expect("seconds");
        assert!((heard - seconds).abs() < 0.01, "{row}");
        let cost = heard / 60.0 * 0.000667;
        assert!(
            (row["cost_usd"].as_f64().expect("cost") - cost).abs() < 1e-12,
            "{row}"
        );
    }

    // Translations take the same upload.
    let (content_type, body) = form(&wav, "whisper-1", None);
    let resp = upload(&b, "/v1/audio/translations", content_type, body).await;
    assert_eq!(resp.status(), 200);
    let json: Value = resp.json().await.expect("json");
    assert_eq!(json, json!({"text": HEARD}));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_or_without_its_file_is_refused_clearly() {
    let (a, _b, _c) = (
        FakeProvider::start().await,
        FakeProvider::start().await,
        FakeProvider::start().await,
    );
    let b = Start::new(yaml(&a.base_url(), &a.base_url(), &a.base_url()))
        .env("AUDIO_MAX_BYTES", "4096")
        .start()
        .await;
    let (content_type, body) = form(&[0u8; 8192], "whisper-1", None);
    let r = upload(&b, "/v1/audio/transcriptions", content_type, body).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4096 bytes (AUDIO_MAX_BYTES)")),
        "{v}"
    );
    let (content_type, body) = multipart::encode(&[Part::text("model", "whisper-1")], "b0undary");
    let r = upload(&b, "/v1/audio/transcriptions", content_type, body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`file`")),
        "{v}"
    );
    let r = upload(&b, "/v1/audio/transcriptions", "application/json", "{}").await;
    assert_eq!(r.status(), 400);
    assert_eq!(a.call_count(), 0, "nothing reached a provider");
}
