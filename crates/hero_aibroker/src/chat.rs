//! `chat`: interactive on a terminal, else one-shot — a prompt (or stdin) in, the answer out,
//! streamed as it arrives (`--no-stream`: printed once whole); `--json` prints the whole
//! non-streamed response object instead. The model is the global `-m/--model` (`chat -m`).

use std::io::{IsTerminal, Write};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::cli::ChatArgs;
use crate::conn::Conn;
use crate::convo::Conversation;

pub async fn run(conn: &Conn, args: &ChatArgs, model: &str, as_json: bool) -> anyhow::Result<()> {
    let prompt = match args.prompt.as_deref() {
        Some("-") => None,
        Some(p) => Some(p.to_owned()),
        None if std::io::stdin().is_terminal() && !as_json => {
            return crate::repl::run(conn, args, model).await;
        }
        None => None,
    };
    let prompt = match prompt {
        Some(p) => p,
        None => {
            let mut buf = String::new();
            tokio::io::stdin().read_to_string(&mut buf).await?;
            buf
        }
    };
    if prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    let req = Conversation::new(model.to_owned(), args.system.clone()).request(
        &prompt,
        args.temperature,
        args.max_tokens,
    );
    let rest = conn.rest();
    let mut out = std::io::stdout().lock();
    if as_json {
        let resp = conn.rest_call(|| rest.chat(&req)).await?;
        writeln!(out, "{}", serde_json::to_string_pretty(&resp)?)?;
        return Ok(());
    }
    if args.no_stream {
        let resp = conn.rest_call(|| rest.chat(&req)).await?;
        let text = match resp
            .choices
            .first()
            .and_then(|c| c.message.content.as_ref())
        {
            Some(Value::String(t)) => t.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        write!(out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
        return Ok(());
    }
    let mut stream = conn.rest_call(|| rest.chat_stream(&req)).await?;
    let mut ends_with_newline = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!(e.to_string()))?;
        for choice in &chunk.choices {
            if let Some(Value::String(text)) = choice.delta.get("content")
                && !text.is_empty()
            {
                out.write_all(text.as_bytes())?;
                out.flush()?;
                ends_with_newline = text.ends_with('\n');
            }
        }
    }
    if !ends_with_newline {
        writeln!(out)?;
    }
    Ok(())
}
