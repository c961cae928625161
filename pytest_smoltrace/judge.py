"""The verdict (DESIGN §4): checks computed from executed tool calls, identically for both agent types.

The checks of the task's fields, in this order: ``final_answer``, ``tool_called`` and ``expected_tool``,
``forbidden_tools``, ``tool_order`` and ``repeated_calls`` (:mod:`.trajectory`), ``tool_args:<tool>``
(:mod:`.arguments`), ``expected_keywords``, ``expected_answer`` (GAIA's scorer, :mod:`.answers`, whose names are
re-exported here) and ``rubric`` (graded by the judge model, :mod:`.rubric`); then the ``pytest_smoltrace_judge``
hooks' checks. Also the plain-text table of checks used as an item's failure message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .answers import normalize_number_str, normalize_str, quasi_exact_match, split_string
from .arguments import check_tool_args
from .records import JUDGE_ERROR, Check, RunRecord, Verdict
from .tasks import Task
from .trajectory import check_repeated_calls, check_tool_order

logger = logging.getLogger(__name__)

__all__ = [
    "ERROR_STOP_REASONS",
    "final_answer_text",
    "final_answer_value",
    "format_checks",
    "judge",
    "normalize_number_str",
    "normalize_str",
    "quasi_exact_match",
    "rubric_applies",
    "split_string",
    "user_judges_apply",
]

FINAL_ANSWER = "final_answer"
#: Why a rubric task has no grade when no judge model was given to the run.
NO_JUDGE = "the task has a rubric but no judge model is configured: give --smoltrace-judge-model"
#: Stop reasons that make an item an error outcome (pytest's ``E``).
ERROR_STOP_REASONS = ("error", "timeout")

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
    return ", ".join(f"{name}×{n}" for name, n in sorted(counts.items()))  # not in the order parallel calls ran


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


def final_answer_value(record: RunRecord) -> object:
    """The answer as the scorer reads it: a list or tuple the agent gave to ``final_answer`` stays a list (its
    recorded argument), anything else is the answer's text (``None``: no answer; see :func:`final_answer_text`).

    Only a list is taken from the recorded call: the record keeps long strings cut, the text is whole."""
    text, _ = final_answer_text(record)
    if text is None:
        return None
    for call in reversed(record.tool_calls):
        if call.name == FINAL_ANSWER and call.ok and call.arguments:
            given = call.arguments.get("answer", next(iter(call.arguments.values())))
            return given if isinstance(given, list) else text
    return text


def _check_expected_answer(task: Task, record: RunRecord) -> Check:
    assert task.expected_answer is not None
    answer, why_not = final_answer_text(record)
    if answer is None:
        return Check(name="expected_answer", passed=False, expected=task.expected_answer, actual=why_not)
    return Check(
        name="expected_answer",
        passed=quasi_exact_match(final_answer_value(record), task.expected_answer),
        expected=task.expected_answer,
        actual=answer,
    )


def rubric_applies(task: Task, record: RunRecord) -> bool:
    """Whether the judge model is asked to grade this run: the task has a rubric and the run gave a final answer
    (without one the ``rubric`` check fails as the answer checks do, and nothing is spent on a grade)."""
    return task.rubric is not None and final_answer_text(record)[0] is not None


def _check_rubric_unanswered(task: Task, record: RunRecord) -> Check:
    _, why_not = final_answer_text(record)
    return Check(name="rubric", passed=False, expected=task.rubric, actual=why_not)


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


def judge(
    task: Task,
    record: RunRecord,
    extra_checks: Sequence[Check] = (),
    *,
    rubric: Check | None = None,
    judge_error: str | None = None,
) -> Verdict:
    """The verdict for one run: the task's checks (DESIGN §4), then ``extra_checks`` as given.

    An agent error or timeout makes an error outcome (``Verdict.error``) that still carries every built-in check;
    ``extra_checks`` (the user judges' checks) are left out of it: judges are not called for such a run (see
    :func:`user_judges_apply`), and checks passed in anyway are dropped, never shown as if the run had an answer.

    ``rubric`` is the judge model's graded ``rubric`` check of a run it applies to (:func:`rubric_applies`);
    ``judge_error`` says why there is no grade (an unreadable reply after the retry, a judge model that could not be
    reached or is not configured): the item is then an error outcome (``judge_error: …``), never a pass or a fail.
    """
    checks: list[Check] = [_check_final_answer(record)]
    if task.expected_tool is not None:
        checks.append(_check_tool_called(record))
        checks.append(_check_expected_tool(task, record))
    if task.forbidden_tools:
        checks.append(_check_forbidden_tools(task, record))
    if task.expected_tool_order is not None:
        checks.append(check_tool_order(task.expected_tool_order, task.tool_order_mode, record))
    if task.max_repeated_calls is not None:
        checks.append(check_repeated_calls(task.max_repeated_calls, record))
    for tool, expected_args in (task.expected_tool_args or {}).items():
        checks.append(check_tool_args(tool, expected_args, record))
    if task.expected_keywords:
        checks.append(_check_keywords(task, record))
    if task.expected_answer is not None:
        checks.append(_check_expected_answer(task, record))
    error = None
    if task.rubric is not None:
        if not rubric_applies(task, record):
            checks.append(_check_rubric_unanswered(task, record))
        elif rubric is not None and judge_error is None:
            checks.append(rubric)
        else:
            error = f"{JUDGE_ERROR}: {judge_error or NO_JUDGE}"
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


def format_checks(verdict: Verdict, width: int = 100) -> str:
    """The checks as an aligned plain-text table, one line per check: ``PASS|FAIL  name  expected=…  actual=…``
    (:func:`smoltrace_export.failure_text.checks_table`, which report.html uses too)."""
    from smoltrace_export.failure_text import CheckLine, checks_table

    lines = [CheckLine(c.name, c.passed, c.expected, c.actual) for c in verdict.checks]
    return checks_table(lines, verdict.error, width)
