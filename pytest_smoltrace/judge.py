"""The verdict (DESIGN §4): checks computed from executed tool calls, identically for both agent types.

Also GAIA's quasi-exact-match scorer, ported with a few deliberate improvements (see
:func:`quasi_exact_match`), and the plain-text table of checks used as an item's failure message.
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .records import Check, RunRecord, Verdict
from .tasks import Task

logger = logging.getLogger(__name__)

__all__ = [
    "ERROR_STOP_REASONS",
    "final_answer_text",
    "format_checks",
    "judge",
    "normalize_number_str",
    "normalize_str",
    "quasi_exact_match",
    "split_string",
    "user_judges_apply",
]

FINAL_ANSWER = "final_answer"
#: Stop reasons that make an item an error outcome (pytest's ``E``).
ERROR_STOP_REASONS = ("error", "timeout")

# --------------------------------------------------------------------------------------------------------------
# GAIA quasi-exact match
# --------------------------------------------------------------------------------------------------------------

#: A number written with thousands separators: "1,234", "-1,234,567.5", "$1,234".
_THOUSANDS = re.compile(r"^\s*[-+]?\$?\s*\d{1,3}(,\d{3})+(\.\d+)?\s*%?\s*$")


def normalize_number_str(number_str: str) -> float:
    """GAIA: strip ``$``, ``%`` and ``,`` and parse as float; ``inf`` when it is not a number."""
    for char in ("$", "%", ","):
        number_str = number_str.replace(char, "")
    try:
        return float(number_str)
    except ValueError:
        logger.debug("answer %r is not a number", number_str)
        return float("inf")


def split_string(text: str, char_list: Sequence[str] = (",", ";")) -> list[str]:
    """GAIA: split on any of ``char_list``."""
    pattern = f"[{''.join(re.escape(c) for c in char_list)}]"
    return re.split(pattern, text)


def normalize_str(input_str: str, remove_punct: bool = True) -> str:
    """GAIA: remove all whitespace, lowercase, and (by default) remove ASCII punctuation."""
    no_spaces = re.sub(r"\s", "", input_str)
    if remove_punct:
        return no_spaces.lower().translate(str.maketrans("", "", string.punctuation))
    return no_spaces.lower()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers_equal(answer: str, expected: float) -> bool:
    """GAIA's numeric comparison, except that an answer that is not a number never matches (GAIA maps it to
    ``inf``, which would match an ``"inf"`` ground truth) and floats are compared with a 1e-9 relative tolerance."""
    value = normalize_number_str(answer)
    if math.isinf(value) and not _is_float(answer.replace("$", "").replace("%", "").replace(",", "")):
        return False
    if math.isinf(value) or math.isinf(expected):
        return value == expected
    return math.isclose(value, expected, rel_tol=1e-9, abs_tol=0.0)


def _lists_equal(answer: str, expected: str) -> bool:
    expected_elems = split_string(expected)
    answer_elems = split_string(answer)
    if len(expected_elems) != len(answer_elems):
        return False
    for answer_elem, expected_elem in zip(answer_elems, expected_elems, strict=True):
        if _is_float(expected_elem):
            if not _numbers_equal(answer_elem, float(expected_elem)):
                return False
        elif normalize_str(answer_elem, remove_punct=False) != normalize_str(expected_elem, remove_punct=False):
            return False
    return True


def quasi_exact_match(answer: object, expected: str | float) -> bool:
    """GAIA's ``question_scorer``: is ``answer`` quasi-exactly the ground truth ``expected``?

    As in GAIA: a numeric ground truth is compared as a float after stripping ``$ % ,`` from the answer; a
    ground truth containing ``,`` or ``;`` is a list compared element-wise (numbers as floats, strings
    normalised with punctuation kept, lengths must match); any other string is compared after removing
    whitespace and punctuation and lowercasing.

    Deliberate improvements over GAIA:

    - a numeric ``expected`` (an int/float in the JSON) is compared numerically (GAIA only takes strings);
    - a string ground truth that is a number with thousands separators (``"1,234,567"``, ``"1,234.5"``) is
      treated as that number, not as a list;
    - the answer is ``str()``-ed (agents may return ints, floats, lists…); a ``None`` answer never matches;
    - an answer that is not a number never equals a numeric ground truth, and numbers are compared with a
      relative tolerance of 1e-9 (so float noise such as ``0.30000000000000004`` still equals ``0.3``).
    """
    if answer is None:
        return False
    if isinstance(expected, bool):
        expected = str(expected)
    answer_text = str(answer)
    if isinstance(expected, (int, float)):
        return _numbers_equal(answer_text, float(expected))
    if _is_float(expected):
        return _numbers_equal(answer_text, float(expected))
    if _THOUSANDS.match(expected):
        return _numbers_equal(answer_text, normalize_number_str(expected))
    if any(char in expected for char in (",", ";")):
        return _lists_equal(answer_text, expected)
    return normalize_str(answer_text) == normalize_str(expected)


# --------------------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------------------


def _check_final_answer(record: RunRecord) -> Check:
    passed = record.final_answer_called and record.stop_reason == "final_answer"
    if passed:
        actual = "called"
    elif record.final_answer_called:
        actual = f"called, but stop reason {record.stop_reason}"
    else:
        actual = f"not called (stop reason: {record.stop_reason})"
    return Check(name="final_answer", passed=passed, expected="called", actual=actual)


def _ok_counts(record: RunRecord) -> Counter[str]:
    """Executed (non-raising) calls per tool name, ``final_answer`` excluded."""
    return Counter(c.name for c in record.tool_calls if c.ok and c.name != FINAL_ANSWER)


def _check_tool_called(record: RunRecord) -> Check:
    executed = record.executed_tools
    return Check(name="tool_called", passed=bool(executed), expected="≥1 tool call", actual=executed)


def _check_expected_tool(task: Task, record: RunRecord) -> Check:
    counts = _ok_counts(record)
    expected_tool = task.expected_tool
    minimum = task.expected_tool_calls
    if isinstance(expected_tool, tuple):
        expected: Any = {name: "≥1" for name in expected_tool}
        actual: Any = {name: counts.get(name, 0) for name in expected_tool}
        passed = all(counts.get(name, 0) >= 1 for name in expected_tool)
    elif expected_tool == "multiple":
        total = sum(counts.values())
        expected = f"≥{minimum} calls of any tools"
        actual = f"{total} calls" + (f" ({_format_counts(counts)})" if counts else "")
        passed = total >= minimum
    else:
        name = str(expected_tool)
        expected = {name: f"≥{minimum}"}
        actual = {name: counts.get(name, 0)}
        passed = counts.get(name, 0) >= minimum
    return Check(name="expected_tool", passed=passed, expected=expected, actual=actual)


def _format_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{name}×{n}" for name, n in counts.items())


def _check_forbidden_tools(task: Task, record: RunRecord) -> Check:
    forbidden = set(task.forbidden_tools)
    offending = [c.name for c in record.tool_calls if c.name in forbidden]
    return Check(
        name="forbidden_tools",
        passed=not offending,
        expected=f"none of [{', '.join(task.forbidden_tools)}]",
        actual=offending,
    )


def final_answer_text(record: RunRecord) -> tuple[str | None, str]:
    """The text the answer checks judge, or ``None`` and why there is none.

    Only an answer given through ``final_answer`` is an answer: the summary smolagents writes after max steps (kept
    in ``record.response``) is not one, nor is anything of a run that errored or timed out.
    """
    if record.stop_reason == "final_answer" and record.final_answer_called and record.response is not None:
        return record.response, ""
    if record.stop_reason == "max_steps":
        return None, "no final answer: max steps reached (the summary is not a final answer)"
    return None, f"no final answer (stop reason: {record.stop_reason})"


def _check_keywords(task: Task, record: RunRecord) -> Check:
    keywords = list(task.expected_keywords)
    expected = f"{task.keyword_mode} of [{', '.join(keywords)}]"
    answer, why_not = final_answer_text(record)
    if answer is None:
        return Check(name="expected_keywords", passed=False, expected=expected, actual=why_not)
    text = answer.lower()
    matched = [k for k in keywords if k.lower() in text]
    missing = [k for k in keywords if k.lower() not in text]
    passed = bool(matched) if task.keyword_mode == "any" else not missing
    return Check(
        name="expected_keywords",
        passed=passed,
        expected=expected,
        actual={"matched": matched, "missing": missing},
    )


def _check_expected_answer(task: Task, record: RunRecord) -> Check:
    assert task.expected_answer is not None
    answer, why_not = final_answer_text(record)
    if answer is None:
        return Check(name="expected_answer", passed=False, expected=task.expected_answer, actual=why_not)
    return Check(
        name="expected_answer",
        passed=quasi_exact_match(answer, task.expected_answer),
        expected=task.expected_answer,
        actual=answer,
    )


def user_judges_apply(record: RunRecord) -> bool:
    """Whether ``pytest_smoltrace_judge`` hooks judge this run: only runs that finished (``final_answer`` or
    ``max_steps``). An item that errored or timed out is an error outcome whatever a check says, so user judges are
    not called for it and its verdict carries the built-in checks only (see :func:`judge` and the hookspec)."""
    return record.stop_reason not in ERROR_STOP_REASONS


#: The ``pytest_smoltrace_judge`` hook caller (``item.ihook.pytest_smoltrace_judge``): the list of what each
#: implementation returned.
JudgeHook = Callable[..., Sequence[Any]]


def _is_check_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], str) and isinstance(value[1], bool)


def as_check(value: Any) -> Check:
    """A user judge's check: a :class:`Check`, or a ``(name, passed, expected, actual)`` tuple."""
    if isinstance(value, Check):
        return value
    if _is_check_tuple(value):
        return Check(*value)
    raise TypeError(
        f"pytest_smoltrace_judge must return Check objects or (name, passed, expected, actual); got {value!r}"
    )


