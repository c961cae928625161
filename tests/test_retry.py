"""Unit tests of the retry policy and the cross-process rate limiter (the HTTP path is in test_core_e2e)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.limits import FileStore
from pytest_smoltrace.retry import CURRENT_LOG, RateLimiter, RetryLog, RetryPolicy, backoff_s, install, is_retryable
from smoltrace_export import http_errors
from smoltrace_export import retry as hub_retry
from smoltrace_export.records import RetryEvent


class HTTPError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = type("R", (), {"headers": headers or {}, "status_code": status})()


class APIConnectionError(Exception):
    pass


class FlakyModel:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    def generate(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (HTTPError(429), True),
        (HTTPError(503), True),
        (HTTPError(500), True),
        (HTTPError(408), True),
        (HTTPError(400), False),
        (HTTPError(401), False),
        (HTTPError(404), False),
        (APIConnectionError("refused"), True),
        (ValueError("bad"), False),
    ],
)
def test_retryable_classification(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


class Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}


class HubHTTPError(Exception):
    """huggingface_hub's errors: the status only on ``response``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status} Client Error: nope")
        self.response = Response(status)


class ReadTimeout(Exception):  # httpx's name, no status
    pass


def _wrapped(exc: BaseException) -> BaseException:
    """``exc`` as the cause of a status-less error (huggingface_hub's upload wrapper, a client's own re-raise)."""
    try:
        raise exc
    except BaseException as inner:
        try:
            raise RuntimeError("Error while uploading") from inner
        except RuntimeError as outer:
            return outer


def test_model_calls_and_hub_calls_share_one_classifier() -> None:
    """One rule for every HTTP call: 408/425/429 and every 5xx are transient, other statuses are not; without a
    status, network failures and timeouts are. Model calls and Hub calls differ only in their backoff."""
    assert is_retryable is http_errors.is_transient and hub_retry.is_transient is http_errors.is_transient
    transient = [408, 425, 429, 500, 501, 502, 503, 504, 520, 529, 599]
    permanent = [400, 401, 403, 404, 409, 413, 422]
    for status in transient:
        assert is_retryable(HTTPError(status)) and is_retryable(HubHTTPError(status)), status
        assert is_retryable(_wrapped(HubHTTPError(status))), status
    for status in permanent:
        assert not is_retryable(HTTPError(status)) and not is_retryable(HubHTTPError(status)), status
        assert not is_retryable(_wrapped(HTTPError(status))), status
    for exc in (APIConnectionError(), ReadTimeout(), ConnectionResetError(), TimeoutError(), _wrapped(ReadTimeout())):
        assert is_retryable(exc), exc
    assert not is_retryable(ValueError("bad")) and not is_retryable(RuntimeError("x"))
    assert http_errors.http_status(_wrapped(HTTPError(503))) == 503


def test_retry_after_from_the_error_or_its_cause() -> None:
    assert http_errors.retry_after_s(HTTPError(429, {"Retry-After": "2"})) == 2.0
    assert http_errors.retry_after_s(_wrapped(HTTPError(429, {"retry-after": "1.5"}))) == 1.5
    assert http_errors.retry_after_s(HTTPError(429)) is None
    assert http_errors.retry_after_s(HTTPError(429, {"retry-after": "soon"})) is None  # unparseable: ignored
    assert http_errors.retry_after_s(HTTPError(503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0


def test_a_retry_is_a_record_with_the_json_it_always_had() -> None:
    event = RetryEvent(attempt=1, reason="HTTP 429", wait_s=0.123456)
    assert event.to_dict() == {"attempt": 1, "reason": "HTTP 429", "wait_s": 0.123}
    assert RetryEvent.from_dict(event.to_dict()) == RetryEvent(1, "HTTP 429", 0.123)


def test_backoff_grows_and_honours_retry_after() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(retries=5, base_s=0.5, max_s=10)
    waits = [backoff_s(policy, n, HTTPError(503), rng) for n in (1, 2, 3, 4)]
    assert all(0.5 * 0.5 * 2 ** (n - 1) <= w <= 0.5 * 2 ** (n - 1) for n, w in zip((1, 2, 3, 4), waits, strict=True))
    assert backoff_s(policy, 1, HTTPError(429, {"retry-after": "3"}), rng) == 3.0
    assert backoff_s(policy, 1, HTTPError(429, {"retry-after": "99"}), rng) == 10  # capped


def test_install_retries_then_succeeds_and_logs() -> None:
    slept: list[float] = []
    model = install(
        FlakyModel([HTTPError(429, {"retry-after": "0.1"}), HTTPError(502)]), RetryPolicy(retries=3), sleep=slept.append
    )
    log = RetryLog()
    token = CURRENT_LOG.set(log)
    try:
        assert model.generate() == "ok"
    finally:
        CURRENT_LOG.reset(token)
    assert model.calls == 3 and len(slept) == 2
    assert [e.reason for e in log.events] == ["HTTP 429", "HTTP 502"] and log.events[0].wait_s >= 0.1
    assert all(isinstance(e, RetryEvent) for e in log.events) and [e.attempt for e in log.events] == [1, 2]


def test_install_gives_up_and_does_not_retry_client_errors() -> None:
    model = install(FlakyModel([HTTPError(500)] * 5), RetryPolicy(retries=2), sleep=lambda s: None)
    with pytest.raises(HTTPError):
        model.generate()
    assert model.calls == 3
    bad = install(FlakyModel([HTTPError(400)]), RetryPolicy(retries=2), sleep=lambda s: None)
    with pytest.raises(HTTPError):
        bad.generate()
    assert bad.calls == 1


def test_rate_limiter_spaces_requests_across_instances(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "run", shared=False)
    first, second = RateLimiter(600, store), RateLimiter(600, store)  # two "processes" sharing one file
    start = time.monotonic()
    for limiter in (first, second, first, second):
        limiter.acquire()
    assert time.monotonic() - start >= 3 * 0.1 - 0.01
