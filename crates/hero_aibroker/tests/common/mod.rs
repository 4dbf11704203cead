//! A real broker (`hero_aibroker_server`) on a temporary socket directory in front of the
//! scripted fake provider, and a helper to run the `hero_aibroker` binary against it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hero_aibroker_testkit::{FakeProvider, sibling_bin};

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
    child: Child,
    pub dir: tempfile::TempDir,
    pub fake: FakeProvider,
    // Declared last: the fake's tasks run on this runtime and must be dropped first.
    _rt: tokio::runtime::Runtime,
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
        let models = dir.path().join("models.yml");
        std::fs::write(&models, models_yaml(&fake.base_url())).expect("write models");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(sibling_bin("hero_aibroker_server"))
            // A clean environment: keys from the developer's shell must not leak in.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("HERO_SOCKET_DIR", dir.path().join("sockets"))
            .env("MODELS_CONFIG_PATH", &models)
            .env("DATABASE_URL", dir.path().join("broker.db"))
            .env("FAKE_KEYS", "key-a,key-b")
            .env("ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn hero_aibroker_server");
        let mut broker = Broker {
            child,
            dir,
            fake,
            _rt: rt,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let sockets = self.dir.path().join("sockets/hero_aibroker");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("broker exited early ({status}):\n{}", self.server_log());
            }
            let up = ["rest.sock", "rpc.sock"]
                .iter()
                .all(|s| std::os::unix::net::UnixStream::connect(sockets.join(s)).is_ok());
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("broker did not start in time:\n{}", self.server_log());
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `hero_aibroker --socket-dir <this broker's sockets>`, with the admin token.
    pub fn cli(&self) -> assert_cmd::Command {
        let mut cmd = cli_at(&self.dir.path().join("sockets"));
        cmd.arg("--admin-token").arg(ADMIN);
        cmd
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The MCP aggregator (`hero_aibroker_services`) on a broker's socket directory, serving the
/// bundled `mcp_ping` as server `ping` (call timeout 2 s).
pub struct Aggregator {
    child: Child,
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Starts the aggregator next to this broker and waits until `ping` is ready.
    pub fn aggregator(&self) -> Aggregator {
        let dir = self.dir.path();
        let cfg = dir.join("mcp_servers.json");
        let servers = serde_json::json!({"mcpServers": [
            {"name": "ping", "command": sibling_bin("mcp_ping"), "transport": "stdio",
             "timeout_secs": 2},
        ]});
        std::fs::write(&cfg, servers.to_string()).expect("write mcp config");
        let log = std::fs::File::create(dir.join("services.log")).expect("log");
        let child = Command::new(sibling_bin("hero_aibroker_services"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("HERO_SOCKET_DIR", dir.join("sockets"))
            .env("MCP_CONFIG_PATH", &cfg)
            .env("MCP_AUDIT_DB", dir.join("mcp_audit.db"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn hero_aibroker_services");
        let agg = Aggregator { child };
        let t0 = Instant::now();
        loop {
            let out = self.cli().args(["tools", "servers", "--json"]).output();
            if let Ok(out) = out
                && out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("\"ready\"")
            {
                return agg;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the aggregator never had ping ready:\n{}",
                std::fs::read_to_string(dir.join("services.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
