//! Logs of every hero_aibroker process: `tracing` to stderr, filtered by `RUST_LOG`.

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
