"""What becomes of an attempt that no agent run reported: failed from outside the run (another plugin, a deadline),
timed out, skipped, cancelled (-x, Ctrl-C), or lost with a crashed xdist worker. Each still gets a result, with
whatever its run spent (:func:`settle_report`, :func:`unreported_results`, :func:`crash_result`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

from .collect import RESULT_KEY, SmoltraceFailure, SmoltraceRunError, TaskItem, is_deadline, parse_nodeid
from .concurrency import Fate, Unreported, attempt_of
from .identity import RunIdentity
from .records import CANCELLED, WORKER_CRASHED, Check, ItemResult, StopReason
from .runner import no_run_fields, run_record
from .transport import attach_result

if TYPE_CHECKING:
    from .concurrency import RunAhead


def _unrun_result(
    nodeid: str,
    identity: RunIdentity,
    *,
    detail: str,
    error_type: str,
    spent: int | None,
    timed_out: bool = False,
    actual: str = "no run",
) -> ItemResult | None:
    """A result for an item whose agent run produced none (``spent``: its tokens, 0 or unknown)."""
    import time

    from .records import Verdict

    parsed = parse_nodeid(nodeid, identity.labels)
    if parsed is None:
        return None
    spec = identity.spec_for(parsed.label)
    stop: StopReason = "timeout" if timed_out else "error"
    fields = no_run_fields(detail, error_type, spent=spent, stop_reason=stop)
    record = run_record(
        parsed.task_id,
        parsed.source,
        parsed.agent_type,
        spec,
        identity.run_id,
        nodeid,
        time.time(),
        repeat=parsed.repeat,
        **fields,
    )
    verdict = Verdict(
        checks=(Check("final_answer", False, "called", actual),), error=f"{record.stop_reason}: {record.error}"
    )
    return ItemResult(nodeid=nodeid, record=record, verdict=verdict)


def crash_result(nodeid: str, detail: str, identity: RunIdentity) -> ItemResult | None:
    """The result of an item whose xdist worker died while running it (recorded, never silently dropped)."""
    return _unrun_result(
        nodeid,
        identity,
        detail=f"the worker process crashed while running this item: {detail[:500]}",
        error_type=WORKER_CRASHED,
        spent=None,
        actual="worker crashed",
    )


# -- results of attempts no agent run reported: failed from outside, timed out, cancelled -----------------------------


def _outside_reason(call: pytest.CallInfo[None], report: pytest.TestReport) -> tuple[str, str]:
    """What failed the item from outside the agent run, and its type name (from the exception, else the report)."""
    if call.excinfo is not None:
        return call.excinfo.exconly()[:1000], call.excinfo.typename
    text = (report.longreprtext or "").strip().splitlines()
    return (text[-1] if text else f"{report.when} {report.outcome}")[:1000], "ExternalFailure"


def _is_pytest_timeout(reason: str) -> bool:
    return "Timeout" in reason and "pytest-timeout" in reason


def settle_report(
    item: TaskItem, call: pytest.CallInfo[None], report: pytest.TestReport, run_ahead: RunAhead | None
) -> None:
    """``pytest_runtest_makereport`` (where the item runs): put this attempt's result on its report, whatever failed.

    - setup failed with our own error: the run's result; with pytest-timeout's deadline (:class:`RunDeadlineExceeded`)
      or anything else from outside while the run was in flight: nothing now, the run is kept and recorded at the end
      of the session with its spend (:func:`unreported_results`); before any run started: a result with no spend;
    - setup skipped (another plugin) after a run was started ahead for the item: that run is recorded as cancelled;
    - call: the run's result; when something other than the verdict failed the call, the result gains a failed
      ``pytest_outcome`` check naming it (pytest's ``F`` and the row agree).
    """
    result = item.stash.get(RESULT_KEY, None)
    if result is not None and result.record.attempt != attempt_of(item):
        result = None  # an earlier attempt's: this attempt failed before the item's setup ran
    exc = call.excinfo.value if call.excinfo is not None else None
    ours = isinstance(exc, (SmoltraceFailure, SmoltraceRunError))
    if call.when == "setup":
        if ours and result is not None:
            attach_result(report, result)
            return
        if report.skipped:
            if run_ahead is not None:
                run_ahead.abandon(item, "cancelled", f"skipped: {_outside_reason(call, report)[0]}")
            return
        if not report.failed:
            return
        reason, type_name = _outside_reason(call, report)
        if exc is not None and is_deadline(exc):
            disarm = getattr(item, "cancel_timeout", None)  # pytest-timeout's backstop fires once, as its own timer
            if callable(disarm):
                disarm()
        fate: Fate = "timeout" if (exc is not None and is_deadline(exc)) or _is_pytest_timeout(reason) else "error"
        if result is not None:  # the run had finished: failed from outside after it (a plugin's later setup hook)
            record = result.record
            stop: StopReason = "timeout" if fate == "timeout" else "error"
            detail = f"failed from outside the agent run: {reason}"
            record = dataclasses.replace(record, stop_reason=stop, error=detail, error_type=type_name)
            verdict = dataclasses.replace(result.verdict, error=f"{stop}: {detail}")
            attach_result(report, dataclasses.replace(result, record=record, verdict=verdict))
            return
        if run_ahead is not None and run_ahead.abandon(item, fate, reason, type_name):
            return  # recorded at the end of the session, with the run's spend
        unrun = _unrun_result(
            item.nodeid,
            item.identity,
            detail=f"failed before its agent run started: {reason}",
            error_type="Timeout" if fate == "timeout" else type_name,
            spent=0,
            timed_out=fate == "timeout",
        )
        if unrun is not None:
            attach_result(report, _with_attempt(unrun, attempt_of(item)))
    elif call.when == "call" and result is not None:
        if report.failed and not ours:
            reason, _ = _outside_reason(call, report)
            checks = (*result.verdict.checks, Check("pytest_outcome", False, "passed", reason))
            result = dataclasses.replace(result, verdict=dataclasses.replace(result.verdict, checks=checks))
        attach_result(report, result)


def _with_attempt(result: ItemResult, attempt: int) -> ItemResult:
    return dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))


def unreported_results(
    entries: Iterable[Unreported],
    stop_reason: str | None,
    recorded: Callable[[ItemResult], bool] | None = None,
) -> list[ItemResult]:
    """Results for the runs no report carried (:meth:`RunAhead.drain`), each with its spend and what became of it.

    A run started ahead for an item pytest never ran is ``Cancelled`` (not completed; a resume runs it again), and so
    is a run Ctrl-C interrupted while pytest was running its item; a run pytest stopped waiting for is the item's
    timeout or error, as pytest reported it. ``recorded``: whether a result is recorded already (this process's
    results); a run whose result pytest had been handed when Ctrl-C landed (``entry.handed``) is kept only when it
    says no, so that it is counted once (without it, as in an xdist worker, such a run is left out)."""
    from .concurrency import INTERRUPTED
    from .records import Verdict

    out = []
    for entry in entries:
        result, record = entry.result, entry.result.record
        if entry.handed and (recorded is None or recorded(result)):
            continue
        stop: StopReason
        ran = f"; the run itself ended with {record.stop_reason}" + (f": {record.error}" if record.error else "")
        again = f"its spend is recorded, and --smoltrace-resume runs the item again{ran}"
        if entry.fate == "interrupted":
            detail = f"cancelled: {entry.reason or INTERRUPTED}; {again}"
            stop, error_type = "error", CANCELLED
        elif entry.fate == "cancelled":
            why = entry.reason or stop_reason or "the session ended first"
            detail = (
                f"cancelled: its run had started ahead (--smoltrace-concurrency) but pytest never ran the item "
                f"({why}); {again}"
            )
            stop, error_type = "error", CANCELLED
        elif entry.fate == "timeout":
            detail = f"{entry.reason}: pytest stopped waiting; the run went on, and its spend is recorded"
            stop, error_type = "timeout", "Timeout"
        else:
            detail = f"failed from outside the agent run: {entry.reason or 'no detail'}"
            stop, error_type = "error", entry.error_type or "ExternalFailure"
        record = dataclasses.replace(
            record, stop_reason=stop, error=detail, error_type=error_type, attempt=entry.attempt
        )
        verdict = Verdict(checks=result.verdict.checks, error=f"{stop}: {detail}")
        out.append(dataclasses.replace(result, record=record, verdict=verdict))
    return out
