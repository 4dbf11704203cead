"""Real coding agents as clients, installed from npm by scripts/test.sh (tests/agents):
Claude Code (`claude -p`, Anthropic Messages) and Codex CLI (`codex exec`, a custom provider
with wire_api = "responses"). Each completes a turn that calls a tool through the broker,
against the fake provider's agent model: the model asks for a shell command that prints a
marker, the agent runs it, sends the output back, and the model's answer quotes it.

The agents speak TCP, so the test starts a loopback-only forwarder to rest.sock (until the
broker's own TCP listener exists)."""

import asyncio
import json
import os
import pathlib
import subprocess
import threading

import httpx2
import pytest

from conftest import MARKER, ROOT

AGENTS = ROOT / "tests" / "agents" / "node_modules" / ".bin"


@pytest.fixture(scope="module")
def tcp_front(broker):
    """A loopback TCP port that forwards each connection to rest.sock."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port = {}

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        up_r, up_w = await asyncio.open_unix_connection(broker)
        await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))

    async def serve():
        port["stop"] = asyncio.Event()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port["n"] = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await port["stop"].wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port['n']}"
    loop.call_soon_threadsafe(port["stop"].set)
    thread.join(10)


def ledger(broker):
    rpc = pathlib.Path(broker).with_name("rpc.sock")
    with httpx2.Client(transport=httpx2.HTTPTransport(uds=str(rpc))) as c:
        r = c.post(
            "http://localhost/rpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "usage.logs", "params": {"query": {"limit": 1000}}},
        )
    return r.json()["result"]["rows"]


def run(cmd, env, cwd):
    """Runs an agent; its output on failure says what went wrong."""
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    return p.returncode, p.stdout, p.stderr


def agent_env(home):
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def test_claude_code_completes_a_tool_turn(tcp_front, broker, tmp_path):
    before = {r["id"] for r in ledger(broker)}
    env = agent_env(tmp_path) | {
        "ANTHROPIC_BASE_URL": tcp_front,
        "ANTHROPIC_API_KEY": "sk-unused-by-the-broker",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "agent",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = run(
        [str(AGENTS / "claude"), "-p", "Print the marker with the Bash tool", "--model", "agent",
         "--allowedTools", "Bash", "--output-format", "json"],
        env, work,
    )
    assert code == 0, f"claude exited {code}\n{out}\n{err}"
    result = json.loads(out)
    assert result["is_error"] is False, out
    assert result["num_turns"] == 2, out
    # The model saw the command's real output: Claude Code ran Bash and sent back the result.
    assert result["result"] == f"Tool result: {MARKER}", out
    rows = [r for r in ledger(broker) if r["id"] not in before]
    assert len(rows) >= 2 and all(r["endpoint"] == "messages" for r in rows), rows
    assert all(r["status"] == "ok" and r["stream"] for r in rows), rows
    assert all(r["prompt_tokens"] > 0 and r["cost_usd"] > 0 for r in rows), rows


def test_codex_completes_a_tool_turn(tcp_front, broker, tmp_path):
    before = {r["id"] for r in ledger(broker)}
    codex_home = tmp_path / "codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "agent"\n'
        'model_provider = "broker"\n'
        "[model_providers.broker]\n"
        'name = "hero_aibroker"\n'
        f'base_url = "{tcp_front}/v1"\n'
        'wire_api = "responses"\n'
        'env_key = "BROKER_KEY"\n'
    )
    env = agent_env(tmp_path) | {"CODEX_HOME": str(codex_home), "BROKER_KEY": "sk-unused-by-the-broker"}
    work = tmp_path / "work"
    work.mkdir()
    last = tmp_path / "last.txt"
    code, out, err = run(
        [str(AGENTS / "codex"), "exec", "--skip-git-repo-check",
         "--dangerously-bypass-approvals-and-sandbox", "--output-last-message", str(last),
         "Print the marker with the shell tool"],
        env, work,
    )
    assert code == 0, f"codex exited {code}\n{out}\n{err}"
    answer = last.read_text()
    # The model saw the command's real output: Codex ran the command and sent back its output.
    assert answer.startswith("Tool result:") and MARKER in answer, f"{answer}\n{out}\n{err}"
    rows = [r for r in ledger(broker) if r["id"] not in before]
    assert len(rows) >= 2 and all(r["endpoint"] == "responses" for r in rows), rows
    assert all(r["status"] == "ok" and r["stream"] for r in rows), rows
    assert all(r["prompt_tokens"] > 0 and r["cost_usd"] > 0 for r in rows), rows
    dropped = rows[0]["trace"]["dropped"]
    assert "web_search tool (runs on OpenAI's servers)" in dropped, dropped
