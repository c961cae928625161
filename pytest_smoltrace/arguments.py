"""``expected_tool_args``: argument matchers held against the executed calls of a tool (BFCL's rule of acceptable
values, plus regular expressions and tolerances).

A task's ``expected_tool_args`` is ``{tool: {argument: matcher}}``. The check ``tool_args:<tool>`` passes when at
least one executed call of that tool (a call that raised is not one) matches every listed argument. A matcher is:

- a value: equal — strings after trimming and case-folding, numbers numerically (``2`` is ``2.0``; a boolean is no
  number), booleans and ``null`` as themselves, a list element by element;
- a list: any of its items (acceptable values, as in BFCL; an item may itself be a list, for a list argument, or a
  ``regex``/``approx`` object);
- ``{"regex": "…"}``: the whole text of the argument matches (numbers are matched as they print);
- ``{"approx": x, "tol": t}``: a number within ``t`` of ``x``.

An argument the call did not pass matches only ``null``. :func:`matcher_problem` is the validation the task loader
applies; :func:`check_tool_args` builds the check, showing the closest call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .records import Check, RunRecord, ToolCall

__all__ = ["arguments_text", "check_tool_args", "matcher_problem", "matches"]

_REGEX = "regex"
_APPROX = "approx"
_TOL = "tol"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_matcher_object(value: object) -> bool:
    return isinstance(value, Mapping) and (set(value) == {_REGEX} or set(value) == {_APPROX, _TOL})


def matcher_problem(matcher: object, *, inside_list: bool = False) -> str | None:
    """Why ``matcher`` is not a valid argument matcher, or ``None`` when it is."""
    if matcher is None or isinstance(matcher, (str, bool)) or _is_number(matcher):
        if isinstance(matcher, float) and not math.isfinite(matcher):
            return "a number must be finite"
        return None
    if isinstance(matcher, (list, tuple)):
        if inside_list:  # a list inside the acceptable values: a list argument, compared element by element
            for item in matcher:
                if isinstance(item, Mapping):
                    return "a list value may hold only strings, numbers, booleans, null and lists"
                problem = matcher_problem(item, inside_list=True)
                if problem is not None:
                    return problem
            return None
        if not matcher:
            return "a list of acceptable values must not be empty"
        for index, item in enumerate(matcher, start=1):
            problem = matcher_problem(item, inside_list=True)
            if problem is not None:
                return f"acceptable value {index}: {problem}"
        return None
    if isinstance(matcher, Mapping):
        keys = set(matcher)
        if keys == {_REGEX}:
            pattern = matcher[_REGEX]
            if not isinstance(pattern, str):
                return f'"regex" must be a string (a regular expression); got {pattern!r}'
            try:
                re.compile(pattern)
            except re.error as exc:
                return f'"regex" {pattern!r} is not a valid regular expression: {exc}'
            return None
        if keys == {_APPROX, _TOL}:
            target, tol = matcher[_APPROX], matcher[_TOL]
            if not _is_number(target) or not math.isfinite(target):
                return f'"approx" must be a finite number; got {target!r}'
            if not _is_number(tol) or not math.isfinite(tol) or tol < 0:
                return f'"tol" must be a finite number ≥ 0; got {tol!r}'
            return None
        shown = ", ".join(repr(str(k)) for k in matcher) or "none"
        return (
            'an object matcher must be {"regex": "…"} or {"approx": x, "tol": t} '
            f"(for acceptable values use a list); got keys {shown}"
        )
    return f"must be a value, a list of acceptable values, or a regex/approx object; got {type(matcher).__name__}"


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return isinstance(actual, str) and actual.strip().casefold() == expected.strip().casefold()
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual == expected
    if _is_number(expected):
        return _is_number(actual) and actual == expected
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(_equal(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def _regex_text(actual: Any) -> str | None:
    if isinstance(actual, str):
        return actual
    if _is_number(actual):
        return str(actual)
    return None


def matches(actual: Any, matcher: Any, *, inside_list: bool = False) -> bool:
    """Whether the argument value ``actual`` satisfies ``matcher`` (see the module docstring)."""
    if isinstance(matcher, Mapping) and _is_matcher_object(matcher):
        if _REGEX in matcher:
            text = _regex_text(actual)
            return text is not None and re.fullmatch(str(matcher[_REGEX]), text) is not None
        target, tol = matcher[_APPROX], matcher[_TOL]
        return _is_number(actual) and math.isfinite(actual) and abs(actual - target) <= tol
    if isinstance(matcher, (list, tuple)) and not inside_list:
        return any(matches(actual, item, inside_list=True) for item in matcher)
    return _equal(actual, matcher)


_MISSING = object()


def _argument_matches(call: ToolCall, name: str, matcher: Any) -> bool:
    value = call.arguments.get(name, _MISSING)
    if value is _MISSING:
        return matcher is None
    return matches(value, matcher)


def arguments_text(call: ToolCall, limit: int = 200) -> str:
    """``calculator(expression='2*3')``: a call as a user reads it."""
    inner = ", ".join(f"{key}={value!r}" for key, value in call.arguments.items())
    text = f"{call.name}({inner})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_tool_args(tool: str, expected: Mapping[str, Any], record: RunRecord) -> Check:
    """The ``tool_args:<tool>`` check: an executed call of ``tool`` matching every argument of ``expected``.

    ``actual`` shows the matching call or, when none matches, the closest one (most arguments matched, the first of
    equals) and the names of the arguments it got wrong (an argument it did not pass among them)."""
    name = f"tool_args:{tool}"
    shown_expected = dict(expected)
    calls = [c for c in record.tool_calls if c.name == tool and c.ok]
    if not calls:
        raised = sum(1 for c in record.tool_calls if c.name == tool)
        why = f"no successful call of {tool}" + (f" ({raised} raised)" if raised else "")
        return Check(name=name, passed=False, expected=shown_expected, actual=why)
    best: ToolCall | None = None
    best_wrong: list[str] = []
    for call in calls:
        wrong = [arg for arg, matcher in expected.items() if not _argument_matches(call, arg, matcher)]
        if not wrong:
            return Check(name=name, passed=True, expected=shown_expected, actual={"call": arguments_text(call)})
        if best is None or len(wrong) < len(best_wrong):
            best, best_wrong = call, wrong
    assert best is not None
    actual: dict[str, Any] = {"closest call": arguments_text(best), "mismatched": best_wrong}
    if len(calls) > 1:
        actual["calls"] = len(calls)
    return Check(name=name, passed=False, expected=shown_expected, actual=actual)