def user_checks(hook: JudgeHook | None, task: Task, record: RunRecord) -> list[Check]:
    """The checks of every ``pytest_smoltrace_judge`` implementation for a run they apply to (else none).

    An implementation returns one check, or a list or tuple of them (a 4-tuple alone is one check)."""
    if hook is None or not user_judges_apply(record):
        return []
    checks: list[Check] = []
    for returned in hook(task=task, record=record):
        items = returned if isinstance(returned, (list, tuple)) and not _is_check_tuple(returned) else [returned]
        checks.extend(as_check(check) for check in items)
    return checks


def judge(task: Task, record: RunRecord, extra_checks: Sequence[Check] = ()) -> Verdict:
    """The verdict for one run: the task's checks (DESIGN §4), then ``extra_checks`` as given.

    An agent error or timeout makes an error outcome (``Verdict.error``) that still carries every built-in check;
    ``extra_checks`` (the user judges' checks) are left out of it: judges are not called for such a run (see
    :func:`user_judges_apply`), and checks passed in anyway are dropped, never shown as if the run had an answer.
    """
    checks: list[Check] = [_check_final_answer(record)]
    if task.expected_tool is not None:
        checks.append(_check_tool_called(record))
        checks.append(_check_expected_tool(task, record))
    if task.forbidden_tools:
        checks.append(_check_forbidden_tools(task, record))
    if task.expected_keywords:
        checks.append(_check_keywords(task, record))
    if task.expected_answer is not None:
        checks.append(_check_expected_answer(task, record))
    error = None
    if user_judges_apply(record):
        checks.extend(extra_checks)
    else:
        if extra_checks:
            logger.debug(
                "%s: %d user check(s) dropped: the run ended with %s",
                record.nodeid or record.task_id,
                len(extra_checks),
                record.stop_reason,
            )
        error = f"{record.stop_reason}: {record.error or 'no detail'}"
    return Verdict(checks=tuple(checks), error=error)


