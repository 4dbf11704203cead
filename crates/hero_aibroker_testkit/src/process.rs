//! The real service binaries as child processes, for end-to-end tests in every crate:
//! [`BrokerProcess`] (`hero_aibroker_server`) and [`AggregatorProcess`]
//! (`hero_aibroker_services`). Each runs in its own temporary directory (sockets, config,
//! database, log) with a clean environment, is waited for until its sockets answer, prints its
//! log when the test fails, and is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hero_aibroker_sdk::paths;

use crate::sibling_bin;

/// How long a service may take to open its sockets.
const START_LIMIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// A child service process with its directory and log file. Shared by both kinds.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Service {
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
    ) -> Service {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the service log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        Service {
            name,
            child: Some(child),
            dir,
            log,
            _tmp: tmp,
        }
    }

    /// The process's directory (sockets under `sockets/`, its config, database and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket root passed as `HERO_SOCKET_DIR` (`<dir>/sockets`).
    pub fn socket_root(&self) -> PathBuf {
        self.dir.join("sockets")
    }

    /// `<dir>/sockets/hero_aibroker/<name>`.
    pub fn socket(&self, name: &str) -> PathBuf {
        paths::socket_dir(&self.socket_root()).join(name)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `signal` (`TERM`, `KILL`, `INT`…) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{signal} {} failed", self.pid());
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("wait")?;
        self.child = None;
        Some(status)
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!("{} exited early ({status}):\n{}", self.name, self.logs());
        }
    }

    /// Waits until every socket in `names` accepts connections (blocking: for tests without
    /// an async runtime).
    pub fn wait_sockets_blocking(&mut self, names: &[&str]) {
        let t0 = Instant::now();
        loop {
            self.check_alive();
            if names
                .iter()
                .all(|n| std::os::unix::net::UnixStream::connect(self.socket(n)).is_ok())
            {
                return;
            }
            assert!(
                t0.elapsed() < START_LIMIT,
                "{} did not open {names:?} in time:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every socket in `names` accepts connections.
    pub async fn wait_sockets(&mut self, names: &[&str]) {
        let t0 = Instant::now();
        loop {
            self.check_alive();
            let mut all = true;
            for n in names {
                all &= tokio::net::UnixStream::connect(self.socket(n))
                    .await
                    .is_ok();
            }
            if all {
                return;
            }
            assert!(
                t0.elapsed() < START_LIMIT,
                "{} did not open {names:?} in time:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for the process to exit (at most `limit`).
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(
                t0.elapsed() < limit,
                "{} did not exit in {limit:?}:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the process (if it still runs) and hands back its directory, so a test can start
    /// the next process on the same database and sockets.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self._tmp
            .take()
            .expect("a process started in a directory it does not own")
    }

    /// SIGTERM, then waits (up to 10 s) for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10)).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}---- end ----", self.name, self.logs());
        }
    }
}

/// The workspace binary `bin` with a clean environment — keys from the developer's shell must
/// not leak into tests: `PATH`, `HOME` and `HERO_SOCKET_DIR` pointing into `dir`, the service's
/// `files`, then the test's own `env`.
fn clean_command(
    bin: &str,
    dir: &Path,
    files: &[(&str, PathBuf)],
    env: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(sibling_bin(bin));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("HERO_SOCKET_DIR", dir.join("sockets"));
    for (k, v) in files {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What to start a broker with.
#[derive(Debug)]
pub struct BrokerConfig {
    yaml: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dir: Option<tempfile::TempDir>,
}

impl BrokerConfig {
    /// A broker serving the models file `yaml`, with `RUST_LOG=info`.
    pub fn new(yaml: impl Into<String>) -> BrokerConfig {
        BrokerConfig {
            yaml: yaml.into(),
            env: vec![("RUST_LOG".into(), "info".into())],
            args: Vec::new(),
            dir: None,
        }
    }

    /// Adds command-line arguments (`--address 127.0.0.1 --port 0`, `--mother`).
    pub fn args(mut self, args: &[&str]) -> BrokerConfig {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets an environment variable of the process (replacing an earlier value).
    pub fn env(mut self, key: &str, value: &str) -> BrokerConfig {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs in `dir` (which may hold the database of an earlier run) instead of a new one.
    pub fn in_dir(mut self, dir: tempfile::TempDir) -> BrokerConfig {
        self.dir = Some(dir);
        self
    }

    /// Spawns `hero_aibroker_server`; does not wait for its sockets.
    pub fn spawn(self) -> BrokerProcess {
        let tmp = self
            .dir
            .unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let dir = tmp.path().to_owned();
        let models = dir.join("models.yml");
        std::fs::write(&models, &self.yaml).expect("write models");
        let files = [
            ("MODELS_CONFIG_PATH", models),
            ("DATABASE_URL", dir.join("broker.db")),
        ];
        let mut cmd = clean_command("hero_aibroker_server", &dir, &files, &self.env);
        cmd.args(&self.args);
        BrokerProcess(Service::spawn("hero_aibroker_server", cmd, dir, Some(tmp)))
    }

    /// Spawns and waits until `rest.sock` and `rpc.sock` accept connections.
    pub async fn start(self) -> BrokerProcess {
        let mut b = self.spawn();
        b.wait_ready().await;
        b
    }

    /// [`BrokerConfig::start`] for tests without an async runtime.
    pub fn start_blocking(self) -> BrokerProcess {
        let mut b = self.spawn();
        b.wait_ready_blocking();
        b
    }
}

/// A running `hero_aibroker_server` (see the module doc).
#[derive(Debug)]
pub struct BrokerProcess(Service);

impl std::ops::Deref for BrokerProcess {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.0
    }
}

impl std::ops::DerefMut for BrokerProcess {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.0
    }
}

impl From<BrokerProcess> for Service {
    fn from(b: BrokerProcess) -> Service {
        b.0
    }
}

impl BrokerProcess {
    /// `rest.sock`.
    pub fn rest_sock(&self) -> PathBuf {
        self.socket(paths::REST_SOCK)
    }

    /// `rpc.sock`.
    pub fn rpc_sock(&self) -> PathBuf {
        self.socket(paths::RPC_SOCK)
    }

    /// The SQLite store (`<dir>/broker.db`).
    pub fn db_path(&self) -> PathBuf {
        self.dir().join("broker.db")
    }

    /// Waits until both sockets accept connections.
    pub async fn wait_ready(&mut self) {
        self.0
            .wait_sockets(&[paths::REST_SOCK, paths::RPC_SOCK])
            .await;
    }

    /// [`BrokerProcess::wait_ready`], blocking.
    pub fn wait_ready_blocking(&mut self) {
        self.0
            .wait_sockets_blocking(&[paths::REST_SOCK, paths::RPC_SOCK]);
    }
}

/// What to start the MCP aggregator with.
#[derive(Debug)]
pub struct AggregatorConfig {
    servers: serde_json::Value,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    ready_within: Duration,
}

impl AggregatorConfig {
    /// An aggregator running `servers` (the `mcpServers` list or map), with `RUST_LOG=warn`
    /// and `OPENAI_API_KEY` set to a canary that must never reach a child.
    pub fn new(servers: serde_json::Value) -> AggregatorConfig {
        AggregatorConfig {
            servers,
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("OPENAI_API_KEY".into(), "sk-e2e-secret".into()),
            ],
            dir: None,
            ready_within: START_LIMIT,
        }
    }

    /// How long the servers may take to become ready (default 15 s; node servers on a busy
    /// machine want more).
    pub fn ready_within(mut self, limit: Duration) -> AggregatorConfig {
        self.ready_within = limit;
        self
    }

    /// Sets an environment variable of the process (replacing an earlier value).
    pub fn env(mut self, key: &str, value: &str) -> AggregatorConfig {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs in `dir` (kept after the test: it may hold the audit of an earlier run), with its
    /// sockets under `<dir>/sockets`, e.g. beside a broker's.
    pub fn in_dir(mut self, dir: &Path) -> AggregatorConfig {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Spawns `hero_aibroker_services`; does not wait.
    pub fn spawn(self) -> AggregatorProcess {
        let (dir, tmp) = match self.dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                (t.path().to_owned(), Some(t))
            }
        };
        let cfg = dir.join("mcp_servers.json");
        std::fs::write(
            &cfg,
            serde_json::json!({ "mcpServers": self.servers }).to_string(),
        )
        .expect("write mcp_servers.json");
        let files = [
            ("MCP_CONFIG_PATH", cfg),
            ("MCP_AUDIT_DB", dir.join("audit/mcp_audit.db")),
        ];
        let cmd = clean_command("hero_aibroker_services", &dir, &files, &self.env);
        AggregatorProcess {
            service: Service::spawn("hero_aibroker_services", cmd, dir, tmp),
            ready_within: self.ready_within,
        }
    }

    /// Spawns and waits until `/health` on `mcp.sock` counts `ready` servers ready.
    pub async fn start(self, ready: u64) -> AggregatorProcess {
        let mut a = self.spawn();
        a.wait_ready(ready).await;
        a
    }
}

/// A running `hero_aibroker_services` (see the module doc).
#[derive(Debug)]
pub struct AggregatorProcess {
    service: Service,
    ready_within: Duration,
}

impl std::ops::Deref for AggregatorProcess {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl std::ops::DerefMut for AggregatorProcess {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.service
    }
}

impl AggregatorProcess {
    /// `mcp.sock`.
    pub fn mcp_sock(&self) -> PathBuf {
        self.socket(paths::MCP_SOCK)
    }

    /// Waits until `/health` counts `ready` servers ready.
    pub async fn wait_ready(&mut self, ready: u64) {
        let t0 = Instant::now();
        let mut last = serde_json::Value::Null;
        loop {
            self.service.check_alive();
            if let Ok((200, body)) = crate::uds_get(&self.mcp_sock(), "/health").await {
                if body["ready"] == serde_json::json!(ready) {
                    return;
                }
                last = body;
            }
            assert!(
                t0.elapsed() < self.ready_within,
                "hero_aibroker_services never had {ready} servers ready; last /health: {last}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
