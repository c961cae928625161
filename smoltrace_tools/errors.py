"""Exceptions of the tool package: configuration errors (raised before a run) and refusals (raised to the agent).

Configuration errors are ``ValueError`` subclasses that the plugin turns into a usage error before any task runs.
Refusals are ``PermissionError`` subclasses raised from a tool's ``forward``: the recorder stores them as the
call's error (``"SandboxViolation: …"``), smolagents shows the message to the model, and the run goes on.
"""

from __future__ import annotations

import importlib.util

__all__ = [
    "WEB_EXTRA",
    "FileTooLarge",
    "NetworkPolicyViolation",
    "PatternRefused",
    "ProcessPolicyViolation",
    "SandboxViolation",
    "ToolConfigError",
    "ToolConflictError",
    "ToolRefusal",
    "ToolTimeout",
    "ToolUnavailableError",
    "UnknownToolError",
    "require_module",
]

#: The extra that installs the web tools' optional dependencies.
WEB_EXTRA = "pytest-smoltrace[web]"


class ToolConfigError(ValueError):
    """A tool selection that cannot be built (base class of the configuration errors below)."""


class UnknownToolError(ToolConfigError):
    """A tool name that is not registered, or a name asked for twice. ``str()`` lists the registered names."""


class ToolConflictError(ToolConfigError):
    """Two selected tools would reach the agent under one name (e.g. two different ``web_search`` tools)."""


class ToolUnavailableError(ToolConfigError):
    """A selected tool needs an optional extra (``pytest-smoltrace[web]``) or an API key that is missing."""


class ToolRefusal(PermissionError):
    """A tool call the sandbox refused. The message says what was refused and what is allowed instead."""


class SandboxViolation(ToolRefusal):
    """A path outside the working directory, a special file, a NUL byte, or a refused file operation."""


class FileTooLarge(SandboxViolation):
    """A read or write over the size limits."""


class PatternRefused(ToolRefusal):
    """A regular expression that is too long, invalid, or ran past its time budget (catastrophic backtracking)."""


class ProcessPolicyViolation(ToolRefusal):
    """A signal to a process that the agent's own tools did not start, or a refused environment change."""


class NetworkPolicyViolation(ToolRefusal):
    """A URL or host the network policy refuses (scheme, credentials, loopback/private/link-local/metadata)."""


class ToolTimeout(TimeoutError):
    """A tool call that ran past the per-call limit (``--smoltrace-tool-timeout``); its thread was abandoned."""


def require_module(module: str, extra: str, what: str) -> None:
    """:class:`ToolUnavailableError` naming ``extra`` when ``module`` is not installed (nothing is imported)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ToolUnavailableError(f"{what} needs the optional dependency {module!r}: pip install '{extra}'")
