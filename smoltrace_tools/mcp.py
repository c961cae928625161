"""Tools from MCP servers (``--smoltrace-mcp-server``), connected once per session and failing closed.

Each server entry is ``URL`` or ``NAME=URL``. The transport is chosen from the URL: a path ending in ``/sse`` uses
the legacy SSE transport, anything else streamable HTTP. Tools of a named server are renamed ``<name>_<tool>``
(the name lowercased, other characters turned into ``_``). Connecting goes through ``mcpadapt`` (what smolagents'
``MCPClient`` uses), so the ``mcp`` extra is needed: ``pip install 'pytest-smoltrace[mcp]'`` (``mcp<2``: mcpadapt
0.1.x imports names that mcp 2.x removed).

:func:`open_mcp_tools` raises :class:`McpUnavailableError` — never a traceback from a background thread — when the
extra is missing, a server cannot be reached in ``timeout_s``, a server offers no tools, or two tools would reach
the agent under one name (MCP vs MCP, or MCP vs a built-in tool name). The plugin turns that into a usage error
before any task runs.
"""

from __future__ import annotations

import keyword
import logging
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ToolConfigError

if TYPE_CHECKING:
    from smolagents import Tool

__all__ = ["MCP_EXTRA", "McpConnection", "McpServer", "McpUnavailableError", "open_mcp_tools", "parse_server"]

logger = logging.getLogger(__name__)

MCP_EXTRA = "pytest-smoltrace[mcp]"
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_.\-]*)=(.+)$")


class McpUnavailableError(ToolConfigError):
    """An MCP server whose tools cannot be used (missing extra, unreachable, no tools, name collision)."""


@dataclass(frozen=True)
class McpServer:
    """One ``--smoltrace-mcp-server`` entry."""

    url: str
    name: str | None = None

    @property
    def transport(self) -> str:
        return "sse" if urlsplit(self.url).path.rstrip("/").endswith("/sse") else "streamable-http"

    @property
    def prefix(self) -> str:
        """``<name>_`` for a named server (lowercased, non-alphanumerics → ``_``), else ``""``."""
        if not self.name:
            return ""
        return re.sub(r"[^a-z0-9]", "_", self.name.lower()) + "_"

    def __str__(self) -> str:
        return f"{self.name}={self.url}" if self.name else self.url


def parse_server(entry: str) -> McpServer:
    """``URL`` or ``NAME=URL`` → :class:`McpServer`; :class:`McpUnavailableError` for anything else."""
    text = (entry or "").strip()
    match = _NAME.match(text)
    name, url = (match.group(1), match.group(2).strip()) if match and "://" not in match.group(1) else (None, text)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise McpUnavailableError(
            f"invalid MCP server {entry!r}: expected URL or NAME=URL with an http(s) URL, "
            "e.g. 'http://127.0.0.1:8000/mcp' or 'files=http://127.0.0.1:8000/sse'"
        )
    return McpServer(url=url, name=name)


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(_leaf_errors(inner))
        return leaves
    return [exc]


def _describe(exc: BaseException) -> str:
    return "; ".join(f"{type(e).__name__}: {e}" for e in _leaf_errors(exc))[:500]


def _adapter_class() -> Any:
    """``mcpadapt.core.MCPAdapt`` with its background thread's start-up error captured (not printed)."""
    from mcpadapt.core import MCPAdapt

    class _CapturingMCPAdapt(MCPAdapt):
        startup_error: BaseException | None = None

        def _run_loop(self) -> None:
            try:
                super()._run_loop()
            except BaseException as exc:  # reported by open_mcp_tools
                self.startup_error = exc

    return _CapturingMCPAdapt


@dataclass
class _Session:
    server: McpServer
    adapter: Any


