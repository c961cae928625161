"""Every tool an agent can be given, the registry name → :class:`ToolSpec`, and :func:`get_tools`.

Tool and argument names are SMOLTRACE's, so its datasets keep working. File, text, process and network tools
share one :class:`~smoltrace_tools.context.ToolContext` per :func:`get_tools` call (sandboxed working directory,
spawned processes, environment overlay, network policy); see :mod:`smoltrace_tools.sandbox` and README
"Tools and the sandbox".

Importing this package is cheap: smolagents and the optional dependencies are imported only when a tool is built.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import (
    WEB_EXTRA,
    ToolConfigError,
    ToolConflictError,
    ToolRefusal,
    ToolTimeout,
    ToolUnavailableError,
    UnknownToolError,
    require_module,
)

if TYPE_CHECKING:
    from smolagents import Tool

    from .addresses import NetworkPolicy
    from .context import ToolContext

__all__ = [
    "DEFAULT_TOOL_NAMES",
    "TOOL_REGISTRY",
    "ToolConfigError",
    "ToolConflictError",
    "ToolFactory",
    "ToolRefusal",
    "ToolSpec",
    "ToolTimeout",
    "ToolUnavailableError",
    "UnknownToolError",
    "agent_tool_names",
    "available_tools",
    "check_tools",
    "close_tools",
    "get_tools",
    "require_module",
]

#: Builds one fresh tool for a run's context.
ToolFactory = Callable[["ToolContext"], "Tool"]

#: The three deterministic tools every agent gets (SMOLTRACE's names).
DEFAULT_TOOL_NAMES: tuple[str, ...] = ("get_weather", "calculator", "get_current_time")


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool: how to build it and what it needs.

    ``tool_name`` is the name the agent sees when it differs from the registry name (SMOLTRACE's
    ``google_search`` and ``duckduckgo_search`` both become ``web_search``). ``search`` marks the search tools:
    ``"configured"`` uses the run's search provider, ``"duckduckgo"`` always DuckDuckGo.
    """

    name: str
    family: str
    summary: str
    build: ToolFactory
    tool_name: str | None = None
    modules: tuple[str, ...] = ()
    uses_working_dir: bool = False
    search: str | None = None

    @property
    def agent_name(self) -> str:
        return self.tool_name or self.name


# ------------------------------------------------------------------------------------------------ factories


def _weather(ctx: ToolContext) -> Tool:
    from .default import WeatherTool

    return WeatherTool()


def _calculator(ctx: ToolContext) -> Tool:
    from .default import CalculatorTool

    return CalculatorTool()


def _time(ctx: ToolContext) -> Tool:
    from .default import TimeTool

    return TimeTool()


def _context_tool(module: str, cls: str) -> ToolFactory:
    def build(ctx: ToolContext) -> Tool:
        tool_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        tool: Tool = tool_class(ctx)
        return tool

    return build


def _shielded(tool: Tool, ctx: ToolContext) -> Tool:
    from .base import shield

    return shield(tool, ctx)


def _configured_search(ctx: ToolContext) -> Tool:
    from .web import build_search_tool

    return _shielded(build_search_tool(ctx.search_provider), ctx)


def _duckduckgo(ctx: ToolContext) -> Tool:
    from .web import build_search_tool

    return _shielded(build_search_tool("duckduckgo"), ctx)


def _wikipedia(ctx: ToolContext) -> Tool:
    from .web import build_wikipedia_tool

    return _shielded(build_wikipedia_tool(), ctx)


def _python_interpreter(ctx: ToolContext) -> Tool:
    from .interaction import build_python_interpreter

    return _shielded(build_python_interpreter(ctx.additional_imports, ctx.timeout_s), ctx)


def _spec(name: str, family: str, summary: str, build: ToolFactory, **kw: object) -> ToolSpec:
    return ToolSpec(name, family, summary, build, **kw)  # type: ignore[arg-type]


