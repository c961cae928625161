"""MCP tools against real MCP servers (the ``mcp`` package's FastMCP) started by the tests on 127.0.0.1."""

from __future__ import annotations

import builtins
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("mcpadapt", reason="the mcp extra is not installed")
uvicorn = pytest.importorskip("uvicorn")

from agent_helpers import ScriptedModel  # noqa: E402
from mcp.server.fastmcp import FastMCP  # noqa: E402
from smolagents import CodeAgent, ToolCallingAgent  # noqa: E402

from smoltrace_tools.mcp import McpServer, McpUnavailableError, open_mcp_tools, parse_server  # noqa: E402
from smoltrace_tools.recording import ToolRecorder  # noqa: E402


class _Server:
    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def _fastmcp(with_tools: bool = True) -> FastMCP:
    mcp = FastMCP("test", log_level="CRITICAL", stateless_http=True, json_response=True)
    if with_tools:

        @mcp.tool()
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        @mcp.tool()
        def read_file(path: str) -> str:
            """A tool whose name collides with a built-in one."""
            return f"mcp read {path}"

    return mcp


@pytest.fixture(scope="module")
def http_server() -> Iterator[_Server]:
    server = _Server(_fastmcp().streamable_http_app())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sse_server() -> Iterator[_Server]:
    server = _Server(_fastmcp().sse_app())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def empty_server() -> Iterator[_Server]:
    server = _Server(_fastmcp(with_tools=False).streamable_http_app())
    yield server
    server.stop()


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# ------------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("http://127.0.0.1:8000/mcp", McpServer("http://127.0.0.1:8000/mcp")),
        ("files=http://127.0.0.1:8000/sse", McpServer("http://127.0.0.1:8000/sse", "files")),
        ("My-Server.v2=https://x.test/mcp?a=b", McpServer("https://x.test/mcp?a=b", "My-Server.v2")),
        ("http://h/mcp?name=x", McpServer("http://h/mcp?name=x")),
    ],
)
def test_parse_server(entry: str, expected: McpServer) -> None:
    assert parse_server(entry) == expected


def test_transport_and_prefix() -> None:
    assert McpServer("http://h/sse").transport == "sse" and McpServer("http://h/sse/").transport == "sse"
    assert McpServer("http://h/mcp").transport == "streamable-http"
    assert McpServer("http://h/mcp", "My-Server.v2").prefix == "my_server_v2_"
    assert McpServer("http://h/mcp").prefix == ""


@pytest.mark.parametrize("entry", ["", "127.0.0.1:8000", "ftp://h/", "name=", "name=not a url"])
def test_parse_server_refuses(entry: str) -> None:
    with pytest.raises(McpUnavailableError, match="invalid MCP server"):
        parse_server(entry)


# ------------------------------------------------------------------------------------------------------ servers


def test_named_streamable_http_server(http_server: _Server) -> None:
    with open_mcp_tools([f"calc={http_server.url('/mcp')}"], timeout_s=10) as connection:
        assert [t.name for t in connection.tools] == ["calc_add", "calc_read_file"]
        add = connection.tools[0]
        assert add(a=2, b=3) == 5 or str(add(a=2, b=3)) == "5"
        assert str(connection.tools[1](path="x")) == "mcp read x"
    connection.close()  # idempotent


def test_sse_server(sse_server: _Server) -> None:
    connection = open_mcp_tools([f"s={sse_server.url('/sse')}"], timeout_s=10)
    try:
        assert connection.servers[0].transport == "sse"
        assert str(connection.tools[0](a=20, b=22)) == "42"
    finally:
        connection.close()


def test_collision_with_a_builtin_tool_is_a_clear_error(http_server: _Server) -> None:
    with pytest.raises(McpUnavailableError, match=r"tool named 'read_file', which is a built-in tool name.*NAME="):
        open_mcp_tools([http_server.url("/mcp")], timeout_s=10)
    with pytest.raises(McpUnavailableError, match="'add'"):
        open_mcp_tools([http_server.url("/mcp")], timeout_s=10, reserved_names=["add"])


def test_collision_between_servers_is_a_clear_error(http_server: _Server, sse_server: _Server) -> None:
    with pytest.raises(McpUnavailableError, match="both offer a tool named 'x_add'"):
        open_mcp_tools([f"x={http_server.url('/mcp')}", f"x={sse_server.url('/sse')}"], timeout_s=10)


def test_unreachable_server_fails_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(McpUnavailableError, match=r"cannot connect to the MCP server .*ConnectError"):
        open_mcp_tools([f"http://127.0.0.1:{_free_port()}/mcp"], timeout_s=10)
    assert time.perf_counter() - started < 5


def test_server_without_tools(empty_server: _Server) -> None:
    with pytest.raises(McpUnavailableError, match="offers no tools"):
        open_mcp_tools([empty_server.url("/mcp")], timeout_s=10)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_mcpadapt(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("mcpadapt"):
            raise ImportError("No module named 'mcpadapt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mcpadapt)
    with pytest.raises(McpUnavailableError, match=r"pip install 'pytest-smoltrace\[mcp\]'"):
        open_mcp_tools(["http://127.0.0.1:1/mcp"], timeout_s=1)


def test_no_servers_is_an_empty_connection() -> None:
    assert open_mcp_tools([], timeout_s=1).tools == []


# ----------------------------------------------------------------------------------------------- under agents


AgentFactory = Callable[[list[Any]], Any]


@pytest.mark.parametrize("agent_type", ["tool", "code"])
def test_both_agent_types_use_mcp_tools(http_server: _Server, agent_type: str) -> None:
    with open_mcp_tools([f"calc={http_server.url('/mcp')}"], timeout_s=10) as connection:
        recorder = ToolRecorder(timeout_s=10)
        tools = [*recorder.instrument_all(connection.tools), recorder.final_answer_tool()]
        if agent_type == "tool":
            model = ScriptedModel([[("calc_add", {"a": 19, "b": 23})], [("final_answer", {"answer": "42"})]])
            agent: Any = ToolCallingAgent(tools, model, verbosity_level=-1, max_steps=3)
        else:
            code = "Thought: add.\n<code>\nr = calc_add(a=19, b=23)\nfinal_answer(str(r))\n</code>"
            agent = CodeAgent(tools, ScriptedModel([code]), verbosity_level=-1, max_steps=2)
        assert str(agent.run("add 19 and 23")) == "42"
    assert [c.name for c in recorder.calls] == ["calc_add", "final_answer"]
    assert recorder.calls[0].arguments == {"a": 19, "b": 23} and recorder.calls[0].ok
