//! `multipart/form-data` (RFC 7578), as the audio endpoints take it: read a whole (already size
//! bounded) body into its parts, and write parts back into a body. Plain fields and files; no
//! nested multiparts, no transfer encodings (HTTP clients send neither).

use bytes::{BufMut, Bytes, BytesMut};

/// One part of a form: its field name, the file name and content type when it is a file, and
/// its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

impl Part {
    /// A plain text field.
    pub fn text(name: &str, value: &str) -> Part {
        Part {
            name: name.to_owned(),
            filename: None,
            content_type: None,
            data: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    /// The value of a text field (`None` when it is not UTF-8).
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// Why a body is not a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the content type is not multipart/form-data with a boundary")]
    NotMultipart,
    #[error("the body does not start with its boundary")]
    NoOpening,
    #[error("a part has no blank line after its headers")]
    NoHeaderEnd,
    #[error("a part has no Content-Disposition with a name")]
    NoName,
    #[error("the body ends before its closing boundary")]
    Unterminated,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut pieces = content_type.split(';');
    let kind = pieces.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    pieces.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// The parts of `body`, sent with `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, FormError> {
    let boundary = boundary(content_type).ok_or(FormError::NotMultipart)?;
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let start = finder.find(body).ok_or(FormError::NoOpening)?;
    let mut rest = &body[start + delimiter.len()..];
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let header_end = memchr::memmem::find(rest, b"\r\n\r\n").ok_or(FormError::NoHeaderEnd)?;
        let headers = String::from_utf8_lossy(&rest[..header_end]);
        let content = &rest[header_end + 4..];
        let next = finder.find(content).ok_or(FormError::Unterminated)?;
        // The part's data ends with the CRLF before the next delimiter.
        let data = content[..next]
            .strip_suffix(b"\r\n")
            .unwrap_or(&content[..next]);
        parts.push(part(&headers, data)?);
        rest = &content[next + delimiter.len()..];
    }
}

fn part(headers: &str, data: &[u8]) -> Result<Part, FormError> {
    let (mut name, mut filename, mut content_type) = (None, None, None);
    for line in headers.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        } else if key.eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').skip(1) {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim() {
                    "name" => name = Some(v),
                    "filename" => filename = Some(v),
                    _ => {}
                }
            }
        }
    }
    Ok(Part {
        name: name.ok_or(FormError::NoName)?,
        filename,
        content_type,
        data: Bytes::copy_from_slice(data),
    })
}

/// `parts` as a body with `boundary`, and the content type that names it.
pub fn encode(parts: &[Part], boundary: &str) -> (String, Bytes) {
    let mut out = BytesMut::new();
    for p in parts {
        out.put_slice(format!("--{boundary}\r\n").as_bytes());
        let name = p.name.replace('"', "%22");
        match &p.filename {
            Some(file) => out.put_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
                    file.replace('"', "%22")
                )
                .as_bytes(),
            ),
            None => out.put_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
            ),
        }
        if let Some(ct) = &p.content_type {
            out.put_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&p.data);
        out.put_slice(b"\r\n");
    }
    out.put_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        out.freeze(),
    )
}

/// The duration in seconds of a PCM WAV file (RIFF `fmt ` byte rate and `data` size), or `None`
/// when the bytes are not one.
pub fn wav_seconds(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let (mut at, mut byte_rate, mut data_len) = (12usize, None, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 12 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes(
                bytes[body + 8..body + 12].try_into().ok()?,
            ));
        } else if id == b"data" {
            // Streamed WAVs write 0 or 0xFFFFFFFF: the data runs to the end of the file.
            let available = bytes.len() - body;
            data_len = Some(if len == 0 || len > available {
                available
            } else {
                len
            });
            break;
        }
        at = body + len + (len & 1);
    }
    let rate = f64::from(byte_rate.filter(|r| *r > 0)?);
    Some(data_len? as f64 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_parts_parse_back_whole() {
        let file = Part {
            name: "file".into(),
            filename: Some("a b.wav".into()),
            content_type: Some("audio/wav".into()),
            data: Bytes::from_static(b"RIFF\r\n--not-the-boundary\r\n\x00\xff"),
        };
        let parts = vec![Part::text("model", "whisper-1"), file, Part::text("x", "")];
        let (ct, body) = encode(&parts, "b0undary");
        assert_eq!(parse(&ct, &body).expect("parses"), parts);
    }

    #[test]
    fn bad_forms_say_why() {
        assert_eq!(
            parse("application/json", b"{}"),
            Err(FormError::NotMultipart)
        );
        let ct = "multipart/form-data; boundary=\"xyz\"";
        assert_eq!(parse(ct, b"nothing"), Err(FormError::NoOpening));
        assert_eq!(
            parse(
                ct,
                b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1"
            ),
            Err(FormError::Unterminated)
        );
        assert_eq!(
            parse(ct, b"--xyz\r\nContent-Type: text/plain\r\n\r\n1\r\n--xyz--"),
            Err(FormError::NoName)
        );
    }

    #[test]
    fn a_wav_knows_its_duration() {
        // 8 kHz, 16-bit mono: 16 000 bytes per second; 24 000 bytes of data = 1.5 s.
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 1, 0]);
        wav.extend_from_slice(&8000u32.to_le_bytes());
        wav.extend_from_slice(&16000u32.to_le_bytes());
        wav.extend_from_slice(&[2, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&24000u32.to_le_bytes());
        wav.extend(std::iter::repeat_n(0u8, 24000));
        assert_eq!(wav_seconds(&wav), Some(1.5));
        assert_eq!(wav_seconds(b"ID3 an mp3"), None);
    }
}
