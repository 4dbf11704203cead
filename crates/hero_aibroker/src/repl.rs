//! The interactive chat: a line editor with persisted history, completion of `/commands` and
//! model names, multi-line input (a trailing `\`, or a paste), and the slash commands.
//! Ctrl-C at the prompt clears the line, during an answer cancels it; Ctrl-D leaves.

use std::path::PathBuf;

use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::answer::{self, AskOptions, Outcome};
use crate::cli::ChatArgs;
use crate::conn::Conn;
use crate::convo::{Conversation, plural};
use crate::render::Style;

/// The slash commands, their arguments and what they do (`/help`).
const COMMANDS: [(&str, &str, &str); 11] = [
    ("/model", "NAME", "switch model (Tab completes names)"),
    ("/models", "", "list the broker's models"),
    (
        "/tools",
        "[NAME [JSON]]",
        "list the MCP tools, or call one with JSON arguments",
    ),
    (
        "/system",
        "[TEXT]",
        "set the system message (no text: clear it)",
    ),
    ("/clear", "", "start a new conversation"),
    (
        "/save",
        "FILE",
        "save the conversation (FILE.json as JSON, else markdown)",
    ),
    ("/usage", "", "tokens and cost of this conversation"),
    ("/reasoning", "on|off", "show or fold the model's reasoning"),
    ("/retry", "", "ask the last question again"),
    ("/help", "", "this list"),
    ("/exit", "", "leave (Ctrl-D too)"),
];

/// Completion of slash commands and, after `/model `, of model names.
struct ChatHelper {
    models: Vec<String>,
}

impl Completer for ChatHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let line = &line[..pos];
        if let Some(partial) = line.strip_prefix("/model ") {
            let start = pos - partial.len();
            let names = self.models.iter().filter(|m| m.starts_with(partial));
            return Ok((start, names.cloned().collect()));
        }
        if line.starts_with('/') && !line.contains(' ') {
            let names = COMMANDS.iter().map(|c| c.0).filter(|c| c.starts_with(line));
            return Ok((0, names.map(|c| format!("{c} ")).collect()));
        }
        Ok((pos, Vec::new()))
    }
}

impl Hinter for ChatHelper {
    type Hint = String;
}

impl Highlighter for ChatHelper {}

impl Validator for ChatHelper {
    /// A line ending in `\` continues on the next one.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if ctx.input().ends_with('\\') {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for ChatHelper {}

/// `<data dir>/hero_aibroker/chat_history` (`$XDG_DATA_HOME` or `~/.local/share` on Linux).
/// Prompts can be private: the directory is `0700` and the file `0600` when we create them.
fn history_path() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = dirs::data_dir()?.join("hero_aibroker");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let path = dir.join("chat_history");
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .ok()?;
    Some(path)
}

/// The text a user entered: continuation backslashes removed.
fn joined(input: &str) -> String {
    input.replace("\\\n", "\n").trim().to_owned()
}