@dataclass
class McpConnection:
    """Open MCP sessions and their tools. ``close()`` (or leaving the ``with`` block) disconnects them."""

    tools: list[Tool]
    servers: list[McpServer]
    _sessions: list[_Session] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    def close(self, timeout_s: float = 5.0) -> None:
        """Disconnect every server (each waits at most ``timeout_s``). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for session in self._sessions:
            _stop(session.adapter, timeout_s)

    def __enter__(self) -> McpConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _stop(adapter: Any, timeout_s: float) -> None:
    try:
        if adapter.task is not None and not adapter.task.done():
            adapter.loop.call_soon_threadsafe(adapter.task.cancel)
        adapter.thread.join(timeout_s)
        if adapter.thread.is_alive():
            logger.warning("an MCP session did not close within %g s; its thread is abandoned", timeout_s)
        elif not adapter.loop.is_closed():
            adapter.loop.close()
    except Exception:  # closing must never fail the session
        logger.debug("closing an MCP session failed", exc_info=True)


def _connect(server: McpServer, timeout_s: float) -> tuple[_Session, list[Tool]]:
    from mcpadapt.smolagents_adapter import SmolAgentsAdapter

    params = {"url": server.url, "transport": server.transport}
    adapter = _adapter_class()(
        params,
        SmolAgentsAdapter(structured_output=False),
        connect_timeout=max(1, round(timeout_s)),
        client_session_timeout_seconds=float(timeout_s),
    )
    adapter.thread.start()
    deadline = time.monotonic() + timeout_s
    while not adapter.ready.wait(0.05):
        if not adapter.thread.is_alive() or time.monotonic() > deadline:
            break
    session = _Session(server, adapter)
    if not adapter.ready.is_set():
        error = adapter.startup_error
        _stop(adapter, 2.0)
        why = _describe(error) if error is not None else f"no answer within {timeout_s:g} s"
        raise McpUnavailableError(
            f"cannot connect to the MCP server {server} ({server.transport}): {why}. Check that it is running "
            "and that the URL (including the path, e.g. /mcp or /sse) is right."
        )
    try:
        tools: list[Tool] = list(adapter.tools())
    except Exception as exc:
        _stop(adapter, 2.0)
        raise McpUnavailableError(f"cannot list the tools of the MCP server {server}: {_describe(exc)}") from None
    if not tools:
        _stop(adapter, 2.0)
        raise McpUnavailableError(f"the MCP server {server} offers no tools")
    return session, tools


def _rename(tool: Tool, new_name: str, server: McpServer) -> None:
    if not new_name.isidentifier() or keyword.iskeyword(new_name):
        raise McpUnavailableError(f"the MCP server {server} offers a tool that cannot be named {new_name!r}")
    tool.name = new_name


def open_mcp_tools(
    urls: Sequence[str],
    *,
    timeout_s: float = 30.0,
    reserved_names: Iterable[str] | None = None,
) -> McpConnection:
    """Connect to every MCP server in ``urls`` (``URL`` or ``NAME=URL``) and return their tools.

    ``reserved_names`` are names MCP tools may not take (default: every name a built-in tool can reach the agent
    under, plus ``final_answer``). Raises :class:`McpUnavailableError`; servers already connected are closed first.
    """
    if reserved_names is None:
        from . import agent_tool_names

        reserved = agent_tool_names()
    else:
        reserved = set(reserved_names) | {"final_answer"}
    servers = [parse_server(u) for u in urls]
    if not servers:
        return McpConnection(tools=[], servers=[])
    try:
        import mcpadapt.core
        import mcpadapt.smolagents_adapter  # noqa: F401
    except ImportError as exc:
        raise McpUnavailableError(
            f"MCP servers need the optional dependencies mcp (<2) and mcpadapt: pip install '{MCP_EXTRA}' ({exc})"
        ) from None
    # mcpadapt 0.1.x still calls mcp's streamablehttp_client, deprecated in mcp 1.2x; the warning is not the user's.
    warnings.filterwarnings("ignore", message="Use `streamable_http_client` instead", category=DeprecationWarning)
    connection = McpConnection(tools=[], servers=servers)
    owner: dict[str, McpServer] = {}
    try:
        for server in servers:
            session, tools = _connect(server, timeout_s)
            connection._sessions.append(session)
            for tool in tools:
                name = server.prefix + str(tool.name)
                _rename(tool, name, server)
                if name in reserved:
                    raise McpUnavailableError(
                        f"the MCP server {server} offers a tool named {name!r}, which is a built-in tool name; "
                        f"give the server a name (NAME={server.url}) so its tools are prefixed"
                    )
                if name in owner:
                    raise McpUnavailableError(
                        f"the MCP servers {owner[name]} and {server} both offer a tool named {name!r}; give them "
                        "different names (NAME=URL) so their tools are prefixed"
                    )
                owner[name] = server
                connection.tools.append(tool)
    except BaseException:
        connection.close(timeout_s=2.0)
        raise
    logger.info(
        "MCP: %d tool(s) from %d server(s): %s", len(connection.tools), len(servers), [t.name for t in connection.tools]
    )
    return connection
