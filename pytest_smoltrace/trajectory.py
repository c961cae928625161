"""The trajectory checks: the order of the executed tool calls (``tool_order``) and loops (``repeated_calls``).

``expected_tool_order`` lists tool names (``final_answer`` left out); the executed calls are the calls that ran
without raising, in order, ``final_answer`` excluded. ``tool_order_mode`` says how they are held against the list
(the match modes of agentevals and Google ADK):

- ``exact``: the executed calls are exactly this sequence;
- ``in_order`` (the default): this sequence appears in order, other calls allowed before, between and after;
- ``any_order``: each listed call is executed (a name listed twice needs two calls), in any order, others allowed;
- ``subset``: no executed call is outside the list (the list is what the agent may use; none is required).

``repeated_calls`` is the most times one tool was called with identical arguments (calls that raised count: a loop
of failing calls is a loop); with ``max_repeated_calls`` it is a check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .arguments import arguments_text
from .records import Check, RunRecord, ToolOrderMode, repeated_calls

__all__ = ["check_repeated_calls", "check_tool_order", "order_holds"]


def _is_subsequence(wanted: Sequence[str], executed: Sequence[str]) -> bool:
    remaining = iter(executed)
    return all(any(name == got for got in remaining) for name in wanted)


def order_holds(mode: ToolOrderMode, expected: Sequence[str], executed: Sequence[str]) -> bool:
    """Whether the executed tool names satisfy ``expected`` under ``mode`` (see the module docstring)."""
    if mode == "exact":
        return list(executed) == list(expected)
    if mode == "in_order":
        return _is_subsequence(expected, executed)
    if mode == "any_order":
        have = Counter(executed)
        return all(have[name] >= n for name, n in Counter(expected).items())
    if mode == "subset":
        allowed = set(expected)
        return all(name in allowed for name in executed)
    raise ValueError(f"unknown tool_order_mode {mode!r}")


def check_tool_order(expected: Sequence[str], mode: ToolOrderMode, record: RunRecord) -> Check:
    """The ``tool_order`` check: ``expected`` is ``{mode: [names]}``, ``actual`` the executed calls in order."""
    executed = record.executed_tools
    return Check(
        name="tool_order",
        passed=order_holds(mode, expected, executed),
        expected={mode: list(expected)},
        actual=executed,
    )


def check_repeated_calls(limit: int, record: RunRecord) -> Check:
    """The ``repeated_calls`` check: no tool called more than ``limit`` times with identical arguments."""
    count, call = repeated_calls(record.tool_calls)
    if call is None:
        actual = "no tool calls"
    elif count == 1:
        actual = "no call repeated"
    else:
        actual = f"{count} × {arguments_text(call)}"
    return Check(
        name="repeated_calls",
        passed=count <= limit,
        expected=f"≤{limit} identical calls",
        actual=actual,
    )
