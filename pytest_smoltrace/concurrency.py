"""In-process concurrency: up to K agent runs in flight per process while pytest still reports item by item.

When an item's ``setup`` asks for its run, :class:`RunAhead` also starts the runs of the next items this process
will execute (``session.items`` order without xdist; the worker's own queue under xdist), up to the window. Each
run is a daemon thread (an abandoned run cannot block interpreter exit); each item waits only for its own.

Every run that started is accounted for (README, "Parallel, resilient, resumable"): a run pytest stopped waiting
for (pytest-timeout's limit, another plugin failing the item) and a run started ahead for an item pytest never ran
(``-x``, ``--maxfail``, a skip) are kept, and :meth:`RunAhead.drain` hands them over at the end of the session with
their spend, to be recorded (as timed out, errored or cancelled). Ctrl-C too: every run in flight is cancelled, ends
the step it is in (bounded: the runner's ``CANCEL_GRACE_S``) and is recorded as cancelled with what it spent, the run
pytest was waiting for included.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from .records import ItemResult

log = logging.getLogger(__name__)

RunFn = Callable[[Any, threading.Event], "ItemResult"]
#: What became of a run nobody waits for any more: its item was cancelled (pytest never ran it), timed out, failed
#: from outside the run (another plugin), or was interrupted (Ctrl-C while pytest was running the item).
Fate = Literal["cancelled", "timeout", "error", "interrupted"]

#: Ctrl-C: time for a cancelled run to be judged and traced once its step in flight has ended (on top of the runner's
#: ``CANCEL_GRACE_S`` for that step); what has not returned by then is not recorded.
DRAIN_MARGIN_S = 3.0
#: Why the runs started ahead for items pytest never ran were cancelled, on Ctrl-C.
INTERRUPTED = "interrupted (Ctrl-C)"


def interrupt_wait_s() -> float:
    """How long, in all, the session waits for the runs it cancelled (Ctrl-C, or past their drain time)."""
    from .runner import CANCEL_GRACE_S

    return CANCEL_GRACE_S + DRAIN_MARGIN_S


#: ``(time.monotonic() deadline, message)`` of the item's time limit from pytest-timeout (see the plugin's
#: ``pytest_timeout_set_timer``); one-shot, as pytest-timeout's own signal timer.
DEADLINE_KEY = pytest.StashKey[tuple[float, str]]()


class RunDeadlineExceeded(Exception):
    """The item's pytest-timeout limit passed while its run was in flight; the run finishes in the background."""


def attempt_of(item: Any) -> int:
    """The 0-based attempt pytest is running of ``item`` (pytest-rerunfailures counts runs in ``execution_count``)."""
    count = getattr(item, "execution_count", 1)
    return max(count - 1, 0) if isinstance(count, int) else 0


@dataclass
class _Run:
    item: Any
    future: Future[ItemResult]
    cancel: threading.Event
    thread: threading.Thread | None = None
    attempt: int = 0
    fate: Fate = "cancelled"
    #: Why nobody waits for the run (None for a run started ahead that pytest never asked for: filled in at drain).
    reason: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class Unreported:
    """A finished run no report carried: the run's own result and what became of its item."""

    item: Any
    result: ItemResult
    attempt: int
    fate: Fate
    reason: str | None
    error_type: str | None = None
    #: Ctrl-C landed after the run's result was handed to pytest: its report may or may not have been recorded (the
    #: caller keeps it only when the result is not recorded already; see :func:`attempts.unreported_results`).
    handed: bool = False


@dataclass
class _Registry:
    #: Runs started and not yet claimed by their item's setup, by node id.
    waiting: dict[str, _Run] = field(default_factory=dict)
    #: Runs their item stopped waiting for (timed out or failed from outside), in that order.
    orphans: list[_Run] = field(default_factory=list)


