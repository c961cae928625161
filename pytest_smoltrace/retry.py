"""Model-call resilience: retries with backoff for rate limits and transient failures, and one rate limiter per run.

:func:`install` wraps a model's ``generate`` (an instance attribute, so the class-level instrumentation still
runs underneath). What is worth a retry is decided by the project's one HTTP-error classifier
(:func:`smoltrace_export.http_errors.is_transient`, shared with the Hub calls): a 429, a 408/425/5xx or a connection
error is retried up to ``retries`` times with exponential backoff and jitter, honouring the server's ``Retry-After``;
anything else (400, 401, a bad request) is raised at once.
Each retry is a :class:`~smoltrace_export.records.RetryEvent` appended to the current item's :class:`RetryLog`, so it
lands in the record, and is a ``smoltrace.model.retry`` event on the span around the call (each failed attempt is
its own ERROR ``chat`` span).

:class:`RateLimiter` spaces model requests ``60/rpm`` seconds apart across every thread *and* every xdist worker
of a run: the next free slot lives in a small file guarded by ``fcntl.flock``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrace_export.http_errors import http_status, is_transient, retry_after_s
from smoltrace_export.records import RetryEvent

from .shared import update_shared

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


class RateLimiter:
    """At most ``rpm`` requests per minute across all threads and processes sharing ``path``."""

    def __init__(self, rpm: float, path: Path) -> None:
        if rpm <= 0:
            raise ValueError("max rpm must be > 0")
        self.interval_s = 60.0 / rpm
        self.path = path

    def acquire(self) -> float:
        """Reserve the next slot and sleep until it; returns the seconds waited."""
        seen: list[float] = []

        def reserve(next_free: float) -> float:
            seen.append(time.time())  # read under the lock, as the slot is
            return max(seen[0], next_free) + self.interval_s

        _, following = update_shared(self.path, reserve)
        wait = following - self.interval_s - seen[0]
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)


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
            if limiter is not None:
                limiter.acquire()
            try:
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