_SPECS: tuple[ToolSpec, ...] = (
    _spec("get_weather", "default", "weather of a fixed table of cities (location)", _weather),
    _spec("calculator", "default", "safe arithmetic (expression)", _calculator),
    _spec("get_current_time", "default", "current time in an IANA time zone (timezone)", _time),
    _spec(
        "google_search",
        "web",
        "web search with the run's search provider (query)",
        _configured_search,
        tool_name="web_search",
        search="configured",
    ),
    _spec(
        "web_search",
        "web",
        "alias of google_search (tasks name the tool the agent sees)",
        _configured_search,
        search="configured",
    ),
    _spec(
        "duckduckgo_search",
        "web",
        "DuckDuckGo web search (query)",
        _duckduckgo,
        tool_name="web_search",
        search="duckduckgo",
    ),
    _spec(
        "visit_webpage",
        "web",
        "fetch a public web page as markdown (url)",
        _context_tool("web", "VisitWebpageTool"),
        modules=("markdownify",),
    ),
    _spec("wikipedia_search", "web", "Wikipedia summary of a topic (query)", _wikipedia, modules=("wikipediaapi",)),
    _spec("python_interpreter", "code", "smolagents' restricted Python interpreter (code)", _python_interpreter),
    _spec(
        "user_input",
        "interaction",
        "non-interactive: a configured answer or an error (question)",
        _context_tool("interaction", "NonInteractiveUserInputTool"),
    ),
    _spec(
        "read_file",
        "file",
        "read a text file (file_path, encoding)",
        _context_tool("files", "ReadFileTool"),
        uses_working_dir=True,
    ),
    _spec(
        "write_file",
        "file",
        "write or append a text file (file_path, content, mode)",
        _context_tool("files", "WriteFileTool"),
        uses_working_dir=True,
    ),
    _spec(
        "list_directory",
        "file",
        "list a directory (directory_path, pattern)",
        _context_tool("files", "ListDirectoryTool"),
        uses_working_dir=True,
    ),
    _spec(
        "search_files",
        "file",
        "find files by name or content (directory, pattern, search_type, max_results)",
        _context_tool("files", "SearchFilesTool"),
        uses_working_dir=True,
    ),
    _spec(
        "grep",
        "text",
        "lines matching a regex (file_path, pattern, case_insensitive, line_numbers, context_before, "
        "context_after, invert_match, count_only)",
        _context_tool("text", "GrepTool"),
        uses_working_dir=True,
    ),
    _spec(
        "sed",
        "text",
        "s///, /re/d, /re/p, Nd, Np on a file (file_path, command, global_replace, case_insensitive, output_file)",
        _context_tool("text", "SedTool"),
        uses_working_dir=True,
    ),
    _spec(
        "sort",
        "text",
        "sort lines (file_path, numeric, reverse, unique, case_insensitive, output_file)",
        _context_tool("text", "SortTool"),
        uses_working_dir=True,
    ),
    _spec(
        "head_tail",
        "text",
        "first or last lines (file_path, mode, lines)",
        _context_tool("text", "HeadTailTool"),
        uses_working_dir=True,
    ),
    _spec(
        "ps",
        "process",
        "list processes (filter_name, sort_by, limit, descending)",
        _context_tool("system", "PsTool"),
    ),
    _spec(
        "kill",
        "process",
        "signal a process this run's tools started (pid, force)",
        _context_tool("system", "KillTool"),
    ),
    _spec(
        "env",
        "process",
        "get/set/list environment variables in a per-run overlay (action, name, value, filter_pattern)",
        _context_tool("system", "EnvTool"),
    ),
    _spec("which", "process", "locate an executable (command, all_matches)", _context_tool("system", "WhichTool")),
    _spec(
        "curl",
        "network",
        "HTTP(S) request to a public URL (url, method, headers, body, timeout, follow_redirects)",
        _context_tool("network", "CurlTool"),
    ),
    _spec("ping", "network", "ping a public host (host, count, timeout)", _context_tool("network", "PingTool")),
)

#: registry name → :class:`ToolSpec`.
TOOL_REGISTRY: dict[str, ToolSpec] = {spec.name: spec for spec in _SPECS}


def available_tools() -> list[str]:
    """Registered tool names, sorted."""
    return sorted(TOOL_REGISTRY)


def agent_tool_names() -> set[str]:
    """Every name a registered tool can reach an agent under (plus ``final_answer``)."""
    return {spec.agent_name for spec in _SPECS} | {"final_answer"}


# ------------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class _Plan:
    spec: ToolSpec
    variant: str  # the search provider for search tools, else ""

    @property
    def label(self) -> str:
        return f"{self.spec.name} (search provider {self.variant!r})" if self.variant else self.spec.name