class RunAhead:
    """Starts item runs ahead of pytest, at most ``window`` in flight; ``cancel()`` stops what has not finished."""

    def __init__(self, window: int, run: RunFn, may_start: Callable[[], bool] = lambda: True) -> None:
        self.window = max(1, window)
        self._run = run
        #: Asked before starting an upcoming item's run (False: the budget is spent).
        self._may_start = may_start
        self._runs = _Registry()
        #: The run whose result :meth:`result_for` handed to pytest last: until pytest asks for the next item, its
        #: report may not be recorded yet (a Ctrl-C in between would lose it).
        self._handed: _Run | None = None
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def _in_flight(self) -> int:
        runs = [*self._runs.waiting.values(), *self._runs.orphans]
        return sum(1 for r in runs if not r.future.done())

    def _start(self, item: Any) -> None:
        if item.nodeid in self._runs.waiting:
            return
        future: Future[ItemResult] = Future()
        future.set_running_or_notify_cancel()
        cancel = threading.Event()
        if self.cancelled.is_set():
            cancel.set()
        run = self._runs.waiting[item.nodeid] = _Run(item, future, cancel)

        def target() -> None:
            try:
                future.set_result(self._run(item, cancel))
            except BaseException as exc:  # surfaced to the waiting item
                future.set_exception(exc)

        run.thread = threading.Thread(target=target, name=f"smoltrace-run:{item.nodeid}", daemon=True)
        run.thread.start()

    def result_for(self, item: Any, upcoming: Sequence[Any]) -> ItemResult:
        """Start ``item`` (if not started) and as many ``upcoming`` items as the window allows; wait for ``item``.

        Waits until the item's pytest-timeout deadline at most (:data:`DEADLINE_KEY`): then the run is kept, to finish
        in the background and be recorded at the end, and :class:`RunDeadlineExceeded` is raised. Any other exception
        that ends the wait from outside (a signal handler's) keeps the run the same way, and so does Ctrl-C (the run
        is then recorded as interrupted, with what it spent)."""
        with self._lock:
            self._handed = None  # pytest is at the next item: the last result handed over has been reported
            self._start(item)
            for other in upcoming:
                if self._in_flight() >= self.window or not self._may_start():
                    break
                self._start(other)
            run = self._runs.waiting[item.nodeid]
        stash = getattr(item, "stash", None)
        deadline = stash.get(DEADLINE_KEY, None) if stash is not None else None
        try:
            try:
                result = run.future.result(timeout=None if deadline is None else max(deadline[0] - time.monotonic(), 0))
            except FutureTimeout as exc:
                if run.future.done() and run.future.exception() is not exc:
                    result = run.future.result()  # it finished just now
                elif not run.future.done():
                    assert deadline is not None and stash is not None
                    del stash[DEADLINE_KEY]
                    self._orphan(run, "timeout", deadline[1], "Timeout")
                    raise RunDeadlineExceeded(deadline[1]) from None
                else:
                    raise
            self._hand(run)
        except KeyboardInterrupt:  # Ctrl-C: every run stops now (no new step); drain records what each spent
            self._orphan(run, "interrupted", "Ctrl-C while pytest waited for this run", "Cancelled")
            self.cancel()
            raise
        except RunDeadlineExceeded:
            raise
        except BaseException as exc:
            if run.future.done() and run.future.exception() is exc:  # the run's own exception
                self._forget(run)
            else:  # stopped from outside (a signal handler raised here): the reason comes with the report
                self._orphan(run, "error", None, None)
            raise
        return result

    def _hand(self, run: _Run) -> None:
        """``run``'s result goes to pytest: noted first (a Ctrl-C from here on must not lose it), then forgotten."""
        with self._lock:
            self._handed = run
            if self._runs.waiting.get(run.item.nodeid) is run:
                del self._runs.waiting[run.item.nodeid]

    def _forget(self, run: _Run) -> None:
        with self._lock:
            if self._runs.waiting.get(run.item.nodeid) is run:
                del self._runs.waiting[run.item.nodeid]

    def _orphan(self, run: _Run, fate: Fate, reason: str | None, error_type: str | None) -> None:
        with self._lock:
            if self._runs.waiting.get(run.item.nodeid) is run:
                del self._runs.waiting[run.item.nodeid]
            run.attempt, run.fate, run.reason, run.error_type = attempt_of(run.item), fate, reason, error_type
            self._runs.orphans.append(run)

    def abandon(self, item: Any, fate: Fate, reason: str, error_type: str | None = None) -> bool:
        """``item``'s current attempt ended without its run's result (a plugin failed or skipped it from outside):
        keep its run, if one started, to be recorded at the end with ``fate`` and ``reason``. False: no run started.
        """
        attempt = attempt_of(item)
        with self._lock:
            for run in reversed(self._runs.orphans):
                if run.item.nodeid == item.nodeid and run.attempt == attempt:
                    if run.reason is None:
                        run.fate, run.reason, run.error_type = fate, reason, error_type
                        if fate == "timeout":
                            run.error_type = "Timeout"
                    return True
            waiting = self._runs.waiting.pop(item.nodeid, None)
            if waiting is None:
                return False
            waiting.attempt, waiting.fate, waiting.reason, waiting.error_type = attempt, fate, reason, error_type
            self._runs.orphans.append(waiting)
            return True

    def started(self, item: Any) -> bool:
        with self._lock:
            return item.nodeid in self._runs.waiting

    def pending(self) -> int:
        """Runs nobody waits for that have not finished yet."""
        with self._lock:
            return self._in_flight()

    def drain(self, wait_s: float, *, interrupted: bool = False) -> list[Unreported]:
        """Every run that no report will carry, once finished: waits up to ``wait_s`` in all, then cancels what is
        left and waits :func:`interrupt_wait_s` more (a cancelled run ends its step in flight, then returns what it
        had done). ``interrupted`` (Ctrl-C): every run is cancelled at once and waited for :func:`interrupt_wait_s` at
        most; runs started ahead for items pytest never ran are ``cancelled``, the run pytest was waiting for is
        ``interrupted``, and so is the last run whose result pytest had been handed (``handed``: it may be reported
        already). A Ctrl-C while waiting cancels every run and waits :func:`interrupt_wait_s` more, unless the session
        was interrupted already: then it stops the waiting. What has returned is kept."""
        with self._lock:
            orphans, self._runs.orphans = self._runs.orphans, []
            waiting = list(self._runs.waiting.values())
            self._runs.waiting.clear()
            handed, self._handed = self._handed, None
        # (run, attempt, fate, reason, error_type, handed) of each run to account for
        entries: list[tuple[_Run, int, Fate, str | None, str | None, bool]] = [
            (r, r.attempt, r.fate, r.reason, r.error_type, False) for r in orphans
        ]
        for run in waiting:
            reason = run.reason or (INTERRUPTED if interrupted else None)
            entries.append((run, attempt_of(run.item), run.fate, reason, run.error_type, False))
        if interrupted and handed is not None and all(e[0] is not handed for e in entries):
            reason = "Ctrl-C as pytest was reporting this run's result"
            entries.append((handed, attempt_of(handed.item), "interrupted", reason, "Cancelled", True))
        runs = [e[0] for e in entries]
        if interrupted:
            self.cancel(runs)
            wait_s = min(wait_s, interrupt_wait_s())
        if not self._wait_all(runs, wait_s):  # Ctrl-C while waiting: every run is cancelled now
            if not interrupted:  # the first Ctrl-C: their steps in flight still end (a second one stops the wait)
                self._wait_all(runs, interrupt_wait_s())
        elif not interrupted:
            left = [r for r in runs if not r.future.done()]
            if left:  # past their time: cancelled, each ends its step in flight and returns what it had done
                self.cancel(left)
                self._wait_all(left, interrupt_wait_s())
        out: list[Unreported] = []
        for run, attempt, fate, reason, error_type, was_handed in entries:
            result = self._result(run)
            if result is not None:
                out.append(Unreported(run.item, result, attempt, fate, reason, error_type, was_handed))
        return out

    def _wait_all(self, runs: Sequence[_Run], wait_s: float) -> bool:
        """Wait up to ``wait_s`` for the runs that are under way; False when a (second) Ctrl-C cut the wait short
        (every run is cancelled then)."""
        live = [r.future for r in runs if not r.future.done() and r.thread is not None and r.thread.is_alive()]
        if not live:
            return True
        try:
            wait_futures(live, timeout=max(wait_s, 0.0))
        except KeyboardInterrupt:
            self.cancel()  # any run still registered, and any started later
            self.cancel(runs)  # drain has taken these out of the registry
            return False
        return True

    @staticmethod
    def _result(run: _Run) -> ItemResult | None:
        """The run's result if it returned one (None, with a warning: it raised, or did not return in time)."""
        if not run.future.done():
            log.warning("%s: its agent run did not return after being cancelled; not recorded", run.item.nodeid)
            return None
        exc = run.future.exception()
        if exc is not None:
            log.warning("%s: its agent run raised; not recorded", run.item.nodeid, exc_info=exc)
            return None
        return run.future.result()

    def cancel(self, runs: Sequence[_Run] | None = None) -> None:
        """Cancel ``runs`` (default: every run, and any started later)."""
        if runs is None:
            self.cancelled.set()
            with self._lock:
                runs = [*self._runs.waiting.values(), *self._runs.orphans]
        for run in runs:
            run.cancel.set()


_POSITIONS = pytest.StashKey[dict[int, int]]()


def upcoming_items(item: pytest.Item, limit: int) -> list[pytest.Item]:
    """Up to ``limit`` items this process will run after ``item``, in order (never items of other xdist workers)."""
    if limit <= 0:
        return []
    session = item.session
    items = session.items
    interactor = next(
        (p for p in item.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), None
    )
    if interactor is not None:  # xdist worker: only what the controller has queued for this worker
        indices: list[Any] = [getattr(interactor, "nextitem_index", None)]
        queue = getattr(interactor, "torun", None)
        if queue is not None:
            with queue.lock() as pending:
                indices.extend(list(pending)[:limit])
        return [items[i] for i in indices[:limit] if isinstance(i, int) and 0 <= i < len(items)]
    positions = session.stash.get(_POSITIONS, None)
    if positions is None or len(positions) != len(items):
        positions = {id(node): n for n, node in enumerate(items)}
        session.stash[_POSITIONS] = positions
    start = positions.get(id(item))
    return [] if start is None else items[start + 1 : start + 1 + limit]
