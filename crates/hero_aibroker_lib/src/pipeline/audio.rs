//! The speech endpoints' own wire, around the common relay (plan, keys, failover, ledger):
//!
//! - **`audio.speech`** is a JSON request like any other; its answer is audio bytes, relayed
//!   chunk by chunk once the first one arrived ([`AudioBody`]), and priced per character of the
//!   `input` (a `tts` backend's `input_cost` is USD per million characters).
//! - **`audio.transcriptions` / `audio.translations`** take a multipart upload. The surface reads
//!   it into a bounded spool ([`Upload`]); each attempt sends the spooled form again with the
//!   backend's model id and `response_format=verbose_json`, so every answer carries the audio's
//!   duration, priced per minute (an `stt` backend's `input_cost` is USD per minute), and the
//!   broker renders the client's own format (`json`, `text`, `srt`, `vtt`, `verbose_json`) from
//!   it ([`render`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::RequestStatus;
use hero_aibroker_sdk::multipart::{self, Part};
use serde_json::Value;

use crate::error::ApiError;
use crate::health::pool::Instance;
use crate::pipeline::relay::{AudioUse, Ctx, Finish};
use crate::pipeline::router::{Candidate, Endpoint};

/// The transcript formats a client may ask for.
pub const FORMATS: &[&str] = &["json", "text", "srt", "vtt", "verbose_json"];

/// A spooled transcription upload: the client's form and the format it asked for.
#[derive(Debug)]
pub struct Upload {
    pub parts: Vec<Part>,
    pub format: String,
}

impl Upload {
    /// The client's form, checked: a `file` part, a `model`, a known `response_format`. The
    /// routing JSON the relay plans with (`{"model", "file"}`) comes with it.
    pub fn from_form(parts: Vec<Part>) -> Result<(Upload, Bytes), ApiError> {
        let invalid = |m: String| ApiError::new(ErrorCode::InvalidRequest, m);
        let text = |name: &str| {
            parts
                .iter()
                .find(|p| p.name == name && p.filename.is_none())
                .and_then(Part::as_text)
                .map(str::to_owned)
        };
        if !parts
            .iter()
            .any(|p| p.name == "file" && p.filename.is_some())
        {
            return Err(invalid(
                "The form field `file` (the audio, with a file name) is missing.".into(),
            ));
        }
        let model = text("model")
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| invalid("The form field `model` is missing.".into()))?;
        let format = text("response_format").unwrap_or_else(|| "json".to_owned());
        if !FORMATS.contains(&format.as_str()) {
            return Err(invalid(format!(
                "The form field `response_format` must be one of {}, not {:?}.",
                FORMATS.join(", "),
                crate::error::printable(&format)
            )));
        }
        let routing = serde_json::json!({"model": model, "file": "(upload)"});
        Ok((Upload { parts, format }, Bytes::from(routing.to_string())))
    }

    /// The size of the audio file, for the cost estimate.
    pub fn file_bytes(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.name == "file")
            .map(|p| p.data.len())
            .sum()
    }

    /// The duration of the upload, when it is a WAV; otherwise an estimate from its size at
    /// 16 kB per second (128 kbit/s), for reserving a budget before the answer says.
    pub fn estimated_seconds(&self) -> f64 {
        let file = self.parts.iter().find(|p| p.name == "file");
        file.and_then(|f| multipart::wav_seconds(&f.data))
            .unwrap_or(self.file_bytes() as f64 / 16_000.0)
    }
}

/// The request one attempt sends: the spooled form with the backend's model id and
/// `response_format=verbose_json`.
pub fn upload_request(
    client: &reqwest::Client,
    instance: &Instance,
    endpoint: Endpoint,
    upload: &Upload,
    model_id: &str,
) -> Result<reqwest::RequestBuilder, ApiError> {
    let url = instance.openai_url(endpoint).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidConfig,
            format!("{} has no valid base URL", instance.id),
        )
    })?;
    let mut parts: Vec<Part> = upload
        .parts
        .iter()
        .filter(|p| p.name != "model" && p.name != "response_format")
        .cloned()
        .collect();
    parts.push(Part::text("model", model_id));
    parts.push(Part::text("response_format", "verbose_json"));
    let boundary = format!("hero-aibroker-{:016x}", rand::random::<u64>());
    let (content_type, body) = multipart::encode(&parts, &boundary);
    let mut rb = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(key) = &instance.key {
        rb = rb.bearer_auth(key.expose());
    }
    Ok(rb)
}

/// The client's transcript format rendered from the upstream's `verbose_json`: content type,
/// body and the audio's duration. `None` when the answer is not a verbose transcript.
pub fn render(verbose: &[u8], format: &str) -> Option<(&'static str, Vec<u8>, Option<f64>)> {
    let v: Value = serde_json::from_slice(verbose).ok()?;
    let text = v.get("text")?.as_str()?.to_owned();
    let seconds = v.get("duration").and_then(Value::as_f64);
    let segments: Vec<(f64, f64, String)> = v["segments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["start"].as_f64().unwrap_or(0.0),
                s["end"].as_f64().unwrap_or(0.0),
                s["text"].as_str().unwrap_or("").trim().to_owned(),
            )
        })
        .collect();
    let cues = |separator: char| {
        let whole = [(0.0, seconds.unwrap_or(0.0), text.trim().to_owned())];
        let list: &[(f64, f64, String)] = if segments.is_empty() {
            &whole
        } else {
            &segments
        };
        list.iter()
            .enumerate()
            .map(|(i, (start, end, words))| {
                let number = if separator == ',' {
                    format!("{}\n", i + 1)
                } else {
                    String::new()
                };
                format!(
                    "{number}{} --> {}\n{words}\n\n",
                    hero_aibroker_sdk::time::cue_timestamp(*start, separator),
                    hero_aibroker_sdk::time::cue_timestamp(*end, separator)
                )
            })
            .collect::<String>()
    };
    let (content_type, body) = match format {
        "text" => (
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        ),
        "srt" => ("text/plain; charset=utf-8", cues(',').into_bytes()),
        "vtt" => (
            "text/plain; charset=utf-8",
            format!("WEBVTT\n\n{}", cues('.')).into_bytes(),
        ),
        "verbose_json" => ("application/json", verbose.to_vec()),
        _ => (
            "application/json",
            serde_json::json!({"text": text}).to_string().into_bytes(),
        ),
    };
    Some((content_type, body, seconds))
}

