//! The interactive chat in a real pseudo-terminal (rexpect) against a real broker and the fake
//! provider: streamed answers and the status line, `/model` with Tab completion, Ctrl-C
//! cancelling an answer in progress (the fake provider sees the disconnect), `/save`, multi-line
//! input, reasoning, and the line history surviving a restart.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Broker;
use hero_aibroker_testkit::{Behavior, CHAT_TEXT, Rule};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};

/// `hero_aibroker chat -m MODEL` in a pseudo-terminal, its history under `data`.
fn chat(b: &Broker, model: &str, data: &Path) -> PtySession {
    // A terminal has a size; a bare pty is 0×0. `sh` sets one, then becomes the chat.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("stty cols 120 rows 40 && exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("hero_aibroker"));
    cmd.env_remove("HERO_SOCKET_DIR")
        .env_remove("HERO_AIBROKER_API_KEY")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .env("XDG_DATA_HOME", data)
        .arg("--socket-dir")
        .arg(b.sockets())
        .args(["--admin-token", common::ADMIN])
        .args(["chat", "-m", model]);
    let options = Options::new()
        .timeout_ms(Some(15_000))
        // Raw output: rexpect's escape stripping swallows text after rustyline's `ESC[?2026l`.
        // Every string matched below is contiguous in the raw stream anyway.
        .strip_ansi_escape_codes(false);
    let mut p = spawn_with_options(cmd, options).expect("spawn hero_aibroker chat in a pty");
    p.exp_string("/help for commands").expect("banner");
    p
}

