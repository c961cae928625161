"""What an HTTP client error says: its status, whether it is worth retrying, its ``Retry-After``, one line about it.

The one classifier of the project, used by both retry policies: the model calls' (``pytest_smoltrace.retry``:
exponential backoff with jitter, ``Retry-After``, one rate limit per run, each retry recorded) and the Hub calls'
(:mod:`smoltrace_export.retry`: a doubling backoff, a warning per retry). It reads the errors of litellm, openai,
huggingface_hub, httpx and requests by duck typing and imports none of them.

Transient: a timeout (408), "too early" (425), a rate limit (429) or any server error (5xx: the rule of the openai and
anthropic clients, whose own retries the plugin turns off); a network failure or a timeout without a status.
Everything else (400, 401, 403, 404, 422, …) is permanent: retrying cannot help.
"""

from __future__ import annotations

import email.utils
import time

__all__ = ["TRANSIENT_STATUS", "describe", "error_chain", "http_status", "is_transient", "retry_after_s"]

#: Statuses below 500 that are worth retrying (every 5xx is too).
TRANSIENT_STATUS = frozenset({408, 425, 429})

#: Class names (anywhere in an error's MRO) of network failures and timeouts that carry no HTTP status: httpx
#: (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``TimeoutException``, ``NetworkError``,
#: ``RemoteProtocolError``), requests (``ConnectionError``, ``Timeout``), openai / litellm (``APIConnectionError``,
#: ``Timeout``, and their server errors when raised without a status).
TRANSIENT_CLASS_NAMES = frozenset(
    {
        "APIConnectionError",
        "ConnectError",
        "ConnectTimeout",
        "ConnectionError",
        "InternalServerError",
        "NetworkError",
        "ReadTimeout",
        "RemoteProtocolError",
        "ServiceUnavailableError",
        "Timeout",
        "TimeoutException",
    }
)


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (huggingface_hub wraps upload errors in a ``RuntimeError`` raised
    ``from`` them; clients re-raise transport errors as their own)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 10:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _own_status(err: BaseException) -> int | None:
    code = getattr(err, "status_code", None)
    if isinstance(code, int):
        return code
    code = getattr(getattr(err, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an error: the first of ``exc`` and its causes with a ``status_code`` (litellm,
    openai) or a ``response.status_code`` (huggingface_hub, httpx, requests); ``None`` when there is none."""
    for err in error_chain(exc):
        status = _own_status(err)
        if status is not None:
            return status
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a timeout, a rate limit or a server error, or a network failure or timeout without a status."""
    status = http_status(exc)
    if status is not None:
        return status in TRANSIENT_STATUS or 500 <= status <= 599
    for err in error_chain(exc):
        if isinstance(err, (ConnectionError, TimeoutError)):
            return True
        if any(cls.__name__ in TRANSIENT_CLASS_NAMES for cls in type(err).__mro__):
            return True
    return False


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if the server sent one."""
    for err in error_chain(exc):
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None) or getattr(err, "headers", None) or {}
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
        except AttributeError:
            continue
        if not value:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(str(value))
            except (TypeError, ValueError):
                return None
            return max(0.0, parsed.timestamp() - time.time())
    return None


def describe(exc: BaseException) -> str:
    """A one-line description of an HTTP error (the status and the first line of the message)."""
    status = http_status(exc)
    root = next((e for e in error_chain(exc) if _own_status(e) is not None), exc)
    first = (str(root).strip().splitlines() or [type(root).__name__])[0]
    return f"HTTP {status}: {first}" if status is not None and str(status) not in first else first
