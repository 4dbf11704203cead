//! Server settings from the environment (through [`Env`]), each with a documented default.
//! The binary's flags override the few that operators set per process.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;
use hero_aibroker_host::env::Env;
use hero_aibroker_sdk::paths;

/// How the router orders the backends and keys of a model (see docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fill-first: lowest priority number, then price; keys in their configured order, the
    /// next one only when the first is cooling down or fails.
    Priority,
    /// Spread requests evenly over every backend and key of the best priority level.
    RoundRobin,
    /// Fewest requests in flight on the key first.
    LeastBusy,
    /// Lowest measured time to first byte (EWMA), choosing between two candidates at a time.
    Latency,
    /// Lowest price first.
    Cheapest,
    /// Highest tier, then measured success rate, then latency.
    Best,
}

impl Strategy {
    /// Every strategy, in documentation order.
    pub const ALL: [Strategy; 6] = [
        Strategy::Priority,
        Strategy::RoundRobin,
        Strategy::LeastBusy,
        Strategy::Latency,
        Strategy::Cheapest,
        Strategy::Best,
    ];

    /// The name used in config, traces and docs.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastBusy => "least_busy",
            Strategy::Latency => "latency",
            Strategy::Cheapest => "cheapest",
            Strategy::Best => "best",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase().replace('-', "_");
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown strategy {s:?} (expected priority, round_robin, least_busy, latency, cheapest or best)"
                )
            })
    }
}

/// Limits per client (the peer), whatever key it uses; 0 turns one off.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientLimits {
    /// Requests per minute (`CLIENT_RPM`, default off).
    pub rpm: u64,
    /// Requests in flight at once (`CLIENT_MAX_CONCURRENT`, default off).
    pub max_concurrent: u64,
    /// Invalid-key attempts per minute before the client is answered 429 until the minute
    /// ends (`AUTH_FAILURES_PER_MINUTE`, default 20).
    pub auth_failures_per_minute: u64,
}

