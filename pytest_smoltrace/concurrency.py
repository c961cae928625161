"""In-process concurrency: up to K agent runs in flight per process while pytest still reports item by item.

When an item's ``setup`` asks for its run, :class:`RunAhead` also starts the runs of the next items this process
will execute (``session.items`` order without xdist; the worker's own queue under xdist), up to the window. Each
run is a daemon thread (an abandoned run cannot block interpreter exit); each item waits only for its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .records import ItemResult

log = logging.getLogger(__name__)

RunFn = Callable[[Any, threading.Event], "ItemResult"]


class RunAhead:
    """Starts item runs ahead of pytest, at most ``window`` in flight; ``cancel()`` stops what has not finished."""

    def __init__(self, window: int, run: RunFn, may_start: Callable[[], bool] = lambda: True) -> None:
        self.window = max(1, window)
        self._run = run
        #: Asked before starting an upcoming item's run (False: the budget is spent).
        self._may_start = may_start
        self._futures: dict[str, Future[ItemResult]] = {}
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def _in_flight(self) -> int:
        return sum(1 for f in self._futures.values() if not f.done())

    def _start(self, item: Any) -> None:
        if item.nodeid in self._futures:
            return
        future: Future[ItemResult] = Future()
        future.set_running_or_notify_cancel()
        self._futures[item.nodeid] = future

        def target() -> None:
            try:
                future.set_result(self._run(item, self.cancelled))
            except BaseException as exc:  # surfaced to the waiting item
                future.set_exception(exc)

        threading.Thread(target=target, name=f"smoltrace-run:{item.nodeid}", daemon=True).start()

    def result_for(self, item: Any, upcoming: Sequence[Any]) -> ItemResult:
        """Start ``item`` (if not started) and as many ``upcoming`` items as the window allows; wait for ``item``."""
        with self._lock:
            self._start(item)
            for other in upcoming:
                if self._in_flight() >= self.window or not self._may_start():
                    break
                self._start(other)
            future = self._futures[item.nodeid]
        try:
            return future.result()
        finally:
            with self._lock:
                self._futures.pop(item.nodeid, None)

    def started(self, item: Any) -> bool:
        with self._lock:
            return item.nodeid in self._futures

    def cancel(self) -> None:
        self.cancelled.set()


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
