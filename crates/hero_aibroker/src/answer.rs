//! One answer of the interactive chat: a spinner until the first token, reasoning (dim, or
//! folded), the answer streamed through the markdown renderer, Ctrl-C to cancel (the stream is
//! dropped, so the broker and the provider see the client go away), then a dim status line.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hero_aibroker_sdk::client::RestClient;
use hero_aibroker_sdk::{ChatCompletionRequest, StreamOptions, Usage};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::convo::{Answered, Conversation, Turn};
use crate::render::{Markdown, Style};

/// Per-conversation settings that shape each request and its display.
#[derive(Debug, Clone)]
pub struct AskOptions {
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub hide_reasoning: bool,
    pub style: Style,
}

pub enum Outcome {
    Answered(Turn),
    /// Ctrl-C: the request was dropped; whatever arrived is on screen but not kept.
    Cancelled,
    Failed(String),
}

/// What arrived so far.
#[derive(Default)]
struct Progress {
    text: String,
    reasoning: String,
    model: String,
    provider: Option<String>,
    usage: Option<Usage>,
    ttft: Option<Duration>,
    /// Reasoning is being printed (dim) and the answer has not started.
    in_reasoning: bool,
}

/// Sends `user` after the conversation so far and streams the answer to stdout.
pub async fn ask(
    conn: &Conn,
    rest: &RestClient,
    convo: &Conversation,
    user: &str,
    opts: &AskOptions,
) -> Outcome {
    let mut req = convo.request(user, opts.temperature, opts.max_tokens);
    req.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        ..StreamOptions::default()
    });
    let style = opts.style;
    let t0 = Instant::now();
    let reasoning_chars = Arc::new(AtomicUsize::new(0));
    let mut spinner = Spinner::start(style, &convo.model, reasoning_chars.clone());
    let mut md = Markdown::new(style);
    let mut p = Progress::default();
    let result = {
        let work = stream_answer(conn, rest, &req, opts, &mut spinner, &mut md, &mut p, t0);
        tokio::select! {
            r = work => Some(r),
            () = interrupted() => None,
        }
    };
    spinner.stop();
    let mut out = std::io::stdout();
    if p.in_reasoning {
        // Cancelled or failed mid-reasoning: end the dim text.
        let _ = writeln!(out, "{}", style.reset());
    }
    let _ = md.finish(&mut out);
    match result {
        None => {
            let _ = writeln!(
                out,
                "{}",
                style.dim("[cancelled — this exchange is not kept in the conversation]")
            );
            Outcome::Cancelled
        }
        Some(Err(e)) => Outcome::Failed(e.to_string()),
        Some(Ok(())) => {
            let usage = p.usage.unwrap_or_default();
            let answered = Answered {
                model: if p.model.is_empty() {
                    convo.model.clone()
                } else {
                    p.model
                },
                provider: p.provider,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cost: usage.cost,
                ttft_ms: p.ttft.map(|d| d.as_millis() as u64),
                total_ms: t0.elapsed().as_millis() as u64,
            };
            if opts.hide_reasoning && !p.reasoning.is_empty() {
                let _ = writeln!(
                    out,
                    "{}",
                    style.dim(&format!(
                        "▸ reasoning hidden ({} chars; /reasoning on shows it)",
                        p.reasoning.chars().count()
                    ))
                );
            }
            let _ = writeln!(out, "{}", style.dim(&status_line(&answered)));
            Outcome::Answered(Turn {
                user: user.to_owned(),
                assistant: p.text,
                reasoning: (!p.reasoning.is_empty()).then_some(p.reasoning),
                answered,
            })
        }
    }
}