# --------------------------------------------------------------------------------------------------------------
# Failure message
# --------------------------------------------------------------------------------------------------------------


def _value_text(value: Any) -> str:
    """Compact one-line rendering: strings bare (also inside containers), repr for the rest."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_value_text(v) for v in value) + "]"
    else:
        text = repr(value)
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    if limit <= 1:
        return "…" if text else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_checks(verdict: Verdict, width: int = 100) -> str:
    """The checks as an aligned plain-text table, one line per check: ``PASS|FAIL  name  expected=…  actual=…``.

    Long values are cut with "…" so that each line fits in ``width`` characters where possible.
    """
    lines: list[str] = []
    if verdict.error is not None:
        lines.append(_truncate(f"ERROR {' '.join(verdict.error.split())}", max(width, 20)))
    if not verdict.checks:
        lines.append("(no checks)")
        return "\n".join(lines)
    name_width = max(len(c.name) for c in verdict.checks)
    expected_texts = [f"expected={_value_text(c.expected)}" for c in verdict.checks]
    room = max(width - (4 + 2 + name_width + 2), 30)
    column = min(max(len(t) for t in expected_texts), room * 2 // 5)
    for check, expected_text in zip(verdict.checks, expected_texts, strict=True):
        status = "PASS" if check.passed else "FAIL"
        expected_cell = _truncate(expected_text, column).ljust(column)
        actual_cell = _truncate(f"actual={_value_text(check.actual)}", room - column - 2)
        lines.append(f"{status}  {check.name.ljust(name_width)}  {expected_cell}  {actual_cell}".rstrip())
    return "\n".join(lines)