def _plan(names: Iterable[str] | None, search_provider: str) -> list[_Plan]:
    wanted = list(DEFAULT_TOOL_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in TOOL_REGISTRY]
    if unknown:
        raise UnknownToolError(
            f"Unknown tool name(s): {', '.join(map(repr, unknown))}. Available tools: {', '.join(available_tools())}"
        )
    duplicates = sorted({n for n in wanted if wanted.count(n) > 1})
    if duplicates:
        raise UnknownToolError(
            f"Tool name(s) given more than once: {', '.join(map(repr, duplicates))}. "
            f"Available tools: {', '.join(available_tools())}"
        )
    plans: list[_Plan] = []
    by_agent_name: dict[str, _Plan] = {}
    for name in wanted:
        spec = TOOL_REGISTRY[name]
        variant = ""
        if spec.search == "configured":
            variant = (search_provider or "").strip().lower()
        elif spec.search == "duckduckgo":
            variant = "duckduckgo"
        plan = _Plan(spec, variant)
        earlier = by_agent_name.get(spec.agent_name)
        if earlier is None:
            by_agent_name[spec.agent_name] = plan
            plans.append(plan)
        elif earlier.variant != variant:
            raise ToolConflictError(
                f"{earlier.label} and {plan.label} would both reach the agent as {spec.agent_name!r}; enable only "
                "one of them, or pick the same search provider for both"
            )
        # else: the same tool under two registry names (e.g. google_search with duckduckgo + duckduckgo_search)
    return plans


def _check_plan(plan: _Plan) -> None:
    spec = plan.spec
    if spec.search is not None:
        from .web import check_search_provider

        check_search_provider(plan.variant)
    for module in spec.modules:
        require_module(module, WEB_EXTRA, f"the tool {spec.name!r}")


def check_tools(
    names: Iterable[str] | None = None,
    *,
    search_provider: str = "duckduckgo",
    working_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Validate a tool selection without building anything; the names the agent will see, in order.

    Raises :class:`UnknownToolError` (unknown or repeated name), :class:`ToolConflictError` (two tools under one
    agent-visible name), :class:`ToolUnavailableError` (missing optional extra, missing search API key, unknown
    search provider) or :class:`ToolConfigError` (working directory missing while file/text tools are selected).
    All are ``ValueError`` subclasses; no network client is built and no optional module is imported.
    """
    plans = _plan(names, search_provider)
    for plan in plans:
        _check_plan(plan)
    if any(p.spec.uses_working_dir for p in plans):
        from .sandbox import Sandbox

        Sandbox(os.getcwd() if working_dir is None else working_dir)
    return [p.spec.agent_name for p in plans]


def get_tools(
    names: Iterable[str] | None = None,
    *,
    working_dir: str | os.PathLike[str] | None = None,
    search_provider: str = "duckduckgo",
    timeout_s: float = 30.0,
    allow_private_network: bool = False,
    user_input_answer: str | None = None,
    additional_imports: Sequence[str] = (),
    network: NetworkPolicy | None = None,
) -> list[Tool]:
    """Fresh tool instances for ``names`` (None → :data:`DEFAULT_TOOL_NAMES`), in the order given.

    The returned tools share one new :class:`~smoltrace_tools.context.ToolContext`:

    * ``working_dir`` — the sandbox root of the file/text tools (None → the current directory);
    * ``search_provider`` — ``google_search`` / ``web_search``: duckduckgo (default), serper, serpapi or brave;
    * ``timeout_s`` — caps ``curl``/``visit_webpage`` requests and ``python_interpreter`` runs;
    * ``allow_private_network`` — let ``curl``/``ping``/``visit_webpage`` reach loopback and private addresses
      (metadata addresses stay refused);
    * ``user_input_answer`` — what ``user_input`` answers (None → it raises "no user is available");
    * ``additional_imports`` — extra modules ``python_interpreter`` may import;
    * ``network`` — a ready :class:`~smoltrace_tools.addresses.NetworkPolicy` (tests inject a resolver).

    Tools resolving to one agent-visible name are merged (``google_search`` with duckduckgo and
    ``duckduckgo_search`` give one ``web_search``) or refused (:class:`ToolConflictError`). Raises what
    :func:`check_tools` raises.
    """
    from .context import ToolContext

    plans = _plan(names, search_provider)
    for plan in plans:
        _check_plan(plan)
    context = ToolContext(
        working_dir=working_dir,
        timeout_s=timeout_s,
        allow_private_network=allow_private_network,
        network=network,
        search_provider=search_provider,
        user_input_answer=user_input_answer,
        additional_imports=additional_imports,
    )
    if any(p.spec.uses_working_dir for p in plans):
        _ = context.sandbox  # fail now, not at the first tool call, when the directory is missing
    return [plan.spec.build(context) for plan in plans]


def close_tools(tools: Iterable[object]) -> None:
    """Close the contexts of ``tools`` (kills processes their tools started that still run). Safe to repeat."""
    from .context import ToolContext

    seen: set[int] = set()
    for tool in tools:
        context = getattr(tool, "context", None)
        if isinstance(context, ToolContext) and id(context) not in seen:
            seen.add(id(context))
            context.close()