/// The characters a speech request asks to be spoken.
pub fn characters(input: Option<&str>) -> u64 {
    input.map_or(0, |s| s.chars().count() as u64)
}

/// The audio of a speech answer, relayed chunk by chunk; its ledger row is written when it
/// ends — `ok` at its end, `partial` when the upstream broke off, `client_cancelled` when the
/// client left — charged for the characters either way (the upstream produced the audio).
pub struct AudioBody {
    ctx: Option<Ctx>,
    cand: Candidate,
    first: Option<Bytes>,
    rest: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    characters: u64,
    ttfb: Duration,
}

impl AudioBody {
    pub fn new(
        ctx: Ctx,
        cand: Candidate,
        first: Bytes,
        rest: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
        characters: u64,
        ttfb: Duration,
    ) -> AudioBody {
        AudioBody {
            ctx: Some(ctx),
            cand,
            first: Some(first),
            rest,
            characters,
            ttfb,
        }
    }

    fn end(&mut self, status: RequestStatus, http_status: u16, error: Option<String>) {
        if let Some(mut ctx) = self.ctx.take() {
            ctx.finish(Finish {
                cand: Some(&self.cand),
                status,
                http_status,
                ttfb: Some(self.ttfb),
                error,
                audio: Some(AudioUse {
                    characters: Some(self.characters),
                    seconds: None,
                }),
                ..Finish::default()
            });
        }
    }
}

impl Stream for AudioBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        match self.rest.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Err(e))) => {
                let why = format!(
                    "the upstream broke off the audio: {}",
                    crate::pipeline::relay::root_cause(&e)
                );
                self.end(RequestStatus::Partial, 200, Some(why.clone()));
                Poll::Ready(Some(Err(std::io::Error::other(why))))
            }
            Poll::Ready(None) => {
                self.end(RequestStatus::Ok, 200, None);
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for AudioBody {
    fn drop(&mut self) {
        self.end(RequestStatus::ClientCancelled, 499, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERBOSE: &str = r#"{"task":"transcribe","language":"english","duration":2.5,
        "text":"Hello there. General Kenobi.",
        "segments":[{"id":0,"start":0.0,"end":1.2,"text":" Hello there."},
                    {"id":1,"start":1.2,"end":2.5,"text":" General Kenobi."}]}"#;

    #[test]
    fn every_format_is_rendered_from_the_verbose_answer() {
        let (ct, body, secs) = render(VERBOSE.as_bytes(), "json").expect("json");
        assert_eq!((ct, secs), ("application/json", Some(2.5)));
        assert_eq!(body, br#"{"text":"Hello there. General Kenobi."}"#);
        let (_, body, _) = render(VERBOSE.as_bytes(), "text").expect("text");
        assert_eq!(body, b"Hello there. General Kenobi.\n");
        let (_, body, _) = render(VERBOSE.as_bytes(), "srt").expect("srt");
        assert_eq!(
            String::from_utf8(body).expect("utf-8"),
            "1\n00:00:00,000 --> 00:00:01,200\nHello there.\n\n2\n00:00:01,200 --> 00:00:02,500\nGeneral Kenobi.\n\n"
        );
        let (_, body, _) = render(VERBOSE.as_bytes(), "vtt").expect("vtt");
        assert!(
            String::from_utf8(body)
                .expect("utf-8")
                .starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.200\nHello there.\n\n")
        );
        let (_, body, _) = render(VERBOSE.as_bytes(), "verbose_json").expect("verbose");
        assert_eq!(body, VERBOSE.as_bytes());
        assert!(render(b"{\"error\":{}}", "json").is_none());
    }

    #[test]
    fn a_form_needs_its_file_model_and_a_known_format() {
        let file = Part {
            name: "file".into(),
            filename: Some("a.wav".into()),
            content_type: None,
            data: Bytes::from_static(b"x"),
        };
        let e = Upload::from_form(vec![Part::text("model", "whisper-1")]).expect_err("no file");
        assert!(e.message.contains("`file`"), "{}", e.message);
        let e = Upload::from_form(vec![file.clone()]).expect_err("no model");
        assert!(e.message.contains("`model`"), "{}", e.message);
        let e = Upload::from_form(vec![
            file.clone(),
            Part::text("model", "m"),
            Part::text("response_format", "mp4"),
        ])
        .expect_err("format");
        assert!(e.message.contains("`response_format`"), "{}", e.message);
        let (u, routing) = Upload::from_form(vec![file, Part::text("model", "m")]).expect("valid");
        assert_eq!(u.format, "json");
        assert_eq!(routing, r#"{"model":"m","file":"(upload)"}"#);
    }
}
