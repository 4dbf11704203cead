//! Streams a chat answer as it is written, then prints who answered and what it cost.
//! `cargo run -p hero_aibroker_examples --bin stream_chat -- [MODEL] [PROMPT]` (default `auto`).

use std::io::Write;

use futures_util::StreamExt;
use hero_aibroker_examples::{arg, rest};
use hero_aibroker_sdk::{ChatCompletionRequest, ChatMessage, StreamOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let request = ChatCompletionRequest {
        model: arg(1, "auto"),
        messages: vec![ChatMessage::text(
            "user",
            arg(2, "Say hello in five words."),
        )],
        stream: Some(true),
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
            ..StreamOptions::default()
        }),
        extra: Default::default(),
    };
    let mut stream = rest().chat_stream(&request).await?;
    let (mut pieces, mut usage, mut model, mut provider) = (0, None, String::new(), None);
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.get("content").and_then(|c| c.as_str()) {
                pieces += 1;
                write!(out, "{text}")?;
                out.flush()?;
            }
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
        model = chunk.model;
        provider = chunk.provider.or(provider);
    }
    println!();
    let usage = usage.unwrap_or_default();
    println!(
        "[{pieces} pieces from {model} via {}] prompt {} + completion {} tokens, cost ${}",
        provider.as_deref().unwrap_or("?"),
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost.unwrap_or(0.0)
    );
    Ok(())
}
