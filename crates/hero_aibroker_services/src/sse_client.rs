//! The client side of the deprecated HTTP+SSE transport, for remote servers configured with
//! `"transport": "sse"` (rmcp speaks only streamable HTTP): `GET <url>` opens the event stream,
//! whose first `endpoint` event names where to post (resolved against `url`); each message of
//! ours is posted there, and the server's come back as `message` events. The pair of channels it
//! returns is an rmcp transport, so the rest of the supervisor treats the server like any other.

use futures_util::{Stream, StreamExt, stream};
use hero_aibroker_sdk::sse::SseParser;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Messages buffered each way.
const QUEUE: usize = 64;

/// Opens the event stream at `url`, waits for its `endpoint` event, and returns the way to send
/// (posted to the endpoint) and the stream of what the server sends.
pub async fn connect(
    url: &str,
) -> Result<
    (
        PollSender<ClientJsonRpcMessage>,
        impl Stream<Item = ServerJsonRpcMessage> + Send + Unpin + 'static,
    ),
    String,
> {
    let base = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let resp = client
        .get(base.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {} to GET", resp.status()));
    }
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::default();
    // Until the endpoint event: where to post.
    let endpoint = loop {
        match parser.next_event() {
            Ok(Some(event)) if event.event == "endpoint" => {
                break base
                    .join(event.data.trim())
                    .map_err(|e| format!("{url} gave an endpoint that is not a URL: {e}"))?;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(format!("{url}: {e}")),
        }
        match body.next().await {
            Some(Ok(chunk)) => parser.push(&chunk),
            Some(Err(e)) => return Err(format!("{url}: the event stream broke: {e}")),
            None => {
                return Err(format!(
                    "{url} closed its event stream before its endpoint event"
                ));
            }
        }
    };
    tracing::debug!(%endpoint, "HTTP+SSE endpoint");

    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(QUEUE);
    let source = url.to_owned();
    tokio::spawn(async move {
        loop {
            loop {
                match parser.next_event() {
                    Ok(Some(event)) if event.event.is_empty() || event.event == "message" => {
                        match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
                            Ok(m) => {
                                if to_client.send(m).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(url = %source, "a message that is not JSON-RPC: {e}")
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(url = %source, "the event stream is not valid SSE: {e}");
                        return;
                    }
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => parser.push(&chunk),
                Some(Err(e)) => {
                    tracing::warn!(url = %source, "the event stream broke: {e}");
                    return;
                }
                None => return,
            }
        }
    });

    let (to_server, mut outgoing) = mpsc::channel::<ClientJsonRpcMessage>(QUEUE);
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            match client.post(endpoint.clone()).json(&message).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(%endpoint, status = %r.status(), "a message was refused");
                }
                Err(e) => {
                    tracing::warn!(%endpoint, "cannot post a message: {e}");
                    return;
                }
            }
        }
    });
    let incoming = Box::pin(stream::unfold(from_server, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }));
    Ok((PollSender::new(to_server), incoming))
}
