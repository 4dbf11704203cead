//! Logs of every hero_aibroker process (`tracing` to stderr, filtered by `RUST_LOG`) and the
//! shape of every service's `main` ([`run_main`]).

/// Logs to stderr: `RUST_LOG` or `default_level`, colour codes only for a terminal (never into
/// log files). Call once, first thing in `main`.
pub fn init_logging(default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The body of every service binary's `main`: logs to stderr (see [`init_logging`]), runs
/// `run`, and on error prints one line, `<name>: <error and its causes>`, and exits 1.
pub fn run_main<E: std::fmt::Display>(
    name: &str,
    default_level: &str,
    run: impl FnOnce() -> Result<(), E>,
) -> std::process::ExitCode {
    init_logging(default_level);
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
