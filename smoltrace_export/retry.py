"""Retrying Hub calls: exponential backoff on network errors, 408/429 and 5xx; never on 401/403 or other 4xx."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_CLASS_NAMES = frozenset(
    {"TransportError", "TimeoutException", "NetworkError", "ConnectError", "RemoteProtocolError", "ReadTimeout"}
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (huggingface_hub wraps upload errors in a ``RuntimeError`` raised ``from`` them)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 10:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a Hub error (``huggingface_hub.errors.HfHubHTTPError`` and friends), if it has one."""
    for err in _chain(exc):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a network failure, a timeout, a rate limit or a server error."""
    status = http_status(exc)
    if status is not None:
        return status in (408, 425, 429) or status >= 500
    for err in _chain(exc):
        if isinstance(err, (ConnectionError, TimeoutError)):
            return True
        if any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(err).__mro__):
            return True
    return False


def describe(exc: BaseException) -> str:
    """A one-line description of a Hub error (the status and the first line of the message)."""
    status = http_status(exc)
    root = next((e for e in _chain(exc) if getattr(getattr(e, "response", None), "status_code", None)), exc)
    first = (str(root).strip().splitlines() or [type(root).__name__])[0]
    return f"HTTP {status}: {first}" if status is not None and str(status) not in first else first


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
