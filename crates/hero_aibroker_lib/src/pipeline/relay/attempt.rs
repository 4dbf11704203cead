//! One attempt at one candidate: the upstream request (the driver's, or a transcription's
//! spooled form), the upstream's status read through the driver, and what a success holds
//! before the client sees a byte — the first stream event, the first audio bytes, the whole JSON
//! reply or transcript — so that any failure until then fails over.

use super::*;

/// Tries `cand` once.
pub(super) async fn attempt(
    state: &AppState,
    driver: &dyn Driver,
    req: &ParsedRequest,
    cand: &Candidate,
    envelope: &Envelope,
) -> Result<AttemptResult, ApiError> {
    let settings = &state.settings;
    let backend = cand.backend();
    let wire = driver.reply_wire(req);
    let rb = match &req.upload {
        Some(upload) => crate::pipeline::audio::upload_request(
            &state.client,
            &cand.instance,
            req.endpoint,
            upload,
            &backend.model_id,
        )?,
        None => driver.request(&state.client, &cand.instance, req, &backend.model_id)?,
    };
    let resp = match tokio::time::timeout(settings.first_byte_timeout, rb.send()).await {
        Err(_) => {
            return Ok(AttemptResult::Failed(
                Failure::Timeout("the first byte"),
                None,
            ));
        }
        Ok(Err(e)) => return Ok(AttemptResult::Failed(transport_failure(&e), None)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let verdict = driver.classify(status, resp.headers());
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let body = read_body(resp, settings.idle_timeout, 64 * 1024)
            .await
            .unwrap_or_default();
        return Ok(match verdict {
            Verdict::Retry { retry_after, .. } => AttemptResult::Failed(
                Failure::Status {
                    status: status.as_u16(),
                    detail: snippet(&body, cand.instance.key.as_ref()),
                },
                retry_after,
            ),
            Verdict::AuthFailed => AttemptResult::Failed(Failure::Auth(status.as_u16()), None),
            Verdict::Fatal => {
                // The key works; the request is the problem (observed as an answer).
                AttemptResult::Ok(Success::Passthrough {
                    status: StatusCode::from_u16(status.as_u16())
                        .unwrap_or(StatusCode::BAD_GATEWAY),
                    content_type,
                    // Upstream text is hostile: an echoed key never reaches the client.
                    body: redact_body(driver.adapt_error(body, req), cand.instance.key.as_ref()),
                    wire,
                })
            }
        });
    }

    if req.endpoint == Endpoint::Speech {
        // Commit once the first audio bytes arrived: a provider that fails before is failed
        // over.
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let mut body = Box::pin(resp.bytes_stream());
        return Ok(
            match tokio::time::timeout(settings.first_byte_timeout, body.next()).await {
                Err(_) => AttemptResult::Failed(Failure::Timeout("the first audio bytes"), None),
                Ok(None) => AttemptResult::Failed(
                    Failure::Protocol("the audio answer was empty".into()),
                    None,
                ),
                Ok(Some(Err(e))) => AttemptResult::Failed(transport_failure(&e), None),
                Ok(Some(Ok(first))) => AttemptResult::Ok(Success::Audio {
                    first,
                    rest: body,
                    content_type,
                }),
            },
        );
    }
    // A mother broker's own request id, recorded beside ours (as the row's response id).
    let upstream_id = driver.upstream_request_id(resp.headers());
    if req.stream {
        if let Err(why) = driver.stream_opened(resp.headers()) {
            return Ok(AttemptResult::Failed(Failure::Protocol(why), None));
        }
        let mut body = driver.adapt_stream(Box::pin(resp.bytes_stream()), req);
        let mut parser = SseParser::with_limit(settings.upstream_max_event_bytes);
        let first = async {
            loop {
                match parser.next_event() {
                    Ok(Some(ev)) => return Ok(ev),
                    Ok(None) => {}
                    Err(e) => {
                        return Err(Failure::Protocol(format!(
                            "the stream is not valid SSE: {e}"
                        )));
                    }
                }
                match body.next().await {
                    None => {
                        return Err(Failure::Protocol(
                            "the stream ended before its first event".into(),
                        ));
                    }
                    Some(Err(e)) => {
                        return Err(Failure::Protocol(format!(
                            "the stream broke: {}",
                            root_cause(&e)
                        )));
                    }
                    Some(Ok(chunk)) => parser.push(&chunk),
                }
            }
        };
        let first = match tokio::time::timeout(settings.first_byte_timeout, first).await {
            Err(_) => {
                return Ok(AttemptResult::Failed(
                    Failure::Timeout("the first stream event"),
                    None,
                ));
            }
            Ok(Err(f)) => return Ok(AttemptResult::Failed(f, None)),
            Ok(Ok(ev)) => ev,
        };
        let first_says = match wire {
            Wire::Chat => driver.chunk(first.data.trim()),
            Wire::Messages => crate::providers::anthropic::classify_event(first.data.trim()),
        };
        match first_says {
            Chunk::Done => {
                return Ok(AttemptResult::Failed(
                    Failure::Protocol("the stream had no content before [DONE]".into()),
                    None,
                ));
            }
            Chunk::Error(msg) => {
                return Ok(AttemptResult::Failed(
                    Failure::InBand(crate::error::printable(&msg)),
                    None,
                ));
            }
            Chunk::Data { .. } => {}
        }
        return Ok(AttemptResult::Ok(Success::Stream {
            body,
            parser,
            first,
            wire,
            upstream_id,
        }));
    }

    let body = match read_body(
        resp,
        settings.idle_timeout,
        settings.upstream_max_body_bytes,
    )
    .await
    {
        Ok(b) => b,
        Err(f) => return Ok(AttemptResult::Failed(f, None)),
    };
    if let Some(upload) = &req.upload {
        // A transcript: the upstream's verbose_json, rendered in the client's format.
        return Ok(
            match crate::pipeline::audio::render(&body, &upload.format) {
                Some((content_type, body, seconds)) => AttemptResult::Ok(Success::Transcript {
                    body,
                    content_type,
                    seconds,
                }),
                None => AttemptResult::Failed(
                    Failure::Protocol("the answer is not a verbose_json transcript".into()),
                    None,
                ),
            },
        );
    }
    if wire == Wire::Messages {
        // Passed through untouched; only read for the ledger.
        let (usage, response_id) = crate::providers::anthropic::reply_usage(&body);
        return Ok(AttemptResult::Ok(Success::Json {
            body: body.to_vec(),
            usage,
            response_id,
            wire,
        }));
    }
    let body = match driver.adapt_json(body, req) {
        Ok(b) => b,
        Err(why) => return Ok(AttemptResult::Failed(Failure::Protocol(why), None)),
    };
    let annotator = Annotator::new(&cand.instance.provider, backend.prices())
        .with(driver.verbatim(), envelope.clone());
    match annotator.object(&body, &backend.model_id, true) {
        Ok(a) => Ok(AttemptResult::Ok(Success::Json {
            body: a.body,
            usage: a.usage,
            response_id: upstream_id.or(a.id),
            wire,
        })),
        Err(e) => Ok(AttemptResult::Failed(
            Failure::Protocol(format!("the upstream reply is not a JSON object ({e})")),
            None,
        )),
    }
}

pub(super) fn transport_failure(e: &reqwest::Error) -> Failure {
    if e.is_connect() {
        Failure::Connect(root_cause(e))
    } else if e.is_timeout() {
        Failure::Timeout("the connection")
    } else {
        Failure::Protocol(format!("transport error: {}", root_cause(e)))
    }
}

/// Reads a whole body with `idle` as the longest gap between chunks; a body over `limit`
/// bytes fails the attempt (`UPSTREAM_MAX_BODY_BYTES`) instead of being buffered.
async fn read_body(
    resp: reqwest::Response,
    idle: Duration,
    limit: usize,
) -> Result<Bytes, Failure> {
    let mut stream = resp.bytes_stream();
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(Failure::Timeout("the rest of the reply")),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => {
                return Err(Failure::Protocol(format!(
                    "the reply broke off: {}",
                    root_cause(&e)
                )));
            }
            Ok(Some(Ok(chunk))) => {
                if buf.len().saturating_add(chunk.len()) > limit {
                    return Err(Failure::Protocol(format!(
                        "the reply is larger than {limit} bytes (UPSTREAM_MAX_BODY_BYTES)"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}
