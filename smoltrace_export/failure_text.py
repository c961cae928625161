"""The failure message of an item, as pytest prints it and report.html shows it: one rendering for both.

:func:`checks_table` is the aligned table of a verdict's checks; :func:`failure_message` the whole text (outcome,
error, stop reason, steps, tokens, time, the table, the executed tool calls, the final answer). The plugin feeds them
from its records (``pytest_smoltrace.report.failure_text``), the HTML report from results.json rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckLine", "ToolCallLine", "checks_table", "failure_message", "truncate", "value_text"]


def value_text(value: Any) -> str:
    """Compact one-line rendering: strings bare (also inside containers), repr for the rest."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(value_text(v) for v in value) + "]"
    else:
        text = repr(value)
    return " ".join(text.split())


def truncate(text: str, limit: int) -> str:
    if limit <= 1:
        return "…" if text else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class CheckLine:
    """One check as the table shows it."""

    name: str
    passed: bool
    expected: Any
    actual: Any


@dataclass(frozen=True)
class ToolCallLine:
    """One executed tool call as the message lists it."""

    name: str
    arguments: Mapping[str, Any]
    ok: bool


def checks_table(checks: Sequence[CheckLine], error: str | None = None, width: int = 100) -> str:
    """The checks as an aligned plain-text table, one line per check: ``PASS|FAIL  name  expected=…  actual=…``,
    after the verdict's error (if any). Long values are cut with "…" so that each line fits in ``width`` characters
    where possible."""
    lines: list[str] = []
    if error is not None:
        lines.append(truncate(f"ERROR {' '.join(error.split())}", max(width, 20)))
    if not checks:
        lines.append("(no checks)")
        return "\n".join(lines)
    name_width = max(len(c.name) for c in checks)
    expected_texts = [f"expected={value_text(c.expected)}" for c in checks]
    room = max(width - (4 + 2 + name_width + 2), 30)
    column = min(max(len(t) for t in expected_texts), room * 2 // 5)
    for check, expected_text in zip(checks, expected_texts, strict=True):
        status = "PASS" if check.passed else "FAIL"
        expected_cell = truncate(expected_text, column).ljust(column)
        actual_cell = truncate(f"actual={value_text(check.actual)}", room - column - 2)
        lines.append(f"{status}  {check.name.ljust(name_width)}  {expected_cell}  {actual_cell}".rstrip())
    return "\n".join(lines)


def failure_message(
    *,
    agent_type: Any,
    task_id: str,
    outcome: str,
    error: str | None,
    stop_reason: Any,
    steps: Any,
    tokens: Any,
    duration_ms: float,
    checks: str,
    tool_calls: Sequence[ToolCallLine],
    response: str | None,
) -> str:
    """The whole failure message; ``checks`` is the :func:`checks_table` text."""
    lines = [f"{agent_type} agent on task {task_id!r}: {outcome.upper()}"]
    if error:
        lines.append(error)
    lines.append(f"stop reason: {stop_reason} · steps: {steps} · tokens: {tokens} · {duration_ms:.0f} ms")
    lines.append(checks)
    executed = [
        f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})" + ("" if c.ok else " ✗")
        for c in tool_calls
    ]
    lines.append("executed tool calls: " + (", ".join(executed) if executed else "none"))
    if response is not None:
        lines.append(f"final answer: {response[:500]!r}")
    return "\n".join(lines)