/// Everything the server needs besides the models file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Root of the socket tree; the broker's sockets are in `<root>/hero_aibroker/`.
    pub socket_root: PathBuf,
    pub models_config: PathBuf,
    /// Strategy of models without their own `strategy:` (`BACKEND_STRATEGY`).
    pub strategy: Strategy,
    /// What `auto` picks (`ROUTING_STRATEGY`: `cheapest` or `best`); `autocheapest` /
    /// `autobest` force one.
    pub auto_strategy: Strategy,
    /// One line per deprecated setting in use (logged at start).
    pub deprecations: Vec<String>,
    /// How long a request may wait for a cooling key when every candidate is cooling down
    /// (`CAPACITY_WAIT_MS`; a request's `x-aibroker-max-wait-ms` header overrides it).
    pub capacity_wait: Duration,
    /// `HTTP-Referer` sent to OpenRouter when the client sent none.
    pub openrouter_referer: Option<String>,
    /// `X-Title` sent to OpenRouter when the client sent none.
    pub openrouter_title: Option<String>,
    pub connect_timeout: Duration,
    /// From sending the request to the first byte of the body (first SSE event for streams).
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a stream or body.
    pub idle_timeout: Duration,
    /// One deadline for a request until its first byte reaches the client, retries included.
    pub request_deadline: Duration,
    /// Longest a committed stream may run, from the request's start (`STREAM_MAX_DURATION_MS`;
    /// unset or 0: no limit). Past it the stream ends with an error event.
    pub stream_max_duration: Option<Duration>,
    /// Largest upstream reply body buffered (`UPSTREAM_MAX_BODY_BYTES`, default 64 MiB).
    pub upstream_max_body_bytes: usize,
    /// Largest upstream SSE line or event (`UPSTREAM_MAX_EVENT_BYTES`, default 16 MiB).
    pub upstream_max_event_bytes: usize,
    /// Upstream attempts per request, fallbacks included.
    pub max_attempts: u32,
    /// Longest `Retry-After` the broker waits before retrying the same candidate.
    pub retry_after_cap: Duration,
    /// Largest request body (`MAX_BODY_BYTES`, default 10 MiB).
    pub max_body_bytes: usize,
    /// Largest audio upload (`/v1/audio/transcriptions`, `/translations`); larger is 413.
    pub audio_max_bytes: usize,
    /// Longest a client may take to send a request body (`BODY_READ_TIMEOUT_MS`, default 30 s).
    pub body_read_timeout: Duration,
    /// Connections open at once per socket (`MAX_CONNECTIONS`, default 4096); the listener
    /// stops accepting at the cap until one closes.
    pub max_connections: usize,
    /// Per-client limits (`CLIENT_RPM`, `CLIENT_MAX_CONCURRENT`, `AUTH_FAILURES_PER_MINUTE`).
    pub client_limits: ClientLimits,
    /// Requests handled at once; beyond it the broker answers 503 at once.
    pub max_concurrent: usize,
    /// How long SIGTERM waits for in-flight requests and streams.
    pub drain_timeout: Duration,
    /// Longest a client may take to send a request's headers, and longest a keep-alive
    /// connection may sit idle (`HEADER_READ_TIMEOUT_MS`, default 30 s; 0 turns it off).
    pub header_read_timeout: Option<Duration>,
    /// Largest request head, start line and headers (`MAX_HEADER_BYTES`, default 64 KiB).
    pub max_header_bytes: usize,
    /// `sqlite:` URL or path of the store.
    pub database_url: String,
    /// REST requests need a broker API key even when none exists yet.
    pub require_api_key: bool,
    /// When set, mutating JSON-RPC methods need it as a Bearer token.
    pub admin_token: Option<crate::secret::Secret>,
    /// The token child brokers present to this one over TCP (`HERO_AIBROKER_CASCADE_TOKEN`).
    pub cascade_token: Option<crate::secret::Secret>,
    /// The optional TCP listener (`--address` and `--port`): REST and `/rpc`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--mother`: this broker serves child brokers (self-identification only).
    pub is_mother: bool,
    /// Most brokers a cascaded request may pass through (`CASCADE_MAX_HOPS`, default 4).
    pub cascade_max_hops: usize,
    /// How often each mother's model list is refreshed (`CASCADE_REFRESH_SECS`, default 60).
    pub cascade_refresh: Duration,
    /// How often the broker asks the database for the configuration version (`CONFIG_POLL_MS`,
    /// default 1000): a key revoked, a priority set or a mother added on another broker of a
    /// shared database applies here within this period. Also the database health check.
    pub config_poll: Duration,
    /// Every JSON-RPC method but `health` needs the admin token too (`RPC_READS_NEED_TOKEN`).
    pub rpc_reads_need_token: bool,
    /// Ledger rows waiting in memory at most (what a `kill -9` can lose, with one batch).
    pub ledger_queue: usize,
    /// Ledger rows per commit at most.
    pub ledger_batch: usize,
    /// Ledger rows older than this many days are pruned in the background
    /// (`LEDGER_RETENTION_DAYS`; 0, the default, keeps them forever).
    pub ledger_retention_days: u32,
    /// While the ledger cannot write, requests of keys with a budget are refused
    /// (`LEDGER_FAIL_CLOSED`, default false: they are served and their spend kept in memory).
    pub ledger_fail_closed: bool,
    /// Consecutive failures that open a backend's circuit.
    pub circuit_failures: u32,
    /// How long an open circuit keeps traffic away before one probe.
    pub circuit_open: Duration,
    /// How often the OpenRouter model catalog is refreshed (`OPENROUTER_CATALOG_INTERVAL`,
    /// seconds); zero turns the live catalog off. Off anyway without an OpenRouter key.
    pub catalog_interval: Duration,
    /// Threads of the async runtime that serves every request (`WORKER_THREADS`; default half
    /// the cores this process may use, at least one). The broker shares its host with its
    /// clients and its ledger thread; see `docs/performance.md` for what one and two threads
    /// measured on two cores.
    pub worker_threads: usize,
}

