"""A number shared by every thread and process that sees one file: a small file read and rewritten under
``fcntl.flock``.

The file store of the run-wide limits (:class:`~pytest_smoltrace.limits.FileStore`) keeps each of its numbers so: the
rate limiter's next free request slot and the budget's money spent so far.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="ascii") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(handle: IO[str], value: float) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(repr(value))
    handle.flush()


def update_shared(path: Path, change: Callable[[float], float | None]) -> tuple[float, float]:
    """Atomically read the number in ``path`` (0 when empty) and, if ``change`` returns one, store the new value.

    Returns ``(old, new)``; ``new == old`` when nothing was stored.
    """
    with _locked(path) as handle:
        text = handle.read().strip()
        old = float(text) if text else 0.0
        new = change(old)
        if new is not None:
            _write(handle, new)
    return old, old if new is None else new


def start_shared(path: Path, value: float, keep_younger_than_s: float | None = None) -> float:
    """Store ``value`` in ``path`` and return it, unless ``keep_younger_than_s`` is given and the file already holds a
    number written less than that many seconds ago: that number is kept and returned."""
    with _locked(path) as handle:
        text = handle.read().strip()
        if (
            text
            and keep_younger_than_s is not None
            and time.time() - os.fstat(handle.fileno()).st_mtime < keep_younger_than_s
        ):
            return float(text)
        _write(handle, value)
    return value


def update_shared_json(path: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Atomically read the JSON object in ``path`` (``{}`` when empty) and, if ``change`` returns one, store it;
    returns the object in force."""
    with _locked(path) as handle:
        text = handle.read().strip()
        loaded = json.loads(text) if text else {}
        old: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        new = change(old)
        if new is not None:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(new))
            handle.flush()
    return old if new is None else new
