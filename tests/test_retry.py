"""Unit tests of the retry policy and the cross-process rate limiter (the HTTP path is in test_core_e2e)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.retry import CURRENT_LOG, RateLimiter, RetryLog, RetryPolicy, backoff_s, install, is_retryable


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
    path = tmp_path / "rate"
    first, second = RateLimiter(600, path), RateLimiter(600, path)  # two "processes" sharing one file
    start = time.monotonic()
    for limiter in (first, second, first, second):
        limiter.acquire()
    assert time.monotonic() - start >= 3 * 0.1 - 0.01
