//! One stdio MCP server as a child process: started from a vector of arguments (never a
//! shell) in its own process group, with an environment cleared to a short allowlist plus
//! what its config declares; its stderr forwarded to our log; its stdout capped per line; and
//! stopped by signalling the whole group, then reaped.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hero_aibroker_host::env::Env;
use indexmap::IndexMap;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};

/// The only variables a child inherits from us (RELIABILITY rule 13): never provider keys or
/// the admin token. `HERO_SOCKET_DIR` is not a secret: the aggregator sets it to its own socket
/// root, so bundled servers such as `mcp_broker` find the broker's sockets.
pub const ENV_ALLOWLIST: [&str; 7] = [
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    "HERO_SOCKET_DIR",
];

/// Longest stderr line forwarded to the log; the rest of the line is dropped.
const STDERR_LINE_CAP: u64 = 4096;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Server name, for logs.
    pub name: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    pub env: &'a IndexMap<String, String>,
    pub cwd: Option<&'a std::path::Path>,
}

/// A running child and its process group.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    pid: u32,
    exited: Option<ExitStatus>,
}

/// The child's environment: the allowlisted variables from `parent`, then the configured ones.
pub fn child_env(parent: &Env, configured: &IndexMap<String, String>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = ENV_ALLOWLIST
        .iter()
        .filter_map(|k| parent.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    for (k, v) in configured {
        vars.retain(|(name, _)| name != k);
        vars.push((k.clone(), v.clone()));
    }
    vars
}

/// The program to run for a configured `command`. A bare name (no `/`) of an executable file
/// next to our own binary (`exe_dir`) runs that file, so `"command": "mcp_ping"` finds the
/// bundled servers wherever they were installed or built; any other bare name is looked up in
/// `PATH` when spawned, and a path is used as it is.
pub fn resolve_command(command: &str, exe_dir: Option<&Path>) -> PathBuf {
    if !command.contains('/')
        && !command.is_empty()
        && let Some(dir) = exe_dir
    {
        let bundled = dir.join(command);
        if is_executable_file(&bundled) {
            return bundled;
        }
    }
    PathBuf::from(command)
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory of the running binary, where the bundled servers sit.
fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Starts the child. The error is the OS error of `spawn` (e.g. "No such file or directory").
pub fn spawn(
    spec: &Spec<'_>,
    parent: &Env,
    max_line: usize,
) -> io::Result<(Child, CappedLines<ChildStdout>, ChildStdin, Arc<AtomicBool>)> {
    let mut cmd = Command::new(resolve_command(spec.command, exe_dir().as_deref()));
    cmd.args(spec.args)
        .env_clear()
        .envs(child_env(parent, spec.env))
        // Its own group, so stopping it also stops whatever it started (npx → node, ...).
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A safety net if a `Child` is ever dropped without `stop`: at least the leader dies.
        .kill_on_drop(true);
    if let Some(dir) = spec.cwd {
        cmd.current_dir(dir);
    }
    let mut inner = cmd.spawn()?;
    let pid = inner
        .id()
        .ok_or_else(|| io::Error::other("the child exited before its pid was read"))?;
    let stdout = inner
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("child stdout missing"))?;
    let stdin = inner
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("child stdin missing"))?;
    if let Some(stderr) = inner.stderr.take() {
        tokio::spawn(forward_stderr(spec.name.to_owned(), stderr));
    }
    let overflow = Arc::new(AtomicBool::new(false));
    let stdout = CappedLines::new(stdout, max_line, overflow.clone());
    Ok((
        Child {
            inner,
            pid,
            exited: None,
        },
        stdout,
        stdin,
        overflow,
    ))
}

impl Child {
    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the group leader to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = self.inner.wait().await?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Stops the whole group: SIGTERM, up to `grace` to exit, then SIGKILL; reaps the leader.
    /// Also called after the leader died on its own, to take down anything it left running.
    pub async fn stop(mut self, grace: Duration) {
        let group = i32::try_from(self.pid).ok().and_then(Pid::from_raw);
        let signal = |sig: Signal| {
            if let Some(group) = group {
                // ESRCH (group already gone) is the normal case after a crash.
                let _ = kill_process_group(group, sig);
            }
        };
        if self.exited.is_none() {
            signal(Signal::TERM);
            if tokio::time::timeout(grace, self.wait()).await.is_ok() {
                signal(Signal::KILL);
                return;
            }
        }
        signal(Signal::KILL);
        if let Err(e) = self.wait().await {
            tracing::warn!(pid = self.pid, "cannot reap MCP child: {e}");
        }
    }
}

