//! The fake provider's speech endpoints, as OpenAI (and Groq and SambaNova, which copy it) serve
//! them: `POST /v1/audio/speech` answers audio bytes, sent in pieces with the provider's chunk
//! delay (so a client can see the first bytes before the last are sent);
//! `POST /v1/audio/transcriptions` and `/translations` read a multipart upload and answer what
//! they "heard" ([`HEARD`]) in the asked `response_format`, with the duration of the uploaded WAV.

use bytes::Bytes;
use hero_aibroker_sdk::multipart::{self, Part};

/// The transcript of every upload.
pub const HEARD: &str = "Hello from the fake provider.";

/// Pieces a speech answer is sent in.
const SPEECH_PIECES: usize = 8;

/// The audio the fake answers for `input` in `format`: 32 KiB, the same for the same text and
/// format, different otherwise (tests compare hashes).
pub fn speech_bytes(input: &str, format: &str) -> Bytes {
    // FNV-1a of the request, then xorshift: deterministic, cheap, and not all zeros.
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes().chain([0]).chain(format.bytes()) {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::with_capacity(32 * 1024);
    while out.len() < 32 * 1024 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    Bytes::from(out)
}

/// The content type OpenAI answers for a speech `response_format`.
pub fn speech_content_type(format: &str) -> &'static str {
    match format {
        "opus" => "audio/ogg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        _ => "audio/mpeg",
    }
}

/// `speech_bytes` in [`SPEECH_PIECES`] frames.
pub(crate) fn speech_frames(body: &[u8]) -> Vec<Bytes> {
    let (input, format) = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| {
            (
                v["input"].as_str().unwrap_or("").to_owned(),
                v["response_format"].as_str().unwrap_or("mp3").to_owned(),
            )
        })
        .unwrap_or_default();
    let audio = speech_bytes(&input, &format);
    let step = audio.len().div_ceil(SPEECH_PIECES);
    (0..audio.len())
        .step_by(step)
        .map(|at| audio.slice(at..(at + step).min(audio.len())))
        .collect()
}

/// The format a speech request asked for.
pub(crate) fn speech_format(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["response_format"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "mp3".to_owned())
}

/// The form of a transcription upload, if it is one.
pub(crate) fn form(content_type: Option<&str>, body: &[u8]) -> Option<Vec<Part>> {
    multipart::parse(content_type?, body).ok()
}

fn field<'a>(form: &'a [Part], name: &str) -> Option<&'a str> {
    form.iter().find(|p| p.name == name).and_then(Part::as_text)
}

/// The model a form names.
pub(crate) fn form_model(form: &[Part]) -> Option<String> {
    field(form, "model").map(str::to_owned)
}

/// The answer to a transcription (`translate`: a translation) of `form`: its content type and
/// body in the form's `response_format` (json by default); `None` when the form has no file.
pub(crate) fn transcript(form: &[Part], translate: bool) -> Option<(&'static str, Bytes)> {
    let file = form
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some())?;
    let seconds = multipart::wav_seconds(&file.data).unwrap_or(0.0);
    let format = field(form, "response_format").unwrap_or("json");
    let body = match format {
        "text" => {
            return Some((
                "text/plain; charset=utf-8",
                Bytes::from(format!("{HEARD}\n")),
            ));
        }
        "srt" => format!(
            "1\n{} --> {}\n{HEARD}\n\n",
            hero_aibroker_sdk::time::cue_timestamp(0.0, ','),
            hero_aibroker_sdk::time::cue_timestamp(seconds, ',')
        ),
        "vtt" => format!(
            "WEBVTT\n\n{} --> {}\n{HEARD}\n\n",
            hero_aibroker_sdk::time::cue_timestamp(0.0, '.'),
            hero_aibroker_sdk::time::cue_timestamp(seconds, '.')
        ),
        "verbose_json" => serde_json::json!({
            "task": if translate { "translate" } else { "transcribe" },
            "language": "english",
            "duration": seconds,
            "text": HEARD,
            "segments": [{
                "id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": format!(" {HEARD}"),
                "tokens": [50364, 2425, 490, 264, 7592, 12398, 13, 50564],
                "temperature": 0.0, "avg_logprob": -0.25, "compression_ratio": 0.9,
                "no_speech_prob": 0.01
            }],
        })
        .to_string(),
        _ => serde_json::json!({"text": HEARD}).to_string(),
    };
    let content_type = match format {
        "srt" | "vtt" => "text/plain; charset=utf-8",
        _ => "application/json",
    };
    Some((content_type, Bytes::from(body)))
}
