"""Reading os.environ in agent threads while pytest's main thread sets and deletes PYTEST_CURRENT_TEST.

Seen in a 10,000-item run (benchmarks/scaling.py): one item errored with ``KeyError: 'PYTEST_CURRENT_TEST'`` from the
secret scan of its trace (``env_secrets`` iterated ``os.environ`` while the variable was deleted).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest

from pytest_smoltrace.telemetry.spans import env_secrets
from smoltrace_tools.environment import EnvOverlay, environ_items


@pytest.fixture
def churn() -> Iterator[None]:
    """Another thread sets and deletes a variable as fast as it can (as pytest does around every item)."""
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.environ["SMOLTRACE_CHURN_TEST"] = "x"
            os.environ.pop("SMOLTRACE_CHURN_TEST", None)
            for n in range(8):  # the dict also grows and shrinks
                os.environ[f"SMOLTRACE_CHURN_{n}"] = "y"
            for n in range(8):
                os.environ.pop(f"SMOLTRACE_CHURN_{n}", None)

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize(
    "read",
    [environ_items, env_secrets, lambda: EnvOverlay().names()],
    ids=["environ_items", "env_secrets", "EnvOverlay.names"],
)
def test_reading_the_environment_while_another_thread_changes_it(churn: None, read: Callable[[], object]) -> None:
    for _ in range(3000):
        read()  # raised KeyError or RuntimeError before, within a few hundred reads
    items = dict(environ_items())
    assert items.get("PATH") == os.environ["PATH"]


def test_env_secrets_still_finds_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_API_KEY", "sk-0123456789abcdef")
    assert "sk-0123456789abcdef" in env_secrets()
