"""Fixtures: the real broker binary on a temp socket dir, in front of the fake provider binary.

Binaries come from $HERO_BIN_DIR (scripts/test.sh sets it; default target/debug)."""

import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# What the agent model's tool call prints: seen in an agent's answer only if the agent really
# ran the tool and sent its output back through the broker.
MARKER = "agent-tool-ran-7f3a"
OPENROUTER_KEY = "sk-or-test-0123456789"
BIN_DIR = pathlib.Path(os.environ.get("HERO_BIN_DIR", ROOT / "target" / "debug"))

MODELS = """
providers:
  - {{name: fake, base_url: "{url}", api_key_env: FAKE_KEYS}}
  - {{name: anthropic-native, kind: anthropic, base_url: "{url}", api_key_env: ANT_KEYS}}
models:
  chat:
    display_name: Chat
    tier: standard
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-chat, priority: 1, input_cost: 2.0, output_cost: 8.0}}
  agent:
    display_name: Agent
    tier: standard
    context_window: 8192
    capabilities: [tools]
    backends:
      - {{provider: fake, model_id: up-agent, priority: 1, input_cost: 1.0, output_cost: 2.0}}
  claude:
    display_name: Claude (native Anthropic upstream)
    tier: premium
    context_window: 200000
    capabilities: [tools]
    backends:
      - {{provider: anthropic-native, model_id: up-agent, priority: 1, input_cost: 3.0, output_cost: 15.0, cache_read_cost: 0.3}}
  routed:
    display_name: Routed (served by OpenRouter)
    tier: standard
    context_window: 8192
    backends:
      - {{provider: openrouter, model_id: openai/gpt-4o, priority: 1, input_cost: 2.5, output_cost: 10.0}}
  embed:
    display_name: Embed
    tier: cheap
    capabilities: [embeddings]
    context_window: 8192
    backends:
      - {{provider: fake, model_id: up-embed, priority: 1, input_cost: 0.5, output_cost: 0}}
"""


@pytest.fixture(scope="session")
def fake_provider():
    proc = subprocess.Popen(
        # `up-agent` calls the first of these tools it is offered (the SDK tests' get_weather,
        # Claude Code's Bash, Codex's exec_command or shell), then answers with the result.
        [
            str(BIN_DIR / "hero_aibroker_fake_provider"), "--port", "0",
            "--agent-model", "up-agent",
            "--agent-call", 'get_weather={"location":"Paris"}',
            "--agent-call", 'Bash={"command":"echo %s","description":"Print the marker"}' % MARKER,
            "--agent-call", 'exec_command={"cmd":"echo %s"}' % MARKER,
            "--agent-call", 'shell={"command":["bash","-lc","echo %s"]}' % MARKER,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    yield line.split(" ", 1)[1]
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def broker(fake_provider):
    tmp = tempfile.TemporaryDirectory()
    root = pathlib.Path(tmp.name)
    models = root / "models.yml"
    models.write_text(MODELS.format(url=fake_provider))
    log = open(root / "server.log", "w")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "HERO_SOCKET_DIR": str(root / "sockets"),
        "MODELS_CONFIG_PATH": str(models),
        "FAKE_KEYS": "key-a",
        "ANT_KEYS": "ant-key",
        # The fake answers OpenRouter's API under /api/v1; no catalog refresh in these tests.
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "OPENROUTER_BASE_URL": fake_provider.removesuffix("/v1") + "/api/v1",
        "OPENROUTER_CATALOG_INTERVAL": "0",
    }
    proc = subprocess.Popen(
        [str(BIN_DIR / "hero_aibroker_server")], env=env, stdout=log, stderr=log
    )
    sock = root / "sockets" / "hero_aibroker" / "rest.sock"
    deadline = time.time() + 15
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(sock))
            s.close()
            break
        except OSError:
            assert time.time() < deadline, "broker did not start"
            time.sleep(0.05)
    yield str(sock)
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    tmp.cleanup()
