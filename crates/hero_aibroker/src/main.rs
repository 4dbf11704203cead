//! `hero_aibroker`: the broker's command line. Parses arguments, runs one command against the
//! broker's sockets, and maps failures to one line on stderr: exit 2 when the broker is not
//! running, 1 for anything else.

mod admin;
mod answer;
mod chat;
mod cli;
mod conn;
mod convo;
mod doctor;
mod format;
mod mothers;
mod ops;
mod render;
mod repl;
mod tools;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command, ToolsCommand};
use conn::{Conn, ServerDown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ServerDown>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            // One line: the outermost message and its causes, never a backtrace.
            let line = e
                .chain()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let conn = Conn::new(&cli.global);
    let json = cli.global.json;
    let out = match &cli.command {
        Command::Health => ops::health(&conn, json).await?,
        Command::Info => ops::info(&conn, json).await?,
        Command::Models => ops::models(&conn, json).await?,
        Command::Providers { cmd: None } => ops::providers(&conn, json).await?,
        Command::Providers { cmd: Some(cmd) } => admin::providers(&conn, cmd, json).await?,
        Command::Doctor => return doctor::run(&conn, json).await,
        Command::Tools { cmd: None } => tools::list(&conn, json).await?,
        Command::Tools {
            cmd: Some(ToolsCommand::Call { name, args }),
        } => return tools::call(&conn, name, args.as_deref(), json).await,
        Command::Tools {
            cmd: Some(ToolsCommand::Servers),
        } => tools::servers(&conn, json).await?,
        Command::Tools {
            cmd:
                Some(ToolsCommand::Calls {
                    limit,
                    server,
                    tool,
                }),
        } => tools::calls(&conn, *limit, server.clone(), tool.clone(), json).await?,
        Command::Usage(args) => ops::usage(&conn, args, json).await?,
        Command::Logs(args) if args.follow => return ops::follow(&conn, args, json).await,
        Command::Logs(args) => ops::logs(&conn, args, json).await?,
        Command::Explain(args) => ops::explain(&conn, args, json).await?,
        Command::Keys(cmd) => admin::keys(&conn, cmd, json).await?,
        Command::Priority(cmd) => admin::priority(&conn, cmd, json).await?,
        Command::Mothers(cmd) => mothers::run(&conn, cmd, json).await?,
        Command::Reload => admin::reload(&conn, json).await?,
        Command::Chat(args) => return chat::run(&conn, args, &cli.global.model, json).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "hero_aibroker",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
    };
    println!("{out}");
    Ok(())
}
