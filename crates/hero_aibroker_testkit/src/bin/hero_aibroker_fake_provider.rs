//! `hero_aibroker_fake_provider`: the fake OpenAI provider as a process, for the benchmark
//! and the Python SDK tests.
//!
//! Prints `listening http://HOST:PORT/v1` on stdout once it accepts connections and exits 0
//! on SIGTERM/SIGINT. Calls are not recorded (nobody can read them from outside), so memory
//! stays flat under load.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hero_aibroker_testkit::{Behavior, FakeProvider, Options, Rule};
use tokio::net::TcpListener;

/// A scripted fake OpenAI-compatible provider.
#[derive(Debug, Parser)]
#[command(name = "hero_aibroker_fake_provider", version)]
struct Args {
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback address to bind (anything else is refused: this server has no auth).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Pause before each stream event after the first, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// An upstream model id that acts as a tool-using agent (calls a scripted tool, then
    /// answers with its result); repeatable.
    #[arg(long)]
    agent_model: Vec<String>,
    /// `NAME=JSON`: a tool the agent models call when it is offered, with these arguments;
    /// repeatable, the first one offered wins. Default: `get_weather={"location":"Paris"}`.
    #[arg(long)]
    agent_call: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    hero_aibroker_host::logging::run_main("hero_aibroker_fake_provider", "warn", || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(serve(args))
    })
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // Installed before anything else: a signal during start-up still stops cleanly.
    let shutdown = hero_aibroker_host::shutdown_signal();
    let host = loopback(&args.host)?;
    let listener = TcpListener::bind((host, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let options = Options {
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        record_calls: false,
    };
    let provider = FakeProvider::serve(listener, options).context("starting the fake provider")?;
    let mut script = Vec::new();
    for call in &args.agent_call {
        let (name, json) = call
            .split_once('=')
            .with_context(|| format!("--agent-call {call:?} is not NAME=JSON"))?;
        serde_json::from_str::<serde_json::Value>(json)
            .with_context(|| format!("--agent-call {name}: the arguments are not JSON"))?;
        script.push((name.to_owned(), json.to_owned()));
    }
    if script.is_empty() {
        script.push((
            "get_weather".to_owned(),
            r#"{"location":"Paris"}"#.to_owned(),
        ));
    }
    for model in &args.agent_model {
        provider.script(Rule::for_model(model, Behavior::Agent(script.clone())));
    }

    // The one line a parent process waits for; flush because stdout is a pipe there.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {}", provider.base_url()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    shutdown.await;
    drop(provider);
    Ok(())
}

/// Parse `--host`, accepting only loopback addresses.
fn loopback(host: &str) -> anyhow::Result<IpAddr> {
    let ip = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .with_context(|| format!("--host {host:?} is not an IP address"))?
    };
    if !ip.is_loopback() {
        bail!("--host {host} is not a loopback address; the fake provider only serves locally");
    }
    Ok(ip)
}
