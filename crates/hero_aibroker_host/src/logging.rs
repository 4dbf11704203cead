//! Logs of every hero_aibroker process (`tracing` to stderr, filtered by `RUST_LOG`) and the
//! shape of every service's `main` ([`run_main`]).

/// Library log targets that print whole requests or responses at `trace` (jsonrpsee logs every
/// RPC answer, `keys.create`'s secret included). They are capped at `debug` whatever
/// `RUST_LOG` says, so no log level writes a secret.
const PAYLOAD_TARGETS: &[&str] = &[
    "jsonrpsee-server",
    "jsonrpsee-core",
    "jsonrpsee-client",
    "jsonrpsee_core",
    "jsonrpsee_server",
];

/// The log filter: `RUST_LOG` or `default_level`, with [`PAYLOAD_TARGETS`] capped.
pub fn filter(default_level: &str) -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    for target in PAYLOAD_TARGETS {
        if let Ok(d) = format!("{target}=debug").parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Logs to stderr: `RUST_LOG` or `default_level` (see [`filter`]), colour codes only for a
/// terminal (never into log files). Call once, first thing in `main`.
pub fn init_logging(default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(default_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Makes the process non-dumpable: no core file with its secrets in it, and other processes of
/// the same user can no longer read its memory or environment through `/proc/<pid>/` or attach
/// a debugger (`PR_SET_DUMPABLE` 0). Returns whether it took.
pub fn harden() -> bool {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    match set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot make the process non-dumpable: {e}");
            false
        }
    }
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`). Where the kernel
/// backs every large anonymous mapping with 2 MiB pages (`transparent_hugepage=always`, common),
/// each arena chunk the allocator touches becomes 2 MiB resident: the broker measured 43–54 MiB
/// peak RSS under load with them and 30–31 MiB without, at the same CPU per request
/// (`docs/performance.md`). Returns whether it took.
pub fn no_huge_pages() -> bool {
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("cannot turn transparent huge pages off: {e}");
            false
        }
    }
}

/// The body of every service binary's `main`: logs to stderr (see [`init_logging`]), makes the
/// process non-dumpable ([`harden`]) and small ([`no_huge_pages`]), runs `run`, and on error
/// prints one line,
/// `<name>: <error and its causes>`, and exits 1.
pub fn run_main<E: std::fmt::Display>(
    name: &str,
    default_level: &str,
    run: impl FnOnce() -> Result<(), E>,
) -> std::process::ExitCode {
    init_logging(default_level);
    harden();
    no_huge_pages();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_huge_pages_sets_the_process_flag() {
        assert!(super::no_huge_pages());
        assert!(rustix::thread::transparent_huge_pages_are_disabled().expect("prctl"));
    }

    #[test]
    fn harden_makes_the_process_non_dumpable() {
        use rustix::process::{DumpableBehavior, dumpable_behavior};
        assert!(super::harden());
        assert_eq!(
            dumpable_behavior().expect("prctl"),
            DumpableBehavior::NotDumpable
        );
    }
}