/// Forwards the child's stderr to our log, one event per line, each cut at a size cap.
async fn forward_stderr(name: String, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(STDERR_LINE_CAP)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            // Over the cap: drop the rest of this line.
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).await.is_err() {
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(server = %name, "stderr: {text}");
        }
    }
}

/// Reads the child's stdout, failing the stream once a line grows past `max` bytes: the MCP
/// transport then closes and the supervisor kills and restarts the child, instead of
/// buffering an endless line.
#[derive(Debug)]
pub struct CappedLines<R> {
    inner: R,
    max: usize,
    current: usize,
    overflow: Arc<AtomicBool>,
}

impl<R> CappedLines<R> {
    /// Wraps `inner`; `overflow` is set when the cap is hit.
    pub fn new(inner: R, max: usize, overflow: Arc<AtomicBool>) -> Self {
        CappedLines {
            inner,
            max,
            current: 0,
            overflow,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CappedLines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.overflow.load(Ordering::Relaxed) {
            return Poll::Ready(Err(line_too_long(self.max)));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let mut cut = None;
                for (i, &b) in buf.filled()[before..].iter().enumerate() {
                    if b == b'\n' {
                        this.current = 0;
                    } else {
                        this.current += 1;
                        if this.current > this.max {
                            cut = Some(before + i);
                            break;
                        }
                    }
                }
                if let Some(cut) = cut {
                    // Hand over what came before the overflow (never the end of the long
                    // line), and fail the next read: a read that fails must not fill.
                    this.overflow.store(true, Ordering::Relaxed);
                    buf.set_filled(cut);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

fn line_too_long(max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("sent a line longer than {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_the_allowlist_plus_configured() {
        let parent = Env::from_pairs([
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("ADMIN_TOKEN", "t"),
            ("LANG", "C"),
        ]);
        let configured = IndexMap::from([
            ("HOME".to_owned(), "/srv".to_owned()),
            ("GREETING".to_owned(), "hi".to_owned()),
        ]);
        let env = child_env(&parent, &configured);
        assert_eq!(
            env,
            [
                ("PATH".to_owned(), "/bin".to_owned()),
                ("HOME".to_owned(), "/srv".to_owned()),
                ("GREETING".to_owned(), "hi".to_owned()),
            ]
        );
    }

    #[test]
    fn bare_names_prefer_an_executable_next_to_our_binary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let bundled = dir.path().join("mcp_bundled");
        std::fs::write(&bundled, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&bundled, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let plain = dir.path().join("notes");
        std::fs::write(&plain, "not a program").expect("write");
        std::fs::create_dir(dir.path().join("subdir")).expect("mkdir");
        let here = Some(dir.path());
        assert_eq!(resolve_command("mcp_bundled", here), bundled);
        // Not executable, a directory, or absent: left to the PATH lookup.
        assert_eq!(resolve_command("notes", here), PathBuf::from("notes"));
        assert_eq!(resolve_command("subdir", here), PathBuf::from("subdir"));
        assert_eq!(resolve_command("npx", here), PathBuf::from("npx"));
        assert_eq!(
            resolve_command("mcp_bundled", None),
            PathBuf::from("mcp_bundled")
        );
        // A path is never redirected.
        assert_eq!(
            resolve_command("./mcp_bundled", here),
            PathBuf::from("./mcp_bundled")
        );
        assert_eq!(
            resolve_command("/usr/bin/env", here),
            PathBuf::from("/usr/bin/env")
        );
    }

    #[tokio::test]
    async fn capped_lines_fail_on_a_long_line_only() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ok = CappedLines::new(&b"abc\ndefg\n"[..], 4, flag.clone());
        let mut out = String::new();
        ok.read_to_string(&mut out)
            .await
            .expect("lines within the cap");
        assert_eq!(out, "abc\ndefg\n");
        assert!(!flag.load(Ordering::Relaxed));

        let mut long = CappedLines::new(&b"abc\ndefgh\n"[..], 4, flag.clone());
        let err = long
            .read_to_string(&mut String::new())
            .await
            .expect_err("over the cap");
        assert_eq!(err.to_string(), "sent a line longer than 4 bytes");
        assert!(flag.load(Ordering::Relaxed));
    }
}