pub async fn run(conn: &Conn, args: &ChatArgs, model: &str) -> anyhow::Result<()> {
    let style = Style::detect(args.plain);
    let rpc = conn.rpc();
    // Fails with "the broker is not running" (exit 2) before the first prompt.
    let models = conn.call(|| rpc.models_list()).await?;
    let mut names: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    names.push("auto".to_owned());
    names.sort();
    names.dedup();

    let config = Config::builder()
        .max_history_size(2000)?
        .history_ignore_dups(true)?
        .completion_type(CompletionType::List)
        .build();
    let mut ed: Editor<ChatHelper, FileHistory> = Editor::with_config(config)?;
    ed.set_helper(Some(ChatHelper { models: names }));
    let history = history_path();
    if let Some(path) = &history
        && std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
        && let Err(e) = ed.load_history(path)
    {
        eprintln!("warning: cannot read history {}: {e}", path.display());
    }

    let mut convo = Conversation::new(model.to_owned(), args.system.clone());
    let mut opts = AskOptions {
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        hide_reasoning: args.hide_reasoning,
        style,
    };
    let rest = conn.rest();
    println!(
        "{}",
        style.dim(&format!(
            "hero_aibroker chat · model {} · /help for commands · Ctrl-C cancels · Ctrl-D leaves",
            convo.model
        ))
    );
    let mut last_question: Option<String> = None;
    loop {
        let raw = format!("{}> ", convo.model);
        let styled = style.prompt(&raw);
        // On a blocking thread, so the runtime keeps serving the client's pooled connections.
        let (back, read) = tokio::task::spawn_blocking(move || {
            let read = ed.readline(&(raw.as_str(), styled.as_str()));
            (ed, read)
        })
        .await?;
        ed = back;
        let input = match read {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let text = joined(&input);
        if text.is_empty() {
            continue;
        }
        ed.add_history_entry(input.as_str())?;
        if let Some(path) = &history
            && let Err(e) = ed.append_history(path)
        {
            eprintln!("warning: cannot write history {}: {e}", path.display());
        }
        let question = if text.starts_with('/') {
            match slash(conn, &mut ed, &mut convo, &mut opts, &text).await {
                Step::Continue => continue,
                Step::Exit => break,
                Step::Ask(q) => q,
                Step::Retry => match last_question.clone() {
                    Some(q) => q,
                    None => {
                        println!("{}", style.error("nothing to retry yet"));
                        continue;
                    }
                },
            }
        } else {
            text
        };
        last_question = Some(question.clone());
        match answer::ask(conn, &rest, &convo, &question, &opts).await {
            Outcome::Answered(turn) => convo.record(turn),
            Outcome::Cancelled => {}
            Outcome::Failed(e) => println!("{}", style.error(&format!("error: {e}"))),
        }
    }
    Ok(())
}

enum Step {
    Continue,
    Exit,
    Retry,
    /// Send this text as a question (`//text` escapes a leading slash).
    Ask(String),
}

async fn slash(
    conn: &Conn,
    ed: &mut Editor<ChatHelper, FileHistory>,
    convo: &mut Conversation,
    opts: &mut AskOptions,
    text: &str,
) -> Step {
    let style = opts.style;
    if let Some(rest) = text.strip_prefix("//") {
        return Step::Ask(format!("/{rest}"));
    }
    let (cmd, arg) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let arg = arg.trim();
    let say = |s: &str| println!("{}", style.dim(s));
    match cmd {
        "/exit" | "/quit" => return Step::Exit,
        "/retry" => return Step::Retry,
        "/help" => {
            for (name, args, what) in COMMANDS {
                println!("  {:<22} {}", format!("{name} {args}"), style.dim(what));
            }
            say("  End a line with \\ to continue on the next; //text sends a leading slash.");
        }
        "/model" if arg.is_empty() => say(&format!("model: {}", convo.model)),
        "/model" => {
            let known = ed
                .helper()
                .is_some_and(|h| h.models.iter().any(|m| m == arg));
            // provider/model and aliases are valid too: warn, don't refuse.
            if !known && !arg.contains('/') {
                say(&format!(
                    "note: {arg} is not in the model list; trying it anyway"
                ));
            }
            convo.model = arg.to_owned();
            say(&format!("model: {arg}"));
        }
        "/models" => match crate::ops::models(conn, false).await {
            Ok(table) => println!("{table}"),
            Err(e) => println!("{}", style.error(&format!("error: {e}"))),
        },
        "/tools" if arg.is_empty() => match crate::tools::list(conn, false).await {
            Ok(table) => println!("{table}"),
            Err(e) => println!("{}", style.error(&format!("error: {e}"))),
        },
        "/tools" => {
            let (name, args) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            let args = args.trim();
            match crate::tools::call_quiet(conn, name, (!args.is_empty()).then_some(args)).await {
                Ok(text) => println!("{text}"),
                Err(e) => println!("{}", style.error(&format!("error: {e}"))),
            }
        }
        "/system" => {
            convo.system = (!arg.is_empty()).then(|| arg.to_owned());
            say(if arg.is_empty() {
                "system message cleared"
            } else {
                "system message set"
            });
        }
        "/clear" => {
            convo.clear();
            say("new conversation");
        }
        "/save" if arg.is_empty() => println!("{}", style.error("usage: /save FILE")),
        "/save" => {
            let path = expand_home(arg);
            match convo.save(&path) {
                Ok(kind) => say(&format!(
                    "saved {} as {kind} to {}",
                    plural(convo.turns.len() as u64, "turn"),
                    path.display()
                )),
                Err(e) => println!("{}", style.error(&format!("error: {e}"))),
            }
        }
        "/usage" => {
            let t = &convo.totals;
            println!(
                "{} · {} tokens in · {} tokens out · ${:.6}",
                plural(t.requests, "request"),
                t.prompt_tokens,
                t.completion_tokens,
                t.cost
            );
        }
        "/reasoning" => match arg {
            "on" => opts.hide_reasoning = false,
            "off" => opts.hide_reasoning = true,
            _ => say(&format!(
                "reasoning is {} (/reasoning on|off)",
                if opts.hide_reasoning {
                    "folded"
                } else {
                    "shown"
                }
            )),
        },
        other => println!(
            "{}",
            style.error(&format!("unknown command {other} (/help lists them)"))
        ),
    }
    Step::Continue
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_are_joined() {
        assert_eq!(
            joined("line one\\\nline two\\\n  three "),
            "line one\nline two\n  three"
        );
        assert_eq!(joined("  hi  "), "hi");
    }
}