/// Half the cores this process may use, at least one: requests are I/O-bound, and on a small
/// host a second runtime thread mostly wakes up, steals and parks again (on two shared cores,
/// one thread served 14% more JSON requests and 43% more streams per second than two, with a
/// quarter to a third less CPU each; `docs/performance.md`).
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Settings {
    /// Reads settings from `env`, falling back to defaults.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let home = env.get("HOME").unwrap_or("/root");
        let (strategy, auto_strategy, deprecations) = strategies(env)?;
        Ok(Settings {
            socket_root: paths::socket_root(None, env.get("HERO_SOCKET_DIR"), Some(home)),
            models_config: env
                .get("MODELS_CONFIG_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("modelsconfig.yml")),
            strategy,
            auto_strategy,
            deprecations,
            capacity_wait: millis(env, "CAPACITY_WAIT_MS", 0)?,
            openrouter_referer: env.get("OPENROUTER_HTTP_REFERER").map(str::to_owned),
            openrouter_title: env.get("OPENROUTER_X_TITLE").map(str::to_owned),
            connect_timeout: millis(env, "UPSTREAM_CONNECT_TIMEOUT_MS", 5_000)?,
            first_byte_timeout: millis(env, "UPSTREAM_FIRST_BYTE_TIMEOUT_MS", 60_000)?,
            idle_timeout: millis(env, "UPSTREAM_IDLE_TIMEOUT_MS", 120_000)?,
            request_deadline: millis(env, "REQUEST_DEADLINE_MS", 180_000)?,
            stream_max_duration: Some(millis(env, "STREAM_MAX_DURATION_MS", 0)?)
                .filter(|d| !d.is_zero()),
            upstream_max_body_bytes: parse(env, "UPSTREAM_MAX_BODY_BYTES", 64 * 1024 * 1024usize)?
                .max(64),
            upstream_max_event_bytes: parse(
                env,
                "UPSTREAM_MAX_EVENT_BYTES",
                hero_aibroker_sdk::sse::MAX_LINE,
            )?
            .max(64),
            max_attempts: parse(env, "MAX_ATTEMPTS", 4u32)?.max(1),
            retry_after_cap: millis(env, "RETRY_AFTER_CAP_MS", 2_000)?,
            max_body_bytes: parse(env, "MAX_BODY_BYTES", 10 * 1024 * 1024usize)?.max(1024),
            audio_max_bytes: parse(env, "AUDIO_MAX_BYTES", 25 * 1024 * 1024usize)?.max(1024),
            body_read_timeout: millis(env, "BODY_READ_TIMEOUT_MS", 30_000)?,
            max_connections: parse(env, "MAX_CONNECTIONS", 4096usize)?.max(1),
            client_limits: ClientLimits {
                rpm: parse(env, "CLIENT_RPM", 0u64)?,
                max_concurrent: parse(env, "CLIENT_MAX_CONCURRENT", 0u64)?,
                auth_failures_per_minute: parse(env, "AUTH_FAILURES_PER_MINUTE", 20u64)?,
            },
            max_concurrent: parse(env, "MAX_CONCURRENT_REQUESTS", 4096usize)?.max(1),
            drain_timeout: millis(env, "DRAIN_TIMEOUT_MS", 30_000)?,
            header_read_timeout: Some(millis(env, "HEADER_READ_TIMEOUT_MS", 30_000)?)
                .filter(|d| !d.is_zero()),
            max_header_bytes: parse(env, "MAX_HEADER_BYTES", 64 * 1024usize)?.max(1024),
            database_url: env.get("DATABASE_URL").map_or_else(
                || {
                    paths::data_dir(Path::new(home))
                        .join("hero_aibroker.db")
                        .display()
                        .to_string()
                },
                str::to_owned,
            ),
            require_api_key: parse(env, "REQUIRE_API_KEY", false)?,
            admin_token: admin_token(env)?,
            cascade_token: token(env, "HERO_AIBROKER_CASCADE_TOKEN")?,
            listen: None,
            is_mother: false,
            cascade_max_hops: parse(env, "CASCADE_MAX_HOPS", 4usize)?.max(1),
            cascade_refresh: Duration::from_secs(parse(env, "CASCADE_REFRESH_SECS", 60u64)?.max(1)),
            config_poll: Duration::from_millis(parse(env, "CONFIG_POLL_MS", 1000u64)?.max(50)),
            rpc_reads_need_token: reads_need_token(env)?,
            ledger_queue: parse(env, "LEDGER_QUEUE", 10_000usize)?.max(1),
            ledger_batch: parse(env, "LEDGER_BATCH", 256usize)?.max(1),
            ledger_retention_days: parse(env, "LEDGER_RETENTION_DAYS", 0u32)?,
            ledger_fail_closed: parse(env, "LEDGER_FAIL_CLOSED", false)?,
            circuit_failures: parse(env, "CIRCUIT_FAILURES", 5u32)?.max(1),
            circuit_open: millis(env, "CIRCUIT_OPEN_MS", 30_000)?,
            catalog_interval: Duration::from_secs(parse(
                env,
                "OPENROUTER_CATALOG_INTERVAL",
                3600u64,
            )?),
            worker_threads: match parse(env, "WORKER_THREADS", 0usize)? {
                0 => default_worker_threads(),
                n => n,
            },
        })
    }

    /// `<root>/hero_aibroker`, where this service's sockets live.
    pub fn socket_dir(&self) -> PathBuf {
        paths::socket_dir(&self.socket_root)
    }

    /// How the REST and RPC listeners treat connections.
    pub fn serve_options(&self) -> hero_aibroker_host::ServeOptions {
        hero_aibroker_host::ServeOptions {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
            drain: self.drain_timeout,
        }
    }
}

