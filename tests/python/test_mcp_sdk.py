"""The official MCP Python SDK against the aggregator (mcp.sock) and through the broker
(rest.sock /mcp/sse), with a real third-party server (@modelcontextprotocol/server-everything,
installed by scripts/test.sh), the bundled mcp_ping and the bundled mcp_broker aggregated
together."""

import json
import os
import pathlib
import subprocess
import time

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from conftest import BIN_DIR, ROOT

EVERYTHING = (
    ROOT
    / "tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)


@pytest.fixture(scope="module")
def stack(broker):
    """The aggregator beside the session's broker; yields (mcp.sock, rest.sock)."""
    assert EVERYTHING.exists(), "run scripts/test.sh: it installs tests/mcp with npm ci"
    sockets = pathlib.Path(broker).parents[1]
    root = sockets.parent
    config = root / "mcp_servers.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": [
                    {"name": "everything", "command": "node", "args": [str(EVERYTHING), "stdio"]},
                    {"name": "ping", "command": str(BIN_DIR / "mcp_ping"), "timeout_secs": 5},
                    {
                        "name": "hero_aibroker",
                        "command": str(BIN_DIR / "mcp_broker"),
                        "args": ["--socket-dir", str(sockets)],
                    },
                ]
            }
        )
    )
    log = open(root / "services.log", "w")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "HERO_SOCKET_DIR": str(sockets),
        "MCP_CONFIG_PATH": str(config),
        "MCP_AUDIT_DB": str(root / "mcp_audit.db"),
        # A provider key in the aggregator's environment must not reach the children.
        "OPENAI_API_KEY": "sk-python-canary",
    }
    proc = subprocess.Popen(
        [str(BIN_DIR / "hero_aibroker_services")], env=env, stdout=log, stderr=log
    )
    mcp_sock = str(sockets / "hero_aibroker" / "mcp.sock")
    deadline = time.time() + 60
    with httpx2.Client(transport=httpx2.HTTPTransport(uds=mcp_sock)) as http:
        while True:
            assert proc.poll() is None, (root / "services.log").read_text()
            try:
                if http.get("http://localhost/health").json()["ready"] == 3:
                    break
            except (httpx2.TransportError, ValueError, KeyError):
                pass
            assert time.time() < deadline, (root / "services.log").read_text()
            time.sleep(0.1)
    yield mcp_sock, broker
    proc.terminate()
    assert proc.wait(timeout=15) == 0


def session_run(sock, url, body):
    """Runs `body(session)` in an MCP client session over the Unix socket `sock`."""

    async def main():
        transport = httpx2.AsyncHTTPTransport(uds=sock)
        async with httpx2.AsyncClient(
            transport=transport, timeout=httpx2.Timeout(30, read=60)
        ) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await body(session)

    return anyio.run(main)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def test_lists_and_calls_tools_of_every_server_on_mcp_sock(stack):
    mcp_sock, _ = stack

    async def body(s):
        tools = {t.name: t for t in (await s.list_tools()).tools}
        sum_ = await s.call_tool("get-sum", {"a": 2, "b": 40})
        pong = await s.call_tool("ping", {})
        models = await s.call_tool("list_models", {})
        env = await s.call_tool("env", {})
        resources = (await s.list_resources()).resources
        prompts = (await s.list_prompts()).prompts
        about = await s.read_resource("ping://mcp_ping/about")
        return tools, sum_, pong, models, env, resources, prompts, about

    tools, sum_, pong, models, env, resources, prompts, about = session_run(
        mcp_sock, "http://localhost/mcp", body
    )
    # Both servers offer `echo`, so each is named server__echo; the rest keep their names.
    for name in ["everything__echo", "get-sum", "ping__echo", "ping", "whoami",
                 "list_models", "estimate_cost", "explain_route"]:
        assert name in tools, sorted(tools)
    assert "echo" not in tools
    assert tools["get-sum"].input_schema["type"] == "object"
    assert "42" in text_of(sum_)
    assert text_of(pong) == "pong"
    assert not models.is_error and "chat" in text_of(models)
    # The child's environment has no provider key.
    assert "OPENAI_API_KEY" not in text_of(env) and "PATH" in text_of(env)
    uris = [str(r.uri) for r in resources]
    assert "ping://mcp_ping/about" in uris
    assert any(u.startswith("demo://") for u in uris), uris
    assert "mcp_ping" in about.contents[0].text
    names = [p.name for p in prompts]
    assert "greet" in names or "ping__greet" in names, names


def test_the_broker_socket_gives_the_same_results(stack):
    mcp_sock, rest_sock = stack

    async def body(s):
        return (
            [t.name for t in (await s.list_tools()).tools],
            await s.call_tool("ping__echo", {"text": "through the broker"}),
        )

    names, echoed = session_run(rest_sock, "http://localhost/mcp/sse", body)
    direct_names, _ = session_run(mcp_sock, "http://localhost/mcp", body)
    assert names == direct_names
    assert text_of(echoed) == "through the broker"
    with httpx2.Client(transport=httpx2.HTTPTransport(uds=rest_sock)) as http:
        rest = http.post(
            "http://localhost/mcp/tools/ping__echo", json={"text": "through the broker"}
        ).json()
        listed = http.get("http://localhost/mcp/tools").json()["tools"]
    sdk = echoed.model_dump(by_alias=True, exclude_none=True)
    assert rest["content"] == sdk["content"] and rest["isError"] == sdk["isError"] is False
    assert [t["name"] for t in listed] == names


def sse_session_run(sock, url, body):
    """Runs `body(session)` in an MCP client session of the deprecated HTTP+SSE transport
    (the SDK's `sse_client`) over the Unix socket `sock`."""

    def over_the_socket(headers=None, timeout=None, auth=None):
        return httpx2.AsyncClient(
            transport=httpx2.AsyncHTTPTransport(uds=sock),
            headers=headers,
            timeout=timeout or httpx2.Timeout(30, read=60),
            auth=auth,
        )

    async def main():
        async with sse_client(url, httpx_client_factory=over_the_socket) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)

    return anyio.run(main)


@pytest.mark.parametrize("which", ["mcp.sock", "rest.sock"])
def test_the_sdks_sse_client_lists_and_calls_tools_over_mcp_sse(stack, which):
    """The deprecated HTTP+SSE transport: GET /mcp/sse (its endpoint event), POST
    /mcp/message, on the aggregator's socket and through the broker's."""
    mcp_sock, rest_sock = stack
    sock = mcp_sock if which == "mcp.sock" else rest_sock

    async def body(s):
        tools = [t.name for t in (await s.list_tools()).tools]
        echoed = await s.call_tool("ping__echo", {"text": f"over SSE on {which}"})
        summed = await s.call_tool("get-sum", {"a": 2, "b": 40})
        return tools, echoed, summed

    tools, echoed, summed = sse_session_run(sock, "http://localhost/mcp/sse", body)

    async def streamable(s):
        return [t.name for t in (await s.list_tools()).tools]

    assert tools == session_run(mcp_sock, "http://localhost/mcp", streamable)
    assert text_of(echoed) == f"over SSE on {which}"
    assert "42" in text_of(summed), text_of(summed)