/// Resolves on Ctrl-C (SIGINT); never when signals cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn stream_answer(
    conn: &Conn,
    rest: &RestClient,
    req: &ChatCompletionRequest,
    opts: &AskOptions,
    spinner: &mut Spinner,
    md: &mut Markdown,
    p: &mut Progress,
    t0: Instant,
) -> anyhow::Result<()> {
    let style = opts.style;
    let mut out = std::io::stdout();
    let mut stream = conn.rest_call(|| rest.chat_stream(req)).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!(e.to_string()))?;
        if !chunk.model.is_empty() {
            p.model.clone_from(&chunk.model);
        }
        if chunk.provider.is_some() {
            p.provider.clone_from(&chunk.provider);
        }
        if chunk.usage.is_some() {
            p.usage = chunk.usage;
        }
        for choice in &chunk.choices {
            if let Some(Value::String(r)) = choice.delta.get("reasoning")
                && !r.is_empty()
            {
                p.ttft.get_or_insert_with(|| t0.elapsed());
                p.reasoning.push_str(r);
                if opts.hide_reasoning {
                    spinner.thinking.store(p.reasoning.len(), Ordering::Relaxed);
                } else {
                    spinner.stop();
                    if !p.in_reasoning {
                        p.in_reasoning = true;
                        write!(out, "{}thinking: ", style.start_dim())?;
                    }
                    write!(out, "{r}")?;
                    out.flush()?;
                }
            }
            if let Some(Value::String(text)) = choice.delta.get("content")
                && !text.is_empty()
            {
                p.ttft.get_or_insert_with(|| t0.elapsed());
                spinner.stop();
                if p.in_reasoning {
                    p.in_reasoning = false;
                    writeln!(out, "{}\n", style.reset())?;
                }
                p.text.push_str(text);
                md.push(text, &mut out)?;
            }
        }
    }
    if p.in_reasoning {
        p.in_reasoning = false;
        writeln!(out, "{}", style.reset())?;
    }
    Ok(())
}

/// `solo via fake · 19 in / 33 out · $0.000059 · first token 0.04s · 0.31s`
pub fn status_line(a: &Answered) -> String {
    let mut parts = vec![match &a.provider {
        Some(p) => format!("{} via {p}", a.model),
        None => a.model.clone(),
    }];
    parts.push(format!(
        "{} in / {} out",
        a.prompt_tokens, a.completion_tokens
    ));
    if let Some(cost) = a.cost {
        parts.push(format!("${cost:.6}"));
    }
    if let Some(ms) = a.ttft_ms {
        parts.push(format!("first token {:.2}s", ms as f64 / 1000.0));
    }
    parts.push(format!("{:.2}s", a.total_ms as f64 / 1000.0));
    parts.join(" · ")
}

/// A braille spinner on the current line while nothing has arrived (terminals only).
struct Spinner {
    task: Option<JoinHandle<()>>,
    /// Characters of hidden reasoning received so far (shown as "thinking…").
    thinking: Arc<AtomicUsize>,
}

impl Spinner {
    fn start(style: Style, model: &str, thinking: Arc<AtomicUsize>) -> Spinner {
        if !style.on {
            return Spinner {
                task: None,
                thinking,
            };
        }
        let model = model.to_owned();
        let seen = thinking.clone();
        let task = tokio::spawn(async move {
            const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let t0 = Instant::now();
            for i in 0usize.. {
                let label = match seen.load(Ordering::Relaxed) {
                    0 => format!("waiting for {model}"),
                    n => format!("thinking… {n} chars"),
                };
                let frame = FRAMES[i % FRAMES.len()];
                let line = format!("{frame} {label} {:.1}s", t0.elapsed().as_secs_f64());
                let mut out = std::io::stdout();
                let _ = write!(out, "\r\x1b[2K{}", style.dim(&line));
                let _ = out.flush();
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        });
        Spinner {
            task: Some(task),
            thinking,
        }
    }

    /// Stops the spinner and clears its line; a no-op once stopped.
    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut out = std::io::stdout();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_names_model_provider_tokens_cost_and_times() {
        let a = Answered {
            model: "up-solo".into(),
            provider: Some("fake".into()),
            prompt_tokens: 19,
            completion_tokens: 33,
            cost: Some(0.0000590),
            ttft_ms: Some(42),
            total_ms: 310,
        };
        assert_eq!(
            status_line(&a),
            "up-solo via fake · 19 in / 33 out · $0.000059 · first token 0.04s · 0.31s"
        );
    }
}