/// `(BACKEND_STRATEGY, what auto picks, deprecation lines)`. `ROUTING_STRATEGY` is `cheapest`
/// (default) or `best`: what `auto` picks. Before, it named the per-model backend strategy (now
/// `BACKEND_STRATEGY`) and `AUTO_STRATEGY` named auto's; both old uses still work, each with a
/// one-line deprecation.
fn strategies(env: &Env) -> Result<(Strategy, Strategy, Vec<String>), ConfigError> {
    let mut backend = parse(env, "BACKEND_STRATEGY", Strategy::RoundRobin)?;
    let mut auto = Strategy::Cheapest;
    let mut deprecations = Vec::new();
    if env.get("AUTO_STRATEGY").is_some() {
        auto = parse(env, "AUTO_STRATEGY", auto)?;
        deprecations.push(format!(
            "AUTO_STRATEGY is deprecated: set ROUTING_STRATEGY={} (what auto picks: cheapest or best)",
            auto.name()
        ));
    }
    if env.get("ROUTING_STRATEGY").is_some() {
        match parse(env, "ROUTING_STRATEGY", auto)? {
            s @ (Strategy::Cheapest | Strategy::Best) => auto = s,
            old => {
                if env.get("BACKEND_STRATEGY").is_none() {
                    backend = old;
                }
                deprecations.push(format!(
                    "ROUTING_STRATEGY={0} uses its old meaning, the per-model backend strategy: set BACKEND_STRATEGY={0} instead (ROUTING_STRATEGY is now cheapest or best, what auto picks)",
                    old.name()
                ));
            }
        }
    }
    Ok((backend, auto, deprecations))
}

fn parse<T: FromStr>(env: &Env, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(var) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Env {
            var: var.to_owned(),
            message: format!("{v:?}: {e}"),
        }),
    }
}

fn millis(env: &Env, var: &str, default: u64) -> Result<Duration, ConfigError> {
    parse(env, var, default).map(Duration::from_millis)
}

/// Shortest admin token accepted: a short token is guessable by any process of the user.
const MIN_ADMIN_TOKEN: usize = 16;

/// `ADMIN_TOKEN`, refused when shorter than [`MIN_ADMIN_TOKEN`] characters (the message never
/// repeats the token).
fn admin_token(env: &Env) -> Result<Option<crate::secret::Secret>, ConfigError> {
    token(env, "ADMIN_TOKEN")
}

/// A token variable (`ADMIN_TOKEN`, `HERO_AIBROKER_CASCADE_TOKEN`), refused when shorter than
/// [`MIN_ADMIN_TOKEN`] characters.
fn token(env: &Env, var: &str) -> Result<Option<crate::secret::Secret>, ConfigError> {
    match env.get(var) {
        None => Ok(None),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN => Err(ConfigError::Env {
            var: var.into(),
            message: format!(
                "is {} characters long; use at least {MIN_ADMIN_TOKEN} (e.g. `openssl rand -hex 16`)",
                t.chars().count()
            ),
        }),
        Some(t) => Ok(Some(crate::secret::Secret::new(t))),
    }
}

