"""Retrying Hub calls: a doubling backoff after a transient failure (:func:`smoltrace_export.http_errors.is_transient`:
network errors, timeouts, 408/425/429 and 5xx; never 401/403 or another 4xx).

The Hub's policy, apart from the model calls' (``pytest_smoltrace.retry``) on purpose: a publish is a handful of
calls at the end of a run, so the wait is a plain ``backoff_s × 2**n`` (no jitter, no rate limit, no ``Retry-After``)
and each retry is a logged warning; the classification is the same for both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from .http_errors import describe, http_status, is_transient

__all__ = ["describe", "http_status", "is_transient", "with_retries"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_retries(
    what: str,
    fn: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried up to ``retries`` times after transient failures, waiting ``backoff_s × 2**attempt``."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            delay = backoff_s * 2**attempt
            attempt += 1
            log.warning("%s failed (%s); retry %d of %d in %.1f s", what, describe(exc), attempt, retries, delay)
            sleep(delay)
