"""``--smoltrace-max-cost``: one spending total for the whole run, shared by every thread and xdist worker.

The total lives in a small file guarded by ``fcntl.flock`` (like the rate limiter). Each finished item adds its
cost; no new item starts once the total reaches the limit (runs already in flight finish and are reported).
"""

from __future__ import annotations

import fcntl
from pathlib import Path


class Budget:
    def __init__(self, limit_usd: float, path: Path) -> None:
        self.limit_usd = limit_usd
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _update(self, add: float) -> float:
        with open(self.path, "a+", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                text = handle.read().strip()
                total = (float(text) if text else 0.0) + add
                if add:
                    handle.seek(0)
                    handle.truncate()
                    handle.write(repr(total))
                    handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return total

    def reset(self, spent_usd: float = 0.0) -> None:
        with open(self.path, "w", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(repr(spent_usd))

    def spent(self) -> float:
        return self._update(0.0)

    def add(self, cost_usd: float | None) -> float:
        return self._update(cost_usd or 0.0)

    def exhausted(self) -> bool:
        return self.spent() >= self.limit_usd

    def reason(self) -> str:
        return f"budget reached: the run has spent ${self.spent():.4f} of --smoltrace-max-cost ${self.limit_usd:g}"
