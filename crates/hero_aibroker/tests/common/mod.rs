//! A real broker (`hero_aibroker_server`) on a temporary socket directory in front of the
//! scripted fake provider, and a helper to run the `hero_aibroker` binary against it.

use std::path::Path;
use std::time::Duration;

use hero_aibroker_testkit::{
    AggregatorConfig, AggregatorProcess, BrokerConfig, BrokerProcess, FakeProvider, sibling_bin,
};

/// The admin token the test broker requires for mutating calls.
pub const ADMIN: &str = "test-admin-token";

/// Models: `chat` on provider `fake` (two keys, priority 1) and `backup` (keyless, priority 2);
/// `solo` on `fake`; `unkeyed` on groq, which has no key.
fn models_yaml(fake: &str) -> String {
    format!(
        r#"
providers:
  - {{name: fake, base_url: "{fake}", api_key_env: FAKE_KEYS}}
  - {{name: backup, base_url: "{fake}"}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: 2.0, output_cost: 8.0}}
      - {{provider: backup, model_id: up-backup, priority: 2, input_cost: 1.0, output_cost: 1.0}}
  solo:
    display_name: Solo
    tier: cheap
    context_window: 4096
    backends:
      - {{provider: fake, model_id: up-solo, priority: 1, input_cost: 0.5, output_cost: 1.5}}
  unkeyed:
    display_name: Unkeyed
    tier: cheap
    context_window: 4096
    backends:
      - {{provider: groq, model_id: llama, priority: 1, input_cost: 0.1, output_cost: 0.1}}
"#
    )
}

pub struct Broker {
    pub proc: BrokerProcess,
    pub fake: FakeProvider,
    // Declared last: the fake's tasks run on this runtime and must be dropped first.
    rt: tokio::runtime::Runtime,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_in(tempfile::tempdir().expect("tempdir"))
    }

    /// Starts a broker whose sockets go in `<dir>/sockets`.
    pub fn start_in(dir: tempfile::TempDir) -> Broker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let fake = rt.block_on(FakeProvider::start());
        let proc = BrokerConfig::new(models_yaml(&fake.base_url()))
            .in_dir(dir)
            .env("FAKE_KEYS", "key-a,key-b")
            .env("ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .start_blocking();
        Broker { proc, fake, rt }
    }

    /// The socket root (`<dir>/sockets`).
    pub fn sockets(&self) -> std::path::PathBuf {
        self.proc.socket_root()
    }

    pub fn server_log(&self) -> String {
        self.proc.logs()
    }

    /// `hero_aibroker --socket-dir <this broker's sockets>`, with the admin token.
    pub fn cli(&self) -> assert_cmd::Command {
        let mut cmd = cli_at(&self.sockets());
        cmd.arg("--admin-token").arg(ADMIN);
        cmd
    }
}

/// `hero_aibroker --socket-dir DIR`, without any of the user's broker settings.
pub fn cli_at(socket_dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("hero_aibroker").expect("hero_aibroker binary");
    cmd.env_remove("HERO_SOCKET_DIR")
        .env_remove("ADMIN_TOKEN")
        .env_remove("HERO_AIBROKER_API_KEY")
        .arg("--socket-dir")
        .arg(socket_dir)
        .timeout(Duration::from_secs(30));
    cmd
}

/// Runs `cmd`, asserts exit 0 and returns stdout.
pub fn ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().expect("run hero_aibroker");
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `cmd` with `--json`, asserts exit 0 and parses stdout.
pub fn ok_json(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = ok(cmd.arg("--json"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// The table row (line) that contains `needle`.
pub fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?} in:\n{table}"))
}

impl Broker {
    /// Starts the MCP aggregator (`hero_aibroker_services`) next to this broker, serving the
    /// bundled `mcp_ping` as server `ping` (call timeout 2 s), and waits until it is ready.
    pub fn aggregator(&self) -> AggregatorProcess {
        let servers = serde_json::json!([
            {"name": "ping", "command": sibling_bin("mcp_ping"), "transport": "stdio",
             "timeout_secs": 2},
        ]);
        let cfg = AggregatorConfig::new(servers).in_dir(self.proc.dir());
        self.rt.block_on(cfg.start(1))
    }
}