/// Waits for the prompt `MODEL> ` (after it is drawn, the editor reads keys).
fn prompt(p: &mut PtySession, model: &str) {
    p.exp_string(&format!("{model}> "))
        .unwrap_or_else(|e| panic!("no {model}> prompt: {e}"));
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !check() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn streams_switches_model_cancels_saves_and_keeps_history() {
    let b = Broker::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut p = chat(&b, "solo", data.path());
    prompt(&mut p, "solo");

    // A streamed answer, then the status line: model and provider, tokens, cost, times.
    p.send_line("hello there").expect("send");
    p.exp_string(CHAT_TEXT).expect("the answer");
    // rexpect decodes the pty byte by byte: match the ASCII parts around the `·` separators.
    p.exp_string("up-solo via fake").expect("status line");
    p.exp_regex(
        r"14 in / 30 out .{1,3} \$0\.000052 .{1,3} first token \d+\.\d\ds .{1,3} \d+\.\d\ds",
    )
    .expect("tokens, cost and times");
    prompt(&mut p, "solo");
    assert_eq!(b.fake.count(None, Some("up-solo")), 1);

    // /model with Tab completion of the name.
    p.send("/model ch\t").expect("send");
    p.flush().expect("flush");
    p.exp_string("/model chat").expect("completed name");
    p.send_line("").expect("enter");
    p.exp_string("model: chat").expect("switched");
    prompt(&mut p, "chat");

    // Ctrl-C during a slow stream cancels the request; the prompt comes back.
    b.fake
        .script(Rule::any(Behavior::SlowChunks(Duration::from_millis(400))));
    p.send_line("count to a thousand").expect("send");
    p.exp_string("I'm").expect("first words of the answer");
    p.send_control('c').expect("ctrl-c");
    p.exp_string("[cancelled").expect("cancel notice");
    prompt(&mut p, "chat");
    eventually("the fake provider sees the client go away", || {
        b.fake.cancelled() == 1
    });
    b.fake.clear_rules();

    // Multi-line input with a trailing backslash; it is one message.
    p.send_line("first line \\").expect("send");
    p.exp_string("first line \\").expect("echo");
    p.send_line("second line").expect("send");
    p.exp_string(" via fake ").expect("answered");
    prompt(&mut p, "chat");
    let last = b.fake.calls().last().expect("a call").body.clone();
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(
        messages.last().expect("last")["content"],
        "first line \nsecond line"
    );
    // The cancelled exchange was not kept: user, assistant, user.
    assert_eq!(messages.len(), 3, "{last}");

    // /usage and /save.
    p.send_line("/usage").expect("send");
    p.exp_string("2 requests ").expect("usage line");
    prompt(&mut p, "chat");
    let md = data.path().join("conversation.md");
    p.send_line(&format!("/save {}", md.display()))
        .expect("send");
    p.exp_string("saved 2 turns as markdown").expect("saved");
    prompt(&mut p, "chat");
    let json = data.path().join("conversation.json");
    p.send_line(&format!("/save {}", json.display()))
        .expect("send");
    p.exp_string("saved 2 turns as JSON").expect("saved");
    prompt(&mut p, "chat");
    let text = std::fs::read_to_string(&md).expect("markdown written");
    assert!(text.contains("## You\n\nhello there\n"), "{text}");
    assert!(
        text.contains(&format!("## Assistant (up-solo via fake)\n\n{CHAT_TEXT}")),
        "{text}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(saved["messages"][0]["content"], "hello there");
    assert_eq!(saved["messages"][1]["content"], CHAT_TEXT);
    assert_eq!(saved["totals"]["requests"], 2);

    // Ctrl-D leaves.
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");

    // History survives: a new chat recalls the last line with the Up arrow.
    let history = std::fs::read_to_string(data.path().join("hero_aibroker/chat_history"))
        .expect("history file");
    assert!(history.contains("hello there"), "{history}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("hero_aibroker/chat_history"))
        .expect("history")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the history is private");
    let mut p = chat(&b, "solo", data.path());
    prompt(&mut p, "solo");
    p.send("\x1b[A").expect("up arrow");
    p.flush().expect("flush");
    p.exp_string("/save").expect("last line recalled");
    p.send_control('c').expect("clear the line");
    prompt(&mut p, "solo");
    p.send_line("/exit").expect("exit");
    p.exp_eof().expect("exits");
}

#[test]
fn reasoning_is_shown_or_folded_and_errors_keep_the_chat() {
    let b = Broker::start();
    let data = tempfile::tempdir().expect("tempdir");
    b.fake.script(Rule::any(Behavior::Reasoning));
    let mut p = chat(&b, "solo", data.path());
    prompt(&mut p, "solo");
    p.send_line("capital of France?").expect("send");
    p.exp_string("thinking: The user asks for the capital of France.")
        .expect("reasoning shown");
    p.exp_string("Paris").expect("answer");
    p.exp_string(" via fake ").expect("status");
    prompt(&mut p, "solo");

    p.send_line("/reasoning off").expect("send");
    prompt(&mut p, "solo");
    p.send_line("again?").expect("send");
    p.exp_string("reasoning hidden (").expect("folded");
    prompt(&mut p, "solo");

    // A spinner while nothing has arrived; /system, /clear and /help.
    b.fake.clear_rules();
    b.fake
        .script(Rule::any(Behavior::DelayFirstByte(Duration::from_millis(600))).times(1));
    p.send_line("/system Answer in French").expect("send");
    p.exp_string("system message set").expect("set");
    prompt(&mut p, "solo");
    p.send_line("/clear").expect("send");
    p.exp_string("new conversation").expect("cleared");
    prompt(&mut p, "solo");
    p.send_line("bonjour").expect("send");
    p.exp_string("waiting for solo").expect("spinner");
    p.exp_string(" via fake ").expect("answered");
    prompt(&mut p, "solo");
    let body = b.fake.calls().last().expect("a call").body.clone();
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["system", "user"], "{body}");
    assert_eq!(body["messages"][0]["content"], "Answer in French");
    assert_eq!(body["stream_options"]["include_usage"], true);
    p.send_line("/help").expect("send");
    p.exp_string("/save FILE").expect("help lists /save");
    prompt(&mut p, "solo");

    // An unknown model is an error line, and the chat goes on.
    p.send_line("/model no-such-model").expect("send");
    prompt(&mut p, "no-such-model");
    p.send_line("hi").expect("send");
    p.exp_string("error: ").expect("error line");
    prompt(&mut p, "no-such-model");
    p.send_line("/nope").expect("send");
    p.exp_string("unknown command /nope")
        .expect("unknown command");
    prompt(&mut p, "no-such-model");
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn tools_lists_and_calls_the_mcp_tools() {
    let b = Broker::start();
    let _agg = b.aggregator();
    let data = tempfile::tempdir().expect("tempdir");
    let mut p = chat(&b, "solo", data.path());
    prompt(&mut p, "solo");
    p.send_line("/tools").expect("send");
    p.exp_string("whoami").expect("the tools table");
    prompt(&mut p, "solo");
    p.send_line("/tools ping").expect("send");
    p.exp_string("pong").expect("the tool's answer");
    prompt(&mut p, "solo");
    p.send_line(r#"/tools sleep {"seconds": -1}"#)
        .expect("send");
    p.exp_string("reported an error")
        .expect("a tool error, and the chat goes on");
    prompt(&mut p, "solo");
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
    assert!(
        b.fake.calls().is_empty(),
        "tool calls never reach the model"
    );
}