/// `RPC_READS_NEED_TOKEN`, which means nothing without an `ADMIN_TOKEN` to need.
fn reads_need_token(env: &Env) -> Result<bool, ConfigError> {
    let gate = parse(env, "RPC_READS_NEED_TOKEN", false)?;
    if gate && env.get("ADMIN_TOKEN").is_none() {
        return Err(ConfigError::Env {
            var: "RPC_READS_NEED_TOKEN".into(),
            message: "is true but ADMIN_TOKEN is not set: set the token the reads should need"
                .into(),
        });
    }
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::from_env(&Env::from_pairs([("HOME", "/home/u")])).expect("defaults");
        assert_eq!(
            s.socket_dir(),
            PathBuf::from("/home/u/hero/var/sockets/hero_aibroker")
        );
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(s.strategy, Strategy::RoundRobin);
        assert_eq!(s.auto_strategy, Strategy::Cheapest);
        assert_eq!(s.catalog_interval, Duration::from_secs(3600));

        let s = Settings::from_env(&Env::from_pairs([
            ("HERO_SOCKET_DIR", "/tmp/s"),
            ("ROUTING_STRATEGY", "best"),
            ("BACKEND_STRATEGY", "least-busy"),
            ("UPSTREAM_IDLE_TIMEOUT_MS", "250"),
            ("OPENROUTER_CATALOG_INTERVAL", "0"),
        ]))
        .expect("overrides");
        assert_eq!(s.socket_dir(), PathBuf::from("/tmp/s/hero_aibroker"));
        assert_eq!(s.strategy, Strategy::LeastBusy);
        assert_eq!(s.auto_strategy, Strategy::Best);
        assert!(s.deprecations.is_empty(), "{:?}", s.deprecations);
        assert_eq!(s.idle_timeout, Duration::from_millis(250));
        assert!(s.catalog_interval.is_zero(), "0 turns the catalog off");
    }

    #[test]
    fn old_strategy_names_still_work_with_one_deprecation_line_each() {
        let s = Settings::from_env(&Env::from_pairs([
            ("ROUTING_STRATEGY", "priority"),
            ("AUTO_STRATEGY", "best"),
        ]))
        .expect("old names");
        assert_eq!(s.strategy, Strategy::Priority);
        assert_eq!(s.auto_strategy, Strategy::Best);
        assert_eq!(s.deprecations.len(), 2, "{:?}", s.deprecations);
        assert!(
            s.deprecations[0].contains("ROUTING_STRATEGY=best"),
            "{:?}",
            s.deprecations
        );
        assert!(
            s.deprecations[1].contains("BACKEND_STRATEGY=priority"),
            "{:?}",
            s.deprecations
        );
        // The new name of the backend strategy wins over the old use of ROUTING_STRATEGY.
        let s = Settings::from_env(&Env::from_pairs([
            ("ROUTING_STRATEGY", "latency"),
            ("BACKEND_STRATEGY", "priority"),
        ]))
        .expect("both");
        assert_eq!(s.strategy, Strategy::Priority);
        assert_eq!(s.auto_strategy, Strategy::Cheapest);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Settings::from_env(&Env::from_pairs([("MAX_BODY_BYTES", "big")])).expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("environment variable MAX_BODY_BYTES: \"big\""),
            "{e}"
        );
        let e = Settings::from_env(&Env::from_pairs([("ROUTING_STRATEGY", "random")]))
            .expect_err("bad");
        assert!(e.to_string().contains("unknown strategy"), "{e}");
    }

    #[test]
    fn a_short_admin_token_is_refused_without_echoing_it() {
        let e =
            Settings::from_env(&Env::from_pairs([("ADMIN_TOKEN", "letmein")])).expect_err("short");
        let m = e.to_string();
        assert!(
            m.starts_with("environment variable ADMIN_TOKEN: is 7 characters long"),
            "{m}"
        );
        assert!(!m.contains("letmein"), "{m}");
        let ok = Settings::from_env(&Env::from_pairs([("ADMIN_TOKEN", "0123456789abcdef")]))
            .expect("16 characters");
        assert!(ok.admin_token.is_some());
    }
}
