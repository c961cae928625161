"""A number shared by every thread and xdist worker of a run: a small file read and rewritten under ``fcntl.flock``.

Used by the run-wide rate limiter (next free request slot) and the run-wide budget (money spent so far).
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path


def update_shared(path: Path, change: Callable[[float], float | None]) -> tuple[float, float]:
    """Atomically read the number in ``path`` (0 when empty) and, if ``change`` returns one, store the new value.

    Returns ``(old, new)``; ``new == old`` when nothing was stored.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="ascii") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read().strip()
            old = float(text) if text else 0.0
            new = change(old)
            if new is not None:
                handle.seek(0)
                handle.truncate()
                handle.write(repr(new))
                handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return old, old if new is None else new
