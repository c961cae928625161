"""Model-call resilience: retries with backoff for rate limits and transient failures, and one rate limiter per run.

:func:`install` wraps a model's ``generate`` (an instance attribute, so the class-level instrumentation still
runs underneath). What is worth a retry is decided by the project's one HTTP-error classifier
(:func:`smoltrace_export.http_errors.is_transient`, shared with the Hub calls): a 429, a 408/425/5xx or a connection
error is retried up to ``retries`` times with exponential backoff and jitter, honouring the server's ``Retry-After``;
anything else (400, 401, a bad request) is raised at once.
Each retry is a :class:`~smoltrace_export.records.RetryEvent` appended to the current item's :class:`RetryLog`, so it
lands in the record, and is a ``smoltrace.model.retry`` event on the span around the call (each failed attempt is
its own ERROR ``chat`` span).

:class:`RateLimiter` holds ``--smoltrace-max-rpm`` across every thread, xdist worker and (with
``--smoltrace-limits-url``) host of a run: the requests of the last minute live in the run's limits store
(:mod:`.limits`, :class:`~pytest_smoltrace.limits.Window`), each counted from its grant until it ended plus the
window, so the model server sees at most ``rpm`` requests in any 60 s window however long a request takes to reach it
(a process's first request is often a second late: litellm imports and builds much on its first call); requests are
also spaced ``60/rpm`` apart (no bursts).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smoltrace_export.http_errors import http_status, is_transient, retry_after_s
from smoltrace_export.records import RetryEvent

from .limits import RATE, LimitsStore, Window

log = logging.getLogger(__name__)


@dataclass
class RetryLog:
    """Retries of one item's model calls (set per run thread through a context variable)."""

    events: list[RetryEvent] = field(default_factory=list)


CURRENT_LOG: contextvars.ContextVar[RetryLog | None] = contextvars.ContextVar("smoltrace_retry_log", default=None)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    base_s: float = 0.5
    max_s: float = 60.0


#: Model calls retry what every HTTP call of the project retries (one classifier, shared with the Hub calls).
is_retryable = is_transient


def backoff_s(policy: RetryPolicy, attempt: int, exc: BaseException, rng: random.Random) -> float:
    """Exponential backoff with full jitter in its upper half; a server's ``Retry-After`` wins when it is longer."""
    ceiling = min(policy.max_s, policy.base_s * 2 ** (attempt - 1))
    wait = ceiling * (0.5 + rng.random() / 2)
    hinted = retry_after_s(exc)
    return min(policy.max_s, max(wait, hinted)) if hinted is not None else wait


#: The window ``--smoltrace-max-rpm`` counts in.
RATE_WINDOW_S = 60.0
#: How often a request that waits for a request in flight to end asks again.
POLL_S = 0.25


class RateLimiter:
    """At most ``rpm`` requests in any ``window_s`` across all threads, processes and hosts sharing ``store``.

    ``pending_s`` is the longest a request can take (its timeout): a request that never says it ended (its process
    died) counts as in flight for that long. ``window_s`` is the window (tests may shrink it; the option is per
    minute)."""

    def __init__(
        self,
        rpm: float,
        store: LimitsStore,
        *,
        pending_s: float = 300.0,
        window_s: float = RATE_WINDOW_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rpm <= 0:
            raise ValueError("max rpm must be > 0")
        self.window = Window(max(1, int(rpm)), window_s, window_s / rpm, pending_s)
        self.store = store
        self._sleep = sleep

    def acquire(self) -> str:
        """Wait until a request may be sent and take its place in the window; returns its token for :meth:`release`."""
        token = uuid.uuid4().hex
        while (wait := self.store.take_slot(RATE, self.window, token)) > 0:
            self._sleep(min(wait, POLL_S) if wait > self.window.interval_s else wait)
        return token

    def release(self, token: str) -> None:
        """The request ``token`` ended (answered or failed)."""
        self.store.end_slot(RATE, token)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """One request's place in the window, from before it is sent until it ended."""
        token = self.acquire()
        try:
            yield
        finally:
            self.release(token)


def _reason(exc: BaseException) -> str:
    status = http_status(exc)
    return f"HTTP {status}" if status is not None else type(exc).__name__


#: The span event a retry adds to the span around the model call (the agent step): the failed attempt itself is
#: its own ``chat`` span with status ERROR, so every attempt is visible in the trace.
RETRY_EVENT = "smoltrace.model.retry"


def _trace_retry(event: RetryEvent) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            RETRY_EVENT,
            {
                "smoltrace.retry.attempt": event.attempt,
                "error.type": event.reason,
                "smoltrace.retry.wait_s": event.wait_s,
            },
        )


def install(
    model: Any, policy: RetryPolicy, limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """Wrap ``model.generate`` (and ``generate_stream``'s first request) with the limiter and the retry policy."""
    original = model.generate
    rng = random.Random()
    rng_lock = threading.Lock()

    @functools.wraps(original)
    def generate(*args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                with limiter.request() if limiter is not None else contextlib.nullcontext():
                    return original(*args, **kwargs)
            except Exception as exc:
                attempt += 1
                if attempt > policy.retries or not is_transient(exc):
                    raise
                with rng_lock:
                    wait = backoff_s(policy, attempt, exc, rng)
                event = RetryEvent(attempt=attempt, reason=_reason(exc), wait_s=wait)
                retry_log = CURRENT_LOG.get()
                if retry_log is not None:
                    retry_log.events.append(event)
                log.info("model call failed (%s); retry %d/%d in %.2f s", event.reason, attempt, policy.retries, wait)
                _trace_retry(event)
                sleep(wait)

    model.generate = generate
    return model
