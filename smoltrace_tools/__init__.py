"""Every tool an agent can be given, and the registry name → factory.

Importing this package is cheap: smolagents is imported only when a tool is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smolagents import Tool

__all__ = [
    "DEFAULT_TOOL_NAMES",
    "TOOL_REGISTRY",
    "ToolFactory",
    "UnknownToolError",
    "available_tools",
    "get_tools",
]

ToolFactory = Callable[[], "Tool"]

#: The three deterministic tools every agent gets (SMOLTRACE's names).
DEFAULT_TOOL_NAMES: tuple[str, ...] = ("get_weather", "calculator", "get_current_time")


class UnknownToolError(ValueError):
    """A tool name that is not registered, or a name asked for twice. ``str()`` lists the registered names."""


def _weather() -> Tool:
    from .default import WeatherTool

    return WeatherTool()


def _calculator() -> Tool:
    from .default import CalculatorTool

    return CalculatorTool()


def _time() -> Tool:
    from .default import TimeTool

    return TimeTool()


#: name → zero-argument factory returning a fresh :class:`smolagents.Tool`.
TOOL_REGISTRY: dict[str, ToolFactory] = {
    "get_weather": _weather,
    "calculator": _calculator,
    "get_current_time": _time,
}


def available_tools() -> list[str]:
    """Registered tool names, sorted."""
    return sorted(TOOL_REGISTRY)


def get_tools(names: Iterable[str] | None = None, *, working_dir: str | os.PathLike[str] | None = None) -> list[Tool]:
    """Fresh tool instances for ``names`` (None → :data:`DEFAULT_TOOL_NAMES`), in the order given.

    ``working_dir`` is the sandbox root for file/text tools (none of the default tools use it).
    Raises :class:`UnknownToolError` for an unknown or duplicated name.
    """
    del working_dir  # reserved for the file/text tools; the defaults need no working directory
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
    return [TOOL_REGISTRY[n]() for n in wanted]
